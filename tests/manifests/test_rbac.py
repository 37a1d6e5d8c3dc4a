"""The chaos runner is granted exactly what probes.kubernetes calls: no more, no less."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from tests.manifests._k8s import RENDER_TARGETS, REPO, Obj, find, render

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)
RUNNER = {"kind": "ServiceAccount", "name": "chaos-runner", "namespace": "chaos"}


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.fixture(scope="module")
def required_rbac() -> list[dict[str, Any]]:
    """probes.kubernetes.REQUIRED_RBAC: what the Kubernetes actions and probes call."""
    try:
        module = importlib.import_module("probes.kubernetes")
        required: list[dict[str, Any]] = module.REQUIRED_RBAC
    except (ImportError, AttributeError) as exc:
        pytest.fail(
            f"probes.kubernetes.REQUIRED_RBAC is not available ({exc}); the RBAC in "
            "manifests/base/chaos/rbac.yaml cannot be checked against it",
            pytrace=False,
        )
    return required


def _grants(rules: list[Obj]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _required(required_rbac: list[dict[str, Any]], scope: str) -> set[Grant]:
    return _grants([r for r in required_rbac if r["scope"] == scope])


def _bound_roles(objs: list[Obj]) -> tuple[dict[str, set[Grant]], set[Grant]]:
    """Grants reaching the chaos runner: per namespace (Roles) and cluster-wide (ClusterRoles)."""
    per_namespace: dict[str, set[Grant]] = {}
    cluster: set[Grant] = set()
    for binding in objs:
        if binding["kind"] not in {"RoleBinding", "ClusterRoleBinding"}:
            continue
        if RUNNER not in binding["subjects"]:
            continue
        ref = binding["roleRef"]
        if binding["kind"] == "RoleBinding":
            namespace = binding["metadata"]["namespace"]
            role = find(
                objs, ref["kind"], ref["name"], namespace if ref["kind"] == "Role" else None
            )
            per_namespace.setdefault(namespace, set()).update(_grants(role["rules"]))
        else:
            cluster |= _grants(find(objs, "ClusterRole", ref["name"])["rules"])
    return per_namespace, cluster


def test_required_rbac_is_well_formed(required_rbac: list[dict[str, Any]]) -> None:
    """Each REQUIRED_RBAC entry names apiGroups, resources, verbs and a namespace/cluster scope."""
    assert required_rbac
    for entry in required_rbac:
        assert set(entry) >= {"apiGroups", "resources", "verbs", "scope"}, entry
        assert entry["scope"] in {"namespace", "cluster"}, entry


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_namespaced_grants_match_required_rbac(
    target: Path, required_rbac: list[dict[str, Any]]
) -> None:
    """Together, the runner's Roles grant exactly the namespace-scoped REQUIRED_RBAC."""
    per_namespace, _ = _bound_roles(render(target))
    granted = set().union(*per_namespace.values()) if per_namespace else set()
    required = _required(required_rbac, "namespace")
    assert granted - required == set(), "granted but never used"
    assert required - granted == set(), "used but not granted"


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_cluster_grants_match_required_rbac(
    target: Path, required_rbac: list[dict[str, Any]]
) -> None:
    """The runner's ClusterRoles grant exactly the cluster-scoped REQUIRED_RBAC."""
    _, cluster = _bound_roles(render(target))
    required = _required(required_rbac, "cluster")
    assert cluster - required == set(), "granted but never used"
    assert required - cluster == set(), "used but not granted"


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_grants_are_split_by_purpose(target: Path) -> None:
    """Pods are created only in "chaos" (the helper), never in "mysql" (it would expose Secrets)."""
    per_namespace, cluster = _bound_roles(render(target))
    assert set(per_namespace) == {"mysql", "chaos"}
    assert ("", "pods", "delete") in per_namespace["mysql"]
    assert ("", "pods", "create") not in per_namespace["mysql"]
    assert ("", "pods", "create") in per_namespace["chaos"]
    assert {resource for _, resource, _ in per_namespace["chaos"]} == {"pods"}
    assert {resource for _, resource, _ in cluster} == {"nodes"}


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_rbac_is_explicit_and_fully_bound(target: Path) -> None:
    """No wildcard or escalation verbs; every Role is bound, and only to the chaos runner."""
    objs = render(target)
    roles = [o for o in objs if o["kind"] in {"Role", "ClusterRole"}]
    bindings = [o for o in objs if o["kind"] in {"RoleBinding", "ClusterRoleBinding"}]
    for role in roles:
        for group, resource, verb in _grants(role["rules"]):
            assert "*" not in (group, resource, verb), role["metadata"]["name"]
            assert verb not in {"escalate", "bind", "impersonate"}, role["metadata"]["name"]
    bound = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings}
    assert bound == {(r["kind"], r["metadata"]["name"]) for r in roles}
    for b in bindings:
        assert b["subjects"] == [RUNNER], b["metadata"]["name"]
    find(objs, "ServiceAccount", "chaos-runner", "chaos")
    cronjob = find(objs, "CronJob", "gameday", "chaos")
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == (
        "chaos-runner"
    )
