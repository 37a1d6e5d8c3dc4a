"""The lab's faults, one declaration each: name, what it does, its undo and its options.

The faults reproduce what a *client* sees of each Kubernetes event (docs/lab.md); each has an
undo, except `promote` (a failover, not a fault) and `double-start` (it stops its second server
itself). `REGISTRY` is the one list: `FAULTS`, the `checker lab fault` choices and
`Lab.fault`'s dispatch are derived from it.

A fault is a function `(state, node name, **options) -> (new state, result)`: it acts on the
servers, returns the lab's new state (saved by `Lab.fault`, with the proxy told to reload) and
what it did, as data. It runs under the lab's lock. Faults that the proxy must see before they
are done (`promote`, `semi-sync-fallback`) save the state they have so far themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from checker.errors import LabError
from checker.lab import _nodes, _proxy, _server
from checker.lab.state import LabState, Node, save

Result = dict[str, Any]
Apply = Callable[..., tuple[LabState, Result]]

PARTITION_MODES = ("reset", "blackhole")


@dataclass(frozen=True)
class Fault:
    """One lab fault: `apply(state, node, **options)`, the fault that undoes it (if any) and
    the keyword options `apply` takes."""

    name: str
    apply: Apply
    undo: str | None = None
    options: tuple[str, ...] = ()


# -- the proxy's faults: endpoints and partitions ------------------------------------------------
def _endpoint_loss(state: LabState, name: str) -> tuple[LabState, Result]:
    return state.with_fault(name, "endpoint_lost", True), {"endpoint_lost": True}


def _endpoint_restore(state: LabState, name: str) -> tuple[LabState, Result]:
    return state.with_fault(name, "endpoint_lost", False), {"endpoint_lost": False}


def _partition(state: LabState, name: str, mode: str = "reset") -> tuple[LabState, Result]:
    if mode not in PARTITION_MODES:
        raise LabError(f"partition mode must be reset or blackhole, not {mode!r}")
    return state.with_fault(name, "partitioned", mode), {"partitioned": mode}


def _heal(state: LabState, name: str) -> tuple[LabState, Result]:
    return state.with_fault(name, "partitioned", False), {"partitioned": False}


# -- processes: kill, start, pause, resume -------------------------------------------------------
def _kill(state: LabState, name: str) -> tuple[LabState, Result]:
    node = state.node(name)
    pid = node.pid
    if not pid or not _server.alive(pid) or not _server.owns(pid, str(node.datadir)):
        raise LabError(f"{name} is not running (already killed?): `checker lab fault start {name}`")
    _server.signal_pid(pid, signal.SIGKILL)
    if not _server.wait_exit(pid, 15):
        raise LabError(f"{name} (pid {pid}) did not die after SIGKILL")
    state = state.with_node(name, state="killed").with_fault(name, "paused", False)
    return state, {"pid": pid, "signal": "SIGKILL"}


def _start(state: LabState, name: str) -> tuple[LabState, Result]:
    node = state.node(name)
    if _server.alive(node.pid):
        raise LabError(f"{name} is already running (pid {node.pid})")
    state = _nodes.start_server(state, name)
    save(state)
    node = state.node(name)
    if node.role != "primary":
        # A demoted old primary comes back as a replica of whoever is primary now.
        _nodes.ensure_replicating(state, name)
    return state.with_fault(name, "lagging", False), {"pid": node.pid, "role": node.role}


def _pause(state: LabState, name: str) -> tuple[LabState, Result]:
    node = state.node(name)
    pid = node.pid
    if not pid or not _server.alive(pid) or not _server.owns(pid, str(node.datadir)):
        raise LabError(f"{name} is not running: nothing to pause")
    _server.signal_pid(pid, signal.SIGSTOP)
    state = state.with_node(name, state="paused").with_fault(name, "paused", True)
    return state, {"pid": pid, "signal": "SIGSTOP"}


def _resume(state: LabState, name: str) -> tuple[LabState, Result]:
    pid = state.node(name).pid
    if not pid or not _server.alive(pid):
        raise LabError(f"{name} is not running: nothing to resume")
    _server.signal_pid(pid, signal.SIGCONT)
    state = state.with_node(name, state="running").with_fault(name, "paused", False)
    return state, {"pid": pid, "signal": "SIGCONT"}


def _require_running(node: Node) -> None:
    if not _server.alive(node.pid) or _server.stopped(node.pid):
        raise LabError(f"{node.name} is not running (killed or paused): start or resume it first")


def _usable(node: Node) -> bool:
    return _server.alive(node.pid) and not _server.stopped(node.pid)


# -- replication: lag, semi-sync ------------------------------------------------------------------
def _lag(state: LabState, name: str) -> tuple[LabState, Result]:
    node = state.node(name)
    if node.role != "replica":
        raise LabError(f"{name} is the {node.role}, not a replica: only replicas can lag")
    _require_running(node)
    _server.execute(node.socket, _nodes.flavor(state).stop_replica_sql("SQL_THREAD"))
    return state.with_fault(name, "lagging", True), {"sql_thread": "stopped"}


def _unlag(state: LabState, name: str) -> tuple[LabState, Result]:
    node = state.node(name)
    if node.role != "replica":
        raise LabError(f"{name} is the {node.role}, not a replica")
    _require_running(node)
    _server.execute(node.socket, _nodes.flavor(state).start_replica_sql("SQL_THREAD"))
    return state.with_fault(name, "lagging", False), {"sql_thread": "running"}


def _semi_sync_fallback(
    state: LabState, name: str, timeout: float = 30.0
) -> tuple[LabState, Result]:
    """Replicas stop acknowledging: every running replica's IO thread is stopped, then one
    canary commit on the primary waits out the semi-sync timeout and the primary falls
    back to asynchronous replication. What it acknowledges from then on is on no replica."""
    node = state.node(name)
    if node.role != "primary":
        raise LabError(f"{name} is the {node.role}, not the primary: name the primary")
    if not state.semi_sync:
        raise LabError("this lab runs without semi-sync: start one with `lab up --semi-sync`")
    _require_running(node)
    flavor = _nodes.flavor(state)
    stopped = []
    for other, n in state.nodes.items():
        if n.role == "replica" and _server.alive(n.pid):
            if _server.stopped(n.pid):
                continue
            _server.execute(n.socket, flavor.stop_replica_sql("IO_THREAD"))
            stopped.append(other)
    state = state.with_fault(name, "semi_sync_fallback", tuple(stopped) or True)
    save(state)
    started = time.monotonic()
    _canary(node)
    waited = time.monotonic() - started
    active = _semi_sync_wait(node, "OFF", timeout)
    return state, {
        "replicas_not_acknowledging": stopped,
        "canary_commit_seconds": round(waited, 3),
        "semi_sync": active,
    }


def _semi_sync_restore(
    state: LabState, name: str, timeout: float = 30.0
) -> tuple[LabState, Result]:
    """Undo `semi-sync-fallback`: the replicas fetch again, catch up and acknowledge; a
    canary commit lets the primary notice and switch semi-sync back on."""
    node = state.node(name)
    fault = state.fault(name, "semi_sync_fallback")
    flavor = _nodes.flavor(state)
    restarted = []
    names = fault if isinstance(fault, tuple) else tuple(state.nodes)
    for other in names:
        n = state.nodes.get(other)
        if n is None or n.role != "replica" or not _server.alive(n.pid):
            continue
        if _server.stopped(n.pid):
            continue
        _server.execute(n.socket, flavor.start_replica_sql("IO_THREAD"))
        restarted.append(other)
    state = state.with_fault(name, "semi_sync_fallback", False)
    active = "unchanged"
    if node.role == "primary" and restarted and _usable(node):
        deadline = time.monotonic() + timeout
        active = "OFF"
        while time.monotonic() < deadline and active != "ON":
            _canary(node)
            active = _semi_sync_wait(node, "ON", 0.5)
    return state, {"replicas_acknowledging": restarted, "semi_sync": active}


_CANARY_SQL = [
    "CREATE DATABASE IF NOT EXISTS lab_canary",
    "CREATE TABLE IF NOT EXISTS lab_canary.t (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))",
    "INSERT INTO lab_canary.t (at) VALUES (NOW(6))",
]


def _canary(node: Node) -> None:
    _server.execute(node.socket, _CANARY_SQL, timeout=60)


def _semi_sync_wait(node: Node, want: str, timeout: float) -> str:
    """The primary's semi-sync status once it is `want`, or when `timeout` ran out."""
    deadline = time.monotonic() + timeout
    while True:
        rows = _server.execute(
            node.socket,
            "SHOW GLOBAL STATUS WHERE Variable_name IN "
            "('Rpl_semi_sync_master_status', 'Rpl_semi_sync_source_status')",
        )
        value = str(rows[0]["Value"]) if rows else "absent"
        if value == want or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


