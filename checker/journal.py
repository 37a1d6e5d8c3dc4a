"""Durable local history: SQLite through SQLAlchemy, written in batches off the write path.

Writers hand records to `Journal.record*` (a queue put, no I/O); one flusher thread writes
them in group commits (every `flush_interval` or `batch` records). SQLite runs in WAL mode:
a committed batch survives a SIGKILL of the checker.

The crash window, and why it loses nothing: before a writer uses sequence numbers it
*reserves* a block of them durably (`reserve`, synchronous, once per `RESERVE_BLOCK` writes).
Attempts completed but not yet flushed when the checker dies are missing from the journal,
but their seqs are inside a reservation; on analysis every reserved seq without a journaled
attempt becomes an INDETERMINATE attempt with an unknown payload. Such a write is then
`recovered` if its row exists and unremarkable if not: never `lost`, never `unexpected`.
The window is at most one flush interval (default 20 ms) of completed writes per writer,
plus whatever was in flight.

A journal belongs to one target (writer address, database, table); opening it against
another target is refused, so two runs never mix histories.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from checker.core.history import Attempt, BankObservation, Outcome, Read
from checker.errors import JournalError
from checker.secrets import redact

FORMAT_VERSION = 1
RESERVE_BLOCK = 1000

_md = sa.MetaData()
meta_t = sa.Table(
    "meta", _md, sa.Column("key", sa.String, primary_key=True), sa.Column("value", sa.String)
)
attempts_t = sa.Table(
    "attempts",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("writer_id", sa.String, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("payload_sha256", sa.String),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("invoke_wall", sa.Float, nullable=False),
    sa.Column("complete_wall", sa.Float),
    sa.Column("invoke_mono", sa.Float),
    sa.Column("complete_mono", sa.Float),
    sa.Column("server", sa.String),
    sa.Column("node", sa.String),
    sa.Column("row_id", sa.Integer),
    sa.Column("error", sa.String),
    sa.Index("attempts_writer_seq", "writer_id", "seq"),
    sa.Index("attempts_row_id", "row_id"),
)
reservations_t = sa.Table(
    "reservations",
    _md,
    sa.Column("writer_id", sa.String, primary_key=True),
    sa.Column("upto", sa.Integer, nullable=False),
    sa.Column("incarnation", sa.Integer, nullable=False),
    sa.Column("closed", sa.Boolean, nullable=False, default=False),
)
reads_t = sa.Table(
    "reads",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("node", sa.String),
    sa.Column("server", sa.String),
    sa.Column("writer_id", sa.String, nullable=False),
    sa.Column("max_seq", sa.Integer),
)
bank_t = sa.Table(
    "bank",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("server", sa.String),
    sa.Column("total", sa.Integer, nullable=False),
)
lag_t = sa.Table(
    "lag",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("seconds", sa.Float),
)
semi_sync_t = sa.Table(
    "semi_sync",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("server", sa.String),
    sa.Column("enabled", sa.Boolean),
    sa.Column("active", sa.Boolean),
    sa.Column("clients", sa.Integer),
    sa.Column("yes_tx", sa.Integer),
    sa.Column("no_tx", sa.Integer),
)
annotations_t = sa.Table(
    "annotations",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("phase", sa.String, nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("received", sa.Float, nullable=False),
    sa.Column("detail", sa.String),
)
events_t = sa.Table(
    "events",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("detail", sa.String),
)
verifications_t = sa.Table(
    "verifications",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("finished", sa.Float, nullable=False),
    sa.Column("valid", sa.String, nullable=False),
    sa.Column("verdict", sa.Text, nullable=False),
)
_TABLES = {t.name: t for t in _md.sorted_tables}
# Insert columns per table (all but the rowid), and the statements the flusher runs.
_COLUMNS = {name: tuple(c.name for c in t.columns if c.name != "id") for name, t in _TABLES.items()}
_INSERT = {
    name: f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    for name, cols in _COLUMNS.items()
}
_UPSERT_RESERVATION = (
    "INSERT INTO reservations (writer_id, upto, incarnation, closed) "
    "VALUES (:writer_id, :upto, :incarnation, :closed) ON CONFLICT (writer_id) DO UPDATE SET "
    "upto = excluded.upto, incarnation = excluded.incarnation, closed = excluded.closed"
)


@dataclass(frozen=True)
class JournalInfo:
    run_id: str
    incarnation: int
    target: str
    created_at: float


class Journal:
    """One run's history on disk. Thread-safe: any thread may record; one thread flushes."""

    def __init__(
        self,
        path: str | Path,
        *,
        target: str,
        flush_interval: float = 0.02,
        batch: int = 2000,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.batch = batch
        self._queue: queue.SimpleQueue[tuple[str, Any, threading.Event | None]] = (
            queue.SimpleQueue()
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.flushed = 0
        self._raw_conn: Any = None
        self.engine = self._open(readonly)
        self.info = self._init_meta(target, readonly)

    # -- opening ----------------------------------------------------------------------------
    def _open(self, readonly: bool) -> sa.Engine:
        if readonly and not self.path.is_file():
            raise JournalError(f"journal {self.path} does not exist")
        if not readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JournalError(
                    f"cannot create the journal's directory {self.path.parent}: {exc.strerror}"
                ) from None
        if self.path.exists() and self.path.is_dir():
            raise JournalError(f"journal path {self.path} is a directory; give a file path")
        url = f"sqlite:///{self.path}" + ("?mode=ro&uri=true" if readonly else "")
        if readonly:
            url = f"sqlite:///file:{self.path}?mode=ro&uri=true"
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=4,
            max_overflow=4,
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not readonly:
                cur.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: durable against a crash of this process, not of the OS.
            cur.execute("PRAGMA synchronous=NORMAL")
            # A small page cache per connection: several threads (flusher, analysis, API,
            # verification) hold pooled connections for the whole run.
            cur.execute("PRAGMA cache_size=-1024")
            cur.close()

        try:
            with engine.connect() as conn:
                ok = conn.exec_driver_sql("PRAGMA quick_check").scalar()
                if ok != "ok":
                    raise JournalError(
                        f"journal {self.path} is corrupt ({ok}); keep it for inspection and "
                        "start a new one"
                    )
                if not readonly:
                    existing = set(sa.inspect(conn).get_table_names())
                    if existing and "meta" not in existing:
                        # Never add our tables to somebody else's database.
                        raise JournalError(
                            f"{self.path} is an SQLite file but not a checker journal: "
                            "give a new --journal path"
                        )
                    _md.create_all(conn)
                    conn.commit()
        except sa.exc.DatabaseError as exc:
            text = str(exc.orig) if exc.orig else str(exc)
            if "not a database" in text or "malformed" in text:
                raise JournalError(
                    f"journal {self.path} is not a checker journal (not SQLite, or corrupt): {text}"
                ) from None
            if "readonly" in text or "read-only" in text or "unable to open" in text:
                raise JournalError(
                    f"journal {self.path} cannot be written ({text}): check the path and "
                    "permissions"
                ) from None
            raise JournalError(f"journal {self.path}: {text}") from None
        return engine

    def _init_meta(self, target: str, readonly: bool) -> JournalInfo:
        with self.engine.connect() as conn:
            try:
                rows = dict(conn.execute(sa.select(meta_t.c.key, meta_t.c.value)).all())
            except sa.exc.OperationalError:
                raise JournalError(
                    f"{self.path} is an SQLite file but not a checker journal"
                ) from None
            if readonly:
                if not rows:
                    raise JournalError(f"{self.path} is an empty journal")
                return JournalInfo(
                    rows["run_id"],
                    int(rows["incarnation"]),
                    rows["target"],
                    float(rows["created_at"]),
                )
            if rows:
                if int(rows.get("format_version", 0)) != FORMAT_VERSION:
                    raise JournalError(
                        f"journal {self.path} has format {rows.get('format_version')}, "
                        f"this checker writes {FORMAT_VERSION}"
                    )
                if target and rows.get("target") != target:
                    raise JournalError(
                        f"journal {self.path} belongs to another target "
                        f"({rows.get('target')}), not "
                        f"{target}: use a new --journal path"
                    )
                incarnation = int(rows["incarnation"]) + 1
                conn.execute(
                    meta_t.update()
                    .where(meta_t.c.key == "incarnation")
                    .values(value=str(incarnation))
                )
                info = JournalInfo(
                    rows["run_id"], incarnation, rows["target"], float(rows["created_at"])
                )
            else:
                info = JournalInfo(uuid.uuid4().hex[:8], 1, target, time.time())
                conn.execute(
                    meta_t.insert(),
                    [
                        {"key": "format_version", "value": str(FORMAT_VERSION)},
                        {"key": "run_id", "value": info.run_id},
                        {"key": "incarnation", "value": "1"},
                        {"key": "target", "value": target},
                        {"key": "created_at", "value": repr(info.created_at)},
                    ],
                )
            conn.commit()
        return info

    @classmethod
    def open_readonly(cls, path: str | Path) -> Journal:
        return cls(path, target="", readonly=True)

    # -- writing ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._flusher, name="journal-flusher", daemon=True
            )
            self._thread.start()

    def record(self, table: str, row: dict[str, Any]) -> None:
        """Queue one row for `table` (no I/O on the caller's thread)."""
        self._queue.put((table, row, None))

    def record_attempt(self, a: Attempt) -> None:
        self.record(
            "attempts",
            {
                "writer_id": a.writer_id,
                "seq": a.seq,
                "payload_sha256": a.payload_sha256,
                "outcome": a.outcome.value,
                "invoke_wall": a.invoke_wall,
                "complete_wall": a.complete_wall,
                "invoke_mono": a.invoke_mono,
                "complete_mono": a.complete_mono,
                "server": a.server,
                "node": a.node,
                "row_id": a.row_id,
                "error": redact(a.error) if a.error else None,
            },
        )

    def record_read(self, r: Read) -> None:
        self.record(
            "reads",
            {
                "time": r.time,
                "endpoint": r.endpoint,
                "node": r.node,
                "server": r.server,
                "writer_id": r.writer_id,
                "max_seq": r.max_seq,
            },
        )

    def record_bank(self, b: BankObservation) -> None:
        self.record("bank", {"time": b.time, "node": b.node, "server": b.server, "total": b.total})

    def record_event(self, kind: str, **detail: Any) -> None:
        self.record(
            "events",
            {
                "time": time.time(),
                "kind": kind,
                "detail": redact(json.dumps(detail, default=str, sort_keys=True)),
            },
        )

    def reserve(self, writer_id: str, upto: int, timeout: float = 30.0) -> None:
        """Durably promise that `writer_id` uses seqs only up to `upto`. Blocks until flushed."""
        done = threading.Event()
        self._queue.put(
            (
                "reservations",
                {
                    "writer_id": writer_id,
                    "upto": upto,
                    "incarnation": self.info.incarnation,
                    "closed": False,
                },
                done,
            )
        )
        if self._thread is None:
            self.flush_now()
        if not done.wait(timeout):
            raise JournalError(
                f"journal {self.path} did not persist a reservation within {timeout:.0f}s"
            )
        if self.error:
            raise JournalError(self.error)

    def close_writer(self, writer_id: str, last_seq: int) -> None:
        """A writer stopped cleanly at `last_seq`: its unused reservation is released."""
        self._queue.put(
            (
                "reservations",
                {
                    "writer_id": writer_id,
                    "upto": last_seq,
                    "incarnation": self.info.incarnation,
                    "closed": True,
                },
                None,
            )
        )

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is on disk."""
        done = threading.Event()
        self._queue.put(("", None, done))
        if self._thread is None:
            self.flush_now()
        if not done.wait(timeout):
            raise JournalError(f"journal {self.path} flush timed out")
        if self.error:
            raise JournalError(self.error)

    def _flusher(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.flush_interval)
            self.flush_now()
        self.flush_now()

    def flush_now(self) -> int:
        """Write everything queued in one transaction per batch; returns rows written."""
        pending: dict[str, list[dict[str, Any]]] = {}
        events: list[threading.Event] = []
        reservations: dict[str, dict[str, Any]] = {}
        n = 0
        while True:
            try:
                table, row, done = self._queue.get_nowait()
            except queue.Empty:
                break
            if done is not None:
                events.append(done)
            if table == "reservations":
                reservations[row["writer_id"]] = row
            elif table:
                pending.setdefault(table, []).append(row)
                n += 1
            if n >= self.batch * 4:
                break
        if pending or reservations:
            # The DB-API cursor, not SQLAlchemy Core: executemany of plain rows runs in C, and
            # this thread shares the CPU with the writers it serves.
            raw = self._raw()
            try:
                cur = raw.cursor()
                for table, rows in pending.items():
                    columns = _COLUMNS[table]
                    cur.executemany(_INSERT[table], [tuple(map(r.get, columns)) for r in rows])
                if reservations:
                    cur.executemany(_UPSERT_RESERVATION, list(reservations.values()))
                raw.commit()
                self.flushed += n
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    raw.rollback()
                self.error = f"journal {self.path} cannot be written: {exc}"
                # Put the records back so a later flush (after space is freed) still has them.
                for table, rows in pending.items():
                    for row in rows:
                        self._queue.put((table, row, None))
                for row in reservations.values():
                    self._queue.put(("reservations", row, None))
            else:
                self.error = None
        for done in events:
            done.set()
        return n

    def _raw(self) -> Any:
        if self._raw_conn is None:
            self._raw_conn = self.engine.raw_connection()
        return self._raw_conn

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        else:
            self.flush_now()
        if self._raw_conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._raw_conn.close()
            self._raw_conn = None
        self.engine.dispose()

    # -- reading ----------------------------------------------------------------------------
    def attempts(self) -> Iterator[Attempt]:
        """Every journaled attempt in (writer_id, seq) order, plus one INDETERMINATE attempt
        (payload unknown) for each reserved seq that has none: the checker's own crash window
        (module docstring). Streams: memory does not grow with the journal.

        Read through the DB-API cursor directly: a million SQLAlchemy rows cost ~50 s, plain
        tuples a few."""
        with self.engine.connect() as conn:
            reserved = {r.writer_id: int(r.upto) for r in conn.execute(sa.select(reservations_t))}
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(
                "SELECT writer_id, seq, payload_sha256, outcome, invoke_wall, complete_wall, "
                "invoke_mono, complete_mono, server, node, row_id, error FROM attempts "
                "ORDER BY writer_id, seq"
            )
            writer: str | None = None
            last = 0
            outcomes = {o.value: o for o in Outcome}
            while rows := cur.fetchmany(5000):
                for w, seq, digest, outcome, iw, cw, im, cm, server, node, row_id, error in rows:
                    if w != writer:
                        if writer is not None:
                            yield from _unjournaled(writer, last, reserved.pop(writer, 0))
                        writer, last = w, 0
                    if seq - 1 > last and reserved.get(w, 0) > last:
                        yield from _unjournaled(w, last, min(seq - 1, reserved[w]))
                    last = max(last, seq)
                    yield Attempt(
                        w,
                        seq,
                        digest,
                        outcomes[outcome],
                        iw,
                        cw,
                        im,
                        cm,
                        server,
                        node,
                        row_id,
                        error,
                    )
            if writer is not None:
                yield from _unjournaled(writer, last, reserved.pop(writer, 0))
        finally:
            raw.close()
        for writer_id, upto in sorted(reserved.items()):
            yield from _unjournaled(writer_id, 0, upto)

    def reads(self) -> Iterator[Read]:
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(reads_t).order_by(reads_t.c.id)):
                yield Read(
                    time=r.time,
                    writer_id=r.writer_id,
                    max_seq=r.max_seq,
                    node=r.node,
                    server=r.server,
                    endpoint=r.endpoint,
                )

    def bank(self) -> Iterator[BankObservation]:
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(bank_t).order_by(bank_t.c.id)):
                yield BankObservation(node=r.node, time=r.time, total=r.total, server=r.server)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Small tables (annotations, events, lag, verifications) as dicts, in insertion order."""
        t = _TABLES[table]
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]

    def meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            stmt = sqlite_insert(meta_t).values(key=key, value=value)
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(attempts_t.c.outcome, sa.func.count()).group_by(attempts_t.c.outcome)
            ).all()
        return {str(o): int(n) for o, n in rows}


def _unjournaled(writer_id: str, after: int, upto: int) -> Iterator[Attempt]:
    for seq in range(after + 1, upto + 1):
        yield Attempt(
            writer_id=writer_id,
            seq=seq,
            payload_sha256=None,
            outcome=Outcome.INDETERMINATE,
            invoke_wall=0.0,
            error="not in the journal: the checker stopped before recording it",
        )


def _attempt(row: Any) -> Attempt:
    return Attempt(
        writer_id=row.writer_id,
        seq=row.seq,
        payload_sha256=row.payload_sha256,
        outcome=Outcome(row.outcome),
        invoke_wall=row.invoke_wall,
        complete_wall=row.complete_wall,
        invoke_mono=row.invoke_mono,
        complete_mono=row.complete_mono,
        server=row.server,
        node=row.node,
        row_id=row.row_id,
        error=row.error,
    )
