"""Pure readings of Kubernetes API objects (plain JSON dicts): readiness, taints, pod status.

No I/O here, so every rule the probes rely on is testable against recorded objects.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

OUT_OF_SERVICE_KEY = "node.kubernetes.io/out-of-service"
# Added by the cloud node lifecycle controller when the provider reports the instance shut down.
SHUTDOWN_KEY = "node.cloudprovider.kubernetes.io/shutdown"
OUT_OF_SERVICE_TAINT: Obj = {
    "key": OUT_OF_SERVICE_KEY,
    "value": "nodeshutdown",
    "effect": "NoExecute",
}

# What `wait_pod_status` understands; "Unknown" is the one the kubelet-stop experiment waits for.
POD_STATUSES = (
    "Unknown",
    "Terminating",
    "Ready",
    "NotReady",
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
)


def condition(obj: Obj, kind: str) -> Obj:
    """The status condition of type `kind`, or an empty dict."""
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def node_ready(node: Obj) -> str:
    """The node's Ready condition status: "True", "False" or "Unknown" (also when absent)."""
    return str(condition(node, "Ready").get("status", "Unknown"))


def ready_heartbeat(node: Obj) -> str | None:
    """When the kubelet last posted the Ready condition (RFC 3339, second precision)."""
    value = condition(node, "Ready").get("lastHeartbeatTime")
    return str(value) if value else None


def internal_ip(node: Obj) -> str | None:
    for address in node.get("status", {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return None


def taints(node: Obj) -> list[Obj]:
    return [dict(t) for t in node.get("spec", {}).get("taints") or []]


def is_out_of_service(taint: Obj) -> bool:
    return taint.get("key") == OUT_OF_SERVICE_KEY and taint.get("effect") == "NoExecute"


def has_shutdown_taint(node: Obj) -> bool:
    return any(t.get("key") == SHUTDOWN_KEY for t in taints(node))


def pod_ip(pod: Obj) -> str | None:
    value = pod.get("status", {}).get("podIP")
    return str(value) if value else None


def with_out_of_service(current: list[Obj]) -> list[Obj]:
    """`current` plus the out-of-service taint, unchanged if one is already there."""
    if any(is_out_of_service(t) for t in current):
        return current
    return [*current, dict(OUT_OF_SERVICE_TAINT)]


def without_out_of_service(current: list[Obj]) -> list[Obj]:
    """`current` minus out-of-service NoExecute taints; every other taint is kept as it was."""
    return [t for t in current if not is_out_of_service(t)]


def pod_ready(pod: Obj) -> bool:
    """Ready condition True and not being deleted: what endpoints and the StatefulSet count."""
    deleting = bool(pod.get("metadata", {}).get("deletionTimestamp"))
    return not deleting and condition(pod, "Ready").get("status") == "True"


def pod_lost(pod: Obj, node: Obj | None) -> bool:
    """The control plane has lost contact with the pod: what `kubectl get pod` calls Unknown.

    Old clusters set phase Unknown or reason NodeLost themselves. Current ones leave the phase
    Running and instead mark the node's Ready condition Unknown/False and the pod's Ready
    condition False (node lifecycle controller), later adding a deletionTimestamp when the
    unreachable toleration runs out (kubectl then prints Terminating, or Unknown with NodeLost).
    The common fact in all versions: the pod is not Ready and its node is not Ready.
    """
    status = pod.get("status", {})
    if status.get("phase") == "Unknown" or status.get("reason") == "NodeLost":
        return True
    if node is None or condition(pod, "Ready").get("status") == "True":
        return False
    return node_ready(node) != "True"


def pod_matches(pod: Obj, node: Obj | None, status: str) -> bool:
    """Whether `pod` (on `node`, None if unbound) is in one of POD_STATUSES."""
    deleting = bool(pod.get("metadata", {}).get("deletionTimestamp"))
    checks = {
        "Unknown": lambda: pod_lost(pod, node),
        "Terminating": lambda: deleting,
        "Ready": lambda: pod_ready(pod),
        "NotReady": lambda: not pod_ready(pod),
    }
    if status in checks:
        return checks[status]()
    return bool(pod.get("status", {}).get("phase") == status)


def pod_summary(pod: Obj) -> str:
    """One line for logs: phase, readiness, node, deletion."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    ready = condition(pod, "Ready").get("status", "?")
    parts = [
        f"phase={status.get('phase', '?')}",
        f"ready={ready}",
        f"node={spec.get('nodeName') or '-'}",
        f"uid={meta.get('uid', '?')}",
    ]
    if meta.get("deletionTimestamp"):
        parts.append(f"deleting_since={meta['deletionTimestamp']}")
    return " ".join(parts)


def statefulset_pod_names(statefulset: Obj) -> list[str]:
    """The pod names the StatefulSet should have: <name>-<ordinal>, from spec.ordinals.start."""
    spec = statefulset.get("spec", {})
    replicas = int(spec.get("replicas", 1))
    start = int((spec.get("ordinals") or {}).get("start", 0))
    name = statefulset["metadata"]["name"]
    return [f"{name}-{i}" for i in range(start, start + replicas)]


def statefulset_rolled_out(statefulset: Obj) -> tuple[bool, str]:
    """Whether the controller reports the StatefulSet settled, decided as `kubectl rollout status`.

    The observed generation must have caught up and readyReplicas must reach spec.replicas. For
    RollingUpdate with a partition (apps/v1 always defaults one, 0), the updated pods must cover
    every ordinal at or above it; only without one is currentRevision == updateRevision required,
    because currentRevision is known to lag after a finished rollout. OnDelete: readiness only.
    """
    meta = statefulset["metadata"]
    spec, status = statefulset.get("spec", {}), statefulset.get("status", {})
    replicas = int(spec.get("replicas", 1))
    observed = int(status.get("observedGeneration", 0))
    if observed == 0 or int(meta.get("generation", 1)) > observed:
        return False, "spec update not yet observed by the controller"
    ready = int(status.get("readyReplicas", 0))
    if ready < replicas:
        return False, f"{ready}/{replicas} replicas ready"
    settled = f"{ready}/{replicas} replicas ready"
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return True, settled
    partition = (strategy.get("rollingUpdate") or {}).get("partition")
    if partition is not None:
        updated = int(status.get("updatedReplicas", 0))
        if updated < replicas - int(partition):
            return False, f"{updated}/{replicas - int(partition)} replicas at the update revision"
        return True, settled
    if status.get("currentRevision") != status.get("updateRevision"):
        return False, "rolling update in progress (currentRevision != updateRevision)"
    return True, settled