# -- failover ------------------------------------------------------------------------------------
def _promote(state: LabState, name: str, keep_old_primary: bool = False) -> tuple[LabState, Result]:
    """Operator-style failover to replica `name`.

    The relay log it already holds is applied first unless its SQL thread was stopped on
    purpose (`lag`): then the unapplied events are discarded, as a careless failover would,
    and acknowledged writes are lost — which the checker must then report.
    """
    node = state.node(name)
    old = state.primary
    if name == old:
        raise LabError(f"{name} is already the primary")
    if node.role != "replica":
        raise LabError(f"{name} is a {node.role}, not a replica: cannot promote it")
    _require_running(node)
    flavor = _nodes.flavor(state)
    old_node = state.node(old)
    old_alive = _usable(old_node)
    if old_alive and not keep_old_primary:
        # Fence the old primary first, so it cannot ack a write after the new one starts.
        _server.execute(old_node.socket, "SET GLOBAL read_only = 1")
    sock = node.socket
    discarded = None
    if state.fault(name, "lagging"):
        status = _server.execute(sock, flavor.replica_status_sql())
        discarded = (
            (status[0].get("Gtid_IO_Pos") or status[0].get("Retrieved_Gtid_Set"))
            if status
            else None
        )
    else:
        _drain_relay_log(flavor, sock)
    _server.execute(
        sock,
        [
            flavor.stop_replica_sql(),
            flavor.reset_replica_sql(),
            *flavor.durability_sql(primary=True),
            "SET GLOBAL read_only = 0",
        ],
    )
    state = state.with_fault(name, "lagging", False)
    # A fallback was the old primary's; promote restarts the other replicas' threads.
    state = state.with_fault(old, "semi_sync_fallback", False)
    state = dataclasses.replace(state.with_node(name, role="primary"), primary=name)
    if keep_old_primary and old_alive:
        state = state.with_node(old, role="zombie")
    else:
        state = state.with_node(old, role="replica")
        if old_alive:
            _nodes.ensure_replicating(state, old)
    # Let the proxy route the writer and the replication ports to the new primary before
    # the other replicas reconnect.
    save(state)
    _proxy.reload(state.dir)
    others = []
    for other, other_node in state.nodes.items():
        if other_node.role == "replica" and other != old and _server.alive(other_node.pid):
            if _server.stopped(other_node.pid):
                continue
            stmts = [flavor.stop_replica_sql(), flavor.start_replica_sql()]
            if state.fault(other, "lagging"):
                stmts = [
                    flavor.stop_replica_sql("IO_THREAD"),
                    flavor.start_replica_sql("IO_THREAD"),
                ]
            _server.execute(other_node.socket, stmts)
            others.append(other)
    return state, {
        "old_primary": old,
        "new_primary": name,
        "old_primary_state": state.node(old).role if old_alive else "down",
        "discarded_relay_log_up_to": discarded,
        "replicas_following": others,
    }


