"""Pure builders for the kubelet fault: host commands, ssh/docker argv, the helper pod manifest.

The one rule every builder keeps: the dead-man timer that restarts kubelet is scheduled FIRST and
the stop only runs if scheduling succeeded (`&&`). Once kubelet is down nothing can reach the node
through Kubernetes (no exec, no new pods) and the experiment runner may die with it, so the host
has to bring kubelet back by itself.
"""

from __future__ import annotations

import hashlib
import shlex
from typing import Any

RESTORE_UNIT = "chaos-kubelet-restore"
HELPER_LABELS = {
    "app.kubernetes.io/name": "kubelet-stop",
    "app.kubernetes.io/part-of": "mysql-chaos-checker",
    "app.kubernetes.io/managed-by": "probes.kubernetes",
}
# The only taints the helper tolerates (the admission policy in manifests/base/chaos checks them).
HELPER_TOLERATED_TAINTS = (
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/out-of-service",
)
# Enter every namespace of the host's pid 1 so systemctl talks to the host's systemd.
NSENTER = ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--"]


def clear_steps() -> list[list[str]]:
    """Host commands that unload what an earlier stop left behind; each may fail harmlessly.

    kubelet is running when a stop begins (the node must be Ready), so nothing still needs an old
    timer: stopping it and resetting failed units frees the unit name for the new one.
    """
    units = [f"{RESTORE_UNIT}.timer", f"{RESTORE_UNIT}.service"]
    return [["systemctl", "stop", *units], ["systemctl", "reset-failed", *units]]


def stop_steps(duration: int) -> list[list[str]]:
    """Host commands, in order: arm the restore timer, then stop kubelet.

    The timer is transient: `--collect` and `RemainAfterElapse=no` unload it and its service once
    it has fired (a loaded unit of the same name would refuse the next stop on this node), and
    `AccuracySec=1s` makes it fire within a second of `duration` instead of up to a minute late
    (systemd.timer(5): RemainAfterElapse= and AccuracySec= default to yes and 1min).
    """
    return [
        [
            "systemd-run",
            "--collect",
            f"--on-active={duration}s",
            "--timer-property=AccuracySec=1s",
            "--timer-property=RemainAfterElapse=no",
            f"--unit={RESTORE_UNIT}",
            "systemctl",
            "start",
            "kubelet",
        ],
        ["systemctl", "stop", "kubelet"],
    ]


def restore_steps() -> list[list[str]]:
    """Host commands to bring kubelet back now and disarm the timer (which may have fired)."""
    return [
        ["systemctl", "stop", f"{RESTORE_UNIT}.timer"],
        ["systemctl", "start", "kubelet"],
    ]


def stop_script(duration: int, prefix: list[str] | None = None) -> str:
    """`clear; clear; timer && stop` as one shell line; each command behind `prefix`."""
    clear = "; ".join(f"{_line(prefix, step)} 2>/dev/null" for step in clear_steps())
    arm_and_stop = " && ".join(_line(prefix, step) for step in stop_steps(duration))
    return f"{clear}; {arm_and_stop}"


def restore_script(prefix: list[str] | None = None) -> str:
    # Disarming fails harmlessly once the timer has fired; starting kubelet must still happen.
    disarm, start = (_line(prefix, step) for step in restore_steps())
    return f"{disarm} 2>/dev/null; {start}"


def _line(prefix: list[str] | None, step: list[str]) -> str:
    return shlex.join([*(prefix or []), *step])


def ssh_command(host: str, user: str | None, script: str) -> list[str]:
    """argv for running `script` on a node over ssh, never prompting (BatchMode)."""
    target = f"{user}@{host}" if user else host
    return ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", target, script]


def ssh_stop_command(host: str, user: str | None, duration: int) -> list[str]:
    return ssh_command(host, user, stop_script(duration, ["sudo", "-n"]))


def ssh_restore_command(host: str, user: str | None) -> list[str]:
    return ssh_command(host, user, restore_script(["sudo", "-n"]))


def docker_stop_command(container: str, duration: int) -> list[str]:
    """argv for a kind node: its container is named after the node and runs systemd as pid 1."""
    return ["docker", "exec", container, "sh", "-c", stop_script(duration)]


def docker_restore_command(container: str) -> list[str]:
    return ["docker", "exec", container, "sh", "-c", restore_script()]


def helper_pod_name(node: str) -> str:
    """A stable name per node so a second stop on the same node collides instead of stacking."""
    name = f"kubelet-stop-{node}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(node.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-.')}-{digest}"


def helper_pod_manifest(node: str, namespace: str, image: str, duration: int) -> dict[str, Any]:
    """A privileged pod pinned to `node`: arms the restore timer on the host, then stops kubelet.

    nodeName skips the scheduler, so cordons and NoSchedule taints do not keep it off the node; the
    tolerations keep it from being evicted from a node that is (or becomes) not-ready/unreachable
    or is tainted out-of-service. Exactly those three: a catch-all toleration would let it stay on
    (and be admitted to) nodes whose owners tainted them to keep such pods away.
    """
    script = stop_script(duration, NSENTER)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": helper_pod_name(node),
            "namespace": namespace,
            "labels": dict(HELPER_LABELS),
            "annotations": {
                "probes.kubernetes/target-node": node,
                "probes.kubernetes/restore-after-seconds": str(duration),
            },
        },
        "spec": {
            "nodeName": node,
            "hostPID": True,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "tolerations": [
                {"key": key, "operator": "Exists", "effect": "NoExecute"}
                for key in HELPER_TOLERATED_TAINTS
            ],
            "containers": [
                {
                    "name": "kubelet-stop",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script],
                    "securityContext": {"privileged": True},
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "64Mi"},
                    },
                }
            ],
        },
    }
