"""The Kubernetes internals of `probes.kubernetes`, laid out like chaostoolkit-kubernetes.

Experiments name only `probes.kubernetes`, which lists the activities defined here:

    pod/probes.py          node_of_pod, pod_uid, wait_pod_status, pod_not_replaced,
                           wait_pod_replaced
    pod/actions.py         force_delete_pod (guarded), delete_pod
    node/probes.py         wait_kubelet_restored
    node/actions.py        stop_kubelet, restore_kubelet, taint_out_of_service,
                           remove_out_of_service_taint
    statefulset/probes.py  wait_statefulset_ready
    network/actions.py     partition_pod, heal_partition

What they share, each importing only those above it in this list:
`model` (pure readings of API objects), `memory` (what this `chaos run` did), `config`
(settings, argument checks, the allow list), `api` (the client, REQUIRED_RBAC, `poll`),
`scope` (which nodes a node-level fault may hit), `targets` (an activity's namespace and pod),
`node/commands` (pure builders of the kubelet stop) and `node/kubelet` (runs them).
"""
