"""Stopping kubelet: the helper pod sent, the ssh/docker commands built, refusals, restore."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from probes.k8s import config as check
from probes.k8s.memory import MEMORY, StoppedKubelet
from probes.k8s.node import commands
from tests.k8s.fakeapi import FakeKubeAPI
from tests.k8s.fixtures.build import UID0

HELPERS = "/api/v1/namespaces/chaos/pods"
HELPER = f"{HELPERS}/kubelet-stop-chaos-worker"
NODE = "/api/v1/nodes/chaos-worker"
TIMER = (
    "systemd-run --collect --on-active=300s --timer-property=AccuracySec=1s "
    "--timer-property=RemainAfterElapse=no --unit=chaos-kubelet-restore systemctl start kubelet"
)
STOP = "systemctl stop kubelet"
UNITS = "chaos-kubelet-restore.timer chaos-kubelet-restore.service"
CLEAR = [f"systemctl stop {UNITS}", f"systemctl reset-failed {UNITS}"]


def _steps(script: str) -> tuple[list[str], str, str]:
    """(clearing commands, timer, stop) of a stop script, prefixes kept."""
    *clear, arm_and_stop = script.split("; ")
    timer, stop = arm_and_stop.split(" && ")
    return [c.removesuffix(" 2>/dev/null") for c in clear], timer, stop


def _helper_status(status: dict[str, Any]) -> Any:
    def change(server: FakeKubeAPI) -> None:
        helper = server.get("pods", "kubelet-stop-chaos-worker", "chaos")
        assert helper is not None
        helper["status"] = status
        server.put(helper)

    return change


RUNNING = {
    "phase": "Running",
    "containerStatuses": [
        {"name": "kubelet-stop", "state": {"running": {"startedAt": "2025-03-04T09:20:03Z"}}}
    ],
}


def test_helper_pod_spec_arms_the_timer_before_the_stop(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """The helper pod is pinned, privileged, tolerant, and its script arms the timer first."""
    api.after(1, "POST", HELPERS, _helper_status(RUNNING))
    result = k8s.stop_kubelet(pod="mysql-0", duration=300, configuration=config)
    assert result == {
        "node": "chaos-worker",
        "pod": "mysql-0",
        "method": "pod",
        "restore_after_seconds": 300,
        "helper_pod": "kubelet-stop-chaos-worker",
        "helper_state": "running",
    }
    (create,) = api.requests_for("POST")
    assert create.path == HELPERS
    spec = create.body["spec"]
    assert spec["nodeName"] == "chaos-worker"
    assert spec["hostPID"] is True
    assert spec["restartPolicy"] == "Never"
    assert {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"} in (
        spec["tolerations"]
    )
    assert {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
    } in (spec["tolerations"])
    assert {
        "key": "node.kubernetes.io/out-of-service",
        "operator": "Exists",
        "effect": "NoExecute",
    } in (spec["tolerations"])
    assert len(spec["tolerations"]) == 3, "a catch-all toleration lets it onto any tainted node"
    assert all(t.get("key") for t in spec["tolerations"])
    (container,) = spec["containers"]
    assert container["securityContext"] == {"privileged": True}
    assert container["resources"]["limits"] == {"cpu": "100m", "memory": "64Mi"}
    assert container["image"] == check.DEFAULT_HELPER_IMAGE
    shell, flag, script = container["command"]
    assert (shell, flag) == ("sh", "-c")
    nsenter = "nsenter -t 1 -m -u -i -n -p -- "
    assert _steps(script) == ([nsenter + c for c in CLEAR], nsenter + TIMER, nsenter + STOP)
    assert MEMORY.last_stopped() == StoppedKubelet("chaos-worker", "pod", "2025-03-04T09:12:41Z")
    assert MEMORY.uid_of("mysql", "mysql-0") == UID0


def test_helper_image_is_configurable(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """configuration helper_image replaces the default image; the node can be named directly."""
    api.after(1, "POST", HELPERS, _helper_status(RUNNING))
    mirrored = "registry.local/tools/debian@sha256:" + "ab" * 32
    config["helper_image"] = mirrored
    k8s.stop_kubelet(node="chaos-worker", duration="60", configuration=config)
    (create,) = api.requests_for("POST")
    assert create.body["spec"]["containers"][0]["image"] == mirrored
    assert "--on-active=60s" in create.body["spec"]["containers"][0]["command"][2]


def test_stop_without_sign_of_life_is_unconfirmed(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """If kubelet dies before reporting the helper, the stop is reported unconfirmed, not failed."""
    config["helper_start_timeout"] = 0.2
    result = k8s.stop_kubelet(pod="mysql-0", configuration=config)
    assert result["helper_state"] == "unconfirmed"


def test_helper_that_cannot_start_fails_the_action(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """An image that cannot be pulled fails at once, and the run notes no stopped kubelet."""
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}
    status = {"phase": "Pending", "containerStatuses": [{"name": "kubelet-stop", "state": waiting}]}
    api.after(1, "POST", HELPERS, _helper_status(status))
    with pytest.raises(ActivityFailed, match="cannot start on chaos-worker: ImagePullBackOff"):
        k8s.stop_kubelet(pod="mysql-0", configuration=config)
    assert MEMORY.last_stopped() is None


def test_helper_that_exits_non_zero_fails_the_action(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """systemd-run failing (so nothing was stopped) surfaces as the helper's exit code."""
    state = {"terminated": {"exitCode": 1, "reason": "Error"}}
    status = {"phase": "Failed", "containerStatuses": [{"name": "kubelet-stop", "state": state}]}
    api.after(1, "POST", HELPERS, _helper_status(status))
    with pytest.raises(ActivityFailed, match="exit code 1"):
        k8s.stop_kubelet(pod="mysql-0", configuration=config)


