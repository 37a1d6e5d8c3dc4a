"""Which nodes a node-level fault may hit: those running the target StatefulSet, no control plane.

The namespace allow list (from the runner's environment, `config`) bounds pod-level faults;
a node is not namespaced, so a kubelet stop or an out-of-service taint is only allowed on a node
that runs a pod of the target StatefulSet in an allowed namespace, and never on a control-plane
node. The check uses only `get` (nodes, the StatefulSet, its pods), so REQUIRED_RBAC is unchanged.
"""

from __future__ import annotations

from chaoslib.exceptions import ActivityFailed

from probes.k8s import model
from probes.k8s.api import Cluster

# kubeadm labels control-plane nodes with the first; clusters older than 1.24 used the second.
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


def is_control_plane(node: model.Obj) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    return any(label in labels for label in CONTROL_PLANE_LABELS)


def require_not_control_plane(node: model.Obj, action: str) -> None:
    if is_control_plane(node):
        name = node.get("metadata", {}).get("name", "?")
        raise ActivityFailed(
            f"refusing to {action}: node {name} is a control-plane node "
            f"(labelled {' or '.join(CONTROL_PLANE_LABELS)}); chaos only targets MySQL's nodes"
        )


def require_target_node(
    api: Cluster,
    namespace: str,
    statefulset: str,
    node_name: str,
    action: str,
    checked: frozenset[str] = frozenset(),
) -> model.Obj:
    """The node, if a node-level fault may hit it; else ActivityFailed, before any change.

    Allowed: not a control-plane node, and running a pod owned by StatefulSet
    `namespace`/`statefulset` (a pod named like one of its ordinals is not enough), or one of
    the `checked` nodes this run already faulted after this same check: once Kubernetes has
    deleted the lost pod (pod GC after the out-of-service taint, or a force delete), its node
    runs none, yet it is the node the recovery is about.
    """
    node = api.node(node_name)
    require_not_control_plane(node, action)
    if node_name in checked:
        return node
    target = api.statefulset(namespace, statefulset)
    for pod_name in model.statefulset_pod_names(target):
        pod = api.pod(namespace, pod_name)
        on_node = pod is not None and pod.get("spec", {}).get("nodeName") == node_name
        if on_node and _owned_by(pod or {}, "StatefulSet", statefulset):
            return node
    raise ActivityFailed(
        f"refusing to {action}: node {node_name} runs no pod of statefulset "
        f"{namespace}/{statefulset}; node-level faults only target the MySQL StatefulSet's nodes"
    )


def _owned_by(pod: model.Obj, kind: str, name: str) -> bool:
    owners = pod.get("metadata", {}).get("ownerReferences") or []
    return any(o.get("kind") == kind and o.get("name") == name for o in owners)
