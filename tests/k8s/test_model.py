"""Pure rules on API objects (reconstructed fixtures): lost pods, settled StatefulSets, taints."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from probes.k8s import model
from probes.k8s.node.kubelet import kubelet_back
from tests.k8s.fakeapi import load_fixture


def _objects(*fixtures: str) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name in fixtures:
        for obj in load_fixture(name):
            found[(obj["kind"], obj["metadata"]["name"])] = obj
    return found


HEALTHY = _objects("cluster-healthy")
LOST = _objects("cluster-healthy", "node-lost")


def test_healthy_pod_is_ready_and_not_lost() -> None:
    """A Running, Ready pod on a Ready node matches Ready and Running, not Unknown."""
    pod, node = HEALTHY[("Pod", "mysql-0")], HEALTHY[("Node", "chaos-worker")]
    assert model.pod_matches(pod, node, "Ready")
    assert model.pod_matches(pod, node, "Running")
    assert not model.pod_matches(pod, node, "Unknown")


def test_pod_on_lost_node_is_unknown_though_phase_says_running() -> None:
    """Current clusters leave phase Running; not Ready on a not-Ready node is Unknown."""
    pod, node = LOST[("Pod", "mysql-0")], LOST[("Node", "chaos-worker")]
    assert pod["status"]["phase"] == "Running"
    assert model.pod_matches(pod, node, "Unknown")
    assert model.pod_matches(pod, node, "NotReady")


def test_ready_pod_on_a_node_just_lost_is_not_unknown_yet() -> None:
    """Until the node controller marks the pod NotReady, the pod is not counted lost."""
    pod, node = HEALTHY[("Pod", "mysql-0")], LOST[("Node", "chaos-worker")]
    assert not model.pod_lost(pod, node)


@pytest.mark.parametrize(
    "status", [{"phase": "Unknown"}, {"phase": "Running", "reason": "NodeLost"}]
)
def test_old_cluster_markings_are_unknown(status: dict[str, str]) -> None:
    """Older control planes said so themselves: phase Unknown or reason NodeLost."""
    pod = copy.deepcopy(HEALTHY[("Pod", "mysql-0")])
    pod["status"].update(status)
    assert model.pod_lost(pod, HEALTHY[("Node", "chaos-worker")])


def test_unbound_pod_is_not_lost() -> None:
    """A pod without a node has nothing to lose contact with."""
    pod = _objects("mysql-0-rescheduled-pending")[("Pod", "mysql-0")]
    assert not model.pod_lost(pod, None)
    assert model.pod_matches(pod, None, "Pending")


def test_deleting_pod_is_never_ready() -> None:
    """A pod with a deletionTimestamp is Terminating and no longer counts as Ready."""
    pod = _objects("node-lost-evicted")[("Pod", "mysql-0")]
    pod["status"]["conditions"] = HEALTHY[("Pod", "mysql-0")]["status"]["conditions"]
    assert model.pod_matches(pod, None, "Terminating")
    assert not model.pod_ready(pod)


def test_statefulset_settled_rules() -> None:
    """Observed generation, ready count and the partition decide, as kubectl rollout status."""
    sts = HEALTHY[("StatefulSet", "mysql")]
    assert model.statefulset_rolled_out(sts) == (True, "3/3 replicas ready")
    assert model.statefulset_rolled_out(LOST[("StatefulSet", "mysql")]) == (
        False,
        "2/3 replicas ready",
    )
    newer = copy.deepcopy(sts)
    newer["metadata"]["generation"] = 2
    assert not model.statefulset_rolled_out(newer)[0]
    rolling = copy.deepcopy(sts)
    rolling["status"]["updatedReplicas"] = 1
    assert model.statefulset_rolled_out(rolling) == (
        False,
        "1/3 replicas at the update revision",
    )
    rolling["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2
    assert model.statefulset_rolled_out(rolling)[0]


def test_statefulset_without_partition_compares_revisions() -> None:
    """Without a partition (pre-apps/v1 defaults) the revisions must match."""
    sts = copy.deepcopy(HEALTHY[("StatefulSet", "mysql")])
    del sts["spec"]["updateStrategy"]["rollingUpdate"]
    sts["status"]["updateRevision"] = "mysql-7c9f8d6b5a"
    assert not model.statefulset_rolled_out(sts)[0]
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert model.statefulset_rolled_out(sts)[0]


def test_statefulset_pod_names_follow_ordinals() -> None:
    """Pods are <name>-<ordinal> from spec.ordinals.start (default 0)."""
    sts = copy.deepcopy(HEALTHY[("StatefulSet", "mysql")])
    assert model.statefulset_pod_names(sts) == ["mysql-0", "mysql-1", "mysql-2"]
    sts["spec"]["ordinals"] = {"start": 5}
    assert model.statefulset_pod_names(sts) == ["mysql-5", "mysql-6", "mysql-7"]


def test_taint_edits_touch_only_out_of_service_no_execute() -> None:
    """Adding keeps an existing one (any value); removing keeps every other taint."""
    others = [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/out-of-service", "value": "x", "effect": "NoSchedule"},
    ]
    added = model.with_out_of_service(others)
    assert added == [*others, model.OUT_OF_SERVICE_TAINT]
    custom = [*others, {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]
    assert model.with_out_of_service(custom) == custom
    assert model.without_out_of_service(custom) == others
    assert model.without_out_of_service(added) == others


def test_kubelet_back_needs_ready_and_a_newer_heartbeat() -> None:
    """Restored = Ready with a heartbeat newer than the one recorded before the stop."""
    before = model.ready_heartbeat(HEALTHY[("Node", "chaos-worker")])
    assert before == "2025-03-04T09:12:41Z"
    assert not kubelet_back(HEALTHY[("Node", "chaos-worker")], before)
    assert not kubelet_back(LOST[("Node", "chaos-worker")], before)
    assert kubelet_back(_objects("kubelet-restored")[("Node", "chaos-worker")], before)
    assert kubelet_back(HEALTHY[("Node", "chaos-worker")], None)
