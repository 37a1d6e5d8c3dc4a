"""Network actions: partition one StatefulSet pod with a deny-all NetworkPolicy, and heal it.

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging

from chaoslib.exceptions import ActivityFailed

from probes.k8s import config as check
from probes.k8s import model
from probes.k8s.api import cluster
from probes.k8s.config import Configuration, Result, Secrets
from probes.k8s.node import commands
from probes.k8s.targets import existing_pod, pod_target

logger = logging.getLogger("chaostoolkit")

_PARTITION_LABEL = "statefulset.kubernetes.io/pod-name"


def partition_pod(
    pod: str, ns: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> Result:
    """Cut all traffic to and from one StatefulSet pod with a deny-all NetworkPolicy.

    The policy `chaos-partition-<pod>` selects the pod by its `statefulset.kubernetes.io/pod-name`
    label and allows no ingress and no egress. It only bites with a CNI that enforces
    NetworkPolicy, and some CNIs let established connections live on. Idempotent.
    """
    settings, namespace, name = pod_target(pod, ns, configuration)
    check.require_allowed(settings, [namespace], "partition a pod")
    manifest = _partition_policy(name, namespace)
    policy = manifest["metadata"]["name"]
    with cluster(secrets, settings.request_timeout) as api:
        existing_pod(api, namespace, name)
        created = api.create_network_policy(namespace, manifest) is not None
        if not created:
            _require_our_policy(api.network_policy(namespace, policy), namespace, policy)
    logger.warning(f"pod {namespace}/{name} partitioned by networkpolicy {policy}")
    return {"pod": name, "namespace": namespace, "network_policy": policy, "created": created}


def heal_partition(
    pod: str, ns: str | None = None, configuration: Configuration = None, secrets: Secrets = None
) -> Result:
    """Delete the NetworkPolicy `partition_pod` created; fine if it is already gone."""
    settings, namespace, name = pod_target(pod, ns, configuration)
    check.require_allowed(settings, [namespace], "heal a partition")
    policy = _partition_name(name)
    with cluster(secrets, settings.request_timeout) as api:
        deleted = api.delete_network_policy(namespace, policy)
    logger.info(f"networkpolicy {namespace}/{policy} {'deleted' if deleted else 'already gone'}")
    return {"pod": name, "namespace": namespace, "network_policy": policy, "deleted": deleted}


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
