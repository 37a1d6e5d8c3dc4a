"""The out-of-service taint: exact patch, idempotence, other taints untouched, races retried."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from tests.k8s.fakeapi import FakeKubeAPI

NODE = "/api/v1/nodes/chaos-worker"
UNREACHABLE = [
    {
        "key": "node.kubernetes.io/unreachable",
        "effect": "NoSchedule",
        "timeAdded": "2025-03-04T09:20:51Z",
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "effect": "NoExecute",
        "timeAdded": "2025-03-04T09:20:56Z",
    },
]
OUT_OF_SERVICE = {
    "key": "node.kubernetes.io/out-of-service",
    "value": "nodeshutdown",
    "effect": "NoExecute",
}


def _taints(api: FakeKubeAPI) -> list[dict[str, Any]]:
    node = api.get("nodes", "chaos-worker")
    assert node is not None
    taints: list[dict[str, Any]] = node["spec"].get("taints", [])
    return taints


def test_taint_patch_is_exact(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A json-patch guarded by resourceVersion adds the taint after the node's own taints."""
    api.load("node-lost")
    version = api.get("nodes", "chaos-worker")["metadata"]["resourceVersion"]  # type: ignore[index]
    result = k8s.taint_out_of_service(pod="mysql-0", configuration=config)
    assert result == {"node": "chaos-worker", "tainted": True, "changed": True}
    (patch,) = api.mutating_requests()
    assert (patch.method, patch.path) == ("PATCH", NODE)
    assert patch.headers["content-type"] == "application/json-patch+json"
    assert patch.body == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "add", "path": "/spec/taints", "value": [*UNREACHABLE, OUT_OF_SERVICE]},
    ]
    assert _taints(api) == [*UNREACHABLE, OUT_OF_SERVICE]


def test_taint_is_idempotent(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A node that already carries the taint is not patched again."""
    api.load("node-lost", "node-out-of-service")
    result = k8s.taint_out_of_service(node="chaos-worker", configuration=config)
    assert result["changed"] is False
    assert api.mutating_requests() == []


def test_removal_leaves_other_taints_alone(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Only the out-of-service NoExecute taint goes; the controller's taints stay as they were."""
    api.load("node-lost", "node-out-of-service")
    result = k8s.remove_out_of_service_taint("chaos-worker", configuration=config)
    assert result == {"nodes": "chaos-worker", "changed": "chaos-worker"}
    assert _taints(api) == UNREACHABLE
    assert k8s.remove_out_of_service_taint("chaos-worker", configuration=config)["changed"] == ""
    assert len(api.mutating_requests()) == 1


def test_removal_defaults_to_the_nodes_this_run_tainted(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """After the pod moved, the rollback still untaints the node that was tainted."""
    api.load("node-lost")
    k8s.taint_out_of_service(pod="mysql-0", configuration=config)
    api.load("mysql-0-replaced")
    assert k8s.remove_out_of_service_taint(configuration=config)["changed"] == "chaos-worker"
    assert _taints(api) == UNREACHABLE
    assert k8s.remove_out_of_service_taint(configuration=config)["nodes"] == ""


def test_concurrent_taint_change_is_retried_not_clobbered(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """If the node lifecycle controller edits taints between our read and write, we re-read."""

    def controller_adds_noexecute(server: FakeKubeAPI) -> None:
        node = server.get("nodes", "chaos-worker")
        assert node is not None
        node["spec"]["taints"] = UNREACHABLE
        server.put(node)

    api.load("node-lost")
    api.apply(_only_first_unreachable)
    # The first GET is the target check (_k8s_scope); the second is the taint edit's read.
    api.after(2, "GET", NODE, controller_adds_noexecute)
    assert k8s.taint_out_of_service(node="chaos-worker", configuration=config)["changed"]
    on_node = [r.method for r in api.requests if r.path == NODE]
    assert on_node == ["GET", "GET", "PATCH", "GET", "PATCH"]
    assert _taints(api) == [*UNREACHABLE, OUT_OF_SERVICE]


def _only_first_unreachable(server: FakeKubeAPI) -> None:
    node = server.get("nodes", "chaos-worker")
    assert node is not None
    node["spec"]["taints"] = UNREACHABLE[:1]
    server.put(node)


def test_taint_needs_both_namespaces_allowed(
    api: FakeKubeAPI, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node-level faults need the MySQL and the chaos namespace in the allow list."""
    monkeypatch.setenv("CHAOS_ALLOWED_NAMESPACES", "mysql")
    with pytest.raises(ActivityFailed, match=r"namespace\(s\) chaos not in allowed_namespaces"):
        k8s.taint_out_of_service(node="chaos-worker", configuration=config)
    with pytest.raises(ActivityFailed, match=r"namespace\(s\) chaos not in allowed_namespaces"):
        k8s.remove_out_of_service_taint(node="chaos-worker", configuration=config)
    assert api.requests == []


def test_missing_node_is_a_clear_failure(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Tainting a node that does not exist names it."""
    with pytest.raises(ActivityFailed, match="node chaos-worker9 does not exist"):
        k8s.taint_out_of_service(node="chaos-worker9", configuration=config)
    assert api.mutating_requests() == []
