"""StatefulSet probe: settled as `kubectl rollout status` decides, and each of its pods Ready.

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging

from probes.k8s import config as check
from probes.k8s import model
from probes.k8s.api import Cluster, cluster, poll
from probes.k8s.config import Configuration, Secrets
from probes.k8s.targets import namespace_of

logger = logging.getLogger("chaostoolkit")


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
    namespace = namespace_of(ns, settings)
    limit = check.seconds(timeout, "timeout")
    with cluster(secrets, settings.request_timeout) as api:
        done = poll(
            lambda: _statefulset_ready(api, namespace, sts_name), limit, settings.poll_interval
        )
    logger.info(f"statefulset {namespace}/{sts_name} {'is' if done else 'is not'} ready")
    return done


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