def test_finished_helper_from_an_earlier_run_is_replaced(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """A Succeeded helper left behind is deleted and the new one created."""
    api.after(1, "POST", HELPERS, _helper_status({"phase": "Succeeded"}))
    k8s.stop_kubelet(node="chaos-worker", configuration=config)
    MEMORY.clear()
    # The first POST answers 409 (the old helper is there); the helper runs once one is created.
    api.when("POST", HELPERS, lambda code, _: code == 201, _helper_status(RUNNING))
    k8s.stop_kubelet(node="chaos-worker", configuration=config)
    methods = [(r.method, r.path) for r in api.mutating_requests()]
    assert methods == [("POST", HELPERS), ("POST", HELPERS), ("DELETE", HELPER), ("POST", HELPERS)]


def test_helper_still_at_work_refuses_a_second_stop(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """A helper still Running on the node means a stop is in progress: refused, nothing deleted."""
    config["helper_start_timeout"] = 0.1
    k8s.stop_kubelet(node="chaos-worker", configuration=config)
    api.apply(_helper_status({"phase": "Running"}))
    with pytest.raises(ActivityFailed, match="already in progress on chaos-worker"):
        k8s.stop_kubelet(node="chaos-worker", configuration=config)
    assert [r.method for r in api.mutating_requests()] == ["POST", "POST"]


def test_node_already_down_is_refused(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Stopping kubelet on a node that is not Ready is refused before anything is created."""
    api.load("node-lost")
    with pytest.raises(ActivityFailed, match="node chaos-worker is not Ready"):
        k8s.stop_kubelet(pod="mysql-0", configuration=config)
    assert api.mutating_requests() == []


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        (None, "CHAOS_ALLOWED_NAMESPACES is not set"),
        (
            "mysql",
            r"namespace\(s\) chaos not in allowed_namespaces \(CHAOS_ALLOWED_NAMESPACES=mysql\)",
        ),
        (
            "chaos",
            r"namespace\(s\) mysql not in allowed_namespaces \(CHAOS_ALLOWED_NAMESPACES=chaos\)",
        ),
        (" , ", "CHAOS_ALLOWED_NAMESPACES is not set"),
        ("", "CHAOS_ALLOWED_NAMESPACES is not set"),
    ],
)
def test_allow_list_refuses_before_any_request(
    api: FakeKubeAPI,
    config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    allowed: str | None,
    message: str,
) -> None:
    """Both the MySQL and the chaos namespace must be allowed; a refusal sends no request."""
    if allowed is None:
        monkeypatch.delenv("CHAOS_ALLOWED_NAMESPACES")
    else:
        monkeypatch.setenv("CHAOS_ALLOWED_NAMESPACES", allowed)
    with pytest.raises(ActivityFailed, match=message):
        k8s.stop_kubelet(pod="mysql-0", configuration=config)
    assert api.requests == []


def test_comma_separated_allow_list_from_var(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """`--var allowed_namespaces=mysql,chaos` (a string) is accepted like a JSON list."""
    config["allowed_namespaces"] = " mysql, chaos "
    config["helper_start_timeout"] = 0.1
    assert k8s.stop_kubelet(pod="mysql-0", configuration=config)["node"] == "chaos-worker"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pod": "mysql-0", "method": "telnet"}, "method must be one of pod, ssh, docker"),
        ({"pod": "mysql-0", "duration": "abc"}, "duration must be a number"),
        ({"pod": "mysql-0", "duration": -5}, "duration must be between 1 and 86400"),
        ({"pod": "mysql-0", "duration": 1.5}, "whole number of seconds"),
        ({"pod": "mysql-0", "duration": True}, "duration must be a number, not bool"),
        ({"pod": "", "duration": 60}, "pod must not be empty"),
        ({"node": "chaos-worker", "pod": "mysql-0"}, "exactly one of node or pod"),
        ({}, "exactly one of node or pod"),
        ({"node": "Bad_Node"}, "not a valid Kubernetes name"),
        ({"pod": "mysql-0", "ns": 7}, "ns must be a string"),
    ],
)
def test_malformed_arguments_are_refused(
    api: FakeKubeAPI, config: dict[str, Any], arguments: dict[str, Any], message: str
) -> None:
    """Arguments straight from JSON are checked before anything is sent."""
    with pytest.raises(ActivityFailed, match=message):
        k8s.stop_kubelet(**arguments, configuration=config)
    assert api.requests == []


def test_ssh_command_arms_the_timer_then_stops() -> None:
    """ssh runs one remote line: sudo'd timer && sudo'd stop, never prompting."""
    argv = commands.ssh_stop_command("172.18.0.3", "core", 240)
    assert argv[:-1] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "core@172.18.0.3"]
    clear, timer, stop = _steps(argv[-1])
    assert [shlex.split(c) for c in clear] == [["sudo", "-n", *c.split()] for c in CLEAR]
    assert shlex.split(timer) == ["sudo", "-n", *TIMER.replace("300s", "240s").split()]
    assert shlex.split(stop) == ["sudo", "-n", *STOP.split()]


def test_docker_command_targets_the_kind_node_container() -> None:
    """For kind the node container is exec'd directly; systemd is its pid 1."""
    argv = commands.docker_stop_command("chaos-worker", 300)
    assert argv[:5] == ["docker", "exec", "chaos-worker", "sh", "-c"]
    assert _steps(argv[5]) == (CLEAR, TIMER, STOP)


def test_restore_commands_disarm_the_timer_then_start() -> None:
    """Restoring starts kubelet even when the timer already fired (its stop may fail)."""
    assert commands.docker_restore_command("chaos-worker")[-1] == (
        "systemctl stop chaos-kubelet-restore.timer 2>/dev/null; systemctl start kubelet"
    )
    assert commands.ssh_restore_command("node-a.lan", None)[-2:] == [
        "node-a.lan",
        "sudo -n systemctl stop chaos-kubelet-restore.timer 2>/dev/null; "
        "sudo -n systemctl start kubelet",
    ]


def test_ssh_host_from_template_or_internal_ip() -> None:
    """The template wins; the InternalIP is the fallback; shell metacharacters never pass."""
    assert check.ssh_host("{node}.nodes.lan", "chaos-worker", "172.18.0.3") == (
        "chaos-worker.nodes.lan"
    )
    assert check.ssh_host(None, "chaos-worker", "172.18.0.3") == "172.18.0.3"
    with pytest.raises(ActivityFailed, match="no InternalIP"):
        check.ssh_host(None, "chaos-worker", None)
    with pytest.raises(ActivityFailed, match="not a plain host name"):
        check.ssh_host("{node};reboot", "chaos-worker", None)


def test_long_node_names_give_valid_helper_names() -> None:
    """Helper pod names stay DNS labels whatever the node name's length."""
    node = "ip-10-0-12-34." + "a" * 60 + ".compute.internal"
    name = commands.helper_pod_name(node)
    assert len(name) <= 63
    assert name != commands.helper_pod_name(node.replace("34", "35"))
    assert check.name(name, "helper") == name


def test_restore_waits_for_the_timer_and_cleans_up(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """Helper-pod method: restore waits for a fresh Ready, then deletes the finished helper."""
    api.after(1, "POST", HELPERS, _helper_status(RUNNING))
    k8s.stop_kubelet(pod="mysql-0", configuration=config)
    api.load("node-lost")
    # The timer fires once restore has seen the node down, however many reads that took.
    api.when("GET", NODE, _not_ready, _load_restored_and_helper_done)
    result = k8s.restore_kubelet(timeout=10, configuration=config)
    assert result == {
        "node": "chaos-worker",
        "method": "pod",
        "ready": True,
        "helper_pod_deleted": True,
    }
    (delete,) = api.requests_for("DELETE")
    assert delete.path == HELPER


def _not_ready(code: int, node: dict[str, Any]) -> bool:
    ready = [c for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
    return code == 200 and bool(ready) and ready[0]["status"] != "True"


def _load_restored_and_helper_done(server: FakeKubeAPI) -> None:
    server.load("kubelet-restored")
    _helper_status({"phase": "Succeeded"})(server)


def test_restore_fails_when_the_node_stays_down(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A node that does not come back within the timeout fails the rollback visibly."""
    MEMORY.stopped(StoppedKubelet("chaos-worker", "pod", "2025-03-04T09:12:41Z"))
    api.load("node-lost")
    with pytest.raises(ActivityFailed, match=r"kubelet on chaos-worker is not back after 0\.2s"):
        k8s.restore_kubelet(timeout=0.2, configuration=config)
    assert api.mutating_requests() == []


def test_restore_with_nothing_stopped_does_nothing(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """A rollback after a run that never stopped kubelet is a quiet no-op."""
    assert k8s.restore_kubelet(configuration=config)["node"] == ""
    assert api.requests == []
