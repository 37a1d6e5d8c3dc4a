"""Settings and argument checks for `probes.kubernetes`, refused early with one-line messages.

Chaos Toolkit hands activities raw JSON (and `chaos run --var` hands them strings), so every
argument is checked here before anything is sent to the cluster. Also the types of what the
activities take (`Configuration`, `Secrets`) and return (`Result`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

from probes._args import choice, flag, seconds, whole, whole_seconds
from probes._args import text as _text

# The scalar checks of `probes._args` are re-exported for the activities (`check.seconds`).
__all__ = [
    "ALLOWED_NAMESPACES_ENV",
    "DEFAULT_HELPER_IMAGE",
    "K8S_KEYS",
    "KUBELET_METHODS",
    "MAX_KUBELET_DOWN_SECONDS",
    "Configuration",
    "Result",
    "Secrets",
    "Settings",
    "choice",
    "flag",
    "name",
    "namespace",
    "optional_name",
    "require_allowed",
    "seconds",
    "settings",
    "ssh_host",
    "uid",
    "whole_seconds",
]

# DNS-1123 subdomain (pod and node names) and label (namespaces), as the API server checks them.
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Host names/addresses for ssh, and the user: no shell metacharacters can get through.
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_UID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

logger = logging.getLogger("chaostoolkit")

Configuration = dict[str, Any] | None
Secrets = dict[str, Any] | None
Result = dict[str, Any]

KUBELET_METHODS = ("pod", "ssh", "docker")
# The allow list is the runner's, never the experiment's: an experiment (or `--var`) could
# otherwise widen its own blast radius. Set it on the Deployment/CronJob, not in experiments.
ALLOWED_NAMESPACES_ENV = "CHAOS_ALLOWED_NAMESPACES"
# An image reference pinned by digest: whatever the tag says, these exact bytes run privileged.
_DIGEST = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
MAX_KUBELET_DOWN_SECONDS = 86_400


@dataclass(frozen=True)
class Settings:
    """The experiment configuration keys this module reads, parsed once per activity."""

    namespace: str
    statefulset: str
    chaos_namespace: str
    allowed_namespaces: frozenset[str] | None
    helper_image: str
    ssh_user: str | None
    ssh_host_template: str | None
    mysql_port: int
    poll_interval: float
    helper_start_timeout: float
    request_timeout: float


# The helper only needs `sh` and util-linux `nsenter` (essential packages in Debian, while busybox
# builds vary in which applets they ship): after entering pid 1's namespaces it runs the HOST's
# systemd-run and systemctl, so the image never needs systemd. Pinned by digest (the multi-arch
# index of the tag), because it runs privileged on a node; docs/kubernetes.md says how to mirror it.
DEFAULT_HELPER_IMAGE = (
    "debian:12.9-slim@sha256:f70dc8d6a8b6a06824c92471a1a258030836b26b043881358b967bf73de7c5ab"
)


# Every configuration key this module reads, with its default; experiments declare each one
# (chaoslib drops `--var` keys an experiment does not declare). `namespace` is still read as an
# older name of `mysql_namespace`, which wins when both are given.
K8S_KEYS: dict[str, Any] = {
    "mysql_namespace": "mysql",
    "statefulset": "mysql",
    "chaos_namespace": "chaos",
    "helper_image": DEFAULT_HELPER_IMAGE,
    "ssh_user": "",
    "ssh_host_template": "",
    "mysql_port": 3306,
    "poll_interval_seconds": 2.0,
    "helper_start_timeout": 60.0,
    "k8s_request_timeout": 30.0,
}


def settings(configuration: Mapping[str, Any] | None) -> Settings:
    """Parse the configuration keys this module uses, with the project's defaults."""
    config: Mapping[str, Any] = {**K8S_KEYS, **(configuration or {})}
    template = config.get("ssh_host_template")
    ssh_user = config.get("ssh_user")
    mysql_namespace = (configuration or {}).get("mysql_namespace")
    key = "namespace" if mysql_namespace is None and "namespace" in config else "mysql_namespace"
    return Settings(
        namespace=namespace(config[key], f"configuration {key}"),
        statefulset=name(config["statefulset"], "configuration statefulset"),
        chaos_namespace=namespace(config["chaos_namespace"], "configuration chaos_namespace"),
        allowed_namespaces=allowed_namespaces(config),
        helper_image=_image(config["helper_image"]),
        ssh_user=None if ssh_user in (None, "") else _ssh_user(ssh_user),
        ssh_host_template=None if template in (None, "") else _template(template),
        mysql_port=whole(config["mysql_port"], "configuration mysql_port", 1, 65535),
        poll_interval=seconds(
            config["poll_interval_seconds"], "configuration poll_interval_seconds"
        ),
        helper_start_timeout=seconds(
            config["helper_start_timeout"], "configuration helper_start_timeout"
        ),
        request_timeout=seconds(config["k8s_request_timeout"], "configuration k8s_request_timeout"),
    )