def _drain_relay_log(flavor: _server.Flavor, sock: Path, timeout: float = 30.0) -> None:
    """Stop fetching, then wait until what was fetched has been applied."""
    _server.execute(sock, flavor.stop_replica_sql("IO_THREAD"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _server.execute(sock, flavor.replica_status_sql())
        if not rows:
            return
        r = rows[0]
        if flavor.mariadb:
            received = r.get("Gtid_IO_Pos") or ""
            done = _server.execute(sock, "SELECT @@gtid_slave_pos AS p")[0]["p"] or ""
            if not received or _gtid_pos_covers(done, received):
                return
        else:
            got = _server.execute(
                sock,
                f"SELECT GTID_SUBSET('{r.get('Retrieved_Gtid_Set') or ''}', @@gtid_executed) AS ok",
            )
            if int(got[0]["ok"]):
                return
        if (r.get("Slave_SQL_Running") or r.get("Replica_SQL_Running")) != "Yes":
            return
        time.sleep(0.05)
    raise LabError("the replica did not apply its relay log in time; promote aborted")


def _gtid_pos_covers(done: str, received: str) -> bool:
    """MariaDB positions (`d-s-n,...`, one per domain): has `done` reached `received`?"""

    def parse(pos: str) -> dict[int, int]:
        out: dict[int, int] = {}
        for part in filter(None, (p.strip() for p in pos.split(","))):
            d, _, n = part.split("-")
            out[int(d)] = int(n)
        return out

    have = parse(done)
    return all(have.get(d, -1) >= n for d, n in parse(received).items())


# -- a second server on the datadir ---------------------------------------------------------------
def _double_start(state: LabState, name: str, wait: float = 10.0) -> tuple[LabState, Result]:
    """Start a second server on the node's datadir, as a force delete on a shared volume
    would, and report whether the file locks refused it and the original kept serving."""
    node = state.node(name)
    _require_running(node)
    logs = state.dir / "logs"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    err = logs / f"{name}.double-start.{stamp}.err"
    sock = node.socket.with_name(f"{name}.second.sock")
    args = _nodes.flavor(state).server_args(
        datadir=node.datadir,
        port=_nodes.free_port(),
        socket=sock,
        server_id=node.server_id,
        pid_file=node.datadir / "second.pid",
        error_log=err,
        read_only=True,
        semi_sync=False,
        buffer_pool_mb=64,
        tmpdir=_nodes.tmpdir(state, name),
    )
    pid = _server.start(args, logs / f"{name}.double-start.out")
    save(state.with_node(name, double_pid=pid))
    refusal = None
    deadline = time.monotonic() + wait
    accepted = False
    while time.monotonic() < deadline:
        refusal = _server.lock_refused(err)
        accepted = _server.accepting(err)
        if refusal or accepted or not _server.alive(pid):
            break
        time.sleep(0.05)
    # A refused second server retries its lock for ~30 s and ignores SIGTERM meanwhile.
    _server.signal_pid(pid, signal.SIGKILL)
    _server.wait_exit(pid, 10)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    serving, probe_error = _original_serving(node)
    return state.with_node(name, double_pid=None), {
        "refused": refusal is not None and not accepted,
        "second_pid": pid,
        "evidence": refusal
        or ("the second server accepted connections" if accepted else "no lock error logged"),
        "second_log": str(err),
        "original_serving": serving,
        "original_error": probe_error,
    }


def _original_serving(node: Node) -> tuple[bool, str | None]:
    try:
        if node.role == "primary":
            _server.execute(node.socket, _CANARY_SQL)
        else:
            _server.execute(node.socket, "SELECT 1")
    except pymysql.err.MySQLError as exc:
        return False, str(exc)
    return True, None


# -- the registry ---------------------------------------------------------------------------------
REGISTRY: Mapping[str, Fault] = {
    f.name: f
    for f in (
        Fault("endpoint-loss", _endpoint_loss, undo="endpoint-restore"),
        Fault("endpoint-restore", _endpoint_restore),
        Fault("kill", _kill, undo="start"),
        Fault("start", _start),
        Fault("pause", _pause, undo="resume"),
        Fault("resume", _resume),
        Fault("partition", _partition, undo="heal", options=("mode",)),
        Fault("heal", _heal),
        Fault("promote", _promote, options=("keep_old_primary",)),
        Fault("double-start", _double_start, options=("wait",)),
        Fault("lag", _lag, undo="unlag"),
        Fault("unlag", _unlag),
        Fault(
            "semi-sync-fallback",
            _semi_sync_fallback,
            undo="semi-sync-restore",
            options=("timeout",),
        ),
        Fault("semi-sync-restore", _semi_sync_restore, options=("timeout",)),
    )
}
FAULTS = tuple(REGISTRY)


def get(action: str) -> Fault:
    """The fault named `action`; an unknown name lists the known ones."""
    try:
        return REGISTRY[action]
    except KeyError:
        raise LabError(f"unknown fault {action!r}: choose one of {', '.join(FAULTS)}") from None
