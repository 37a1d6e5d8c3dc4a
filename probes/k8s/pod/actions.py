"""Pod actions: the guarded force delete (`kubectl delete pod --grace-period=0 --force`) and
the ordinary delete.

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging
import socket

from chaoslib.exceptions import ActivityFailed

from probes.k8s import config as check
from probes.k8s import model
from probes.k8s.api import Cluster, cluster
from probes.k8s.config import Configuration, Result, Secrets
from probes.k8s.memory import MEMORY
from probes.k8s.targets import existing_pod, pod_target

logger = logging.getLogger("chaostoolkit")


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
    settings, namespace, name = pod_target(pod, ns, configuration)
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
    settings, namespace, name = pod_target(pod, ns, configuration)
    grace = None
    if grace_period_seconds is not None:
        grace = check.whole_seconds(grace_period_seconds, "grace_period_seconds", 3600)
    check.require_allowed(settings, [namespace], "delete a pod")
    with cluster(secrets, settings.request_timeout) as api:
        uid = str(existing_pod(api, namespace, name)["metadata"]["uid"])
        MEMORY.saw_uid(namespace, name, uid, replace=False)
        deleted = api.delete_pod(namespace, name, uid, grace_seconds=grace)
    logger.warning(f"deleted pod {namespace}/{name} (uid {uid})")
    return {"pod": name, "namespace": namespace, "uid": uid, "deleted": deleted}


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
