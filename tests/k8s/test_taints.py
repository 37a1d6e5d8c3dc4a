"""The out-of-service taint: exact patch, idempotence, other taints untouched, races retried."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from tests.k8s.fakeapi import FakeKubeAPI
from tests.k8s.fixtures.build import at

NODE = "/api/v1/nodes/chaos-worker"
UNREACHABLE = [
    {
        "key": "node.kubernetes.io/unreachable",
        "effect": "NoSchedule",
        "timeAdded": at("lost"),
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "effect": "NoExecute",
        "timeAdded": at("lost"),
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
    """Only the out-of-service NoExecute taint this run added goes; the others stay as they were."""
    api.load("node-lost")
    k8s.taint_out_of_service(node="chaos-worker", configuration=config)
    result = k8s.remove_out_of_service_taint("chaos-worker", configuration=config)
    assert result == {"nodes": "chaos-worker", "changed": "chaos-worker"}
    assert _taints(api) == UNREACHABLE
    assert k8s.remove_out_of_service_taint("chaos-worker", configuration=config)["changed"] == ""
    assert [r.method for r in api.mutating_requests()] == ["PATCH", "PATCH"]


def test_a_taint_that_was_already_there_survives_the_rollback(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """Someone else's out-of-service taint (a node really shut down) is never removed."""
    api.load("node-lost", "node-out-of-service")
    assert k8s.taint_out_of_service(node="chaos-worker", configuration=config)["changed"] is False
    assert k8s.remove_out_of_service_taint(configuration=config) == {"nodes": "", "changed": ""}
    assert k8s.remove_out_of_service_taint("chaos-worker", configuration=config)["changed"] == ""
    assert [t["key"] for t in _taints(api)] == [t["key"] for t in [*UNREACHABLE, OUT_OF_SERVICE]]
    assert api.mutating_requests() == []


def test_a_ready_node_is_not_tainted(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """The taint would evict every pod of a Ready node: refused unless unsafe."""
    with pytest.raises(ActivityFailed, match="node chaos-worker out-of-service: it is Ready"):
        k8s.taint_out_of_service(pod="mysql-0", configuration=config)
    assert api.mutating_requests() == []
    result = k8s.taint_out_of_service(pod="mysql-0", unsafe="true", configuration=config)
    assert result["changed"] is True
    assert OUT_OF_SERVICE in _taints(api)


def test_removal_defaults_to_the_nodes_this_run_tainted(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """Once pod GC replaced the pod, the new one unbound, the rollback still untaints the node."""
    api.load("node-lost")
    k8s.taint_out_of_service(pod="mysql-0", configuration=config)
    api.load("node-out-of-service", "mysql-0-rescheduled-pending")
    assert "nodeName" not in api.get("pods", "mysql-0", "mysql")["spec"]  # type: ignore[index]
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
    # The controller's write lands between our read and our first PATCH: a state-based race
    # (whatever number of reads came before), which the patch's resourceVersion test must lose.
    api.before("PATCH", NODE, controller_adds_noexecute)
    assert k8s.taint_out_of_service(node="chaos-worker", configuration=config)["changed"]
    methods = [r.method for r in api.requests]
    first, last = methods.index("PATCH"), len(methods) - 1 - methods[::-1].index("PATCH")
    assert methods.count("PATCH") == 2 and methods[-1] == "PATCH"
    assert "GET" in methods[first + 1 : last], "the taints are re-read before the retry"
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
