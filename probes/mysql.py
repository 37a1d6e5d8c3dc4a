"""Steady-state probes against the MySQL endpoints: can we write, read back, replicate?

Targets (configuration): `lab_dir` names a running `checker lab` whose endpoints and generated
passwords are used; otherwise `mysql_writer`, `mysql_reader` and `mysql_nodes` (every server,
for the node-level probes), derived by default from `mysql_namespace` as
`mysql-0.mysql.<ns>.svc:3306`, `mysql-read.<ns>.svc:3306` and `mysql-N.mysql.<ns>.svc:3306`
(probes._config.CLUSTER_KEYS), `mysql_user` (`checker`) and `mysql_database` (`integrity`).
The password is the `mysql` secret's `password`
(list `"mysql"` in each provider's `secrets`); in lab mode it overrides the lab's own.

Failure policy: a probe whose database misbehaves returns False (or a count, or -1 for an
unknown lag), so the hypothesis deviates cleanly and the journal says why in the log. It raises
`ActivityFailed` only when it cannot do its job at all: malformed arguments or configuration,
no lab at `lab_dir`, a refused password, a missing grant, or (cluster mode) a missing
`chaos_marker` table. Unreachable and hanging servers are database behaviour, not errors.

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pymysql
import pymysql.cursors

from checker import mysql
from checker.errors import AuthError, CheckerError, DatabaseError, GrantError, SchemaError
from checker.lab import state as lab_state
from checker.mysql import Endpoint, quote_ident
from checker.secrets import redact
from probes import _config as cfg

__all__ = [
    "marker_write_read",
    "replication_healthy",
    "replication_lag_seconds",
    "writable_primaries",
]
# Every activity here is a probe (see probes.discover).
PROBES = tuple(__all__)

logger = logging.getLogger("chaostoolkit")

Configuration = dict[str, Any] | None
Secrets = dict[str, Any] | None
T = TypeVar("T")

MARKER_TABLE = "chaos_marker"
# Created by `checker setup` (the probe's least-privilege user cannot CREATE); in lab mode the
# probe creates it itself as the lab's root user.
MARKER_DDL = (
    "CREATE TABLE IF NOT EXISTS {table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
    "marker VARCHAR(64) NOT NULL, written_at DATETIME(6))"
)
# The probe may run every few seconds for days: keep only the newest markers.
MARKERS_KEPT = 1000
UNKNOWN_LAG = -1.0
_POLL_INTERVAL = 0.1
_MIN_TIMEOUT = 0.05  # PyMySQL refuses a zero timeout


# -- probes ---------------------------------------------------------------------------------------
def marker_write_read(
    timeout: float = 10.0, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """Write a marker row through the writer endpoint; True once the reader endpoint returns it.

    Each read uses a fresh connection (`mysql-read` round-robins over replicas). False when the
    write fails or the marker is not readable within `timeout` seconds (all of it: the write
    and the reads). Needs the `chaos_marker` table (`checker setup`; created in lab mode).
    """
    limit = cfg.seconds(timeout, "argument timeout")
    target = cfg.mysql_target(configuration, secrets)
    deadline = time.monotonic() + limit
    marker = uuid.uuid4().hex
    try:
        row_id = _write_marker(target, marker, deadline)
    except DatabaseError as exc:
        _refuse_misconfigured(exc, target.writer, schema=True)
        logger.warning("marker_write_read: the marker write failed: %s", exc)
        return False
    return _await_marker(target.reader, row_id, marker, deadline, limit)


def replication_healthy(
    max_lag_seconds: float = 10.0,
    timeout: float = 5.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True when every replica runs its IO and SQL threads and lags at most `max_lag_seconds`.

    Replicas: the lab's nodes with role `replica`, or `mysql_nodes` other than `mysql_writer`.
    An unreachable replica (within `timeout` seconds) or one not configured to replicate is
    unhealthy. Works with MariaDB (SHOW SLAVE STATUS) and MySQL 8 (SHOW REPLICA STATUS).
    """
    bound = cfg.seconds(max_lag_seconds, "argument max_lag_seconds", allow_zero=True)
    states = _replica_states(timeout, configuration, secrets)
    healthy = True
    for name, state in states.items():
        problem = _replication_problem(state, bound)
        if problem:
            healthy = False
            logger.warning("replication_healthy: %s %s", name, problem)
    return healthy


