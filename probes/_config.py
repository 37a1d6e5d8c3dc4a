"""Configuration, secrets and argument parsing shared by `probes.mysql` and `probes.lab`.

Chaos Toolkit hands activities raw JSON, and `chaos run --var key=value` hands them strings, so
every value is checked here and refused with one `ActivityFailed` line that names the key and
what it expects. Messages go through `checker.secrets.redact`: no password ever leaves.

Secrets: an experiment declares `"secrets": {"mysql": {"password": {"type": "env", ...}}}` and
each activity's provider lists `"secrets": ["mysql"]`; chaoslib then passes the *flattened*
scope (`{"password": ...}`) to the function. Called directly, the whole mapping
(`{"mysql": {"password": ...}}`) is accepted too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checker.errors import CheckerError
from checker.lab import state as lab_state
from checker.lab.state import APP_DATABASE, APP_USER
from checker.mysql import Endpoint, parse_endpoint, quote_ident
from checker.secrets import Secret
from probes._args import choice, fail, flag, seconds, text, whole

# The scalar checks of `probes._args` are re-exported: the activities call `cfg.seconds(...)`.
__all__ = [
    "CLUSTER_KEYS",
    "DEFAULT_LAB_DIR",
    "LAB_KEYS",
    "NODES_FORMAT",
    "MySQLTarget",
    "Node",
    "choice",
    "cluster_addresses",
    "config_of",
    "fail",
    "flag",
    "mysql_target",
    "node_addresses",
    "node_name",
    "password",
    "seconds",
    "text",
]

DEFAULT_LAB_DIR = ".lab"
# Every configuration key the MySQL probes read on a cluster, with its default. chaoslib drops a
# `--var` whose key the experiment does not declare, so each experiment declares all of them with
# these defaults (tests/k8s/test_experiment_keys.py holds the experiments to that). An empty
# mysql_writer/mysql_reader/mysql_nodes means "derive it from the names above": fully qualified
# Service names, which resolve from any namespace (the runner's is not the database's).
CLUSTER_KEYS: dict[str, Any] = {
    "mysql_namespace": "mysql",
    "statefulset": "mysql",
    "mysql_service": "mysql",
    "mysql_read_service": "mysql-read",
    "mysql_port": 3306,
    "mysql_replicas": 3,
    "mysql_writer": "",
    "mysql_reader": "",
    "mysql_nodes": "",
    "mysql_user": APP_USER,
    "mysql_database": APP_DATABASE,
}
# The keys read against the local lab instead (`lab_dir` set).
LAB_KEYS: dict[str, Any] = {
    "lab_dir": DEFAULT_LAB_DIR,
    "mysql_user": APP_USER,
    "mysql_database": APP_DATABASE,
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
NODES_FORMAT = (
    'a mapping {"mysql-0": "host:port", ...}, a JSON list of addresses, or '
    '"mysql-0=host:port,mysql-1=host:port"'
)
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def config_of(configuration: Any) -> Mapping[str, Any]:
    if configuration is None:
        return {}
    if not isinstance(configuration, Mapping):
        fail(f"configuration must be a mapping, not {type(configuration).__name__}")
    return configuration


# -- scalar arguments -----------------------------------------------------------------------------
def node_name(value: Any, what: str = "node") -> str:
    name = text(value, what)
    if not _NODE_NAME.match(name):
        fail(f"{what} {name!r} is not a node name (letters, digits, '-', '_', '.', ':')")
    return name


# -- secrets --------------------------------------------------------------------------------------
def password(secrets: Any) -> Secret | None:
    """The MySQL password from the activity's secrets, or None when none was given."""
    if secrets is None:
        return None
    if not isinstance(secrets, Mapping):
        fail(f"secrets must be a mapping, not {type(secrets).__name__}")
    scope = secrets.get("mysql", secrets)
    if not isinstance(scope, Mapping):
        fail(f"secrets mysql must be a mapping with a password, not {type(scope).__name__}")
    value = scope.get("password")
    if value is None:
        return None
    if not isinstance(value, str):
        # The value itself is never echoed, not even its type's repr.
        fail("secrets mysql.password must be a string")
    return Secret(value)


# -- MySQL targets --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """One MySQL server the node-level probes look at."""

    name: str
    endpoint: Endpoint
    replica: bool  # expected to replicate: lab role `replica`, or not the writer's address


@dataclass(frozen=True)
class MySQLTarget:
    """Where the MySQL probes connect, parsed once per activity."""

    writer: Endpoint
    reader: Endpoint
    nodes: tuple[Node, ...]  # the lab's, or mysql_nodes (derived from the names by default)
    lab_dir: Path | None  # set in lab mode: endpoints and passwords come from the lab


def mysql_target(configuration: Any, secrets: Any) -> MySQLTarget:
    """Lab mode when configuration `lab_dir` is set, else the cluster addresses."""
    config = config_of(configuration)
    user = text(config.get("mysql_user", APP_USER), "configuration mysql_user")
    database = text(config.get("mysql_database", APP_DATABASE), "configuration mysql_database")
    try:
        quote_ident(database)
    except CheckerError as exc:
        fail(f"configuration mysql_database: {exc}")
    secret = password(secrets)
    if config.get("lab_dir") not in (None, ""):
        return _lab_target(config, user, database, secret)
    return _cluster_target(config, user, database, secret)


