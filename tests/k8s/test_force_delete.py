"""The guarded force delete, its unsafe escape hatch, and the ordinary pod delete."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from tests.k8s.fakeapi import FakeKubeAPI
from tests.k8s.fixtures.build import NEW_UID0, UID0

POD = "/api/v1/namespaces/mysql/pods/mysql-0"


def test_refused_while_the_node_is_ready(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A pod on a Ready node may well be running: refused, nothing mutating sent."""
    with pytest.raises(ActivityFailed, match="its node chaos-worker is Ready"):
        k8s.force_delete_pod("mysql-0", configuration=config)
    assert api.mutating_requests() == []


@contextmanager
def listening() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 standing for a MySQL server that still runs: its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def _pod_ip(api: FakeKubeAPI, address: str) -> None:
    pod = api.get("pods", "mysql-0", "mysql")
    assert pod is not None
    pod["status"]["podIP"] = address
    api.put(pod)


def test_refused_while_the_old_server_still_answers(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """A lost node whose pod IP still accepts MySQL connections: a second mysql-0 would start."""
    api.load("node-lost")
    with listening() as port:
        _pod_ip(api, "127.0.0.1")
        config["mysql_port"] = port
        with pytest.raises(ActivityFailed, match=r"still answers on 127\.0\.0\.1:\d+ .*second"):
            k8s.force_delete_pod("mysql-0", configuration=config)
        assert api.mutating_requests() == []
        # The out-of-service taint does not make the guard pass: it proves nothing about mysqld.
        # Until the pod garbage collector's next pass (at most 20 s) the evicted pod is still
        # there, Terminating, with its IP: the window in which this call can run.
        api.load("node-out-of-service")
        _pod_ip(api, "127.0.0.1")
        result = k8s.force_delete_pod("mysql-0", on_refusal="report", configuration=config)
    assert result["deleted"] is False
    assert "a second mysql-0 would start" in result["refused"]
    assert api.mutating_requests() == []


def test_shutdown_taint_counts_as_gone(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """The cloud provider's shutdown taint says the instance is off: the delete goes ahead."""
    api.load("node-lost")
    node = api.get("nodes", "chaos-worker")
    assert node is not None
    node["spec"]["taints"] = [
        *node["spec"].get("taints", []),
        {"key": "node.cloudprovider.kubernetes.io/shutdown", "effect": "NoSchedule"},
    ]
    api.put(node)
    with listening() as port:
        _pod_ip(api, "127.0.0.1")
        config["mysql_port"] = port
        assert k8s.force_delete_pod("mysql-0", configuration=config)["deleted"] is True


def test_force_delete_once_nothing_answers(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Node lost and nothing on the pod IP: deleted with grace period 0 and a UID precondition."""
    api.load("node-lost")
    result = k8s.force_delete_pod("mysql-0", configuration=config)
    assert result == {
        "pod": "mysql-0",
        "namespace": "mysql",
        "uid": UID0,
        "node": "chaos-worker",
        "deleted": True,
        "already_gone": False,
        "refused": "",
        "unsafe": False,
    }
    (delete,) = api.mutating_requests()
    assert (delete.method, delete.path) == ("DELETE", POD)
    assert delete.body == {"gracePeriodSeconds": 0, "preconditions": {"uid": UID0}}
    assert api.get("pods", "mysql-0", "mysql") is None


def test_unsafe_skips_the_guard_and_says_so(
    api: FakeKubeAPI, config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """unsafe: true deletes even on a Ready node, with a WARNING naming the unsafe force delete."""
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        result = k8s.force_delete_pod("mysql-0", unsafe="true", configuration=config)
    assert result["deleted"] is True
    assert result["unsafe"] is True
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("unsafe force delete" in r.getMessage() for r in warnings)
    (delete,) = api.mutating_requests()
    assert delete.body["gracePeriodSeconds"] == 0


def test_replacement_is_left_alone(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """If pod GC already replaced the noted incarnation, the replacement is not deleted."""
    assert k8s.pod_uid("mysql-0", configuration=config) == UID0
    # 1.28+: the taint on the NotReady node lets pod GC force-delete the terminating pod; the
    # StatefulSet's new mysql-0 waits, Pending, for its volume's node.
    api.load("node-lost", "node-out-of-service", "mysql-0-rescheduled-pending")
    result = k8s.force_delete_pod("mysql-0", configuration=config)
    assert (result["deleted"], result["already_gone"]) == (False, True)
    assert api.mutating_requests() == []
    assert api.get("pods", "mysql-0", "mysql")["metadata"]["uid"] == NEW_UID0  # type: ignore[index]


def test_gone_between_check_and_delete_is_already_gone(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """Pod GC winning the race after the guard's checks: the delete's 404 is `already_gone`."""
    api.load("node-lost")
    # The pod GC's force delete lands just before ours; the StatefulSet has not yet replaced it.
    api.before("DELETE", POD, lambda s: s.remove("pods", "mysql-0", "mysql"))
    result = k8s.force_delete_pod("mysql-0", configuration=config)
    assert (result["deleted"], result["already_gone"], result["uid"]) == (False, True, UID0)
    assert [r.method for r in api.mutating_requests()] == ["DELETE"]


def test_already_gone_is_not_an_error(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Nothing to delete is a result (deleted: false), not a failure."""
    api.remove("pods", "mysql-0", "mysql")
    result = k8s.force_delete_pod("mysql-0", configuration=config)
    assert (result["deleted"], result["already_gone"]) == (False, True)
    assert api.mutating_requests() == []


def test_replaced_between_check_and_delete_is_already_gone(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """A pod replaced between the check and the delete: the server refuses the precondition,
    the replacement is left alone, and the result says the old incarnation is gone."""
    api.load("node-lost")
    # Between the guard's reads and the DELETE, the operator's taint let pod GC remove the pod
    # and the StatefulSet create a new one (a race that only the DELETE can lose).
    api.before(
        "DELETE",
        POD,
        lambda s: s.load("node-out-of-service", "mysql-0-rescheduled-pending"),
    )
    result = k8s.force_delete_pod("mysql-0", configuration=config)
    assert (result["deleted"], result["already_gone"]) == (False, True)
    (delete,) = api.requests_for("DELETE", POD)
    assert delete.body["preconditions"]["uid"] == result["uid"] != NEW_UID0
    assert api.get("pods", "mysql-0", "mysql")["metadata"]["uid"] == NEW_UID0  # type: ignore[index]


def test_namespace_not_allowed_sends_nothing(
    api: FakeKubeAPI, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The allow list is checked before the cluster is even asked."""
    monkeypatch.setenv("CHAOS_ALLOWED_NAMESPACES", "chaos")
    with pytest.raises(
        ActivityFailed, match=r"refusing to force delete a pod: namespace\(s\) mysql"
    ):
        k8s.force_delete_pod("mysql-0", unsafe=True, configuration=config)
    assert api.requests == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pod": "mysql-0", "unsafe": "yes"}, "unsafe must be true or false"),
        ({"pod": "mysql-0", "uid": "not-a-uid"}, "not a Kubernetes UID"),
        ({"pod": "mysql-0", "on_refusal": "ignore"}, "on_refusal must be one of"),
        ({"pod": None}, "pod must be a string"),
        ({"pod": "mysql-0", "ns": "Not A Namespace"}, "not a valid namespace name"),
    ],
)
def test_malformed_arguments_are_refused(
    api: FakeKubeAPI, config: dict[str, Any], arguments: dict[str, Any], message: str
) -> None:
    """Bad JSON arguments fail with a clear message before any request."""
    with pytest.raises(ActivityFailed, match=message):
        k8s.force_delete_pod(**arguments, configuration=config)
    assert api.requests == []


def test_ordinary_delete_lets_the_kubelet_stop_the_pod(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """delete_pod sends no grace period override; the pod is Terminating until its kubelet acts."""
    result = k8s.delete_pod("mysql-0", configuration=config)
    assert result == {"pod": "mysql-0", "namespace": "mysql", "uid": UID0, "deleted": True}
    (delete,) = api.mutating_requests()
    assert delete.body == {"preconditions": {"uid": UID0}}
    assert k8s.wait_pod_status("mysql-0", "Terminating", timeout=1, configuration=config)


def test_ordinary_delete_refuses_grace_zero(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Grace period 0 is a force delete and must go through the guard instead."""
    with pytest.raises(ActivityFailed, match="grace_period_seconds must be between 1"):
        k8s.delete_pod("mysql-0", grace_period_seconds=0, configuration=config)
    assert api.requests == []
