"""Node probe: is the kubelet a run stopped back (the node Ready with a fresh heartbeat)?

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging

from chaoslib.exceptions import ActivityFailed

from probes.k8s import config as check
from probes.k8s.api import cluster, poll
from probes.k8s.config import Configuration, Secrets
from probes.k8s.memory import MEMORY
from probes.k8s.node import kubelet

logger = logging.getLogger("chaostoolkit")


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


def _restore_target(node: str | None) -> tuple[str, str | None]:
    stopped = MEMORY.stopped_on(node) if node else MEMORY.last_stopped()
    if node is None and stopped is None:
        raise ActivityFailed("no node given and this run stopped no kubelet")
    target = node or (stopped.node if stopped else "")
    return target, stopped.heartbeat_before if stopped else None
