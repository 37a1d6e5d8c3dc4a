"""What an activity is about: its namespace and pod, checked, and the pod looked up.

Shared by the activity modules of `probes.k8s`; every failure is one `ActivityFailed` line.
"""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import ActivityFailed

from probes.k8s import config as check
from probes.k8s import model
from probes.k8s.api import Cluster
from probes.k8s.config import Configuration


def pod_target(pod: Any, ns: Any, configuration: Configuration) -> tuple[check.Settings, str, str]:
    """The settings, the pod's namespace (`ns`, else configuration) and its checked name."""
    settings = check.settings(configuration)
    return settings, namespace_of(ns, settings), check.name(pod, "pod")


def namespace_of(ns: Any, settings: check.Settings) -> str:
    """`ns` checked, else the configured MySQL namespace."""
    return settings.namespace if ns is None else check.namespace(ns, "ns")


def existing_pod(api: Cluster, namespace: str, name: str) -> model.Obj:
    """The pod; ActivityFailed if there is none of that name."""
    found = api.pod(namespace, name)
    if found is None:
        raise ActivityFailed(f"pod {namespace}/{name} does not exist")
    return found


def bound_node(pod: model.Obj, namespace: str, name: str) -> str:
    """The node the pod is bound to; ActivityFailed while it is unscheduled."""
    node_name = pod.get("spec", {}).get("nodeName")
    if not node_name:
        raise ActivityFailed(f"pod {namespace}/{name} is not scheduled on any node yet")
    return str(node_name)