def replication_lag_seconds(
    timeout: float = 5.0, configuration: Configuration = None, secrets: Secrets = None
) -> float:
    """The largest replica lag in seconds, or -1 when any replica's lag is unknown.

    Unknown: unreachable within `timeout`, not replicating, or a stopped thread (the server
    then reports no lag). -1 fails a `range` tolerance such as [0, 10], as it should.
    """
    lags: list[float] = []
    for name, state in _replica_states(timeout, configuration, secrets).items():
        if not isinstance(state, _Replication) or state.lag is None or not state.running:
            logger.warning("replication_lag_seconds: lag of %s unknown: %s", name, state)
            return UNKNOWN_LAG
        lags.append(state.lag)
    return max(lags)


def writable_primaries(
    timeout: float = 5.0, configuration: Configuration = None, secrets: Secrets = None
) -> int:
    """How many servers answer with `@@read_only = 0` (a tolerance of 1: exactly one primary).

    Servers: every lab node, or every `mysql_nodes` entry. Unreachable ones (within `timeout`
    seconds) do not count and are logged.
    """
    limit = cfg.seconds(timeout, "argument timeout")
    nodes = cfg.mysql_target(configuration, secrets).nodes
    writable = []
    for name, state in _on_each(nodes, _read_only, limit).items():
        if isinstance(state, DatabaseError):
            logger.warning("writable_primaries: %s not counted: %s", name, state)
        elif not state:
            writable.append(name)
    logger.info("writable_primaries: %d (%s)", len(writable), ", ".join(writable) or "none")
    return len(writable)


# -- marker ---------------------------------------------------------------------------------------
def _write_marker(target: cfg.MySQLTarget, marker: str, deadline: float) -> int:
    try:
        return _insert_marker(target.writer, marker, deadline)
    except SchemaError:
        if target.lab_dir is None:
            raise
    _create_marker_table(target, deadline)
    return _insert_marker(target.writer, marker, deadline)


def _insert_marker(writer: Endpoint, marker: str, deadline: float) -> int:
    table = quote_ident(MARKER_TABLE)
    with _cursor(writer, _remaining(deadline)) as cur:
        cur.execute(f"INSERT INTO {table} (marker, written_at) VALUES (%s, NOW(6))", (marker,))
        row_id = int(cur.lastrowid)
        try:
            cur.execute(f"DELETE FROM {table} WHERE id <= %s", (row_id - MARKERS_KEPT,))
        except pymysql.err.MySQLError as exc:
            # Housekeeping only: a DBA may have granted no DELETE on the marker table.
            logger.debug("marker_write_read: old markers not deleted: %s", exc)
    return row_id


def _create_marker_table(target: cfg.MySQLTarget, deadline: float) -> None:
    assert target.lab_dir is not None  # noqa: S101 - only lab mode may create it
    try:
        root = lab_state.load(target.lab_dir).endpoint(
            "writer", user=lab_state.ROOT_USER, database=target.writer.database
        )
    except CheckerError as exc:
        cfg.fail(f"configuration lab_dir: {exc}")
    with _cursor(root, _remaining(deadline)) as cur:
        cur.execute(MARKER_DDL.format(table=quote_ident(MARKER_TABLE)))
    logger.info("marker_write_read: created %s on the lab's primary", MARKER_TABLE)