def _lab_target(
    config: Mapping[str, Any], user: str, database: str, secret: Secret | None
) -> MySQLTarget:
    directory = text(config["lab_dir"], "configuration lab_dir")
    try:
        lab = lab_state.load(directory)  # first: on a missing lab it says how to start one
        # An explicit secret wins over the lab's generated password (to test a wrong one).
        pw = secret or lab.secret(user)

        def endpoint(which: str) -> Endpoint:
            return lab.endpoint(which, user=user, database=database).with_(password=pw)

        nodes = tuple(
            Node(name, endpoint(name), replica=node.role == "replica")
            for name, node in sorted(lab.nodes.items())
        )
        return MySQLTarget(endpoint("writer"), endpoint("reader"), nodes, lab.dir)
    except CheckerError as exc:
        fail(f"configuration lab_dir: {exc}")


def _cluster_target(
    config: Mapping[str, Any], user: str, database: str, secret: Secret | None
) -> MySQLTarget:
    def endpoint(key: str, address: Any, name: str) -> Endpoint:
        where = text(address, f"configuration {key}")
        try:
            return parse_endpoint(where, name=name, user=user, password=secret, database=database)
        except CheckerError as exc:
            fail(f"configuration {key}: {exc}")

    derived = cluster_addresses(config)
    writer = endpoint("mysql_writer", _given(config, "mysql_writer", derived.writer), "writer")
    reader = endpoint("mysql_reader", _given(config, "mysql_reader", derived.reader), "reader")
    raw_nodes = _given(config, "mysql_nodes", derived.nodes)
    nodes = tuple(
        Node(name, ep, replica=(ep.host, ep.port) != (writer.host, writer.port))
        for name, address in node_addresses(raw_nodes).items()
        for ep in [endpoint("mysql_nodes", address, name)]
    )
    return MySQLTarget(writer, reader, nodes, None)


def _given(config: Mapping[str, Any], key: str, derived: Any) -> Any:
    """The key's value, or `derived` when it is absent or an empty string (the default)."""
    value = config.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return derived
    return value


@dataclass(frozen=True)
class ClusterAddresses:
    """Where the MySQL StatefulSet answers, by fully qualified Service names."""

    writer: str
    reader: str
    nodes: dict[str, str]


def cluster_addresses(configuration: Any) -> ClusterAddresses:
    """The default addresses from mysql_namespace, statefulset, mysql_service and friends.

    A StatefulSet pod behind a headless Service answers as
    `<statefulset>-<ordinal>.<service>.<namespace>.svc` and a Service as `<service>.<namespace>.svc`
    (Kubernetes "DNS for Services and Pods"); the pod's resolv.conf search list completes `.svc`
    with the cluster domain, so these names resolve from any namespace, the runner's included.
    """
    config = config_of(configuration)

    def label(key: str) -> str:
        value = text(config.get(key, CLUSTER_KEYS[key]), f"configuration {key}")
        if not _DNS_LABEL.match(value):
            fail(f"configuration {key} {value!r} is not a DNS label (e.g. --var {key}=mysql)")
        return value

    namespace = label("mysql_namespace")
    statefulset, service = label("statefulset"), label("mysql_service")
    read_service = label("mysql_read_service")
    port = whole(
        config.get("mysql_port", CLUSTER_KEYS["mysql_port"]), "configuration mysql_port", 1, 65535
    )
    replicas = whole(
        config.get("mysql_replicas", CLUSTER_KEYS["mysql_replicas"]),
        "configuration mysql_replicas",
        1,
        100,
    )
    nodes = {
        f"{statefulset}-{i}": f"{statefulset}-{i}.{service}.{namespace}.svc:{port}"
        for i in range(replicas)
    }
    return ClusterAddresses(
        writer=nodes[f"{statefulset}-0"],
        reader=f"{read_service}.{namespace}.svc:{port}",
        nodes=nodes,
    )


def node_addresses(value: Any, key: str = "configuration mysql_nodes") -> dict[str, str]:
    """`mysql_nodes` as {name: address}; a bare address is its own name."""
    if isinstance(value, str):
        value = _nodes_from_text(value, key)
    if isinstance(value, Mapping):
        pairs = [(k, v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        pairs = [_split_item(item, key) for item in value]
    else:
        fail(f"{key} must be {NODES_FORMAT}, not {type(value).__name__}")
    if not pairs:
        fail(f"{key} is empty: give {NODES_FORMAT}")
    nodes: dict[str, str] = {}
    for name, address in pairs:
        checked = node_name(name, f"{key} entry name")
        if checked in nodes:
            fail(f"{key} names {checked!r} twice")
        nodes[checked] = text(address, f"{key} address of {checked!r}")
    return nodes


def _nodes_from_text(raw: str, key: str) -> Any:
    stripped = raw.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            fail(f"{key} is not valid JSON ({exc.msg} at character {exc.pos}): give {NODES_FORMAT}")
    items = [item.strip() for item in stripped.split(",")]
    if any(not item for item in items):
        fail(f"{key} has an empty entry in {raw!r}: give {NODES_FORMAT}")
    return items


def _split_item(item: Any, key: str) -> tuple[str, str]:
    entry = text(item, f"{key} entry")
    name, sep, address = entry.partition("=")
    # `mysql://h:3306/db?unix_socket=...` holds an `=` too: only a plain name may precede it.
    if sep and "/" not in name:
        return name.strip(), address.strip()
    return entry, entry
