"""The journal's writer: `Journal` opens (or creates) a journal file and records a run's history
in group commits off the write path (the module docstring of `checker.journal` says why the
crash window loses nothing)."""

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

from checker.core.history import Attempt, BankObservation, Read
from checker.errors import JournalError
from checker.journal.reader import JournalReader
from checker.journal.schema import (
    COLUMNS,
    FORMAT_VERSION,
    INSERT,
    TABLES,
    UPSERT_RESERVATION,
    meta_t,
    metadata,
)
from checker.secrets import redact

RESERVE_BLOCK = 1000
"""Seqs a writer reserves at once (one synchronous journal write per block)."""


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
                # A new journal returns the pages retention frees to the file system
                # (checker.journal.compact); only possible before WAL mode and any table.
                if cur.execute("PRAGMA page_count").fetchone()[0] == 0:
                    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
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
                    metadata.create_all(conn)
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
                    columns = COLUMNS[table]
                    cur.executemany(INSERT[table], [tuple(map(r.get, columns)) for r in rows])
                if reservations:
                    cur.executemany(UPSERT_RESERVATION, list(reservations.values()))
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
        """Every journaled attempt in (writer_id, seq) order, plus the crash window's
        INDETERMINATE attempts (`JournalReader.attempts`). Streams."""
        with JournalReader(self) as reader:
            yield from reader.attempts()

    def reads(self) -> Iterator[Read]:
        """Every read, in the order journaled (`JournalReader.reads`)."""
        with JournalReader(self) as reader:
            yield from reader.reads()

    def bank(self) -> Iterator[BankObservation]:
        """Every bank observation, in the order journaled (`JournalReader.bank`)."""
        with JournalReader(self) as reader:
            yield from reader.bank()

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Small tables (annotations, events, lag, verifications) as dicts, in insertion order."""
        t = TABLES[table]
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]

    def meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            stmt = sqlite_insert(meta_t).values(key=key, value=value)
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))
