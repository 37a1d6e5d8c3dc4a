"""The guarded force delete, its unsafe escape hatch, and the ordinary pod delete."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from tests.k8s.fakeapi import FakeKubeAPI

POD = "/api/v1/namespaces/mysql/pods/mysql-0"
UID0 = "5f0e3c2a-8b1d-4e6f-9a7c-2d4b6e8f0a11"


def test_refused_while_the_node_is_ready(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A pod on a Ready node may well be running: refused, nothing mutating sent."""
    with pytest.raises(ActivityFailed, match="its node chaos-worker is Ready"):
        k8s.force_delete_pod("mysql-0", configuration=config)
    assert api.mutating_requests() == []


def test_refused_on_a_lost_node_without_the_taint(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """NotReady alone is not proof the node is down: the out-of-service taint is required."""
    api.load("node-lost")
    with pytest.raises(ActivityFailed, match=r"NotReady .* but not tainted .*out-of-service"):
        k8s.force_delete_pod("mysql-0", configuration=config)
    assert api.mutating_requests() == []


def test_force_delete_on_an_out_of_service_node(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Node lost and tainted: the pod is deleted with grace period 0 and a UID precondition."""
    api.load("node-lost", "node-out-of-service")
    result = k8s.force_delete_pod("mysql-0", configuration=config)
    assert result == {
        "pod": "mysql-0",
        "namespace": "mysql",
        "uid": UID0,
        "node": "chaos-worker",
        "deleted": True,
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
    api.load("node-out-of-service", "mysql-0-replaced")
    result = k8s.force_delete_pod("mysql-0", configuration=config)
    assert result["deleted"] is False
    assert api.mutating_requests() == []


def test_already_gone_is_not_an_error(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Nothing to delete is a result (deleted: false), not a failure."""
    api.remove("pods", "mysql-0", "mysql")
    assert k8s.force_delete_pod("mysql-0", configuration=config)["deleted"] is False
    assert api.mutating_requests() == []


def test_precondition_conflict_is_reported(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A pod replaced between the check and the delete makes the server refuse; we say so."""
    api.load("node-lost", "node-out-of-service")
    api.after(1, "GET", "/api/v1/nodes/chaos-worker", lambda s: s.load("mysql-0-replaced"))
    with pytest.raises(ActivityFailed, match="HTTP 409 Conflict: Precondition failed"):
        k8s.force_delete_pod("mysql-0", configuration=config)
    assert api.get("pods", "mysql-0", "mysql") is not None


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
