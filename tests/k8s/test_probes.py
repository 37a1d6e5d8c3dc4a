"""Read-only probes: node and UID of a pod, lost pods, the at-most-one check, readiness waits."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from probes.k8s.memory import MEMORY, StoppedKubelet
from tests.k8s.fakeapi import FakeKubeAPI, load_fixture
from tests.k8s.fixtures.build import NEW_UID0, UID0

POD = "/api/v1/namespaces/mysql/pods/mysql-0"
STS = "/apis/apps/v1/namespaces/mysql/statefulsets/mysql"
NODE = "/api/v1/nodes/chaos-worker"


def _load(*names: str) -> Any:
    return lambda server: server.load(*names)


def _ready(obj: dict[str, Any]) -> bool:
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_node_of_pod_reads_spec_node_name(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """node_of_pod answers the node the pod is bound to."""
    assert k8s.node_of_pod("mysql-1", configuration=config) == "chaos-worker2"


def test_node_of_missing_or_unbound_pod_fails(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A missing pod or one not yet scheduled is an ActivityFailed, not an empty answer."""
    with pytest.raises(ActivityFailed, match="pod mysql/mysql-9 does not exist"):
        k8s.node_of_pod("mysql-9", configuration=config)
    api.load("node-lost", "node-out-of-service", "mysql-0-rescheduled-pending")
    assert "nodeName" not in load_fixture("mysql-0-rescheduled-pending")[0]["spec"]
    with pytest.raises(ActivityFailed, match="not scheduled on any node"):
        k8s.node_of_pod("mysql-0", configuration=config)


def test_pod_uid_is_noted_for_later_checks(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """pod_uid answers metadata.uid and remembers it for pod_not_replaced."""
    assert k8s.pod_uid("mysql-0", configuration=config) == UID0
    assert MEMORY.uid_of("mysql", "mysql-0") == UID0


def test_wait_pod_status_sees_the_pod_go_unknown(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Once the probe has seen the pod Ready the node is lost; it notices, sending nothing."""
    api.when("GET", POD, lambda code, pod: code == 200 and _ready(pod), _load("node-lost"))
    assert k8s.wait_pod_status("mysql-0", "Unknown", timeout=10, configuration=config)
    assert len(api.requests_for("GET", POD)) >= 2, "saw it Ready, then Unknown"
    assert api.requests_for("GET", NODE), "the node's Ready condition is part of the rule"
    assert api.mutating_requests() == []


def test_wait_pod_status_times_out_false(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A healthy pod never becomes Unknown: the probe answers False after its timeout."""
    assert not k8s.wait_pod_status("mysql-0", "Unknown", timeout=0.2, configuration=config)


def test_wait_pod_status_terminating_after_eviction(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """Once the unreachable toleration runs out the lost pod is Terminating and still Unknown."""
    api.load("node-lost", "node-lost-evicted")
    assert k8s.wait_pod_status("mysql-0", "Terminating", timeout=1, configuration=config)
    assert k8s.wait_pod_status("mysql-0", "Unknown", timeout=1, configuration=config)
    assert not k8s.wait_pod_status("mysql-0", "Ready", timeout=0.1, configuration=config)


def test_pod_on_a_deleted_node_is_unknown(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A node removed from the cluster takes its pods' status with it."""
    api.load("node-lost")
    api.remove("nodes", "chaos-worker")
    assert k8s.wait_pod_status("mysql-0", "Unknown", timeout=1, configuration=config)


def test_pod_not_replaced_while_node_is_lost(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Same UID under the name while the node is lost: the StatefulSet kept at most one."""
    uid = k8s.pod_uid("mysql-0", configuration=config)
    api.load("node-lost", "node-lost-evicted")
    assert k8s.pod_not_replaced("mysql-0", uid, configuration=config)
    assert k8s.pod_not_replaced("mysql-0", configuration=config), "uses the noted UID"
    assert api.mutating_requests() == []


def test_pod_replaced_while_the_old_node_is_lost_is_false(
    api: FakeKubeAPI, config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A new UID while the old node is still lost is False and logged loudly."""
    MEMORY.stopped(StoppedKubelet("chaos-worker", "pod", "2025-03-04T09:12:41Z"))
    # Pod GC removed the old one (out-of-service taint); the new one waits for its node.
    api.load("node-lost", "node-out-of-service", "mysql-0-rescheduled-pending")
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        assert not k8s.pod_not_replaced("mysql-0", UID0, configuration=config)
    assert NEW_UID0 in caplog.text
    assert "double start risk" in caplog.text


def test_pod_gone_is_not_the_same_pod(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """No pod under the name at all means the noted incarnation is gone: False."""
    api.remove("pods", "mysql-0", "mysql")
    assert not k8s.pod_not_replaced("mysql-0", UID0, configuration=config)


def test_pod_not_replaced_needs_a_uid(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Without a uid argument or one noted earlier, the check cannot be made and says so."""
    with pytest.raises(ActivityFailed, match="call pod_uid first"):
        k8s.pod_not_replaced("mysql-0", configuration=config)
    assert api.requests == []


def test_statefulset_ready_waits_for_every_pod(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Stale status saying 3/3 is not enough while mysql-0 is missing; it is once it is Ready."""
    api.remove("pods", "mysql-0", "mysql")  # force-deleted; the status still says 3/3
    # Each step once the probe has seen the one before: mysql-0 missing, then Pending.
    api.when("GET", POD, lambda code, _: code == 404, _load("mysql-0-rescheduled-pending"))
    api.when(
        "GET",
        POD,
        lambda code, pod: code == 200 and pod["status"]["phase"] == "Pending",
        _load("mysql-0-replaced"),
    )
    assert k8s.wait_statefulset_ready(timeout=10, configuration=config)
    assert api.get("pods", "mysql-0", "mysql")["metadata"]["uid"] == NEW_UID0  # type: ignore[index]
    assert api.mutating_requests() == []


def test_statefulset_not_ready_times_out_false(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A StatefulSet with a lost pod is not ready: False after the timeout."""
    api.load("node-lost")
    assert not k8s.wait_statefulset_ready("mysql", "mysql", timeout=0.2, configuration=config)


def test_kubelet_restored_needs_a_fresh_heartbeat(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Ready with the pre-stop heartbeat is not "restored"; Ready with a newer one is."""
    MEMORY.stopped(StoppedKubelet("chaos-worker", "pod", "2025-03-04T09:12:41Z"))
    assert not k8s.wait_kubelet_restored(timeout=0.2, configuration=config)
    api.load("node-lost")
    api.when(
        "GET", NODE, lambda code, node: code == 200 and not _ready(node), _load("kubelet-restored")
    )
    assert k8s.wait_kubelet_restored(timeout=10, configuration=config)


def test_kubelet_restored_for_a_named_node(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Given a node this run did not stop, Ready is enough."""
    assert k8s.wait_kubelet_restored("chaos-worker3", timeout=1, configuration=config)


def test_kubelet_restored_without_a_node_fails(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """With no node given and none stopped in this run there is nothing to wait for."""
    with pytest.raises(ActivityFailed, match="this run stopped no kubelet"):
        k8s.wait_kubelet_restored(configuration=config)
