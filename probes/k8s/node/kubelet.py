"""Stopping and restoring kubelet on a node: the helper pod, ssh and docker paths.

Command lines come from `commands` (pure, tested as built); this module runs them and
watches the helper pod for the few failures it can still report before kubelet goes down.
"""

from __future__ import annotations

import logging
import subprocess

from chaoslib.exceptions import ActivityFailed

from probes.k8s import config as check
from probes.k8s import model
from probes.k8s.api import Cluster, poll
from probes.k8s.node import commands

logger = logging.getLogger("chaostoolkit")

# Waiting reasons that mean the helper container will never run without someone's help.
_HELPER_FAILURES = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}
_SUBPROCESS_TIMEOUT = 60


def stop(
    api: Cluster, settings: check.Settings, method: str, node: model.Obj, seconds: int
) -> tuple[str, str]:
    """Stop kubelet by `method`; (helper pod name or "", what is known of its progress).

    Every failure raised here means kubelet was not stopped: the `&&` in the host command only
    runs the stop once the restore timer is armed, and a failed helper exits before the stop.
    """
    name = str(node["metadata"]["name"])
    if method == "pod":
        return _stop_with_helper_pod(api, settings, name, seconds)
    if method == "ssh":
        host = check.ssh_host(settings.ssh_host_template, name, model.internal_ip(node))
        argv = commands.ssh_stop_command(host, settings.ssh_user, seconds)
    else:
        argv = commands.docker_stop_command(name, seconds)
    run_host_command(argv, name, "stop kubelet")
    return "", "done"


def restore_now(api: Cluster, settings: check.Settings, method: str, node: str) -> None:
    """Start kubelet and disarm the timer over ssh/docker; the helper-pod path cannot do this."""
    if method == "ssh":
        address = model.internal_ip(api.node(node))
        host = check.ssh_host(settings.ssh_host_template, node, address)
        argv = commands.ssh_restore_command(host, settings.ssh_user)
    else:
        argv = commands.docker_restore_command(node)
    run_host_command(argv, node, "start kubelet")


def kubelet_back(node: model.Obj, heartbeat_before: str | None) -> bool:
    """Ready, and (if we know the heartbeat from before the stop) posted since by a new kubelet."""
    if model.node_ready(node) != "True":
        return False
    heartbeat = model.ready_heartbeat(node)
    # RFC 3339 UTC timestamps of equal precision order correctly as strings.
    return heartbeat_before is None or (heartbeat is not None and heartbeat > heartbeat_before)


def delete_finished_helper(api: Cluster, settings: check.Settings, node: str) -> bool:
    """Delete the helper pod once kubelet has reported it finished; True if deleted."""
    namespace, name = settings.chaos_namespace, commands.helper_pod_name(node)
    helper = api.pod(namespace, name)
    if helper is None or helper.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
        return False
    return api.delete_pod(namespace, name, str(helper["metadata"]["uid"]), grace_seconds=None)


def run_host_command(argv: list[str], node: str, what: str) -> None:
    logger.info(f"running for {node}: {' '.join(argv)}")
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ActivityFailed(f"cannot {what} on {node}: {exc}") from exc
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        detail = lines[-1] if lines else "no output"
        raise ActivityFailed(f"cannot {what} on {node}: exit {done.returncode}: {detail}")


def _stop_with_helper_pod(
    api: Cluster, settings: check.Settings, node: str, seconds: int
) -> tuple[str, str]:
    namespace = settings.chaos_namespace
    manifest = commands.helper_pod_manifest(node, namespace, settings.helper_image, seconds)
    name = manifest["metadata"]["name"]
    if api.create_pod(namespace, manifest) is None:
        _clear_stale_helper(api, namespace, name, node)
        if api.create_pod(namespace, manifest) is None:
            raise ActivityFailed(f"helper pod {namespace}/{name} still exists; delete it, retry")
    logger.info(f"helper pod {namespace}/{name} created on {node}")
    return name, _helper_progress(api, settings, namespace, name, node)


def _clear_stale_helper(api: Cluster, namespace: str, name: str, node: str) -> None:
    """Delete a finished helper pod left by an earlier run; refuse if one is still at work."""
    stale = api.pod(namespace, name)
    if stale is None:
        return
    phase = stale.get("status", {}).get("phase", "Pending")
    if phase not in ("Succeeded", "Failed"):
        raise ActivityFailed(
            f"a kubelet stop is already in progress on {node} (pod {namespace}/{name} is {phase})"
        )
    api.delete_pod(namespace, name, str(stale["metadata"]["uid"]), grace_seconds=None)


def _helper_progress(
    api: Cluster, settings: check.Settings, namespace: str, name: str, node: str
) -> str:
    """Wait briefly for a sign the helper ran; fail fast on errors it reports first.

    Once kubelet stops, the helper's status freezes, so a running container or a node that is
    no longer Ready is the best evidence there is; after `helper_start_timeout` the state is
    reported as "unconfirmed" and the experiment's own probes have the last word.
    """
    seen = {"state": "unconfirmed"}

    def settled() -> bool:
        state = _helper_state(api.pod(namespace, name), namespace, name, node)
        if state is None and model.node_ready(api.node(node)) != "True":
            state = "node-not-ready"
        if state is not None:
            seen["state"] = state
        return state is not None

    if not poll(settled, settings.helper_start_timeout, settings.poll_interval):
        logger.warning(f"helper pod {namespace}/{name} gave no sign of life yet; carrying on")
    return seen["state"]


def _helper_state(helper: model.Obj | None, namespace: str, name: str, node: str) -> str | None:
    """What the helper reports: "running"/"terminated"/"succeeded", None while pending.

    Raises on the failures it can report (image, config, non-zero exit) before kubelet dies.
    """
    if helper is None:
        raise ActivityFailed(f"helper pod {namespace}/{name} disappeared before stopping kubelet")
    status = helper.get("status", {})
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting = (state.get("waiting") or {}).get("reason")
        if waiting in _HELPER_FAILURES:
            raise ActivityFailed(f"helper pod {namespace}/{name} cannot start on {node}: {waiting}")
        terminated = state.get("terminated")
        if terminated and terminated.get("exitCode") != 0:
            raise ActivityFailed(
                f"helper pod {namespace}/{name} failed on {node} with exit code "
                f"{terminated.get('exitCode')} ({terminated.get('reason', 'Error')}); "
                "kubelet was not stopped, see its log"
            )
        if terminated or "running" in state:
            return "terminated" if terminated else "running"
    if status.get("phase") == "Failed":
        detail = f"{status.get('reason', '')} {status.get('message', '')}".strip()
        raise ActivityFailed(f"helper pod {namespace}/{name} failed on {node}: {detail}")
    return "succeeded" if status.get("phase") == "Succeeded" else None
