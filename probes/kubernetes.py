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

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging
import socket
from collections.abc import Callable
from typing import Any

from chaoslib.exceptions import ActivityFailed

from probes.k8s import config as check
from probes.k8s import model, scope
from probes.k8s.api import Cluster, Conflict, cluster, poll
from probes.k8s.memory import MEMORY, StoppedKubelet
from probes.k8s.node import commands, kubelet

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

logger = logging.getLogger("chaostoolkit")

# Exactly the API permissions this module uses and no more; tests/k8s checks every request the
# module sends against it. pods: get in both namespaces, create only in the chaos namespace
# (helper pod), delete in both (force/plain delete of MySQL pods, finished helper pods).
REQUIRED_RBAC: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "delete", "get"],
        "scope": "namespace",
    },
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"], "scope": "cluster"},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"], "scope": "namespace"},
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["create", "delete", "get"],
        "scope": "namespace",
    },
]

Configuration = dict[str, Any] | None
Secrets = dict[str, Any] | None
Result = dict[str, Any]

_TAINT_ATTEMPTS = 5
_PARTITION_LABEL = "statefulset.kubernetes.io/pod-name"


# == probes ======================================================================================
def node_of_pod(
    pod: str, ns: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> str:
    """Name of the node the pod is bound to (spec.nodeName); fails if it is missing or unbound."""
    settings, namespace, name = _pod_target(pod, ns, configuration)
    with cluster(secrets, settings.request_timeout) as api:
        return _bound_node(_existing_pod(api, namespace, name), namespace, name)


def pod_uid(
    pod: str, ns: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> str:
    """The pod's metadata.uid, noted for `pod_not_replaced` and `force_delete_pod`.

    A StatefulSet pod keeps its name across incarnations; only the UID tells them apart.
    """
    settings, namespace, name = _pod_target(pod, ns, configuration)
    with cluster(secrets, settings.request_timeout) as api:
        uid = str(_existing_pod(api, namespace, name)["metadata"]["uid"])
    MEMORY.saw_uid(namespace, name, uid, replace=True)
    logger.info(f"pod {namespace}/{name} has uid {uid}")
    return uid


def wait_pod_status(
    pod: str,
    status: str = "Unknown",
    ns: str | None = None,
    timeout: float = 420.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """Poll until the pod is in `status`; False if it is not within `timeout` seconds.

    "Unknown" means the control plane has lost the pod with its node, whatever the Kubernetes
    version shows: phase Unknown or reason NodeLost (old clusters), or the pod's Ready condition
    not True while its node's Ready condition is not True either (current clusters, ~40-50 s
    after kubelet stops; kubectl later prints Terminating once the 300 s unreachable toleration
    runs out). Also: "Terminating" (deletionTimestamp set), "Ready"/"NotReady" (Ready condition,
    a deleting pod is never Ready), or a phase: Pending, Running, Succeeded, Failed.
    """
    settings, namespace, name = _pod_target(pod, ns, configuration)
    wanted = check.choice(status, "status", model.POD_STATUSES)
    limit = check.seconds(timeout, "timeout")
    with cluster(secrets, settings.request_timeout) as api:
        done = poll(
            lambda: _pod_in_status(api, namespace, name, wanted), limit, settings.poll_interval
        )
    logger.info(f"pod {namespace}/{name} {'is' if done else 'did not become'} {wanted}")
    return done


def pod_not_replaced(
    pod: str,
    uid: str | None = None,
    ns: str | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True if the pod is still the incarnation `uid`: the StatefulSet at-most-one check.

    Pod names are unique in a namespace and a pod never changes node, so "no pod of that name
    runs on another node" is "the object under that name still carries the old UID". A new UID,
    or no pod at all, is False, logged with where the new one runs and whether the old node is
    still lost (a possible double start). `uid` defaults to the UID noted earlier in this run
    by `pod_uid` (or `stop_kubelet`/`taint_out_of_service` given a pod).
    """
    settings, namespace, name = _pod_target(pod, ns, configuration)
    expected = _expected_uid(uid, namespace, name)
    with cluster(secrets, settings.request_timeout) as api:
        found = api.pod(namespace, name)
        if found is None:
            logger.warning(f"pod {namespace}/{name} (uid {expected}) is gone")
            return False
        if found["metadata"].get("uid") == expected:
            logger.info(f"pod {namespace}/{name} not replaced: {model.pod_summary(found)}")
            return True
        _log_replacement(api, found, namespace, name, expected)
        return False


def wait_pod_replaced(
    pod: str,
    uid: str | None = None,
    ns: str | None = None,
    timeout: float = 420.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """Poll until incarnation `uid` of the pod is gone (deleted, or replaced by a new UID).

    After the out-of-service taint, Kubernetes deletes the lost pod itself (the taint manager
    evicts it, and from 1.28 the pod garbage collector force-deletes it); this waits for that.
    `uid` defaults to the one noted in this run. False if it is still there after `timeout`.
    """
    settings, namespace, name = _pod_target(pod, ns, configuration)
    expected = _expected_uid(uid, namespace, name)
    limit = check.seconds(timeout, "timeout")

    def gone() -> bool:
        found = api.pod(namespace, name)
        return found is None or found["metadata"].get("uid") != expected

    with cluster(secrets, settings.request_timeout) as api:
        done = poll(gone, limit, settings.poll_interval)
    logger.info(f"pod {namespace}/{name} uid {expected} {'is gone' if done else 'is still there'}")
    return done


def wait_kubelet_restored(
    node: str | None = None,
    timeout: float = 900.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """Poll until the node is Ready again after a kubelet stop; False if not within `timeout`.

    `node` defaults to the last node whose kubelet this run stopped. If this run stopped it,
    Ready must also carry a newer heartbeat than before the stop: right after the stop the node
    still looks Ready for ~40 s (node-monitor-grace-period), while a restarted kubelet posts its
    status at once, so a fresh heartbeat is the proof it came back.
    """
    settings = check.settings(configuration)
    limit = check.seconds(timeout, "timeout")
    target, before = _restore_target(check.optional_name(node, "node"))
    with cluster(secrets, settings.request_timeout) as api:
        done = poll(
            lambda: kubelet.kubelet_back(api.node(target), before), limit, settings.poll_interval
        )
    logger.info(f"kubelet on {target} {'is back' if done else 'is still not back'}")
    return done


def wait_statefulset_ready(
    name: str | None = None,
    ns: str | None = None,
    timeout: float = 600.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """Poll until the StatefulSet is settled and each of its pods is Ready; False on timeout.

    Settled as `kubectl rollout status` decides (observedGeneration, readyReplicas reaching
    spec.replicas, updated replicas above the partition). Status lags right after a pod delete,
    so every pod <name>-<ordinal> must also exist, be Ready and not be terminating. `name`
    defaults to configuration `statefulset` ("mysql").
    """
    settings = check.settings(configuration)
    sts_name = settings.statefulset if name is None else check.name(name, "name")
    namespace = _namespace(ns, settings)
    limit = check.seconds(timeout, "timeout")
    with cluster(secrets, settings.request_timeout) as api:
        done = poll(
            lambda: _statefulset_ready(api, namespace, sts_name), limit, settings.poll_interval
        )
    logger.info(f"statefulset {namespace}/{sts_name} {'is' if done else 'is not'} ready")
    return done


# == actions =====================================================================================
def stop_kubelet(
    node: str | None = None,
    pod: str | None = None,
    duration: int = 120,
    method: str = "pod",
    ns: str | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Stop kubelet on `node`, or on the node running `pod`; it restarts itself after `duration`.

    The host first arms a transient systemd timer (`systemd-run --on-active=<duration>s
    --unit=chaos-kubelet-restore systemctl start kubelet`) and only if that worked runs
    `systemctl stop kubelet`, because with kubelet down nothing reaches the node through
    Kubernetes. method "pod": a privileged hostPID pod pinned to the node, in configuration
    `chaos_namespace`, runs both through `nsenter -t 1`; "ssh": `ssh [ssh_user@]<host>` with
    `sudo -n`, host from configuration `ssh_host_template` or the node's InternalIP; "docker":
    `docker exec <node>` for kind nodes. Refused unless the pod's namespace (`ns`, default
    configuration `namespace`) and the chaos namespace are both in CHAOS_ALLOWED_NAMESPACES,
    and unless the node runs a pod of the StatefulSet there and is no control-plane node.
    """
    settings = check.settings(configuration)
    chosen = check.choice(method, "method", check.KUBELET_METHODS)
    seconds = check.whole_seconds(duration, "duration", check.MAX_KUBELET_DOWN_SECONDS)
    node_name, pod_name = _node_or_pod(node, pod)
    namespace = _namespace(ns, settings)
    check.require_allowed(settings, [namespace, settings.chaos_namespace], "stop kubelet")
    with cluster(secrets, settings.request_timeout) as api:
        target_name = _resolve_node(api, namespace, node_name, pod_name)
        target = scope.require_target_node(
            api, namespace, settings.statefulset, target_name, "stop kubelet"
        )
        _require_ready(target, target_name)
        helper, state = kubelet.stop(api, settings, chosen, target, seconds)
    MEMORY.stopped(StoppedKubelet(target_name, chosen, model.ready_heartbeat(target)))
    logger.warning(f"kubelet stopped on {target_name} via {chosen}; restores itself in {seconds}s")
    return {
        "node": target_name,
        "pod": pod_name or "",
        "method": chosen,
        "restore_after_seconds": seconds,
        "helper_pod": helper,
        "helper_state": state,
    }


def restore_kubelet(
    node: str | None = None,
    method: str | None = None,
    timeout: float = 900.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Rollback for `stop_kubelet`: bring kubelet back, wait for the node to be Ready, clean up.

    ssh/docker: kubelet is started now and the timer disarmed. pod: nothing reaches the node
    until kubelet runs, so this waits for the dead-man timer, then deletes the finished helper
    pod. `node`/`method` default to what this run stopped; if it stopped nothing, nothing is
    done. Fails if the node is not Ready within `timeout` seconds.
    """
    settings = check.settings(configuration)
    limit = check.seconds(timeout, "timeout")
    explicit = check.optional_name(node, "node")
    stopped = MEMORY.stopped_on(explicit) if explicit else MEMORY.last_stopped()
    if explicit is None and stopped is None:
        logger.info("restore_kubelet: this run stopped no kubelet, nothing to restore")
        return {"node": "", "method": "", "ready": True, "helper_pod_deleted": False}
    target = explicit or (stopped.node if stopped else "")
    fallback = stopped.method if stopped else "pod"
    chosen = check.choice(method or fallback, "method", check.KUBELET_METHODS)
    check.require_allowed(
        settings, [settings.namespace, settings.chaos_namespace], "restore kubelet"
    )
    before = stopped.heartbeat_before if stopped else None
    with cluster(secrets, settings.request_timeout) as api:
        if chosen != "pod":
            kubelet.restore_now(api, settings, chosen, target)
        ready = poll(
            lambda: kubelet.kubelet_back(api.node(target), before), limit, settings.poll_interval
        )
        deleted = (
            chosen == "pod" and ready and kubelet.delete_finished_helper(api, settings, target)
        )
    if not ready:
        raise ActivityFailed(f"kubelet on {target} is not back after {limit:g}s")
    logger.info(f"kubelet on {target} is back")
    return {"node": target, "method": chosen, "ready": ready, "helper_pod_deleted": deleted}


def taint_out_of_service(
    node: str | None = None,
    pod: str | None = None,
    ns: str | None = None,
    unsafe: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Add `node.kubernetes.io/out-of-service=nodeshutdown:NoExecute` to `node` (or `pod`'s node).

    The taint tells Kubernetes the node is really shut down: pods without a matching toleration
    are deleted (and, from Kubernetes 1.28, force-deleted by the pod garbage collector) and their
    volumes detached. The Kubernetes docs (non-graceful node shutdown) say to apply it only to a
    node that is shut down, so a Ready node is refused: tainting it would evict everything on it.
    `unsafe: true` skips that check. Idempotent: an existing out-of-service NoExecute taint is
    left alone (and never removed by the rollback), as are other taints. Refused unless the MySQL
    namespace and the chaos namespace are both allowed, and unless the node runs a pod of the
    StatefulSet there and is no control-plane node.
    """
    settings = check.settings(configuration)
    node_name, pod_name = _node_or_pod(node, pod)
    namespace = _namespace(ns, settings)
    skip_check = check.flag(unsafe, "unsafe")
    check.require_allowed(
        settings, [namespace, settings.chaos_namespace], "taint a node out-of-service"
    )
    with cluster(secrets, settings.request_timeout) as api:
        target = _resolve_node(api, namespace, node_name, pod_name)
        stopped = MEMORY.stopped_on(target)
        scope.require_target_node(
            api,
            namespace,
            settings.statefulset,
            target,
            "taint a node out-of-service",
            checked=frozenset([stopped.node] if stopped else []),
        )
        ready = model.node_ready(api.node(target))
        if ready == "True" and not skip_check:
            raise ActivityFailed(
                f"refusing to taint node {target} out-of-service: it is Ready, and the taint "
                "would evict every pod on it; apply it only to a node that is shut down "
                "(unsafe: true to do it anyway)"
            )
        changed = _edit_taints(api, target, model.with_out_of_service)
    if changed:
        MEMORY.tainted(target)
    logger.warning(f"node {target} tainted out-of-service ({'added' if changed else 'was there'})")
    return {"node": target, "tainted": True, "changed": changed}


def remove_out_of_service_taint(
    node: str | None = None,
    ns: str | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Remove the out-of-service NoExecute taint this run added, leaving every other taint alone.

    Only a taint `taint_out_of_service` added in this `chaos run` is removed: one that was
    already there was put by someone else (a node really shut down) and stays. `node` narrows
    the removal to that node; by default every node this run tainted. Idempotent.
    """
    settings = check.settings(configuration)
    explicit = check.optional_name(node, "node")
    ours = MEMORY.tainted_nodes()
    if explicit is not None and explicit not in ours:
        logger.info(f"node {explicit}: this run added no out-of-service taint, leaving it as is")
    targets = [n for n in ours if explicit is None or n == explicit]
    namespace = _namespace(ns, settings)
    check.require_allowed(
        settings, [namespace, settings.chaos_namespace], "remove an out-of-service taint"
    )
    changed: list[str] = []
    with cluster(secrets, settings.request_timeout) as api:
        if explicit:
            scope.require_not_control_plane(api.node(explicit), "remove an out-of-service taint")
        for name in targets:
            if _edit_taints(api, name, model.without_out_of_service):
                changed.append(name)
            MEMORY.untainted(name)
    logger.info(f"out-of-service taint removed from {', '.join(targets) or 'no node'}")
    return {"nodes": ",".join(targets), "changed": ",".join(changed)}


def force_delete_pod(
    pod: str,
    ns: str | None = None,
    unsafe: bool = False,
    uid: str | None = None,
    on_refusal: str = "fail",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """`kubectl delete pod --grace-period=0 --force`, refused while the old server may still run.

    A force delete only removes the API object: if the container still runs (a stopped kubelet
    leaves it running), the StatefulSet starts a second pod with the same identity. Guard: the
    pod's node must be NotReady, and its old MySQL server must be gone: the pod IP no longer
    accepts connections on configuration `mysql_port` (refused, or no answer within 3 s), or the
    node carries the cloud provider's `node.cloudprovider.kubernetes.io/shutdown` taint.
    Otherwise the delete is refused: `on_refusal` "fail" (default) fails the activity, "report"
    returns `deleted: false` with the reason in `refused`. `unsafe: true` skips the guard to
    reproduce a double start on purpose. The delete carries a UID precondition: only
    incarnation `uid` (default: the one noted in this run, else the current one) is deleted; if
    it is gone or replaced already, `deleted` is False and `already_gone` True.
    """
    settings, namespace, name = _pod_target(pod, ns, configuration)
    skip_guard = check.flag(unsafe, "unsafe")
    refusal = check.choice(on_refusal, "on_refusal", ("fail", "report"))
    wanted = None if uid is None else check.uid(uid, "uid")
    check.require_allowed(settings, [namespace], "force delete a pod")
    result: Result = {
        "pod": name,
        "namespace": namespace,
        "uid": "",
        "node": "",
        "deleted": False,
        "already_gone": False,
        "refused": "",
        "unsafe": skip_guard,
    }
    with cluster(secrets, settings.request_timeout) as api:
        current = _incarnation(api, namespace, name, wanted or MEMORY.uid_of(namespace, name))
        if current is None:
            return {**result, "already_gone": True}
        node_name = str(current.get("spec", {}).get("nodeName") or "")
        if skip_guard:
            logger.warning(
                f"unsafe force delete of {namespace}/{name} on {node_name or 'no node'}: guard "
                "skipped, a second MySQL may start with the same identity"
            )
        else:
            why = _old_server_alive(api, current, node_name, namespace, name, settings)
            if why:
                if refusal == "fail":
                    raise ActivityFailed(why)
                logger.warning(why)
                return {**result, "node": node_name, "refused": why}
        uid_now = str(current["metadata"]["uid"])
        deleted = api.delete_pod(namespace, name, uid_now, grace_seconds=0)
    if not deleted:
        # Gone between the read and the delete: pod GC force-deletes pods on out-of-service
        # nodes itself (Kubernetes 1.28+), so this is a result, not a failure.
        logger.info(f"pod {namespace}/{name} (uid {uid_now}) was gone before the force delete")
        return {**result, "uid": uid_now, "node": node_name, "already_gone": True}
    logger.warning(f"force deleted pod {namespace}/{name} (uid {uid_now}) on {node_name}")
    return {**result, "uid": uid_now, "node": node_name, "deleted": True}


def delete_pod(
    pod: str,
    ns: str | None = None,
    grace_period_seconds: int | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Delete the pod the ordinary way, like `kubectl delete pod`: its kubelet stops it first.

    `grace_period_seconds` defaults to the pod's terminationGracePeriodSeconds; 0 is refused,
    that is a force delete (see `force_delete_pod` and its guard).
    """
    settings, namespace, name = _pod_target(pod, ns, configuration)
    grace = None
    if grace_period_seconds is not None:
        grace = check.whole_seconds(grace_period_seconds, "grace_period_seconds", 3600)
    check.require_allowed(settings, [namespace], "delete a pod")
    with cluster(secrets, settings.request_timeout) as api:
        uid = str(_existing_pod(api, namespace, name)["metadata"]["uid"])
        MEMORY.saw_uid(namespace, name, uid, replace=False)
        deleted = api.delete_pod(namespace, name, uid, grace_seconds=grace)
    logger.warning(f"deleted pod {namespace}/{name} (uid {uid})")
    return {"pod": name, "namespace": namespace, "uid": uid, "deleted": deleted}


def partition_pod(
    pod: str, ns: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> Result:
    """Cut all traffic to and from one StatefulSet pod with a deny-all NetworkPolicy.

    The policy `chaos-partition-<pod>` selects the pod by its `statefulset.kubernetes.io/pod-name`
    label and allows no ingress and no egress. It only bites with a CNI that enforces
    NetworkPolicy, and some CNIs let established connections live on. Idempotent.
    """
    settings, namespace, name = _pod_target(pod, ns, configuration)
    check.require_allowed(settings, [namespace], "partition a pod")
    manifest = _partition_policy(name, namespace)
    policy = manifest["metadata"]["name"]
    with cluster(secrets, settings.request_timeout) as api:
        _existing_pod(api, namespace, name)
        created = api.create_network_policy(namespace, manifest) is not None
        if not created:
            _require_our_policy(api.network_policy(namespace, policy), namespace, policy)
    logger.warning(f"pod {namespace}/{name} partitioned by networkpolicy {policy}")
    return {"pod": name, "namespace": namespace, "network_policy": policy, "created": created}


def heal_partition(
    pod: str, ns: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> Result:
    """Delete the NetworkPolicy `partition_pod` created; fine if it is already gone."""
    settings, namespace, name = _pod_target(pod, ns, configuration)
    check.require_allowed(settings, [namespace], "heal a partition")
    policy = _partition_name(name)
    with cluster(secrets, settings.request_timeout) as api:
        deleted = api.delete_network_policy(namespace, policy)
    logger.info(f"networkpolicy {namespace}/{policy} {'deleted' if deleted else 'already gone'}")
    return {"pod": name, "namespace": namespace, "network_policy": policy, "deleted": deleted}


# == helpers =====================================================================================
def _pod_target(pod: Any, ns: Any, configuration: Configuration) -> tuple[check.Settings, str, str]:
    settings = check.settings(configuration)
    return settings, _namespace(ns, settings), check.name(pod, "pod")


def _namespace(ns: Any, settings: check.Settings) -> str:
    return settings.namespace if ns is None else check.namespace(ns, "ns")


def _node_or_pod(node: Any, pod: Any) -> tuple[str | None, str | None]:
    node_name = check.optional_name(node, "node")
    pod_name = check.optional_name(pod, "pod")
    if (node_name is None) == (pod_name is None):
        raise ActivityFailed("give exactly one of node or pod")
    return node_name, pod_name


def _existing_pod(api: Cluster, namespace: str, name: str) -> model.Obj:
    found = api.pod(namespace, name)
    if found is None:
        raise ActivityFailed(f"pod {namespace}/{name} does not exist")
    return found


def _bound_node(pod: model.Obj, namespace: str, name: str) -> str:
    node_name = pod.get("spec", {}).get("nodeName")
    if not node_name:
        raise ActivityFailed(f"pod {namespace}/{name} is not scheduled on any node yet")
    return str(node_name)


def _resolve_node(api: Cluster, namespace: str, node: str | None, pod: str | None) -> str:
    """`node`, else the pod's node; the pod's UID is noted as its pre-fault incarnation."""
    if node is not None:
        return node
    name = pod or ""
    found = _existing_pod(api, namespace, name)
    MEMORY.saw_uid(namespace, name, str(found["metadata"]["uid"]), replace=False)
    return _bound_node(found, namespace, name)


def _pod_in_status(api: Cluster, namespace: str, name: str, wanted: str) -> bool:
    found = api.pod(namespace, name)
    if found is None:
        return False
    logger.debug(f"pod {namespace}/{name}: {model.pod_summary(found)}")
    node_name = found.get("spec", {}).get("nodeName")
    node = None
    if node_name and wanted == "Unknown":
        # A node deleted from the cluster has lost its pods too: read it as Ready=Unknown.
        node = api.find_node(node_name) or {"metadata": {"name": node_name}}
    return model.pod_matches(found, node, wanted)


def _expected_uid(uid: Any, namespace: str, name: str) -> str:
    if uid is not None:
        return check.uid(uid, "uid")
    noted = MEMORY.uid_of(namespace, name)
    if noted is None:
        raise ActivityFailed(
            f"no uid given for {namespace}/{name} and none noted in this run; call pod_uid first"
        )
    return noted


def _log_replacement(
    api: Cluster, found: model.Obj, namespace: str, name: str, expected: str
) -> None:
    new_node = found.get("spec", {}).get("nodeName") or "-"
    logger.warning(
        f"pod {namespace}/{name} was replaced: uid {expected} -> {found['metadata'].get('uid')} "
        f"({model.pod_summary(found)})"
    )
    stopped = MEMORY.last_stopped()
    if stopped is None or stopped.node == new_node:
        return
    if model.node_ready(api.find_node(stopped.node) or {}) != "True":
        logger.warning(
            f"the old node {stopped.node} is still lost while {name} "
            + ("waits to be scheduled" if new_node == "-" else f"runs on {new_node}")
            + ": the old container may still be alive (double start risk)"
        )


def _restore_target(node: str | None) -> tuple[str, str | None]:
    stopped = MEMORY.stopped_on(node) if node else MEMORY.last_stopped()
    if node is None and stopped is None:
        raise ActivityFailed("no node given and this run stopped no kubelet")
    target = node or (stopped.node if stopped else "")
    return target, stopped.heartbeat_before if stopped else None


def _statefulset_ready(api: Cluster, namespace: str, name: str) -> bool:
    statefulset = api.statefulset(namespace, name)
    settled, why = model.statefulset_rolled_out(statefulset)
    if not settled:
        logger.debug(f"statefulset {namespace}/{name}: {why}")
        return False
    for pod_name in model.statefulset_pod_names(statefulset):
        found = api.pod(namespace, pod_name)
        if found is None or not model.pod_ready(found):
            logger.debug(f"statefulset {namespace}/{name}: pod {pod_name} not ready")
            return False
    return True


def _require_ready(node: model.Obj, name: str) -> None:
    status = model.node_ready(node)
    if status != "True":
        raise ActivityFailed(
            f"refusing to stop kubelet: node {name} is not Ready (Ready={status}); "
            "is its kubelet already down?"
        )


def _old_server_alive(
    api: Cluster,
    pod: model.Obj,
    node_name: str,
    namespace: str,
    name: str,
    settings: check.Settings,
) -> str:
    """Why a force delete could start a second server now ("" when the old one is gone)."""
    refuse = f"refusing to force delete {namespace}/{name}"
    if not node_name:
        return f"{refuse}: it is bound to no node; delete it normally (delete_pod)"
    node = api.node(node_name)
    ready = model.node_ready(node)
    if ready == "True":
        return (
            f"{refuse}: its node {node_name} is Ready, so its kubelet will stop the pod itself "
            "(unsafe: true only to reproduce a double start on purpose)"
        )
    if model.has_shutdown_taint(node):
        logger.info(f"node {node_name} is shut down (cloud provider taint): {name} is gone")
        return ""
    address = model.pod_ip(pod)
    if not address:
        return (
            f"{refuse}: node {node_name} is NotReady (Ready={ready}) and the pod has no IP to "
            "check; confirm the node is shut down first"
        )
    answer = _tcp_answer(address, settings.mysql_port)
    if answer is None:
        logger.info(f"{namespace}/{name}: nothing answers on {address}:{settings.mysql_port}")
        return ""
    return (
        f"{refuse}: its MySQL server still answers on {address}:{settings.mysql_port} "
        f"although node {node_name} is NotReady (Ready={ready}); the container is alive and a "
        f"second {name} would start with the same identity. Shut the node or the container "
        "down first (unsafe: true only to reproduce a double start on purpose)"
    )


def _tcp_answer(host: str, port: int, timeout: float = 3.0) -> str | None:
    """ "accepted" if something accepts a TCP connection at host:port, None if refused/silent."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "accepted"
    except OSError:
        return None


def _incarnation(api: Cluster, namespace: str, name: str, uid: str | None) -> model.Obj | None:
    """The pod if it is still incarnation `uid` (any, if None); None once that one is gone.

    Kubernetes itself force-deletes pods on out-of-service nodes (pod GC), so the pod may be
    gone, or replaced, by the time the experiment gets here; a replacement must be left alone.
    """
    current = api.pod(namespace, name)
    if current is None:
        logger.info(f"pod {namespace}/{name} is already gone, nothing to force delete")
        return None
    if uid is not None and current["metadata"].get("uid") != uid:
        logger.info(
            f"pod {namespace}/{name} uid {uid} is already gone, replaced by "
            f"{current['metadata'].get('uid')}; the replacement is left alone"
        )
        return None
    return current


def _edit_taints(
    api: Cluster, node_name: str, edit: Callable[[list[model.Obj]], list[model.Obj]]
) -> bool:
    """Apply `edit` to the node's taints with optimistic concurrency; True if anything changed."""
    for _ in range(_TAINT_ATTEMPTS):
        node = api.node(node_name)
        current = model.taints(node)
        wanted = edit(current)
        if wanted == current:
            return False
        try:
            api.replace_node_taints(node, wanted)
            return True
        except Conflict:
            logger.debug(f"node {node_name} changed while its taints were edited, retrying")
    raise ActivityFailed(
        f"node {node_name} kept changing; gave up editing its taints after {_TAINT_ATTEMPTS} tries"
    )


def _partition_name(pod: str) -> str:
    return f"chaos-partition-{pod}"[:253]


def _partition_policy(pod: str, namespace: str) -> model.Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": _partition_name(pod),
            "namespace": namespace,
            "labels": {**commands.HELPER_LABELS, "app.kubernetes.io/name": "partition"},
        },
        "spec": {
            "podSelector": {"matchLabels": {_PARTITION_LABEL: pod}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        },
    }


def _require_our_policy(policy: model.Obj | None, namespace: str, name: str) -> None:
    labels = (policy or {}).get("metadata", {}).get("labels") or {}
    ours = commands.HELPER_LABELS["app.kubernetes.io/managed-by"]
    if labels.get("app.kubernetes.io/managed-by") != ours:
        raise ActivityFailed(
            f"networkpolicy {namespace}/{name} exists but was not created by probes.kubernetes"
        )
