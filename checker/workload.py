"""Workload loops driving MySQL: ledger writers, readers, heartbeat, bank transfers.

Each loop is a thread with its own connection, captures the server's identity once per
connection, reconnects with capped exponential backoff, and never lets a MySQL error kill
the service. Every write becomes an `Attempt` with an honest outcome:
- OK: the COMMIT was acknowledged;
- FAILED: the INSERT or COMMIT got an error *reply* (the server rolled back), or the
  connection broke before COMMIT was sent (nothing can have been committed);
- INDETERMINATE: the connection broke or timed out while COMMIT was in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pymysql

from checker import _logging, mysql
from checker.core.history import Attempt, BankObservation, Outcome, Read
from checker.errors import CheckerError, DatabaseError
from checker.journal import RESERVE_BLOCK, Journal
from checker.mysql import Endpoint, ServerInfo
from checker.schema import Names
from checker.secrets import redact

log = _logging.get("checker.workload")

_CONNECTION_ERRORS = (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError)


def _is_connection_loss(exc: BaseException) -> bool:
    """Did the connection break (vs. the server answering with an error)?"""
    if isinstance(exc, (pymysql.err.InterfaceError, OSError)):
        return True
    if isinstance(exc, pymysql.err.OperationalError) and exc.args:
        code = exc.args[0]
        return code in mysql.CONNECTION_LOST_CODES or code in (mysql.CR_CONN_HOST_ERROR, 2055)
    return False


@dataclass
class Backoff:
    """Capped exponential backoff with jitter; `reset` after a success."""

    initial: float = 0.05
    cap: float = 2.0
    current: float = field(default=0.0, init=False)

    def next(self) -> float:
        self.current = self.initial if self.current == 0 else min(self.cap, self.current * 2)
        return self.current * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self.current = 0.0


class NodeMap:
    """Maps a server (by server_id) to the node name it was last seen as."""

    def __init__(self) -> None:
        self._by_id: dict[int, str] = {}
        self._lock = threading.Lock()

    def learn(self, server_id: int, node: str) -> None:
        with self._lock:
            self._by_id[server_id] = node

    def name(self, server_id: int) -> str | None:
        with self._lock:
            return self._by_id.get(server_id)


class Loop(threading.Thread):
    """A stoppable worker thread with one MySQL connection."""

    def __init__(self, name: str, endpoint: Endpoint, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.endpoint = endpoint
        self.stop = stop
        self.conn: Any = None
        self.info: ServerInfo | None = None
        self.backoff = Backoff()
        self.connect_failures = 0
        self.last_error: str | None = None
        self.paused = threading.Event()

    def connect(self) -> bool:
        """(Re)connect and identify the server; False (after backing off) on failure."""
        self.disconnect()
        try:
            self.conn = mysql.connect(self.endpoint, autocommit=self.autocommit)
            self.info = (
                mysql.server_info(self.conn) if self.identify or self.info is None else self.info
            )
        except (DatabaseError, *_CONNECTION_ERRORS) as exc:
            self.disconnect()
            self.connect_failures += 1
            self.last_error = redact(str(exc))
            log.debug(
                "connect_failed",
                loop=self.name,
                endpoint=self.endpoint.label(),
                error=self.last_error,
            )
            self.stop.wait(self.backoff.next())
            return False
        self.backoff.reset()
        self.on_connect(self.info)
        return True

    autocommit = True
    identify = True  # learn the server's identity on every (re)connection

    def on_connect(self, info: ServerInfo) -> None:
        """Hook: a new connection to `info` was made."""

    def disconnect(self) -> None:
        if self.conn is not None:
            # closing a broken connection may fail any way
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.paused.is_set():
                    self.stop.wait(0.1)
                    continue
                if self.conn is None and not self.connect():
                    continue
                try:
                    self.step()
                except _CONNECTION_ERRORS as exc:
                    self.last_error = redact(str(exc))
                    self.disconnect()
                except pymysql.err.MySQLError as exc:
                    self.last_error = redact(str(exc))
                    self.disconnect()
                    self.stop.wait(self.backoff.next())
                except CheckerError as exc:
                    # e.g. the journal cannot persist a reservation: wait, never die.
                    self.last_error = str(exc)
                    log.warning("loop_blocked", loop=self.name, error=self.last_error)
                    self.stop.wait(1.0)
        finally:
            self.disconnect()
            self.finish()

    def step(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Hook: the loop is ending."""


