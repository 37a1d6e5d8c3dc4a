"""The local lab's faults as Chaos Toolkit actions, and probes on the lab's state.

Each action applies one `checker lab fault` to the lab in configuration `lab_dir` (default
`.lab`, relative to where `chaos run` runs) and returns what was done as a flat dict. A lab
that is missing or stopped, an unknown node, or a fault that does not apply (killing a killed
node, lagging the primary) raise `ActivityFailed` with the lab's one-line message.

`heal_all` undoes every fault still in force; experiments use it as their rollback. A
promotion has no undo (it is a failover, not a fault): start a fresh lab after one.

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging
from collections.abc import Callable
from typing import Any

import pymysql

from checker.errors import CheckerError
from checker.lab.faults import PARTITION_MODES
from checker.lab.topology import Lab
from probes import _config as cfg

__all__ = [
    "double_start",
    "endpoint_loss",
    "endpoint_restore",
    "heal_all",
    "heal_node",
    "kill_node",
    "lab_running",
    "lag_replica",
    "node_state",
    "partition_node",
    "pause_node",
    "primary_node",
    "promote",
    "resume_node",
    "semi_sync_fallback",
    "semi_sync_restore",
    "start_node",
    "unlag_replica",
]
# The read-only activities; every other one is an action (see probes.discover).
PROBES = ("lab_running", "node_state", "primary_node")

logger = logging.getLogger("chaostoolkit")

Configuration = dict[str, Any] | None
Result = dict[str, Any]

_LAB_ERRORS = (CheckerError, pymysql.err.MySQLError, OSError)


# -- faults and their undo ------------------------------------------------------------------------
def endpoint_loss(node: str, configuration: Configuration = None) -> Result:
    """Take `node` out of its endpoints: new connections are refused, open ones keep working
    (a pod turned NotReady when its kubelet stops). Undo: `endpoint_restore`."""
    return _fault("endpoint-loss", node, configuration)


def endpoint_restore(node: str, configuration: Configuration = None) -> Result:
    """Put `node` back into its endpoints (undoes `endpoint_loss`)."""
    return _fault("endpoint-restore", node, configuration)


def kill_node(node: str, configuration: Configuration = None) -> Result:
    """SIGKILL `node`'s server, as a container crash would. Undo: `start_node`."""
    return _fault("kill", node, configuration)


def start_node(node: str, configuration: Configuration = None) -> Result:
    """Restart a killed `node` on its own datadir; a former primary comes back as a replica."""
    return _fault("start", node, configuration)


def pause_node(node: str, configuration: Configuration = None) -> Result:
    """SIGSTOP `node`'s server: connections hang, as on a hung node. Undo: `resume_node`."""
    return _fault("pause", node, configuration)


def resume_node(node: str, configuration: Configuration = None) -> Result:
    """SIGCONT a paused `node` (undoes `pause_node`)."""
    return _fault("resume", node, configuration)


def partition_node(node: str, mode: str = "reset", configuration: Configuration = None) -> Result:
    """Cut every connection to and from `node`, replication included.

    `mode`: `reset` closes connections at once, `blackhole` stalls them. Undo: `heal_node`.
    """
    return _fault(
        "partition", node, configuration, mode=cfg.choice(mode, "argument mode", PARTITION_MODES)
    )


def heal_node(node: str, configuration: Configuration = None) -> Result:
    """End `node`'s partition (undoes `partition_node`)."""
    return _fault("heal", node, configuration)


def promote(
    node: str, keep_old_primary: bool = False, configuration: Configuration = None
) -> Result:
    """Fail over to replica `node`: the writer endpoint moves, the other replicas follow it.

    The old primary is fenced read-only and follows too, unless `keep_old_primary`: then it
    stays writable for clients still connected to it (a zombie primary). No undo.
    """
    keep = cfg.flag(keep_old_primary, "argument keep_old_primary")
    return _fault("promote", node, configuration, keep_old_primary=keep)


def double_start(node: str, wait: float = 10.0, configuration: Configuration = None) -> Result:
    """Start a second server on `node`'s datadir, as a force delete on a shared volume would.

    Waits up to `wait` seconds for the file locks to refuse it, then kills it; reports
    `refused` and whether the original server kept serving (`original_serving`).
    """
    seconds = cfg.seconds(wait, "argument wait", maximum=120.0)
    return _fault("double-start", node, configuration, wait=seconds)


def lag_replica(node: str, configuration: Configuration = None) -> Result:
    """Stop replica `node`'s SQL thread: it keeps receiving but applies nothing. Undo:
    `unlag_replica`."""
    return _fault("lag", node, configuration)


