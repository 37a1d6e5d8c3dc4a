"""Probes of one pod: its node, its UID, its status, and whether the StatefulSet replaced it.

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging
from typing import Any

from chaoslib.exceptions import ActivityFailed

from probes.k8s import config as check
from probes.k8s import model
from probes.k8s.api import Cluster, cluster, poll
from probes.k8s.config import Configuration, Secrets
from probes.k8s.memory import MEMORY
from probes.k8s.targets import bound_node, existing_pod, pod_target

logger = logging.getLogger("chaostoolkit")


def node_of_pod(
    pod: str, ns: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> str:
    """Name of the node the pod is bound to (spec.nodeName); fails if it is missing or unbound."""
    settings, namespace, name = pod_target(pod, ns, configuration)
    with cluster(secrets, settings.request_timeout) as api:
        return bound_node(existing_pod(api, namespace, name), namespace, name)


def pod_uid(
    pod: str, ns: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> str:
    """The pod's metadata.uid, noted for `pod_not_replaced` and `force_delete_pod`.

    A StatefulSet pod keeps its name across incarnations; only the UID tells them apart.
    """
    settings, namespace, name = pod_target(pod, ns, configuration)
    with cluster(secrets, settings.request_timeout) as api:
        uid = str(existing_pod(api, namespace, name)["metadata"]["uid"])
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
    settings, namespace, name = pod_target(pod, ns, configuration)
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
    settings, namespace, name = pod_target(pod, ns, configuration)
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
    settings, namespace, name = pod_target(pod, ns, configuration)
    expected = _expected_uid(uid, namespace, name)
    limit = check.seconds(timeout, "timeout")

    def gone() -> bool:
        found = api.pod(namespace, name)
        return found is None or found["metadata"].get("uid") != expected

    with cluster(secrets, settings.request_timeout) as api:
        done = poll(gone, limit, settings.poll_interval)
    logger.info(f"pod {namespace}/{name} uid {expected} {'is gone' if done else 'is still there'}")
    return done


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