class RateLimiter:
    """Shared pacing of all writers to `rate` operations per second (0 = unlimited)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now)
            self._next = slot + self.interval
        if slot > now:
            stop.wait(slot - now)


class LedgerWriter(Loop):
    """One writer: its own connection, writer id and increasing seq."""

    def __init__(
        self,
        writer_id: str,
        endpoint: Endpoint,
        names: Names,
        journal: Journal,
        sink: Callable[[Attempt], None],
        stop: threading.Event,
        limiter: RateLimiter,
        nodes: NodeMap,
    ) -> None:
        super().__init__(f"writer-{writer_id}", endpoint, stop)
        self.writer_id = writer_id
        self.journal = journal
        self.sink = sink
        self.limiter = limiter
        self.nodes = nodes
        self.seq = 0
        self.recorded = 0  # the last seq handed to the journal
        self.reserved = 0
        self.sql = (
            f"INSERT INTO {names.q('ledger')} (writer_id, seq, payload, checksum, written_at) "
            "VALUES (%s, %s, %s, %s, NOW(6))"
        )
        self.server: str | None = None
        self.node: str | None = None
        self.lifetime = 0.0
        self.connected_at = 0.0

    autocommit = False

    def on_connect(self, info: ServerInfo) -> None:
        self.server = info.identity
        self.node = self.nodes.name(info.server_id)
        self.connected_at = time.monotonic()

    def step(self) -> None:
        if self.journal.error:
            # Nothing may be written that cannot be recorded: wait for the journal.
            self.stop.wait(0.5)
            return
        self.limiter.wait(self.stop)
        if self.stop.is_set():
            return
        seq = self.seq + 1
        if seq > self.reserved:
            self.journal.reserve(self.writer_id, self.reserved + RESERVE_BLOCK)
            self.reserved += RESERVE_BLOCK
        self.seq = seq
        payload = os.urandom(random.randint(16, 128))
        digest = hashlib.sha256(payload).hexdigest()
        invoke_wall, invoke_mono = time.time(), time.monotonic()
        outcome, row_id, error = self._write(seq, payload, digest)
        attempt = Attempt(
            writer_id=self.writer_id,
            seq=seq,
            payload_sha256=digest,
            outcome=outcome,
            invoke_wall=invoke_wall,
            complete_wall=time.time(),
            invoke_mono=invoke_mono,
            complete_mono=time.monotonic(),
            server=self.server,
            node=self.node,
            row_id=row_id,
            error=error,
        )
        self.journal.record_attempt(attempt)
        self.recorded = seq
        self.sink(attempt)
        if outcome is not Outcome.OK:
            self.last_error = error
            # Any failure: reconnect, the writer endpoint may route somewhere else now.
            self.disconnect()
            if outcome is Outcome.FAILED:
                self.stop.wait(self.backoff.next())
        else:
            self.backoff.reset()
            if self.lifetime and time.monotonic() - self.connected_at > self.lifetime:
                # Like a pool's max lifetime: new connections follow the writer endpoint,
                # old ones may still reach a zombie primary; both together expose split brain.
                self.disconnect()

    def _write(
        self, seq: int, payload: bytes, digest: str
    ) -> tuple[Outcome, int | None, str | None]:
        conn = self.conn
        try:
            with conn.cursor() as cur:
                cur.execute(self.sql, (self.writer_id, seq, payload, digest))
                row_id = int(cur.lastrowid) if cur.lastrowid else None
        except pymysql.err.MySQLError as exc:
            # Before COMMIT: with autocommit off nothing can have been committed.
            self._rollback_quietly()
            return Outcome.FAILED, None, f"insert: {redact(str(exc))}"
        try:
            conn.commit()
        except pymysql.err.MySQLError as exc:
            if _is_connection_loss(exc):
                return Outcome.INDETERMINATE, row_id, f"commit: {redact(str(exc))}"
            self._rollback_quietly()
            return Outcome.FAILED, row_id, f"commit: {redact(str(exc))}"
        except OSError as exc:
            return Outcome.INDETERMINATE, row_id, f"commit: {redact(str(exc))}"
        return Outcome.OK, row_id, None

    def _rollback_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the connection may already be gone
            self.conn.rollback()

    def finish(self) -> None:
        if self.seq:
            self.journal.close_writer(self.writer_id, self.seq)


class Reader(Loop):
    """Reads each writer's highest visible seq through one endpoint, one connection per read
    for `mysql-read` (a Service balances per connection) and a kept one for a node endpoint."""

    def __init__(
        self,
        endpoint_name: str,
        endpoint: Endpoint,
        names: Names,
        writers: Callable[[], list[str]],
        sink: Callable[[list[Read]], None],
        stop: threading.Event,
        nodes: NodeMap,
        interval: float = 0.1,
        reconnect_each_read: bool = False,
    ) -> None:
        super().__init__(f"reader-{endpoint_name}", endpoint, stop)
        # A reader reconnecting for every read learns its backend from the read itself.
        self.identify = not reconnect_each_read
        self.endpoint_name = endpoint_name
        self.writers = writers
        self.sink = sink
        self.nodes = nodes
        self.interval = interval
        self.reconnect_each_read = reconnect_each_read
        self.table = names.q("ledger")

    def step(self) -> None:
        writers = self.writers()
        if writers:
            marks = ", ".join(["%s"] * len(writers))
            started = time.time()
            with self.conn.cursor() as cur:
                cur.execute(
                    f"SELECT @@server_id, writer_id, MAX(seq) FROM {self.table} "
                    f"WHERE writer_id IN ({marks}) GROUP BY writer_id",
                    writers,
                )
                rows = cur.fetchall()
            self.conn.rollback()  # end the snapshot so the next read sees new data
            server_id = int(rows[0][0]) if rows else (self.info.server_id if self.info else 0)
            node = self.nodes.name(server_id) or (
                self.endpoint_name if self.endpoint_name != "mysql-read" else None
            )
            server = self.info.identity if self.info and self.identify else f"server_id={server_id}"
            seen = {w: int(m) for _, w, m in rows}
            self.sink(
                [
                    Read(
                        time=started,
                        writer_id=w,
                        max_seq=seen.get(w),
                        node=node,
                        server=server,
                        endpoint=self.endpoint_name,
                    )
                    for w in writers
                ]
            )
        if self.reconnect_each_read:
            self.disconnect()
        self.stop.wait(self.interval)


class Heartbeat(Loop):
    """Rewrites the heartbeat row on the primary every `interval` (pt-heartbeat style)."""

    def __init__(
        self, endpoint: Endpoint, names: Names, stop: threading.Event, interval: float = 0.01
    ) -> None:
        super().__init__("heartbeat", endpoint, stop)
        self.interval = interval
        self.sql = (
            f"INSERT INTO {names.q('heartbeat')} (id, ts, server_id) "
            "VALUES (1, NOW(6), @@server_id) "
            "ON DUPLICATE KEY UPDATE ts = VALUES(ts), server_id = VALUES(server_id)"
        )
        self.beats = 0

    def step(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(self.sql)
        self.beats += 1
        self.stop.wait(self.interval)


class LagSampler(Loop):
    """Replica lag of one node from the heartbeat row, at the heartbeat's resolution."""

    def __init__(
        self,
        node: str,
        endpoint: Endpoint,
        names: Names,
        sink: Callable[[str, float | None], None],
        stop: threading.Event,
        interval: float = 0.5,
    ) -> None:
        super().__init__(f"lag-{node}", endpoint, stop)
        self.node = node
        self.sink = sink
        self.interval = interval
        self.sql = (
            "SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) "
            f"FROM {names.q('heartbeat')} WHERE id = 1"
        )

    def step(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(self.sql)
            row = cur.fetchone()
        self.sink(self.node, max(0.0, int(row[0]) / 1e6) if row and row[0] is not None else None)
        self.stop.wait(self.interval)

    def finish(self) -> None:
        self.sink(self.node, None)


@dataclass
class BankCounters:
    ok: int = 0
    failed: int = 0
    indeterminate: int = 0


class BankTransfers(Loop):
    """Moves money between random accounts in transactions with SELECT ... FOR UPDATE."""

    def __init__(
        self,
        name: str,
        endpoint: Endpoint,
        names: Names,
        accounts: int,
        stop: threading.Event,
        counters: BankCounters,
        lock: threading.Lock,
        limiter: RateLimiter,
    ) -> None:
        super().__init__(name, endpoint, stop)
        self.accounts = accounts
        self.counters = counters
        self.lock = lock
        self.limiter = limiter
        self.table = names.q("accounts")

    autocommit = False

    def step(self) -> None:
        self.limiter.wait(self.stop)
        a, b = random.sample(range(1, self.accounts + 1), 2)
        first, second = sorted((a, b))  # lock in id order: no deadlock between transfers
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    f"SELECT id, balance FROM {self.table} WHERE id IN (%s, %s) FOR UPDATE",
                    (first, second),
                )
                balances = dict(cur.fetchall())
                amount = random.randint(1, 10)
                if balances.get(a, 0) < amount:
                    self.conn.rollback()
                    return
                cur.execute(
                    f"UPDATE {self.table} SET balance = balance - %s WHERE id = %s", (amount, a)
                )
                cur.execute(
                    f"UPDATE {self.table} SET balance = balance + %s WHERE id = %s", (amount, b)
                )
        except pymysql.err.MySQLError:
            with self.lock:
                self.counters.failed += 1
            raise
        try:
            self.conn.commit()
        except pymysql.err.MySQLError as exc:
            with self.lock:
                if _is_connection_loss(exc):
                    self.counters.indeterminate += 1
                else:
                    self.counters.failed += 1
            raise
        with self.lock:
            self.counters.ok += 1