def unlag_replica(node: str, configuration: Configuration = None) -> Result:
    """Restart replica `node`'s SQL thread so it catches up (undoes `lag_replica`)."""
    return _fault("unlag", node, configuration)


def semi_sync_fallback(node: str = "", configuration: Configuration = None) -> Result:
    """Make the primary (`node`, default: the current primary) fall back to asynchronous
    replication: every replica stops acknowledging (IO thread stopped) and a canary commit
    waits out the semi-sync timeout. Undo: `semi_sync_restore`."""
    return _fault("semi-sync-fallback", node or primary_node(configuration), configuration)


def semi_sync_restore(node: str = "", configuration: Configuration = None) -> Result:
    """Let the replicas acknowledge again and wait for the primary's semi-sync to be back on
    (undoes `semi_sync_fallback`)."""
    return _fault("semi-sync-restore", node or primary_node(configuration), configuration)


def heal_all(configuration: Configuration = None) -> Result:
    """Undo every fault in force: resume paused nodes, start killed ones, heal partitions,
    restore endpoints, unlag replicas. Tries every undo before reporting any failure."""
    lab = _lab(configuration)
    nodes: dict[str, Any] = _lab_call(lambda: lab.status()["nodes"])
    undone: list[str] = []
    errors: list[str] = []
    for action, node in _undo_plan(nodes):
        try:
            lab.fault(action, node)
            undone.append(f"{action} {node}")
        except _LAB_ERRORS as exc:
            errors.append(f"{action} {node}: {exc}")
    if errors:
        cfg.fail(f"heal_all could not undo everything: {'; '.join(errors)}")
    logger.info("heal_all: %s", ", ".join(undone) or "nothing to undo")
    return {"undone": undone, "count": len(undone)}


# -- probes ---------------------------------------------------------------------------------------
def primary_node(configuration: Configuration = None) -> str:
    """The name of the lab's current primary (the node the writer endpoint leads to)."""
    lab = _lab(configuration)
    primary: str = _lab_call(lambda: lab.info()["primary"])
    return primary


def node_state(node: str, configuration: Configuration = None) -> str:
    """`node`'s process state: `running`, `paused`, `killed` or `stopped`."""
    name = cfg.node_name(node, "argument node")
    lab = _lab(configuration)
    nodes = _lab_call(lambda: lab.status()["nodes"])
    if name not in nodes:
        cfg.fail(f"unknown node {name!r}: this lab has {', '.join(sorted(nodes))}")
    state: str = nodes[name]["state"]
    return state


def lab_running(configuration: Configuration = None) -> bool:
    """True when a lab is up at `lab_dir` (its proxy and at least one server alive)."""
    lab = _lab(configuration)
    running: bool = _lab_call(lab.running)
    return running


# -- helpers --------------------------------------------------------------------------------------
# Resume before anything else (a paused server answers nothing) and heal the network before
# restoring endpoints. One status snapshot is enough: no undo creates a fault another undo
# would then have to see.
_UNDO_ORDER: tuple[tuple[str, Callable[[dict[str, Any]], bool]], ...] = (
    ("resume", lambda n: n["state"] == "paused"),
    ("start", lambda n: n["state"] == "killed"),
    ("heal", lambda n: "partitioned" in n["faults"]),
    ("endpoint-restore", lambda n: "endpoint_lost" in n["faults"]),
    ("unlag", lambda n: "lagging" in n["faults"]),
    ("semi-sync-restore", lambda n: "semi_sync_fallback" in n["faults"]),
)


def _undo_plan(nodes: dict[str, Any]) -> list[tuple[str, str]]:
    plan = [
        (action, name)
        for action, pending in _UNDO_ORDER
        for name, node in sorted(nodes.items())
        if pending(node)
    ]
    # Starting a killed replica restarts both replication threads and clears its lag.
    started = {name for action, name in plan if action == "start"}
    return [(a, n) for a, n in plan if not (a == "unlag" and n in started)]


def _lab(configuration: Configuration) -> Lab:
    config = cfg.config_of(configuration)
    return Lab(cfg.text(config.get("lab_dir", cfg.DEFAULT_LAB_DIR), "configuration lab_dir"))


def _fault(action: str, node: str, configuration: Configuration, **options: Any) -> Result:
    name = cfg.node_name(node, "argument node")
    lab = _lab(configuration)
    result: Result = _lab_call(lambda: lab.fault(action, name, **options))
    logger.info("lab %s %s: %s", action, name, result)
    return result


def _lab_call(call: Callable[[], Any]) -> Any:
    """Run a lab operation; its errors become one-line ActivityFailed messages."""
    try:
        return call()
    except _LAB_ERRORS as exc:
        cfg.fail(str(exc))
