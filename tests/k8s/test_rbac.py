"""REQUIRED_RBAC is exact: every request the module sends is granted, and every grant is used."""

from __future__ import annotations

from typing import Any

from probes import kubernetes as k8s
from tests.k8s._rbac import granted, needed, uncovered
from tests.k8s.fakeapi import FakeKubeAPI, Request


def _tour(api: FakeKubeAPI, config: dict[str, Any]) -> list[Request]:
    """Every public activity once, through a kubelet-stop/force-delete/partition story."""
    config["helper_start_timeout"] = 0.05
    k8s.node_of_pod("mysql-0", configuration=config)
    k8s.pod_uid("mysql-0", configuration=config)
    k8s.stop_kubelet(pod="mysql-0", configuration=config)
    api.load("node-lost")
    k8s.wait_pod_status("mysql-0", "Unknown", timeout=1, configuration=config)
    k8s.pod_not_replaced("mysql-0", configuration=config)
    api.load("node-lost-evicted")
    k8s.force_delete_pod("mysql-0", configuration=config)  # nothing answers: deleted
    # The StatefulSet's new mysql-0 waits for its volume's node, which gets the taint.
    api.load("mysql-0-rescheduled-pending")
    k8s.taint_out_of_service(node="chaos-worker", configuration=config)
    api.load("kubelet-back-out-of-service")
    k8s.wait_kubelet_restored(timeout=1, configuration=config)
    api.apply(_helper_succeeded)
    k8s.restore_kubelet(timeout=1, configuration=config)
    k8s.remove_out_of_service_taint(configuration=config)
    api.load("mysql-0-replaced")
    k8s.wait_statefulset_ready(timeout=1, configuration=config)
    k8s.delete_pod("mysql-1", configuration=config)
    k8s.partition_pod("mysql-2", configuration=config)
    k8s.partition_pod("mysql-2", configuration=config)  # idempotent: reads its own policy
    k8s.heal_partition("mysql-2", configuration=config)
    return list(api.requests)


def _helper_succeeded(server: FakeKubeAPI) -> None:
    helper = server.get("pods", "kubelet-stop-chaos-worker", "chaos")
    assert helper is not None
    helper["status"] = {"phase": "Succeeded"}
    server.put(helper)


def test_required_rbac_is_exact(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """The grants the tour needs are exactly REQUIRED_RBAC, with matching scopes."""
    requests = _tour(api, config)
    assert uncovered(requests, k8s.REQUIRED_RBAC) == []
    assert {needed(r) for r in requests} == granted(k8s.REQUIRED_RBAC)


def test_required_rbac_shape() -> None:
    """Each entry lists apiGroups, resources and verbs, and a namespace or cluster scope."""
    for rule in k8s.REQUIRED_RBAC:
        assert set(rule) == {"apiGroups", "resources", "verbs", "scope"}
        assert rule["scope"] in ("namespace", "cluster")
        assert rule["verbs"] == sorted(set(rule["verbs"]))