class BankObserver(Loop):
    """Reads the bank total on one node every `interval`."""

    def __init__(
        self,
        node: str,
        endpoint: Endpoint,
        names: Names,
        sink: Callable[[BankObservation], None],
        stop: threading.Event,
        interval: float = 1.0,
    ) -> None:
        super().__init__(f"bank-{node}", endpoint, stop)
        self.node = node
        self.sink = sink
        self.interval = interval
        self.table = names.q("accounts")

    def step(self) -> None:
        now = time.time()
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT COALESCE(SUM(balance), 0), COUNT(*) FROM {self.table}")
            total, count = cur.fetchone()
        if int(count):
            self.sink(
                BankObservation(
                    node=self.node,
                    time=now,
                    total=int(total),
                    server=self.info.identity if self.info else None,
                )
            )
        self.stop.wait(self.interval)


def ensure_bank(endpoint: Endpoint, names: Names, accounts: int, balance: int) -> int:
    """Create the accounts if the table is empty; return the invariant total."""
    conn = mysql.connect(endpoint, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*), COALESCE(SUM(balance), 0) FROM {names.q('accounts')}")
            count, total = cur.fetchone()
            if int(count) == 0:
                cur.executemany(
                    f"INSERT INTO {names.q('accounts')} (id, balance) VALUES (%s, %s)",
                    [(i, balance) for i in range(1, accounts + 1)],
                )
                conn.commit()
                return accounts * balance
            conn.rollback()
            return int(total)
    except pymysql.err.MySQLError as exc:
        raise mysql.classify(exc, endpoint) from None
    finally:
        conn.close()


def learn_nodes(nodes: Mapping[str, Endpoint], node_map: NodeMap) -> dict[str, ServerInfo | str]:
    """Connect once to each node endpoint to learn its server_id (errors returned, not raised)."""
    found: dict[str, ServerInfo | str] = {}
    for name, ep in nodes.items():
        try:
            conn = mysql.connect(ep.with_(connect_timeout=min(ep.connect_timeout, 3.0)))
            try:
                info = mysql.server_info(conn)
            finally:
                conn.close()
        except (DatabaseError, *_CONNECTION_ERRORS) as exc:
            found[name] = redact(str(exc))
            continue
        node_map.learn(info.server_id, name)
        found[name] = info
    return found