def _await_marker(
    reader: Endpoint, row_id: int, marker: str, deadline: float, limit: float
) -> bool:
    started = time.monotonic()
    last: object = "no read attempted"
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            if _marker_visible(reader, row_id, marker, remaining):
                waited = time.monotonic() - started
                logger.info("marker_write_read: marker read back after %.2fs", waited)
                return True
            last = "the marker was not there yet"
        except SchemaError as exc:
            last = exc  # the table itself may not have replicated yet
        except DatabaseError as exc:
            _refuse_misconfigured(exc, reader, schema=False)
            last = exc
        time.sleep(min(_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
    logger.warning("marker_write_read: marker not readable within %gs (last: %s)", limit, last)
    return False


def _marker_visible(reader: Endpoint, row_id: int, marker: str, timeout: float) -> bool:
    table = quote_ident(MARKER_TABLE)
    with _cursor(reader, timeout) as cur:
        cur.execute(f"SELECT marker FROM {table} WHERE id = %s", (row_id,))
        row = cur.fetchone()
    return row is not None and row[0] == marker


# -- replication ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Replication:
    """A replica's view of its replication, from SHOW SLAVE/REPLICA STATUS."""

    io: str | None
    sql: str | None
    lag: float | None
    error: str | None

    @property
    def running(self) -> bool:
        return self.io == "Yes" and self.sql == "Yes"

    def __str__(self) -> str:
        text = f"io={self.io} sql={self.sql} lag={self.lag}"
        return f"{text} error={self.error}" if self.error else text


_NotReplicating = str  # why a node reports no replication at all
_ReplicaState = _Replication | _NotReplicating | DatabaseError


def _replica_states(
    timeout: Any, configuration: Configuration, secrets: Secrets
) -> dict[str, _ReplicaState]:
    limit = cfg.seconds(timeout, "argument timeout")
    nodes = cfg.mysql_target(configuration, secrets).nodes
    replicas = [n for n in nodes if n.replica]
    if not replicas:
        cfg.fail(
            "no replica to check: the lab has none, or configuration mysql_nodes lists only "
            "the mysql_writer address"
        )
    return _on_each(replicas, _replication_of, limit)


def _replication_problem(state: _ReplicaState, bound: float) -> str | None:
    if isinstance(state, DatabaseError):
        return f"unreachable: {state}"
    if isinstance(state, str):
        return state
    if not state.running:
        return f"threads not running: {state}"
    if state.lag is None or state.lag > bound:
        return f"lag above {bound:g}s: {state}"
    return None


def _replication_of(endpoint: Endpoint, timeout: float) -> _Replication | _NotReplicating:
    with _cursor(endpoint, timeout, dict_rows=True) as cur:
        cur.execute("SELECT @@version AS version")
        version = str(cur.fetchone()["version"])
        # One version switch for the whole project (checker.mysql).
        cur.execute(mysql.replica_status_sql(mysql.flavor_of(version), version))
        row = cur.fetchone()
    if not row:
        return "not configured as a replica (no replica status)"
    lag = row.get("Seconds_Behind_Master", row.get("Seconds_Behind_Source"))
    error = row.get("Last_IO_Error") or row.get("Last_SQL_Error") or None
    return _Replication(
        io=row.get("Slave_IO_Running") or row.get("Replica_IO_Running"),
        sql=row.get("Slave_SQL_Running") or row.get("Replica_SQL_Running"),
        lag=None if lag is None else float(lag),
        error=redact(str(error)) if error else None,
    )


def _read_only(endpoint: Endpoint, timeout: float) -> bool:
    with _cursor(endpoint, timeout) as cur:
        cur.execute("SELECT @@read_only")
        return bool(int(cur.fetchone()[0]))


# -- connections ----------------------------------------------------------------------------------
@contextmanager
def _cursor(endpoint: Endpoint, timeout: float, *, dict_rows: bool = False) -> Iterator[Any]:
    """A cursor on a fresh connection bounded by `timeout`; errors become DatabaseErrors."""
    bounded = endpoint.with_(
        connect_timeout=max(timeout, _MIN_TIMEOUT), read_timeout=max(timeout, _MIN_TIMEOUT)
    )
    rows = pymysql.cursors.DictCursor if dict_rows else pymysql.cursors.Cursor
    conn = mysql.connect(bounded)
    try:
        with conn.cursor(rows) as cur:
            yield cur
    except (pymysql.err.MySQLError, OSError) as exc:
        raise mysql.classify(exc, bounded) from None
    finally:
        if conn.open:  # PyMySQL has already closed a connection that broke
            conn.close()


def _on_each(
    nodes: Sequence[cfg.Node], query: Callable[[Endpoint, float], T], timeout: float
) -> dict[str, T | DatabaseError]:
    """Run `query` on every node at once (a hung node costs `timeout`, not N times it)."""

    def run(node: cfg.Node) -> T | DatabaseError:
        try:
            return query(node.endpoint, timeout)
        except DatabaseError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        results = dict(zip([n.name for n in nodes], pool.map(run, nodes), strict=True))
    for node in nodes:
        outcome = results[node.name]
        if isinstance(outcome, DatabaseError):
            _refuse_misconfigured(outcome, node.endpoint, schema=False)
    return results


def _refuse_misconfigured(exc: DatabaseError, endpoint: Endpoint, *, schema: bool) -> None:
    """Raise ActivityFailed for what no retry can fix; leave the database's misbehaviour be."""
    if isinstance(exc, AuthError):
        hint = (
            "check the mysql secret's password and configuration mysql_user"
            if endpoint.password
            else 'no password was given: list "mysql" in the provider\'s secrets'
        )
        cfg.fail(
            f"MySQL at {endpoint.label()} refused user {endpoint.user!r}: wrong user or "
            f"password ({hint})"
        )
    if isinstance(exc, GrantError) or (schema and isinstance(exc, SchemaError)):
        cfg.fail(str(exc))


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), _MIN_TIMEOUT)