def require_allowed(settings: Settings, namespaces: Iterable[str], action: str) -> None:
    """Refuse a destructive `action` unless every namespace it touches is in the allow list."""
    allowed = settings.allowed_namespaces
    if not allowed:
        raise ActivityFailed(
            f"refusing to {action}: {ALLOWED_NAMESPACES_ENV} is not set in the runner's "
            "environment; list the namespaces chaos may touch there, "
            f"e.g. {ALLOWED_NAMESPACES_ENV}=mysql,chaos"
        )
    refused = sorted(set(namespaces) - allowed)
    if refused:
        raise ActivityFailed(
            f"refusing to {action}: namespace(s) {','.join(refused)} not in "
            f"allowed_namespaces ({ALLOWED_NAMESPACES_ENV}={','.join(sorted(allowed))})"
        )


def allowed_namespaces(
    config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> frozenset[str] | None:
    """The allow list from the runner's environment; configuration `allowed_namespaces` is ignored.

    An experiment may still declare the key (older experiments read it from the same variable);
    a value that differs from the environment's is logged as ignored, never used.
    """
    env = os.environ if environ is None else environ
    allowed = _allow_list(env.get(ALLOWED_NAMESPACES_ENV), ALLOWED_NAMESPACES_ENV)
    if "allowed_namespaces" in config:
        try:
            same = _allow_list(config["allowed_namespaces"], "configuration") == allowed
        except ActivityFailed:
            same = False
        if not same:
            logger.warning(
                "configuration allowed_namespaces is ignored: the allow list comes only from "
                f"{ALLOWED_NAMESPACES_ENV} in the runner's environment"
            )
    return allowed


def _allow_list(value: Any, source: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        entries: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        entries = list(value)
    else:
        raise ActivityFailed(
            f"{source} allowed_namespaces must be a JSON list or a comma-separated string, "
            f"not {type(value).__name__}"
        )
    cleaned = [e.strip() if isinstance(e, str) else e for e in entries]
    return frozenset(namespace(e, f"an entry of {source}") for e in cleaned if e not in ("", None))


def name(value: Any, what: str) -> str:
    """A pod, node or object name (DNS-1123 subdomain)."""
    text = _text(value, what)
    if len(text) > 253 or not _SUBDOMAIN.match(text):
        raise ActivityFailed(f"{what} {text!r} is not a valid Kubernetes name")
    return text


def namespace(value: Any, what: str) -> str:
    """A namespace name (DNS-1123 label)."""
    text = _text(value, what)
    if len(text) > 63 or not _LABEL.match(text):
        raise ActivityFailed(f"{what} {text!r} is not a valid namespace name")
    return text


def uid(value: Any, what: str) -> str:
    """An object UID (the API server assigns UUIDs)."""
    text = _text(value, what)
    if not _UID.match(text):
        raise ActivityFailed(f"{what} {text!r} is not a Kubernetes UID")
    return text


def optional_name(value: Any, what: str) -> str | None:
    return None if value is None else name(value, what)


def _image(value: Any) -> str:
    text = _text(value, "configuration helper_image")
    if any(c.isspace() for c in text):
        raise ActivityFailed(f"configuration helper_image {text!r} is not an image reference")
    if not _DIGEST.match(text):
        raise ActivityFailed(
            f"configuration helper_image {text!r} is not pinned by digest: the helper runs "
            "privileged, give <image>@sha256:<64 hex> (docs/kubernetes.md: the helper image)"
        )
    return text


def _ssh_user(value: Any) -> str:
    text = _text(value, "configuration ssh_user")
    if not _USER.match(text):
        raise ActivityFailed(f"configuration ssh_user {text!r} is not a valid user name")
    return text


def _template(value: Any) -> str:
    text = _text(value, "configuration ssh_host_template")
    if "{node}" not in text:
        raise ActivityFailed("configuration ssh_host_template must contain {node}")
    return text


def ssh_host(template: str | None, node: str, internal_ip: str | None) -> str:
    """The address ssh connects to: the template filled with the node name, else its InternalIP."""
    if template is not None:
        host = template.replace("{node}", node)
    elif internal_ip:
        host = internal_ip
    else:
        raise ActivityFailed(
            f"node {node} has no InternalIP; set configuration ssh_host_template, e.g. {{node}}.lan"
        )
    if not _HOST.match(host):
        raise ActivityFailed(f"ssh host {host!r} for node {node} is not a plain host name")
    return host
