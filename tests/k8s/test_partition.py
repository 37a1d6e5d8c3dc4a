"""The replica partition: a deny-all NetworkPolicy selecting one pod, and its removal."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from tests.k8s.fakeapi import FakeKubeAPI

POLICIES = "/apis/networking.k8s.io/v1/namespaces/mysql/networkpolicies"
POLICY = f"{POLICIES}/chaos-partition-mysql-2"


def test_partition_creates_a_deny_all_policy(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """The policy selects the pod by its StatefulSet pod-name label and allows nothing."""
    result = k8s.partition_pod("mysql-2", configuration=config)
    assert result == {
        "pod": "mysql-2",
        "namespace": "mysql",
        "network_policy": "chaos-partition-mysql-2",
        "created": True,
    }
    (create,) = api.mutating_requests()
    assert (create.method, create.path) == ("POST", POLICIES)
    assert create.body["spec"] == {
        "podSelector": {"matchLabels": {"statefulset.kubernetes.io/pod-name": "mysql-2"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }


def test_partition_is_idempotent(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Partitioning twice finds its own policy and succeeds without a second one."""
    k8s.partition_pod("mysql-2", configuration=config)
    assert k8s.partition_pod("mysql-2", configuration=config)["created"] is False
    assert api.requests_for("GET", POLICY)


def test_foreign_policy_of_the_same_name_is_refused(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """A policy someone else named chaos-partition-mysql-2 is not taken for ours."""
    api.put(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "chaos-partition-mysql-2", "namespace": "mysql", "uid": "x"},
            "spec": {"podSelector": {}},
        }
    )
    with pytest.raises(ActivityFailed, match=r"not created by probes\.kubernetes"):
        k8s.partition_pod("mysql-2", configuration=config)


def test_heal_deletes_the_policy_once(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """Healing removes the policy; healing again is fine and says nothing was deleted."""
    k8s.partition_pod("mysql-2", configuration=config)
    assert k8s.heal_partition("mysql-2", configuration=config)["deleted"] is True
    assert api.get("networkpolicies", "chaos-partition-mysql-2", "mysql") is None
    assert k8s.heal_partition("mysql-2", configuration=config)["deleted"] is False


def test_partition_of_a_missing_pod_is_refused(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A typo in the pod name fails instead of creating a policy that selects nothing."""
    with pytest.raises(ActivityFailed, match="pod mysql/mysql-7 does not exist"):
        k8s.partition_pod("mysql-7", configuration=config)
    assert api.mutating_requests() == []


def test_partition_needs_the_namespace_allowed(
    api: FakeKubeAPI, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partition and heal refuse a namespace missing from the allow list, sending nothing."""
    monkeypatch.setenv("CHAOS_ALLOWED_NAMESPACES", "chaos")
    for action in (k8s.partition_pod, k8s.heal_partition):
        with pytest.raises(ActivityFailed, match="not in allowed_namespaces"):
            action("mysql-2", configuration=config)
    assert api.requests == []
