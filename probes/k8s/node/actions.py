"""Node actions: stop kubelet (with its dead-man timer) and restore it, add and remove the
out-of-service taint. Each is refused on a node outside the target StatefulSet (`scope`).

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging
from collections.abc import Callable
from typing import Any

from chaoslib.exceptions import ActivityFailed

from probes.k8s import config as check
from probes.k8s import model, scope
from probes.k8s.api import Cluster, Conflict, cluster, poll
from probes.k8s.config import Configuration, Result, Secrets
from probes.k8s.memory import MEMORY, StoppedKubelet
from probes.k8s.node import kubelet
from probes.k8s.targets import bound_node, existing_pod, namespace_of

logger = logging.getLogger("chaostoolkit")

_TAINT_ATTEMPTS = 5


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
    namespace = namespace_of(ns, settings)
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
    namespace = namespace_of(ns, settings)
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
    namespace = namespace_of(ns, settings)
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


def _node_or_pod(node: Any, pod: Any) -> tuple[str | None, str | None]:
    node_name = check.optional_name(node, "node")
    pod_name = check.optional_name(pod, "pod")
    if (node_name is None) == (pod_name is None):
        raise ActivityFailed("give exactly one of node or pod")
    return node_name, pod_name


def _resolve_node(api: Cluster, namespace: str, node: str | None, pod: str | None) -> str:
    """`node`, else the pod's node; the pod's UID is noted as its pre-fault incarnation."""
    if node is not None:
        return node
    name = pod or ""
    found = existing_pod(api, namespace, name)
    MEMORY.saw_uid(namespace, name, str(found["metadata"]["uid"]), replace=False)
    return bound_node(found, namespace, name)


def _require_ready(node: model.Obj, name: str) -> None:
    status = model.node_ready(node)
    if status != "True":
        raise ActivityFailed(
            f"refusing to stop kubelet: node {name} is not Ready (Ready={status}); "
            "is its kubelet already down?"
        )


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
