"""Chaos Toolkit activities for StatefulSet-backed MySQL on Kubernetes.

Faults: stop kubelet on the primary's node (with a dead-man timer that brings it back), the
out-of-service taint, a guarded `kubectl delete pod --grace-period=0 --force`, a plain pod delete,
and a NetworkPolicy partition of one pod. Probes: which node a pod runs on, its UID, whether the
control plane has lost it, whether the StatefulSet kept its at-most-one promise, readiness.

Client configuration follows chaostoolkit-kubernetes (`chaosk8s.create_k8s_api_client`): the
`kubernetes` secrets, KUBECONFIG/KUBERNETES_CONTEXT, in-cluster with CHAOSTOOLKIT_IN_POD=true.
Every destructive activity refuses namespaces missing from the runner's environment variable
CHAOS_ALLOWED_NAMESPACES (never from experiment configuration), and node-level faults refuse any
node that runs no pod of the target StatefulSet, and every control-plane node (`probes.k8s.scope`).

Chaos Toolkit cannot pass one activity's output to another, so the destructive actions note
their targets for this `chaos run` process (`probes.k8s.memory`): `wait_kubelet_restored`,
`restore_kubelet`, `remove_out_of_service_taint`, `pod_not_replaced` and `force_delete_pod` use
those notes when the experiment leaves `node`/`uid` out. Explicit arguments always win.

Experiments name this module; the activities live in the package `probes.k8s`, laid out as
chaostoolkit-kubernetes lays out its own: `pod/probes.py`, `pod/actions.py`, `node/probes.py`,
`node/actions.py`, `statefulset/probes.py`, `network/actions.py`. This module only lists them.
"""

from probes.k8s.api import REQUIRED_RBAC
from probes.k8s.network.actions import heal_partition, partition_pod
from probes.k8s.node.actions import (
    remove_out_of_service_taint,
    restore_kubelet,
    stop_kubelet,
    taint_out_of_service,
)
from probes.k8s.node.probes import wait_kubelet_restored
from probes.k8s.pod.actions import delete_pod, force_delete_pod
from probes.k8s.pod.probes import (
    node_of_pod,
    pod_not_replaced,
    pod_uid,
    wait_pod_replaced,
    wait_pod_status,
)
from probes.k8s.statefulset.probes import wait_statefulset_ready

__all__ = [
    "REQUIRED_RBAC",
    "delete_pod",
    "force_delete_pod",
    "heal_partition",
    "node_of_pod",
    "partition_pod",
    "pod_not_replaced",
    "pod_uid",
    "remove_out_of_service_taint",
    "restore_kubelet",
    "stop_kubelet",
    "taint_out_of_service",
    "wait_kubelet_restored",
    "wait_pod_replaced",
    "wait_pod_status",
    "wait_statefulset_ready",
]

# The read-only activities; `chaos discover` lists the other exports as actions.
PROBES = (
    "node_of_pod",
    "pod_not_replaced",
    "pod_uid",
    "wait_kubelet_restored",
    "wait_pod_replaced",
    "wait_pod_status",
    "wait_statefulset_ready",
)
