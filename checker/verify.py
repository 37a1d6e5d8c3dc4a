"""Full verification at scale: a GTID barrier, server-side chunk checksums, rows only where needed.

`verify` judges a journal (the checker's own history) against every node:

1. Find the primary (the lab's state, the node the writer endpoint reaches, or the only
   writable node) and capture, once, its highest ledger id and its GTID position: the
   checker's heartbeat moves the primary's position every 10 ms, so the barrier must aim at
   a fixed point, not chase a moving one.
2. Barrier: wait (up to the timeout) until each replica has executed that position. A
   replica that does not get there is `unknown`, with the reason; never skipped silently.
3. Chunks: per id range, every node computes a count and a `BIT_XOR` of per-row CRC32s
   server-side (`COPY_HASH_SQL`, the rows as stored, to compare nodes with each other); the
   primary also computes `ROW_HASH_SQL`, which the journal predicts bit for bit (`row_hash`),
   and counts rows whose payload does not hash to their checksum (`BAD_PAYLOAD_SQL`). Ranges
   are sized so that one query takes about `Options.chunk_seconds`.
4. Drill-down: a range that differs (primary vs journal, or a caught-up replica vs the
   primary) is bisected server-side until it is small, then its rows are fetched and judged by
   the core's detectors (`check_chunk`, `divergent_rows`). Memory follows the chunk, never
   the table.
5. Whole-table checks: duplicates across ranges by an indexed GROUP BY of the keys that were
   not where the journal expected them, errant GTIDs, bank totals, and the journal's reads,
   bank observations and acknowledgements (stale, non_monotonic, bank_total, split_brain),
   each streamed in bounded memory.

The journal's expected aggregates are cached next to it (`<journal>.verify-cache`) and only
brought up to date by later verifications: a journal is append-only.

Nodes are compared with each other over every row (ledger, accounts, chaos markers), whoever
wrote it. The journal judges only rows of this journal's run (writer ids `<run_id>-...`); rows
of other registered runs are counted per node (`foreign_rows`), rows of writers no run
registered are `unexpected`. docs/verification.md has the rest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import operator
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import reduce
from itertools import groupby, islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

import pymysql

from checker import _logging, mysql
from checker.core import bank, gtid, ledger, primaries, replicas, runs
from checker.core.analysis import ChunkCheck, check_chunk, verdict_from_chunks
from checker.core.history import Attempt, BankObservation, Key, Outcome, Read, Row
from checker.core.verdict import (
    DEFAULT_CAP,
    Anomaly,
    Counts,
    Failure,
    NodeVerdict,
    Validity,
    Verdict,
    build_verdict,
    merge,
    place_groups,
)
from checker.errors import (
    AuthError,
    CheckerError,
    DatabaseError,
    GrantError,
    SchemaError,
    VerifyError,
)
from checker.journal import Journal
from checker.mysql import Endpoint, ServerInfo
from checker.schema import Names

if TYPE_CHECKING:
    from checker.service import Service
    from checker.settings import Settings

__all__ = [
    "BAD_PAYLOAD_SQL",
    "COPY_HASH_SQL",
    "ROW_HASH_SQL",
    "LiveRun",
    "NodeReport",
    "Options",
    "Target",
    "Verification",
    "row_hash",
    "summary_lines",
    "target_from_settings",
    "verify",
    "verify_service",
]

log = _logging.get(__name__)
T = TypeVar("T")

ROW_HASH_SQL = "CRC32(CONCAT_WS('#', id, writer_id, seq, checksum))"
"""Per-row hash the journal predicts: the checksum column stands for the payload, whose own
hash is checked against it by `BAD_PAYLOAD_SQL` (expected 0 per range)."""

BAD_PAYLOAD_SQL = "CAST(SHA2(payload, 256) AS BINARY) <> CAST(checksum AS BINARY)"
"""A row whose payload does not hash to its checksum. CAST to BINARY: an exact comparison,
and SHA2's utf8mb4 result would clash with a latin1 table's collation."""

COPY_HASH_SQL = "CRC32(CONCAT_WS('#', id, writer_id, seq, checksum, payload))"
"""Per-row hash of the row as stored, payload bytes included: cheap (no SHA-256), used to
compare nodes with each other. Only the primary pays for the payload's SHA-256."""

_MINE = "LEFT(writer_id, %(prefix_len)s) = CAST(%(prefix)s AS BINARY)"
_UNJOURNALED = "not in the journal: the checker stopped before recording it"
_ATTEMPT_COLUMNS = (
    "writer_id, seq, payload_sha256, outcome, invoke_wall, complete_wall, invoke_mono, "
    "complete_mono, server, node, row_id, error"
)
_MARKER = "id, marker, written_at"
_ROW_TEXT = "row_id || '#' || writer_id || '#' || seq || '#' || payload_sha256"
_MAX_ID = 2**63 - 1
_GRAIN = 1000
_CACHE_KEY_VERSION = 1
_FETCH_BATCH = 20_000
_LOOKUP_BATCH = 500
_READ_WINDOW = 20_000
_ACK_WINDOW = 200_000


def row_hash(row: Row) -> int:
    """`ROW_HASH_SQL` of one row, computed in Python bit for bit as the server does."""
    return zlib.crc32(f"{row[0]}#{row[1]}#{row[2]}#{row[4]}".encode())


# -- what to verify, how, and the result --------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """The nodes to verify. `primary` names the primary when something authoritative (the lab's
    state) says which it is; otherwise the node `writer` reaches is, or the only writable one."""

    nodes: Mapping[str, Endpoint]
    writer: Endpoint | None = None
    primary: str | None = None
    names: Names = field(default_factory=Names)


@dataclass(frozen=True)
class Options:
    """How to verify. `timeout` bounds the GTID barrier; chunks aim at `chunk_seconds` each
    (pt-table-checksum's 0.5 s), between `min_chunk` and `max_chunk` ids; a differing range is
    bisected until at most `fetch_rows` rows are fetched at once."""

    timeout: float = 60.0
    lag_bound: float = 5.0
    chunk_seconds: float = 0.5
    first_chunk: int = 10_000
    min_chunk: int = 1_000
    max_chunk: int = 250_000
    fetch_rows: int = 2_000
    cap: int = DEFAULT_CAP
    progress: Callable[[str], None] | None = None


@dataclass(frozen=True)
class LiveRun:
    """What verifying a checker that is still writing needs from it.

    `settle` is called once the primary's highest id has been captured: it returns when every
    write in flight at that moment is decided and journaled (it flushes the journal).
    `writer_seqs` gives each live writer's last seq handed to the journal; read just before
    `settle`, everything up to it is on disk afterwards, and seqs the writer reserved beyond it
    are in flight or queued, not a crash window.
    """

    settle: Callable[[], None]
    writer_seqs: Callable[[], Mapping[str, int]]


@dataclass(frozen=True)
class NodeReport:
    """What verification learned about one node (the verdict's node entry says valid/why not)."""

    name: str
    role: str
    server: str | None = None
    gtid: str | None = None
    caught_up: bool | None = None
    rows: int | None = None
    foreign_rows: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "server": self.server,
            "gtid": self.gtid,
            "caught_up": self.caught_up,
            "rows": self.rows,
            "foreign_rows": self.foreign_rows,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Verification:
    """A verification's verdict plus what it did (for the CLI, logs and benchmarks)."""

    verdict: Verdict
    run_id: str
    primary: str | None
    nodes: Mapping[str, NodeReport]
    gtid_target: str | None = None
    id_range: tuple[int, int] | None = None
    chunks: int = 0
    drilled: int = 0
    fetched_rows: int = 0
    seconds: float = 0.0
    phases: Mapping[str, float] = field(default_factory=dict)
    registry: str | None = None
    started_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The core's verdict JSON, with foreign row counts in the node entries and a
        `verification` section; `Verdict.from_dict` reads it back, ignoring the extras."""
        data = self.verdict.to_dict()
        for name, node in data["nodes"].items():
            report = self.nodes.get(name)
            node["foreign_rows"] = report.foreign_rows if report else None
        data["verification"] = {
            "run_id": self.run_id,
            "primary": self.primary,
            "gtid_target": self.gtid_target,
            "id_range": list(self.id_range) if self.id_range else None,
            "chunks": self.chunks,
            "drilled_ranges": self.drilled,
            "fetched_rows": self.fetched_rows,
            "seconds": round(self.seconds, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "registry": self.registry,
            "nodes": {name: r.to_dict() for name, r in sorted(self.nodes.items())},
        }
        return data


def target_from_settings(settings: Settings) -> Target:
    """The nodes of a checker's settings (the writer alone if no node was named)."""
    primary = None
    if settings.lab_dir is not None:
        from checker.lab import state

        primary = state.load(settings.lab_dir).primary
    nodes = dict(settings.nodes) or {settings.writer.name or "mysql-0": settings.writer}
    return Target(nodes=nodes, writer=settings.writer, primary=primary, names=settings.names)


# -- MySQL side ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Aggregate:
    """One node's aggregates over one id range: `all` rows and their `copy` hash (every row,
    whoever wrote it: nodes are compared on these), `mine` this run's rows; `row` and `bad`
    (this run's rows only) where the row hash was asked for."""

    mine: int
    copy: int
    row: int | None
    bad: int | None
    seconds: float
    all: int = 0


class _Node:
    """One node: its own connection, used by one thread at a time."""

    def __init__(
        self, name: str, endpoint: Endpoint, names: Names, prefix: str, timeout: float = 120.0
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.timeout = timeout
        self.ledger = names.q("ledger")
        self.accounts = names.q("accounts")
        self.params: dict[str, Any] = {"prefix": prefix, "prefix_len": len(prefix)}
        self.conn: Any = None
        self.info: ServerInfo | None = None
        self.error: str | None = None

    def open(self) -> bool:
        """Connect and identify the server. Wrong credentials or grants are the user's to fix
        and raise; an unreachable node is recorded as the reason it is unknown."""
        try:
            # The endpoint's own timeouts bound the handshake: a port that is not MySQL fails
            # fast. Verification's statements may then take longer than a workload statement
            # (a barrier wait, a chunk on a busy server): PyMySQL applies `_read_timeout`
            # before each read.
            self.conn = mysql.connect(self.endpoint)
            self.info = mysql.server_info(self.conn)
            self.conn._read_timeout = self.timeout
        except (AuthError, GrantError):
            raise
        except DatabaseError as exc:
            self.fail(str(exc))
        except (pymysql.err.MySQLError, OSError) as exc:
            self.fail(str(mysql.classify(exc, self.endpoint)))
        return self.error is None

    def fail(self, reason: str) -> None:
        self.error = self.error or reason
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            # Closing a broken connection may fail any way; it is being dropped regardless.
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    @property
    def ok(self) -> bool:
        return self.conn is not None and self.error is None

    @property
    def flavor(self) -> gtid.Flavor:
        return "mariadb" if self.info is not None and self.info.flavor == "mariadb" else "mysql"

    def rows(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement; a failure becomes a one-line `DatabaseError` naming the node."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except (pymysql.err.MySQLError, OSError) as exc:
            raise mysql.classify(exc, self.endpoint) from None

    def dict_rows(self, sql: str) -> list[dict[str, Any]]:
        try:
            with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        except (pymysql.err.MySQLError, OSError) as exc:
            raise mysql.classify(exc, self.endpoint) from None

    def value(self, sql: str, args: Any = None) -> Any:
        found = self.rows(sql, args)
        return found[0][0] if found else None

    # -- ledger queries -------------------------------------------------------------------------
    def id_bounds(self) -> tuple[int | None, int | None]:
        lo, hi = self.rows(f"SELECT MIN(id), MAX(id) FROM {self.ledger}")[0]
        return (None if lo is None else int(lo), None if hi is None else int(hi))

    def aggregate(self, lo: int, hi: int, *, with_row_hash: bool, filtered: bool) -> _Aggregate:
        """Count and copy hash of every row in lo..hi (nodes are compared on these, whoever
        wrote the rows), and this run's count and hashes. Unless `filtered`, the table is taken
        to hold no other run's rows (checked before: telling them apart costs per row)."""
        cols = ["COUNT(*)", f"COALESCE(BIT_XOR({COPY_HASH_SQL}), 0)"]
        mine = f"({_MINE})"
        if filtered:
            cols.append(f"COALESCE(SUM({mine}), 0)")
        if with_row_hash:
            row_hash_sql = f"IF({mine}, {ROW_HASH_SQL}, 0)" if filtered else ROW_HASH_SQL
            bad_sql = f"{mine} AND {BAD_PAYLOAD_SQL}" if filtered else BAD_PAYLOAD_SQL
            cols += [
                f"COALESCE(BIT_XOR({row_hash_sql}), 0)",
                f"COALESCE(SUM({bad_sql}), 0)",
            ]
        sql = f"SELECT {', '.join(cols)} FROM {self.ledger} WHERE id BETWEEN %(lo)s AND %(hi)s"
        started = time.monotonic()
        found = self.rows(sql, {**self.params, "lo": lo, "hi": hi})[0]
        rest = list(found[3:] if filtered else found[2:])
        return _Aggregate(
            mine=int(found[2]) if filtered else int(found[0]),
            copy=int(found[1]),
            row=int(rest[0]) if with_row_hash else None,
            bad=int(rest[1]) if with_row_hash else None,
            seconds=time.monotonic() - started,
            all=int(found[0]),
        )

    def foreign_rows(self) -> int:
        """Rows of other runs: two ranges of the (writer_id, seq) index around this run's."""
        prefix = str(self.params["prefix"])
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first id past "<run_id>-..."
        found = self.value(
            f"SELECT COUNT(*) FROM {self.ledger} WHERE writer_id < %s OR writer_id >= %s",
            (prefix, after),
        )
        return int(found or 0)

    def fetch(self, lo: int, hi: int) -> list[Row]:
        """Every row with ids in `lo..hi` (any writer's), in id order, with the payload's
        SHA-256: nodes are compared row by row, and the caller keeps this run's for the
        journal's detectors."""
        sql = (
            f"SELECT id, writer_id, seq, SHA2(payload, 256), checksum FROM {self.ledger} "
            "WHERE id BETWEEN %(lo)s AND %(hi)s ORDER BY id"
        )
        return [_row(r) for r in self.rows(sql, {**self.params, "lo": lo, "hi": hi})]

    # -- the writer registry and the small tables ----------------------------------------------
    def registered_writers(self, table: str) -> set[str] | None:
        """Every registered writer id; None: the registry table does not exist (old tables)."""
        try:
            return {str(w) for (w,) in self.rows(f"SELECT writer_id FROM {table}")}
        except SchemaError:
            return None

    def distinct_writers(self, seeks: int = 200) -> list[str]:
        """Every writer id in the table: one seek of the (writer_id, seq) index per writer,
        not a pass over the rows. Past `seeks` writers, `SELECT DISTINCT` (a loose index scan
        when the optimizer's statistics are fresh, a scan of the index otherwise)."""
        found: list[str] = []
        last: str | None = None
        for _ in range(seeks):
            if last is None:
                value = self.value(f"SELECT MIN(writer_id) FROM {self.ledger}")
            else:
                value = self.value(
                    f"SELECT MIN(writer_id) FROM {self.ledger} WHERE writer_id > %s", (last,)
                )
            if value is None:
                return sorted(set(found))
            last = str(value)
            found.append(last)
        rows = self.rows(f"SELECT DISTINCT writer_id FROM {self.ledger}")
        return sorted({str(w) for (w,) in rows})

    def writer_rows(self, writer_id: str, lo: int, hi: int) -> list[tuple[int, str, int]]:
        found = self.rows(
            f"SELECT id, writer_id, seq FROM {self.ledger} WHERE writer_id = %s "
            "AND id BETWEEN %s AND %s ORDER BY id",
            (writer_id, lo, hi),
        )
        return [(int(i), str(w), int(q)) for i, w, q in found if str(w) == writer_id]

    def table_checksum(self, table: str, columns: str) -> tuple[int, int]:
        n, x = self.rows(
            f"SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', {columns}))), 0) FROM {table}"
        )[0]
        return int(n), int(x)

    def table_rows(self, table: str, columns: str) -> list[tuple[Any, ...]]:
        return [
            tuple(str(v) if not isinstance(v, int) else v for v in r)
            for r in self.rows(f"SELECT {columns} FROM {table} ORDER BY id")
        ]

    def fetch_keys(self, writer_id: str, seqs: Sequence[int]) -> list[Row]:
        marks = ", ".join(["%s"] * len(seqs))
        sql = (
            f"SELECT id, writer_id, seq, SHA2(payload, 256), checksum FROM {self.ledger} "
            f"WHERE writer_id = %s AND seq IN ({marks}) ORDER BY id"
        )
        return [_row(r) for r in self.rows(sql, [writer_id, *seqs]) if r[1] == writer_id]

    def duplicate_groups(
        self, writer_id: str, seqs: Sequence[int]
    ) -> list[tuple[str, int, list[int]]]:
        """`GROUP BY writer_id, seq HAVING COUNT(*) > 1` for these keys (the index only)."""
        self.rows("SET SESSION group_concat_max_len = 1048576")
        marks = ", ".join(["%s"] * len(seqs))
        found = self.rows(
            f"SELECT writer_id, seq, GROUP_CONCAT(id ORDER BY id) FROM {self.ledger} "
            f"WHERE writer_id = %s AND seq IN ({marks}) GROUP BY writer_id, seq "
            "HAVING COUNT(*) > 1",
            (writer_id, *seqs),
        )
        # The column's collation may ignore case: keep the exact writer only.
        return [
            (str(w), int(s), [int(i) for i in str(ids).split(",")])
            for w, s, ids in found
            if str(w) == writer_id
        ]

    def bank_total(self) -> int | None:
        total, count = self.rows(
            f"SELECT COALESCE(SUM(balance), 0), COUNT(*) FROM {self.accounts}"
        )[0]
        return int(total) if int(count) else None

    # -- replication ----------------------------------------------------------------------------
    def read_only(self) -> bool:
        return bool(int(self.value("SELECT @@read_only")))

    def gtid_position(self) -> str:
        """What a replica must have executed to hold everything this node has committed."""
        sql = "SELECT @@gtid_binlog_pos" if self.flavor == "mariadb" else "SELECT @@gtid_executed"
        return _gtid_text(self.value(sql))

    def gtid_state(self) -> str:
        """The full GTID set, for errant transactions (MariaDB keeps every server's last one)."""
        sql = "SELECT @@gtid_binlog_state" if self.flavor == "mariadb" else "SELECT @@gtid_executed"
        return _gtid_text(self.value(sql))

    def executed(self, target: str) -> bool:
        """Has this replica executed `target` already (no waiting)?"""
        if self.flavor == "mariadb":
            # What replication applied, as MASTER_GTID_WAIT compares: @@gtid_current_pos would
            # count a replica's own errant 0-3-N as having executed the primary's 0-1-N.
            have = _gtid_text(self.value("SELECT @@gtid_slave_pos"))
            return gtid.gtid_contains(target, have, "mariadb")
        return bool(int(self.value("SELECT GTID_SUBSET(%s, @@gtid_executed)", (target,))))

    def wait_executed(self, target: str, seconds: float) -> bool | None:
        """Wait up to `seconds` for this replica to execute `target`; None: the server would
        not say (not a replica, malformed position)."""
        if self.flavor == "mariadb":
            # Compares with @@gtid_slave_pos, per domain: 0 reached, -1 timed out.
            found = self.value("SELECT MASTER_GTID_WAIT(%s, %s)", (target, seconds))
            return None if found is None else int(found) == 0
        found = self.value("SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)", (target, seconds))
        return None if found is None else int(found) == 0

    def replication_summary(self) -> str:
        """The replica's threads and last errors, in a few words (for an `unknown` reason)."""
        sql = mysql.replica_status_sql(self.flavor, self.info.version if self.info else "")
        try:
            status = self.dict_rows(sql)
        except DatabaseError as exc:
            return f"replication status unreadable: {exc}"
        if not status:
            return "it does not replicate from anything"
        s = status[0]
        io = s.get("Slave_IO_Running", s.get("Replica_IO_Running"))
        sql_thread = s.get("Slave_SQL_Running", s.get("Replica_SQL_Running"))
        parts = [f"IO thread {'running' if io == 'Yes' else f'not running ({io})'}"]
        parts.append(f"SQL thread {'running' if sql_thread == 'Yes' else 'not running'}")
        for key in ("Last_IO_Error", "Last_SQL_Error"):
            if s.get(key):
                parts.append(f"{key}: {s[key]}")
        behind = s.get("Seconds_Behind_Master", s.get("Seconds_Behind_Source"))
        if behind is not None:
            parts.append(f"{behind} s behind")
        return "; ".join(parts)


def _gtid_text(value: Any) -> str:
    return "".join(str(value or "").split())


def _row(r: Sequence[Any]) -> Row:
    return Row(int(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]))


# -- journal side -------------------------------------------------------------------------------
class _JournalDB:
    """SQL over the journal's SQLite file, one statement at a time, streamed where it is long.

    Reads go straight to SQLite (the journal's own tables and indexes: `attempts_row_id`,
    `attempts_writer_seq`) because building an `Attempt` for each of millions of rows would be
    the slowest part of a verification. The semantics are `Journal.attempts()`'s: a reserved
    seq with no journaled attempt is an INDETERMINATE attempt with an unknown payload.
    """

    def __init__(self, journal: Journal) -> None:
        self._raw = journal.engine.raw_connection()
        db: Any = self._raw.driver_connection
        self.db = db
        self.reserved: dict[str, int] = {
            str(w): int(upto)
            for w, upto in self.db.execute("SELECT writer_id, upto FROM reservations")
        }

    def close(self) -> None:
        self._raw.close()

    def expected(self, lo: int, hi: int, upto: int | None = None) -> tuple[int, int]:
        """(count, BIT_XOR of `row_hash`) of the acknowledged attempts with row ids in lo..hi
        (and attempt ids up to `upto`, if given).

        SQLite builds each row's text and zlib hashes it, so no Python code runs per row.
        """
        cur = self.db.execute(
            f"SELECT {_ROW_TEXT} FROM attempts WHERE row_id BETWEEN ? AND ? AND outcome = 'ok' "
            "AND payload_sha256 IS NOT NULL AND id <= ?",
            (lo, hi, _MAX_ID if upto is None else upto),
        )
        count, checksum = 0, 0
        while batch := cur.fetchmany(_FETCH_BATCH):
            count += len(batch)
            texts = map(itemgetter(0), batch)
            checksum = reduce(operator.xor, map(zlib.crc32, map(str.encode, texts)), checksum)
        return count, checksum

    def last_attempt_id(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM attempts").fetchone()[0])

    def acked_texts(self, after: int, upto: int) -> Any:
        """(row id, row text) of acknowledged attempts journaled with ids in after+1..upto."""
        return self.db.execute(
            f"SELECT row_id, {_ROW_TEXT} FROM attempts WHERE id > ? AND id <= ? "
            "AND outcome = 'ok' AND row_id IS NOT NULL AND payload_sha256 IS NOT NULL",
            (after, upto),
        )

    def acked_in(self, lo: int, hi: int) -> list[Attempt]:
        found = self.db.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE row_id BETWEEN ? AND ? "
            "AND outcome = 'ok' ORDER BY row_id",
            (lo, hi),
        )
        return [_attempt(r) for r in found]

    def row_ids(self) -> tuple[int | None, int | None]:
        """The lowest and highest row id any attempt got: two seeks in the row_id index."""
        lo, hi = self.db.execute(
            "SELECT (SELECT MIN(row_id) FROM attempts), (SELECT MAX(row_id) FROM attempts)"
        ).fetchone()
        return lo, hi

    def lookup(self, keys: Iterable[Key]) -> dict[Key, Attempt]:
        """The attempts of `keys` (journaled, or synthesized in a reservation); absent: never
        attempted."""
        by_writer: dict[str, set[int]] = {}
        for writer, seq in keys:
            by_writer.setdefault(writer, set()).add(seq)
        found: dict[Key, Attempt] = {}
        for writer, seqs in by_writer.items():
            ordered = sorted(seqs)
            for i in range(0, len(ordered), _LOOKUP_BATCH):
                part = ordered[i : i + _LOOKUP_BATCH]
                marks = ", ".join("?" * len(part))
                for r in self.db.execute(
                    f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE writer_id = ? "
                    f"AND seq IN ({marks})",
                    (writer, *part),
                ):
                    found[(r[0], r[1])] = _attempt(r)
            upto = self.reserved.get(writer, 0)
            for seq in ordered:
                if (writer, seq) not in found and 1 <= seq <= upto:
                    found[(writer, seq)] = _unjournaled(writer, seq)
        return found

    def unplaced_acks(self) -> Iterator[list[Attempt]]:
        """Acknowledged attempts without a row id, in batches: they can only be found by key."""
        cur = self.db.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE row_id IS NULL AND outcome = 'ok' "
            "ORDER BY writer_id, seq"
        )
        while batch := cur.fetchmany(_LOOKUP_BATCH):
            yield [_attempt(r) for r in batch]

    def max_seq(self, writer_id: str) -> int:
        found = self.db.execute(
            "SELECT MAX(seq) FROM attempts WHERE writer_id = ?", (writer_id,)
        ).fetchone()[0]
        return int(found or 0)

    def outcomes(self, after: int = -1, upto: int = _MAX_ID) -> _Outcomes:
        """Attempts with ids in after+1..upto by outcome (`servers`: see `servers()`)."""
        total, ok, failed = self.db.execute(
            "SELECT COUNT(*), TOTAL(outcome = 'ok'), TOTAL(outcome = 'failed') FROM attempts "
            "WHERE id > ? AND id <= ?",
            (after, upto),
        ).fetchone()
        return _Outcomes(int(total), int(ok), int(failed), len(self.servers(after, upto)))

    def servers(self, after: int = -1, upto: int = _MAX_ID) -> set[str]:
        """The server identities that acknowledged attempts with ids in after+1..upto."""
        return {
            str(s)
            for (s,) in self.db.execute(
                "SELECT DISTINCT server FROM attempts WHERE id > ? AND id <= ? "
                "AND outcome = 'ok' AND server IS NOT NULL",
                (after, upto),
            )
        }

    def expected_grains(self, lo: int, hi: int, upto: int) -> dict[int, tuple[int, int]]:
        """`expected` per grain of `_GRAIN` ids in lo..hi (whole grains), in one index walk."""
        cur = self.db.execute(
            f"SELECT row_id / {_GRAIN}, {_ROW_TEXT} FROM attempts WHERE row_id BETWEEN ? AND ? "
            "AND outcome = 'ok' AND payload_sha256 IS NOT NULL AND id <= ? ORDER BY row_id",
            (lo, hi, upto),
        )
        found: dict[int, tuple[int, int]] = {}
        while batch := cur.fetchmany(_FETCH_BATCH):
            for grain, rows in groupby(batch, key=itemgetter(0)):
                texts = [t for _, t in rows]
                n, x = found.get(grain, (0, 0))
                x = reduce(operator.xor, map(zlib.crc32, map(str.encode, texts)), x)
                found[grain] = (n + len(texts), x)
        return found

    def counts(self, outcomes: _Outcomes, live_seqs: Mapping[str, int] | None = None) -> Counts:
        """Attempts by outcome, the synthesized ones (the checker's crash window) included;
        a live writer's window ends at its current seq."""
        live = live_seqs or {}
        unjournaled = 0
        for writer, upto in list(self.reserved.items()):
            end = min(upto, live[writer]) if writer in live else upto
            # An index range count: a journal records each (writer, seq) once.
            n = self.db.execute(
                "SELECT COUNT(*) FROM attempts WHERE writer_id = ? AND seq BETWEEN 1 AND ?",
                (writer, end),
            ).fetchone()[0]
            unjournaled += max(0, end - int(n))
        o = outcomes
        indeterminate = o.total - o.ok - o.failed + unjournaled
        return Counts(o.ok + o.failed + indeterminate, o.ok, o.failed, indeterminate)


@dataclass(frozen=True)
class _Outcomes:
    total: int
    ok: int
    failed: int
    servers: int


class _Cache:
    """The verifier's own SQLite file next to the journal (`<journal>.verify-cache`).

    What it keeps is derived from the journal alone, and a journal's attempts are only ever
    appended: a value computed for attempt ids up to `covered` is brought up to date with the
    attempts journaled since. Each part (`section`) is written in one transaction, and only if
    no other verification wrote that part meanwhile. Where the file cannot be used, nothing is
    kept and everything is computed from the journal, as the first time.
    """

    def __init__(self, journal: Journal) -> None:
        self.path = f"{journal.path}.verify-cache"
        info = journal.info
        self.key = f"{info.run_id}:{info.created_at!r}:{_GRAIN}:{_CACHE_KEY_VERSION}"

    def _connect(self) -> Any:
        import sqlite3

        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS grains (grain INTEGER PRIMARY KEY, n INTEGER, x INTEGER)"
        )
        return conn

    def load(self, section: str) -> tuple[int | None, Any, Any]:
        """(covered, value, connection) of a section of this journal's cache; covered is None
        when there is none. The caller closes the connection (None if the file is unusable)."""
        try:
            conn = self._connect()
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except Exception as exc:  # noqa: BLE001 - no cache is only slower
            log.debug("verify_cache_unusable", path=self.path, error=str(exc))
            return None, None, None
        raw = meta.get(section)
        if meta.get("key") != self.key or raw is None:
            return None, None, conn
        stored = json.loads(raw)
        return int(stored["covered"]), stored.get("value"), conn

    def store(self, section: str, loaded: int | None, covered: int, value: Any, write: Any) -> None:
        """Store a section (and what `write(conn)` writes) if it is still at `loaded`."""
        try:
            conn = self._connect()
        except Exception as exc:  # noqa: BLE001 - no cache is only slower
            log.debug("verify_cache_unusable", path=self.path, error=str(exc))
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("key") != self.key:
                # Another journal's (or an older format's) cache: start this one afresh.
                conn.execute("DELETE FROM meta")
                conn.execute("DELETE FROM grains")
                meta = {}
            raw = meta.get(section)
            if (None if raw is None else int(json.loads(raw)["covered"])) != loaded:
                conn.execute("ROLLBACK")
                return
            write(conn)
            conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("key", self.key), (section, json.dumps({"covered": covered, "value": value}))],
            )
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written is skipped
            log.debug("verify_cache_not_saved", path=self.path, error=str(exc))
        finally:
            conn.close()


class _Expectations:
    """The journal's expected aggregates per grain of `_GRAIN` row ids, kept in the `_Cache`
    between verifications and brought up to date with the attempts journaled since."""

    def __init__(self, db: _JournalDB, journal: Journal) -> None:
        self.db = db
        self.upto = db.last_attempt_id()
        self.cache = _Cache(journal)
        self.grains: dict[int, tuple[int, int]] = {}
        self.dirty: set[int] = set()
        self.loaded, _, conn = self.cache.load("grains")
        if conn is not None:
            try:
                if self.loaded is not None:
                    self.grains = {
                        int(g): (int(n), int(x)) for g, n, x in conn.execute("SELECT * FROM grains")
                    }
            finally:
                conn.close()
        if self.loaded is not None and self.loaded < self.upto:
            self._catch_up(self.loaded)

    def _catch_up(self, covered: int) -> None:
        """Fold the attempts journaled since into the grains already known."""
        cur = self.db.acked_texts(covered, self.upto)
        while batch := cur.fetchmany(_FETCH_BATCH):
            for row_id, text in batch:
                grain = int(row_id) // _GRAIN
                known = self.grains.get(grain)
                if known is not None:
                    self.grains[grain] = (known[0] + 1, known[1] ^ zlib.crc32(text.encode()))
                    self.dirty.add(grain)

    def get(self, lo: int, hi: int) -> tuple[int, int]:
        """(count, XOR) expected for ids lo..hi: whole grains from the cache (computed if
        missing), the partial grains at either end straight from the journal."""
        first = -(-lo // _GRAIN)  # the first whole grain
        end = (hi + 1) // _GRAIN  # one past the last whole grain
        if first >= end:
            return self.db.expected(lo, hi, self.upto)
        count, checksum = 0, 0
        for a, b in ((lo, first * _GRAIN - 1), (end * _GRAIN, hi)):
            if a <= b:
                n, x = self.db.expected(a, b, self.upto)
                count, checksum = count + n, checksum ^ x
        self._compute([g for g in range(first, end) if g not in self.grains])
        for grain in range(first, end):
            n, x = self.grains[grain]
            count, checksum = count + n, checksum ^ x
        return count, checksum

    def _compute(self, missing: list[int]) -> None:
        """Compute missing grains, one journal query per run of consecutive ones."""
        for _, run in groupby(enumerate(missing), key=lambda p: p[1] - p[0]):
            grains = [g for _, g in run]
            self.grains.update(dict.fromkeys(grains, (0, 0)))
            self.dirty.update(grains)
            lo, hi = grains[0] * _GRAIN, (grains[-1] + 1) * _GRAIN - 1
            self.grains.update(self.db.expected_grains(lo, hi, self.upto))

    def save(self) -> None:
        if not self.dirty and self.loaded == self.upto:
            return
        rows = [(g, *self.grains[g]) for g in sorted(self.dirty)]

        def write(conn: Any) -> None:
            if self.loaded is None:
                conn.execute("DELETE FROM grains")
            conn.executemany("INSERT OR REPLACE INTO grains VALUES (?, ?, ?)", rows)

        self.cache.store("grains", self.loaded, self.upto, None, write)


def warm_cache(journal: Journal) -> None:
    """Bring `<journal>.verify-cache` up to date with what is journaled now.

    The service runs this in the background during a run, so that the verification at its end
    (and `checker verify` after it) reads only the last few seconds of the journal instead of
    all of it (the cold cost: ~2.5 CPU-s per million attempts)."""
    db = _JournalDB(journal)
    try:
        _outcomes(db, journal)
        lo, hi = db.row_ids()
        if lo is not None and hi is not None and hi >= _GRAIN:
            expect = _Expectations(db, journal)
            # Whole grains only: the last, still filling, is computed at verification time.
            expect.get(0, (hi // _GRAIN) * _GRAIN - 1)
            expect.save()
    finally:
        db.close()


def _outcomes(db: _JournalDB, journal: Journal) -> _Outcomes:
    """Attempts by outcome and the identities that acknowledged any, from the `_Cache` and
    the attempts journaled since it was stored."""
    cache = _Cache(journal)
    upto = db.last_attempt_id()
    loaded, value, conn = cache.load("outcomes")
    if conn is not None:
        conn.close()
    known: list[Any] = [0, 0, 0, []] if value is None else list(value)
    servers = set(known[3])
    after = -1 if loaded is None else loaded
    delta = db.outcomes(after, upto)
    servers |= db.servers(after, upto)
    total = _Outcomes(
        int(known[0]) + delta.total,
        int(known[1]) + delta.ok,
        int(known[2]) + delta.failed,
        len(servers),
    )
    if loaded != upto:
        value = [total.total, total.ok, total.failed, sorted(servers)]
        cache.store("outcomes", loaded, upto, value, lambda _conn: None)
    return total


def _attempt(r: Sequence[Any]) -> Attempt:
    return Attempt(
        writer_id=r[0],
        seq=int(r[1]),
        payload_sha256=r[2],
        outcome=Outcome(r[3]),
        invoke_wall=r[4],
        complete_wall=r[5],
        invoke_mono=r[6],
        complete_mono=r[7],
        server=r[8],
        node=r[9],
        row_id=r[10],
        error=r[11],
    )


def _unjournaled(writer_id: str, seq: int) -> Attempt:
    # The same record `Journal.attempts()` synthesizes for a reserved seq it has no attempt of.
    return Attempt(writer_id, seq, None, Outcome.INDETERMINATE, 0.0, error=_UNJOURNALED)


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


# -- the journal's own history: acks, reads, bank observations ---------------------------------
def _split_brain(db: Any, servers: int) -> list[Anomaly]:
    """`primaries.split_brain` over every acknowledgement, without holding them in memory.

    The detector needs, per server identity, its first and last acknowledgement, and for an
    overlapping pair each one's first acknowledgement from the overlap's start on. SQLite finds
    exactly those (a bare column next to MIN/MAX comes from the row holding it); the evidence's
    `acks` is then set to the identity's real count. With one identity (`servers`) there is
    nothing to look for.
    """
    if servers < 2:
        return []
    ok = "FROM attempts WHERE outcome = 'ok' AND server = ?"
    acks: dict[str, int] = {}
    acked: list[Attempt] = []
    for (server,) in db.execute(
        "SELECT DISTINCT server FROM attempts WHERE outcome = 'ok' AND server IS NOT NULL"
    ).fetchall():
        first = db.execute(
            f"SELECT MIN(complete_wall), COUNT(*), {_ATTEMPT_COLUMNS} {ok}", (server,)
        )
        last = db.execute(f"SELECT MAX(complete_wall), {_ATTEMPT_COLUMNS} {ok}", (server,))
        f, la = first.fetchone(), last.fetchone()
        acks[str(server)] = int(f[1])
        acked += [_attempt(f[2:]), _attempt(la[1:])]
    spans = primaries.primary_spans(acked)
    for i, early in enumerate(spans):
        for late in spans[i + 1 :]:
            if late.first < early.last and early.first < late.last:
                for server in (early.server, late.server):
                    acked.extend(
                        _attempt(r)
                        for r in db.execute(
                            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE outcome = 'ok' "
                            "AND server = ? AND complete_wall >= ? "
                            "ORDER BY complete_wall, writer_id, seq LIMIT 1",
                            (server, late.first),
                        )
                    )
    acked.sort(key=lambda a: (a.complete_wall or 0.0, a.writer_id, a.seq))
    return [_with_ack_counts(a, acks) for a in primaries.split_brain(acked)]


def _with_ack_counts(anomaly: Anomaly, acks: Mapping[str, int]) -> Anomaly:
    identities = [
        {**ident, "acks": acks.get(ident.get("server", ""), ident.get("acks"))}
        for ident in anomaly.evidence.get("identities", [])
    ]
    return replace(anomaly, evidence={**anomaly.evidence, "identities": identities})


_READ_COLUMNS = "time, writer_id, max_seq, node, server, endpoint"


def _read(r: Sequence[Any]) -> Read:
    return Read(time=r[0], writer_id=r[1], max_seq=r[2], node=r[3], server=r[4], endpoint=r[5])


def _stale(db: Any, lag_bound: float) -> list[Anomaly]:
    """`replicas.stale` per writer and window of reads, with only the acknowledgements those
    reads could have missed: every one newer than the oldest seq the window shows, up to its
    last deadline. That is exact (a writer's seqs grow with time) and bounded by the window and
    by how stale its reads are, not by the run's length."""
    found: list[Anomaly] = []
    cur = db.execute(f"SELECT {_READ_COLUMNS} FROM reads ORDER BY writer_id, time, id")
    for writer, rows in groupby(cur, key=itemgetter(1)):
        for window in _batched(rows, _READ_WINDOW):
            found.extend(_stale_window(db, str(writer), [_read(r) for r in window], lag_bound))
    return found


def _missable(db: Any, writer: str, seen: int, deadline: float, limit: int) -> list[Any]:
    """(seq, completion) of `writer`'s acks after seq `seen` completed before `deadline`: what
    one read could have missed. Index seeks in seq order, stopping at the first ack completed
    at or after the deadline: one writer's acks complete in seq order."""
    found: list[Any] = []
    page = 16
    while len(found) <= limit:
        rows = db.execute(
            "SELECT seq, complete_wall FROM attempts WHERE writer_id = ? AND seq > ? "
            "AND outcome = 'ok' ORDER BY seq LIMIT ?",
            (writer, seen, page),
        ).fetchall()
        for seq, t in rows:
            if t is None or t >= deadline:
                return found
            found.append((seq, t))
        if len(rows) < page:
            return found
        seen, page = rows[-1][0], min(page * 4, 4096)
    return found


def _stale_window(db: Any, writer: str, reads: list[Read], lag_bound: float) -> list[Anomaly]:
    # Each read needs the acks it could have missed; the union of those is all the detector
    # needs to judge every read of the window exactly as it would with every ack.
    acks: dict[int, float] = {}
    for r in reads:
        seen = -1 if r.max_seq is None else r.max_seq
        acks.update(_missable(db, writer, seen, r.time - lag_bound, _ACK_WINDOW))
        if len(acks) > _ACK_WINDOW and len(reads) > 1:
            half = len(reads) // 2
            return _stale_window(db, writer, reads[:half], lag_bound) + _stale_window(
                db, writer, reads[half:], lag_bound
            )
    attempts = [
        Attempt(writer, int(seq), "", Outcome.OK, float(t), complete_wall=float(t))
        for seq, t in sorted(acks.items())
    ]
    found = replicas.stale(attempts, reads, lag_bound=lag_bound)
    if len(acks) > _ACK_WINDOW:
        # One read missed more acknowledgements than are held at once: the first ones decide
        # (and name) it, and the journal counts the rest.
        found = [_exact_missed(db, a, lag_bound) for a in found]
    return found


def _exact_missed(db: Any, anomaly: Anomaly, lag_bound: float) -> Anomaly:
    ev = anomaly.evidence
    visible = -1 if ev.get("max_seq_visible") is None else int(ev["max_seq_visible"])
    missed = db.execute(
        "SELECT COUNT(*) FROM attempts WHERE writer_id = ? AND outcome = 'ok' AND seq > ? "
        "AND complete_wall < ?",
        (anomaly.writer_id, visible, float(ev["read_at"]) - lag_bound),
    ).fetchone()[0]
    return replace(anomaly, evidence={**ev, "missed_acked": int(missed)})


def _non_monotonic(db: Any) -> list[Anomaly]:
    """`replicas.non_monotonic` per backend and writer, in windows of reads. A window starts
    with the read that set the highest seq so far, which is all the detector carries over."""
    found: list[Anomaly] = []
    cur = db.execute(
        f"SELECT {_READ_COLUMNS}, COALESCE(node, server) AS backend FROM reads "
        "WHERE COALESCE(node, server) IS NOT NULL ORDER BY backend, writer_id, time, id"
    )
    for _, rows in groupby(cur, key=lambda r: (r[6], r[1])):
        high: Read | None = None
        for window in _time_windows(rows, _READ_WINDOW):
            reads = [_read(r) for r in window]
            found.extend(replicas.non_monotonic([high, *reads] if high else reads))
            high = _highest(high, reads)
    return found


def _time_windows(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    """Batches of about `size` rows (ordered by time), never splitting rows of one time."""
    batch: list[Sequence[Any]] = []
    for r in rows:
        if len(batch) >= size and r[0] != batch[-1][0]:
            yield batch
            batch = []
        batch.append(r)
    if batch:
        yield batch


def _seen(r: Read) -> int:
    return -1 if r.max_seq is None else r.max_seq


def _highest(high: Read | None, reads: Sequence[Read]) -> Read | None:
    """The earliest read showing the highest seq so far (ties: the detector's read order)."""
    candidates = [*([high] if high else []), *reads]
    if not candidates:
        return None
    top = max(map(_seen, candidates))
    return min(
        (r for r in candidates if _seen(r) == top),
        key=lambda r: (r.time, r.writer_id, r.node or "", r.server or "", _seen(r), r.endpoint),
    )


def _bank_observations(db: Any, expected: int) -> list[Anomaly]:
    found: list[Anomaly] = []
    cur = db.execute("SELECT node, time, total, server FROM bank ORDER BY id")
    while batch := cur.fetchmany(_FETCH_BATCH):
        observations = [
            BankObservation(node=n, time=t, total=int(x), server=s) for n, t, x, s in batch
        ]
        found.extend(bank.bank_total(observations, {}, expected=expected))
    return found


# -- one verification ---------------------------------------------------------------------------
class _Run:
    """The state of one verification: nodes, findings so far, and what could not be judged."""

    def __init__(self, target: Target, journal: Journal, options: Options) -> None:
        self.target = target
        self.journal = journal
        self.options = options
        self.run_id = journal.info.run_id
        self.prefix = f"{self.run_id}-"
        self.nodes = {
            name: _Node(name, ep, target.names, self.prefix, options.timeout + 60.0)
            for name, ep in sorted(target.nodes.items())
        }
        self.primary: _Node | None = None
        self.reports: dict[str, NodeReport] = {}
        self.caught_up: set[str] = set()
        self.gtids: dict[str, str] = {}
        self.rows: Counter[str] = Counter()
        self.foreign: dict[str, int] = {}
        self.filtered = True
        self.checks: list[ChunkCheck] = []
        self.anomalies: list[Anomaly] = []
        self.failures: list[Failure] = []
        self.target_gtid: str | None = None
        self.id_range: tuple[int, int] | None = None
        self.chunks = 0
        self.drilled = 0
        self.fetched = 0
        self.phases: dict[str, float] = {}
        # One worker per node, and one for a range's aggregates submitted as a whole.
        self.pool = ThreadPoolExecutor(max_workers=len(self.nodes) + 1, thread_name_prefix="verify")
        self.db = _JournalDB(journal)
        self.expect: _Expectations | None = None
        self.suspects: dict[str, set[int]] = {}
        self.registry: str | None = None
        self.unregistered_rows: dict[str, int] = {}
        self.live = False
        self.resettled: set[str] = set()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for node in self.nodes.values():
            node.close()
        self.db.close()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - started

    def progress(self, text: str) -> None:
        if self.options.progress is not None:
            self.options.progress(text)

    # -- parallel node work ---------------------------------------------------------------------
    def each(
        self, nodes: Iterable[_Node], fn: Callable[[_Node], T]
    ) -> dict[str, T | DatabaseError]:
        """`fn` on every node at once; a node's DatabaseError is returned, not raised."""

        def call(node: _Node) -> T | DatabaseError:
            try:
                return fn(node)
            except DatabaseError as exc:
                return exc

        futures = {node.name: self.pool.submit(call, node) for node in nodes}
        return {name: f.result() for name, f in futures.items()}

    def lose(self, node: _Node, error: BaseException, when: str) -> None:
        """A node failed mid-way: unknown (a replica) or the whole verification (the primary)."""
        node.fail(f"{when}: {error}")
        if node is self.primary:
            raise VerifyError(f"the primary {node.name} failed {when}: {error}")

    # -- 1. nodes and the primary ---------------------------------------------------------------
    def connect(self) -> None:
        # In parallel: one node that hangs (a paused server) must not hold up the others.
        for node, opened in zip(
            self.nodes.values(), self.pool.map(_Node.open, self.nodes.values()), strict=True
        ):
            if not opened:
                # Debug only: the verdict names the node unknown with this reason (or the
                # error does, if it was the primary).
                log.debug("node_unreachable", node=node.name, reason=node.error)

    def find_primary(self) -> _Node:
        t = self.target
        if len(self.nodes) == 1:
            node = next(iter(self.nodes.values()))
        elif t.primary is not None:
            if t.primary not in self.nodes:
                raise VerifyError(
                    f"the primary {t.primary!r} is not among the nodes {sorted(self.nodes)}"
                )
            node = self.nodes[t.primary]
        elif t.writer is not None:
            node = self._reached_by_writer(t.writer)
        else:
            node = self._only_writable()
        if not node.ok:
            raise VerifyError(f"cannot read the primary {node.name}: {node.error}")
        if node.read_only():
            log.warning("primary_read_only", node=node.name)
        return node

    def _reached_by_writer(self, writer: Endpoint) -> _Node:
        try:
            conn = mysql.connect(writer)
            try:
                info = mysql.server_info(conn)
            finally:
                conn.close()
        except DatabaseError as exc:
            raise VerifyError(
                f"cannot tell the primary: the writer endpoint fails ({exc})"
            ) from None
        for node in self.nodes.values():
            if node.info is not None and node.info.server_id == info.server_id:
                return node
        raise VerifyError(
            f"the writer endpoint {writer.label()} reaches server_id {info.server_id}, which is "
            f"none of the reachable nodes {sorted(n.name for n in self.nodes.values() if n.ok)}"
        )

    def _only_writable(self) -> _Node:
        writable = [n for n in self.nodes.values() if n.ok and not n.read_only()]
        if len(writable) == 1:
            return writable[0]
        if not writable:
            down = [n.name for n in self.nodes.values() if not n.ok]
            extra = f" ({', '.join(down)} unreachable)" if down else ""
            raise VerifyError(f"no writable node to call the primary{extra}: name it with --writer")
        names = ", ".join(n.name for n in writable)
        raise VerifyError(
            f"several writable nodes ({names}): say which is the primary with --writer"
        )

    # -- 2. the barrier -------------------------------------------------------------------------
    def barrier(self, target: str) -> None:
        """Wait, in parallel and within one deadline, until each replica executed `target`."""
        deadline = time.monotonic() + self.options.timeout

        def wait(node: _Node) -> bool | None:
            if not target or node.executed(target):
                return True
            return node.wait_executed(target, max(0.001, deadline - time.monotonic()))

        replicas_ = [n for n in self.nodes.values() if n is not self.primary and n.ok]
        for name, result in self.each(replicas_, wait).items():
            node = self.nodes[name]
            if isinstance(result, DatabaseError):
                self.lose(node, result, "during the GTID barrier")
            elif result:
                self.caught_up.add(name)
            else:
                why = "timed out" if result is False else "the server could not wait for it"
                node.error = (
                    f"not caught up with the primary's GTID position {target!r} within "
                    f"{self.options.timeout:g}s ({why}; {node.replication_summary()})"
                )

    def read_gtid_states(self) -> None:
        """Replicas first, then the primary: whatever a replica got from the primary is then in
        the primary's set too, so a live run cannot look errant."""
        assert self.primary is not None  # noqa: S101 - set before this step
        others = [n for n in self.nodes.values() if n is not self.primary and n.conn is not None]
        for name, state in self.each(others, _Node.gtid_state).items():
            if isinstance(state, DatabaseError):
                self.lose(self.nodes[name], state, "reading its GTID set")
            else:
                self.gtids[name] = state
        self.gtids[self.primary.name] = self.primary.gtid_state()
        primary_state = self.gtids[self.primary.name]
        for name in sorted(self.gtids):
            if name != self.primary.name:
                self.anomalies.extend(
                    replicas.errant(
                        primary_state, self.gtids[name], node=name, flavor=self.primary.flavor
                    )
                )

    # -- 3. chunks ------------------------------------------------------------------------------
    def id_bounds(self, horizon: int | None, live: bool) -> tuple[int, int] | None:
        """The id range to check: up to the primary's highest id at the start (a live run's
        later rows are the next verification's), and offline also whatever the journal or a
        caught-up replica holds beyond it."""
        assert self.primary is not None  # noqa: S101 - set before this step
        bounds = [self.primary.id_bounds()]
        bounds.append(self.db.row_ids())
        if not live:
            compared = [self.nodes[n] for n in sorted(self.caught_up)]
            for name, found in self.each(compared, _Node.id_bounds).items():
                if isinstance(found, DatabaseError):
                    self.lose(self.nodes[name], found, "reading its id range")
                else:
                    bounds.append(found)
        los = [lo for lo, _ in bounds if lo is not None]
        his = [hi for _, hi in bounds if hi is not None]
        if not los or not his or (live and horizon is None):
            return None
        hi = horizon if live and horizon is not None else max(his)
        lo = min(los)
        return (lo, hi) if lo <= hi else None

    def count_foreign(self) -> None:
        """Other runs' rows per node; without any on the compared nodes, chunk queries need
        no per-row filter."""
        reachable = [n for n in self.nodes.values() if n.conn is not None]
        for name, found in self.each(reachable, _Node.foreign_rows).items():
            if isinstance(found, DatabaseError):
                self.lose(self.nodes[name], found, "counting other runs' rows")
            else:
                self.foreign[name] = found
        self.filtered = any(self.foreign.get(n.name, 1) for n in self.compared())

    def compared(self) -> list[_Node]:
        assert self.primary is not None  # noqa: S101 - set before this step
        return [self.primary, *(self.nodes[n] for n in sorted(self.caught_up) if self.nodes[n].ok)]

    def aggregates(
        self, lo: int, hi: int, nodes: Sequence[_Node], *, journal: bool = True
    ) -> dict[str, _Aggregate]:
        """Aggregates of `nodes` over lo..hi; the primary's with the row hash if `journal`."""
        primary, filtered = self.primary, self.filtered
        found = self.each(
            nodes,
            lambda n: n.aggregate(
                lo, hi, with_row_hash=journal and n is primary, filtered=filtered
            ),
        )
        out: dict[str, _Aggregate] = {}
        for name, agg in found.items():
            if isinstance(agg, DatabaseError):
                self.lose(self.nodes[name], agg, f"checksumming ids {lo}..{hi}")
            else:
                out[name] = agg
        return out

    def chunk_pass(self, lo: int, hi: int) -> None:
        o = self.options
        size = _grains(max(o.min_chunk, min(o.first_chunk, o.max_chunk)))
        # Whole grains, so that the journal's cached expectations serve every range but the last
        # (ids below `lo` exist nowhere: it is the lowest id of every node and the journal).
        start = lo - lo % _GRAIN
        while start <= hi:
            end = min(hi, start + size - 1)
            nodes = self.compared()
            pending = (
                self.pool.submit(self.aggregates, start, end, nodes) if len(nodes) > 1 else None
            )
            with self.phase("chunks_journal"):
                expected = self._expected(start, end)
            aggs = pending.result() if pending is not None else self.aggregates(start, end, nodes)
            self.account(aggs)
            self.judge(start, end, aggs, expected)
            self.chunks += 1
            slowest = max((a.seconds for a in aggs.values()), default=0.0)
            size = _grains(_next_size(size, slowest, o))
            self.progress(f"checked ids {lo}..{end} of {lo}..{hi} ({_percent(start, end, lo, hi)})")
            start = end + 1

    def _expected(self, lo: int, hi: int) -> tuple[int, int]:
        if self.expect is None:
            self.expect = _Expectations(self.db, self.journal)
        return self.expect.get(lo, hi)

    def account(self, aggs: Mapping[str, _Aggregate]) -> None:
        for name, agg in aggs.items():
            self.rows[name] += agg.mine

    def judge(
        self, lo: int, hi: int, aggs: Mapping[str, _Aggregate], expected: tuple[int, int] | None
    ) -> None:
        """Compare one range; drill into it if the primary differs from the journal or a
        replica from the primary."""
        assert self.primary is not None  # noqa: S101 - set before this step
        ref = aggs.get(self.primary.name)
        if ref is None:
            return
        journal_differs = expected is not None and (ref.mine, ref.row, ref.bad) != (*expected, 0)
        differing = tuple(
            name
            for name, agg in aggs.items()
            if name != self.primary.name and (agg.all, agg.copy) != (ref.all, ref.copy)
        )
        if not journal_differs and not differing:
            return
        sizes = [agg.all for agg in aggs.values()] + ([expected[0]] if expected else [])
        self.drill(lo, hi, journal_differs, differing, max(sizes))

    # -- 4. drill-down --------------------------------------------------------------------------
    def drill(
        self, lo: int, hi: int, journal_differs: bool, differing: tuple[str, ...], rows: int
    ) -> None:
        """Bisect a differing range server-side until it is small enough to fetch."""
        self.drilled += 1
        if rows <= self.options.fetch_rows or lo == hi:
            self.leaf(lo, hi, journal_differs, differing)
            return
        mid = lo + (hi - lo) // 2
        assert self.primary is not None  # noqa: S101 - set before this step
        involved = [self.primary, *(self.nodes[n] for n in differing if self.nodes[n].ok)]
        for a, b in ((lo, mid), (mid + 1, hi)):
            aggs = self.aggregates(a, b, involved, journal=journal_differs)
            expected = self._expected(a, b) if journal_differs else None
            self.judge(a, b, aggs, expected)

    def leaf(self, lo: int, hi: int, journal_differs: bool, differing: tuple[str, ...]) -> None:
        """Fetch one small range and judge its rows with the core's detectors."""
        assert self.primary is not None  # noqa: S101 - set before this step
        primary_all = self._fetch(self.primary, lo, hi)
        theirs_all = {n: self._fetch(self.nodes[n], lo, hi) for n in differing if self.nodes[n].ok}
        # The journal's detectors judge this run's rows; nodes are compared on every row.
        primary_rows = self._mine(primary_all)
        theirs = {n: self._mine(rows) for n, rows in theirs_all.items()}
        expected = self.db.acked_in(lo, hi)
        lookup = self.db.lookup(_odd_keys([primary_rows, *theirs.values()], expected))
        for writer, seq in _odd_keys([primary_rows], expected):
            self.suspects.setdefault(writer, set()).add(seq)
        if journal_differs:
            self.checks.append(
                check_chunk(self.primary.name, primary_rows, expected, lookup, lo=lo, hi=hi)
            )
        for name, fetched in theirs_all.items():
            reference, rows = primary_all, fetched
            if self.live and rows != primary_all:
                reference, rows = self._settled_rows(name, lo, hi, (primary_all, fetched))
            if not self.nodes[name].ok:
                continue
            self.anomalies.extend(
                self._replica_findings(
                    name, reference, rows, self._mine(rows), expected, lookup, lo, hi
                )
            )

    def _settled_rows(
        self, name: str, lo: int, hi: int, first: tuple[list[Row], list[Row]]
    ) -> tuple[list[Row], list[Row]]:
        """During a live run another run's transaction may commit on the primary after the
        GTID target was taken, with an id below the horizon: let the replica reach the
        primary's position of now (once per node, a few seconds at most), then read both
        again. This run's own rows are settled already."""
        assert self.primary is not None  # noqa: S101 - set before this step
        node = self.nodes[name]
        if name not in self.resettled:
            self.resettled.add(name)
            try:
                node.wait_executed(self.primary.gtid_position(), min(5.0, self.options.timeout))
            except DatabaseError as exc:
                self.lose(node, exc, "waiting for the primary's current position")
        if not node.ok:
            return first
        return self._fetch(self.primary, lo, hi), self._fetch(node, lo, hi)

    def _mine(self, rows: list[Row]) -> list[Row]:
        prefix = self.prefix
        if all(r[1].startswith(prefix) for r in rows):
            return rows
        return [r for r in rows if r[1].startswith(prefix)]

    def _fetch(self, node: _Node, lo: int, hi: int) -> list[Row]:
        try:
            rows = node.fetch(lo, hi)
        except DatabaseError as exc:
            self.lose(node, exc, f"fetching ids {lo}..{hi}")
            return []
        self.fetched += len(rows)
        return rows

    def _replica_findings(
        self,
        name: str,
        reference: Sequence[Row],
        rows: Sequence[Row],
        mine: Sequence[Row],
        expected: Sequence[Attempt],
        lookup: Mapping[Key, Attempt],
        lo: int,
        hi: int,
    ) -> list[Anomaly]:
        """How a caught-up replica's rows (every writer's) differ from the primary's. A
        difference the ledger detectors explain on the replica's rows of this run (a corrupted
        payload, a duplicate, a row never attempted) is reported as that; any other difference,
        whoever wrote the row, is `divergent`."""
        assert self.primary is not None  # noqa: S101 - set before this step
        divergent = replicas.divergent_rows(reference, rows, node=name, reference=self.primary.name)
        if not divergent:
            return []
        differing = {int(a.evidence["id"]) for a in divergent}
        own = check_chunk(name, mine, expected, lookup, lo=lo, hi=hi)
        self.failures.extend(own.failures)
        explained: list[Anomaly] = []
        covered: set[int] = set()
        for a in own.anomalies:
            ids = _anomaly_ids(a) & differing
            if ids:
                explained.append(a)
                covered |= ids
        return explained + [a for a in divergent if int(a.evidence["id"]) not in covered]

    # -- 5. whole-table checks ------------------------------------------------------------------
    def unplaced(self, live_since: float | None) -> None:
        """Acknowledged attempts without a row id: looked up on the primary by key."""
        assert self.primary is not None  # noqa: S101 - set before this step
        for found in self.db.unplaced_acks():
            # A live run's acknowledgements after the start are the next verification's.
            batch = [a for a in found if live_since is None or a.invoke_wall < live_since]
            if not batch:
                continue
            rows: list[Row] = []
            for writer, group in groupby(batch, key=lambda a: a.writer_id):
                rows.extend(self.primary.fetch_keys(writer, [a.seq for a in group]))
            self.fetched += len(rows)
            lookup = {a.key: a for a in batch}
            lookup.update(self.db.lookup((r[1], r[2]) for r in rows if (r[1], r[2]) not in lookup))
            self.checks.append(check_chunk(self.primary.name, rows, batch, lookup, lo=0, hi=0))

    def duplicates(self) -> None:
        """Duplicates across ranges: the server's GROUP BY over the (writer_id, seq) index, for
        the keys of the primary's rows that were not where the journal expected them.

        Every extra copy of a write is such a row (the journal expects each write once, at its
        own row id), so its range was fetched, whichever copy is the extra one; grouping those
        keys finds every duplicate at a cost that follows the anomalies, not the table."""
        assert self.primary is not None  # noqa: S101 - set before this step
        groups: list[tuple[str, int, list[int]]] = []
        for writer, seqs in sorted(self.suspects.items()):
            ordered = sorted(seqs)
            for i in range(0, len(ordered), _LOOKUP_BATCH):
                try:
                    groups += self.primary.duplicate_groups(writer, ordered[i : i + _LOOKUP_BATCH])
                except DatabaseError as exc:
                    self.lose(self.primary, exc, "grouping duplicates")
        self.anomalies.extend(ledger.duplicated_groups(self.primary.name, groups))

    def unregistered(self) -> None:
        """Rows on the primary whose writer belongs to no registered run: no checker wrote
        them (`unexpected`, reason `unregistered_writer`). A loose index scan lists the
        writers; only an unregistered writer's rows are read. The registry is read after the
        writers, so a run that starts meanwhile (it registers before its first write) is in it.
        Without the registry table (set up before it existed), this cannot be told."""
        assert self.primary is not None  # noqa: S101 - set before this step
        if self.id_range is None:
            self.registry = "checked"
            return
        lo, hi = self.id_range
        try:
            writers = [w for w in self.primary.distinct_writers() if not w.startswith(self.prefix)]
            known = self.primary.registered_writers(self.target.names.q("registry"))
            if known is None:
                self.registry = (
                    f"no registry table {self.target.names.q('registry')}: rows of writers no "
                    "checker registered cannot be told from other runs' rows (run `checker setup`)"
                )
                return
            found: list[tuple[int, str, int]] = []
            for writer in writers:
                if writer not in known:
                    found += self.primary.writer_rows(writer, lo, hi)
        except DatabaseError as exc:
            self.lose(self.primary, exc, "reading the writer registry")
            return
        self.registry = "checked"
        if found:
            self.unregistered_rows[self.primary.name] = len(found)
        self.anomalies.extend(ledger.unregistered(self.primary.name, found))

    def small_tables(self) -> None:
        """The bank's accounts and the chaos markers, every row, each caught-up replica against
        the primary: one checksum per table and node; rows are read only where they differ.

        Not during a live run (both change all the time): at the end of a run and offline. A
        difference is read twice: the replica first waits (a few seconds at most) for the
        primary's position at that moment, so that a row written in between is not taken for a
        divergence."""
        assert self.primary is not None  # noqa: S101 - set before this step
        primary = self.primary
        names = self.target.names
        for table, columns in ((names.q("accounts"), "id, balance"), (names.q("marker"), _MARKER)):
            others = [n for n in self.compared() if n is not primary]
            if not others:
                return
            sums = self.each([primary, *others], functools.partial(_table_sum, table, columns))
            ref = sums.get(primary.name)
            if isinstance(ref, DatabaseError):
                self.lose(primary, ref, f"checksumming {table}")
                return
            for node in others:
                mine = sums.get(node.name)
                if isinstance(mine, DatabaseError):
                    self.lose(node, mine, f"checksumming {table}")
                elif mine != ref:
                    self._table_rows(node, table, columns)

    def _table_rows(self, node: _Node, table: str, columns: str) -> None:
        assert self.primary is not None  # noqa: S101 - set before this step
        try:
            position = self.primary.gtid_position()
            node.wait_executed(position, min(5.0, self.options.timeout))
            theirs = node.table_rows(table, columns)
        except DatabaseError as exc:
            self.lose(node, exc, f"reading {table}")
            return
        try:
            reference = self.primary.table_rows(table, columns)
        except DatabaseError as exc:
            self.lose(self.primary, exc, f"reading {table}")
            return
        self.fetched += len(theirs) + len(reference)
        short = table.rsplit(".", 1)[-1].strip("`")
        self.anomalies.extend(
            replicas.divergent_table_rows(
                short, reference, theirs, node=node.name, reference=self.primary.name
            )
        )

    def bank_totals(self, expected: int) -> None:
        finals: dict[str, int | None] = {}
        reachable = [n for n in self.nodes.values() if n.conn is not None]
        for name, total in self.each(reachable, _Node.bank_total).items():
            if isinstance(total, DatabaseError):
                self.lose(self.nodes[name], total, "reading the bank total")
            else:
                finals[name] = total
        self.anomalies.extend(bank.bank_total([], finals, expected=expected))

    # -- the verdict ----------------------------------------------------------------------------
    def node_verdicts(self) -> dict[str, NodeVerdict]:
        out: dict[str, NodeVerdict] = {}
        for name, node in self.nodes.items():
            role = "primary" if node is self.primary else "replica"
            judged = node is self.primary or name in self.caught_up
            rows = (
                self.rows[name] if judged and self.id_range is not None else (0 if judged else None)
            )
            reason = node.error
            if reason is None and not judged:
                reason = "not compared with the primary"
            valid = Validity.VALID if reason is None else Validity.UNKNOWN
            out[name] = NodeVerdict(valid, role, self.gtids.get(name), rows, reason)
            self.reports[name] = NodeReport(
                name=name,
                role=role,
                server=node.info.identity if node.info else None,
                gtid=self.gtids.get(name),
                caught_up=True if node is self.primary else (name in self.caught_up),
                rows=rows,
                foreign_rows=_registered_foreign(
                    self.foreign.get(name), self.unregistered_rows.get(name, 0)
                ),
                reason=reason,
            )
        return out


def _table_sum(table: str, columns: str, node: _Node) -> tuple[int, int]:
    return node.table_checksum(table, columns)


def _registered_foreign(foreign: int | None, unregistered: int) -> int | None:
    """Other registered runs' rows: the unregistered writers' are reported `unexpected`."""
    return None if foreign is None else max(0, foreign - unregistered)


def _next_size(size: int, seconds: float, o: Options) -> int:
    """Grow or shrink the chunk toward `chunk_seconds`, at most twofold per step."""
    factor = 2.0 if seconds <= 0 else min(2.0, max(0.5, o.chunk_seconds / seconds))
    return max(o.min_chunk, min(o.max_chunk, int(size * factor)))


def _grains(size: int) -> int:
    return max(_GRAIN, size - size % _GRAIN)


def _percent(start: int, end: int, lo: int, hi: int) -> str:
    return f"{100.0 * (end - lo + 1) / max(1, hi - lo + 1):.0f}%"


def _odd_keys(row_sets: Iterable[Sequence[Row]], expected: Sequence[Attempt]) -> set[Key]:
    """Keys of rows that are not simply the acknowledged write expected at their id: the only
    rows the ledger detectors look up (a superset of the core's `Match.odd`)."""
    claims = Counter(a.row_id for a in expected)
    at = {a.row_id: a.key for a in expected}
    keys: set[Key] = set()
    for rows in row_sets:
        for r in rows:
            if claims.get(r[0], 0) != 1 or at.get(r[0]) != (r[1], r[2]):
                keys.add((r[1], r[2]))
    return keys


def _anomaly_ids(a: Anomaly) -> set[int]:
    ids = a.evidence.get("ids")
    if isinstance(ids, list):
        return {i for i in ids if isinstance(i, int)}
    one = a.evidence.get("id")
    return {one} if isinstance(one, int) else set()


@dataclass
class _History:
    """The journal's own checks, run in a thread of their own while the servers work."""

    found: list[Anomaly] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    outcomes: _Outcomes | None = None
    done: bool = False


def _history(journal: Journal, lag_bound: float, bank_expected: int | None, out: _History) -> None:
    """Count outcomes, then judge acknowledgements, reads and bank observations, each step
    guarded: a crash of one makes the verdict unknown, never valid."""
    db = _JournalDB(journal)
    try:
        out.outcomes = _outcomes(db, journal)
        servers = out.outcomes.servers
        steps: list[tuple[str, Callable[[], list[Anomaly]]]] = [
            ("split_brain", lambda: _split_brain(db.db, servers)),
            ("stale", lambda: _stale(db.db, lag_bound)),
            ("non_monotonic", lambda: _non_monotonic(db.db)),
        ]
        if bank_expected is not None:
            steps.append(("bank_total", lambda: _bank_observations(db.db, bank_expected)))
        for name, step in steps:
            try:
                out.found.extend(step())
            except Exception as exc:  # noqa: BLE001 - a crashed check is unknown, not valid
                out.failures.append(Failure(name, f"{type(exc).__name__}: {exc}"))
        out.done = True
    finally:
        db.close()


def verify(
    target: Target,
    journal: Journal,
    options: Options | None = None,
    *,
    live: LiveRun | None = None,
    summary: bool = True,
) -> Verification:
    """Verify every node of `target` against `journal`; see the module docstring.

    `live` is given when the checker is still writing: the check then stops at the primary's
    highest id at the start, and `live.settle` runs before the GTID position is captured, so
    every row up to that id is final on the primary before the barrier aims at it. Raises
    `CheckerError` when nothing can be judged (no primary, wrong credentials); anything less
    makes nodes or the verdict unknown.
    """
    o = options or Options()
    started = time.monotonic()
    run = _Run(target, journal, o)
    history = _History()
    bank_meta = journal.meta("bank_total")
    bank_expected = int(bank_meta) if bank_meta is not None else None
    # The journal's own checks need no MySQL: they run while the servers work.
    history_thread = threading.Thread(
        target=_history,
        args=(journal, o.lag_bound, bank_expected, history),
        name="verify-history",
        daemon=True,
    )
    try:
        run.connect()
        run.primary = run.find_primary()
        history_thread.start()
        live_seqs = _servers_side(run, live, bank_expected)
        with run.phase("journal_checks_wait"):
            history_thread.join()
        if not history.done:
            history.failures.append(Failure("history", "the journal checks did not finish"))
        outcomes = history.outcomes or run.db.outcomes()
        with run.phase("verdict"):
            verdict = verdict_from_chunks(
                run.checks,
                counts=run.db.counts(outcomes, live_seqs),
                nodes=run.node_verdicts(),
                anomalies=[*run.anomalies, *history.found],
                failures=[*run.failures, *history.failures],
                cap=o.cap,
            )
    finally:
        if history_thread.is_alive():
            history_thread.join()
        run.close()
    result = Verification(
        verdict=placed(verdict, journal),
        started_at=journal.info.created_at,
        run_id=run.run_id,
        primary=run.primary.name if run.primary else None,
        nodes=dict(run.reports),
        gtid_target=run.target_gtid,
        id_range=run.id_range,
        chunks=run.chunks,
        drilled=run.drilled,
        fetched_rows=run.fetched,
        seconds=time.monotonic() - started,
        phases=dict(run.phases),
        registry=run.registry,
    )
    _log_summary(result, summary)
    return result


HISTORY_TYPES = frozenset({"split_brain", "stale", "non_monotonic", "bank_total"})
"""Anomaly types judged from the journal alone: found even when no server can be read."""


def unfinished(
    target: Target,
    journal: Journal,
    reason: str,
    options: Options | None = None,
    *,
    recorded: bool = True,
) -> Verification:
    """What can still be said when a verification cannot finish (the primary unreachable or
    failing): the journal's counts, the journal's own checks (split brain, stale and
    non-monotonic reads, bank observations), and the findings of the last verification the
    checker journaled (the live analysis' lost writes among them; `recorded=False` leaves
    them to the caller, the running checker, which holds them itself), every node `unknown`
    with `reason`. INVALID if anything was found (INVALID dominates UNKNOWN), else UNKNOWN."""
    o = options or Options()
    started = time.monotonic()
    bank_meta = journal.meta("bank_total")
    history = _History()
    _history(journal, o.lag_bound, int(bank_meta) if bank_meta is not None else None, history)
    db = _JournalDB(journal)
    try:
        counts = db.counts(history.outcomes or db.outcomes())
    finally:
        db.close()
    nodes = {
        name: NodeVerdict(Validity.UNKNOWN, None, None, None, reason)
        for name in sorted(target.nodes)
    }
    parts = [
        build_verdict(
            history.found,
            counts=counts,
            nodes=nodes,
            failures=[Failure("verify", reason), *history.failures],
            cap=o.cap,
        )
    ]
    last = _last_recorded(journal) if recorded else None
    if last is not None:
        parts.append(last)
    verdict = merge(parts, cap=o.cap)
    return Verification(
        verdict=placed(verdict, journal),
        started_at=journal.info.created_at,
        run_id=journal.info.run_id,
        primary=target.primary,
        nodes={name: NodeReport(name=name, role="unknown", reason=reason) for name in target.nodes},
        seconds=time.monotonic() - started,
    )


def activity_windows(journal: Journal) -> list[tuple[str, float, float | None]]:
    """The chaos activities' windows the journal's annotations record (`POST /annotations`:
    a start and an end per name; an end never sent leaves the window open)."""
    try:
        rows = sorted(journal.rows("annotations"), key=lambda r: float(r["time"]))
    except Exception:  # noqa: BLE001 - an older journal without annotations: no windows
        return []
    open_: dict[str, float] = {}
    windows: list[tuple[str, float, float | None]] = []
    for r in rows:
        name, phase, t = str(r["name"]), str(r["phase"]), float(r["time"])
        if phase == "start":
            open_[name] = t
        elif name in open_:
            windows.append((name, open_.pop(name), t))
    windows += [(name, t, None) for name, t in open_.items()]
    return windows


def placed(verdict: Verdict, journal: Journal) -> Verdict:
    """The verdict with each anomaly group placed on the chaos timeline (`Group.activity`)."""
    if not verdict.groups:
        return verdict
    return replace(verdict, groups=place_groups(verdict.groups, activity_windows(journal)))


def group_lines(verdict: Verdict, start: float | None = None) -> list[str]:
    """The verdict's anomaly groups in words (`checker.core.runs.describe`)."""
    return runs.describe(verdict.groups, start)


def _last_recorded(journal: Journal) -> Verdict | None:
    """The findings of the last verdict the running checker journaled (without its counts
    and its journal-only findings, which `unfinished` computes afresh): what was observed
    while the servers could still be read."""
    try:
        rows = journal.rows("verifications")
    except Exception:  # noqa: BLE001 - an older journal without them: nothing recorded
        return None
    last = None
    for row in rows:
        last = row
    if last is None or not last.get("verdict"):
        return None
    try:
        v = Verdict.from_json(str(last["verdict"]))
    except (ValueError, KeyError, TypeError):
        return None
    kept = [a for a in v.anomalies if a.type not in HISTORY_TYPES]
    groups = tuple(g for g in v.groups if g.type not in HISTORY_TYPES)
    return replace(
        v,
        counts=Counts(),
        anomaly_counts={k: (0 if k in HISTORY_TYPES else n) for k, n in v.anomaly_counts.items()},
        anomalies=tuple(kept),
        groups=groups,
        nodes={n: replace(nv, rows=None) for n, nv in v.nodes.items()},
    )


def _servers_side(
    run: _Run, live: LiveRun | None, bank_expected: int | None
) -> dict[str, int] | None:
    """Barrier, chunks, drill-down, duplicates, bank: everything that asks the servers.
    Returns, for a live run, each writer's seq when the journal was settled."""
    primary = run.primary
    assert primary is not None  # noqa: S101 - found before this step
    horizon = primary.id_bounds()[1]
    live_since = time.time() if live is not None else None
    run.live = live is not None
    live_seqs = None
    if live is not None:
        # Read before settling: everything up to these seqs is on disk once `settle` returns,
        # and later seqs are in flight or queued, not a crash window.
        live_seqs = dict(live.writer_seqs())
        with run.phase("settle"):
            live.settle()
    run.target_gtid = primary.gtid_position()
    run.progress(f"barrier: waiting for replicas to reach {run.target_gtid or 'nothing'}")
    with run.phase("barrier"):
        run.barrier(run.target_gtid)
        run.read_gtid_states()
    with run.phase("chunks"):
        run.count_foreign()
        run.id_range = run.id_bounds(horizon, live=live is not None)
        if run.id_range is not None:
            run.chunk_pass(*run.id_range)
        if run.expect is not None:
            run.expect.save()
    with run.phase("unplaced_and_bank"):
        run.unplaced(live_since)
        if bank_expected is not None:
            run.bank_totals(bank_expected)
    with run.phase("duplicates"):
        run.duplicates()
    with run.phase("registry"):
        run.unregistered()
    if live is None:
        with run.phase("tables"):
            run.small_tables()
    return live_seqs


def _primary_rows(result: Verification) -> int | None:
    report = result.nodes.get(result.primary) if result.primary else None
    return report.rows if report else None


def _log_summary(result: Verification, summary: bool) -> None:
    v = result.verdict
    (log.info if summary else log.debug)(
        "verification_done" if summary else "verification_details",
        valid=v.valid.json,
        seconds=round(result.seconds, 3),
        primary=result.primary,
        rows=_primary_rows(result),
        foreign_rows=sum(r.foreign_rows or 0 for r in result.nodes.values()),
        chunks=result.chunks,
        drilled=result.drilled,
        fetched_rows=result.fetched_rows,
        unknown=sorted(n for n, nv in v.nodes.items() if nv.valid is Validity.UNKNOWN),
        **{k: n for k, n in v.anomaly_counts.items() if n},
    )


# -- the running checker's hook -----------------------------------------------------------------
def verify_service(service: Service) -> Verdict:
    """`Service.verify_fn`: verify with the service's settings and journal. During a live run,
    rows written after the verification started are left to the next one."""
    settings = service.settings
    options = Options(timeout=settings.verify_timeout, lag_bound=settings.lag_bound)
    live = not service.stop_event.is_set()
    try:
        target = target_from_settings(settings)
        run = LiveRun(_settler(service), lambda: {w.writer_id: w.recorded for w in service.writers})
        return verify(
            target, service.journal, options, live=run if live else None, summary=False
        ).verdict
    except (AuthError, GrantError) as exc:
        log.warning("verification_failed", error=str(exc))
        return _failed(str(exc))
    except CheckerError as exc:
        # The primary unreachable or failing: the journal can still speak (its counts, its
        # own checks); the service adds what its live analysis saw (`merge_full`).
        log.warning("verification_failed", error=str(exc))
        try:
            target = target_from_settings(settings)
            return unfinished(target, service.journal, str(exc), options, recorded=False).verdict
        except Exception:
            # Fall back to the bare unknown.
            log.exception("verification_fallback_crashed")
            return _failed(str(exc))
    except Exception as exc:
        # A crashed verification is unknown, never valid (and never a crash of the service).
        log.exception("verification_crashed")
        return _failed(f"{type(exc).__name__}: {exc}")


def _failed(reason: str) -> Verdict:
    return build_verdict([], failures=[Failure("verify", reason)])


def _settler(service: Service) -> Callable[[], None]:
    """Wait until each writer's attempt in flight at the call is decided and journaled (or the
    statement timeout passes), then flush the journal."""

    def settle() -> None:
        marks = {w: w.seq for w in service.writers}
        deadline = time.monotonic() + service.settings.writer.read_timeout + 1.0
        db = _JournalDB(service.journal)
        try:
            while True:
                service.journal.flush()
                pending = [
                    w
                    for w, seq in marks.items()
                    if seq > 0
                    and w.seq == seq
                    and w.conn is not None
                    and w.is_alive()
                    and db.max_seq(w.writer_id) < seq
                ]
                if not pending or time.monotonic() >= deadline:
                    return
                time.sleep(0.005)
        finally:
            db.close()

    return settle


def summary_lines(result: Verification) -> list[str]:
    """A readable summary of a verification, for a terminal."""
    v = result.verdict
    word = {Validity.VALID: "VALID", Validity.INVALID: "INVALID", Validity.UNKNOWN: "UNKNOWN"}
    c = v.counts
    lines = [
        f"{word[v.valid]}: run {result.run_id}, primary {result.primary}, "
        f"{len(result.nodes)} node(s), {result.seconds:.1f} s",
        f"  writes: {c.attempted} attempted, {c.ok} ok, {c.failed} failed, "
        f"{c.indeterminate} indeterminate ({c.recovered} of them recovered)",
    ]
    for name, node in sorted(v.nodes.items()):
        report = result.nodes.get(name)
        state = {True: "valid", False: "INVALID", "unknown": "unknown"}[node.valid.json]
        rows = "-" if node.rows is None else str(node.rows)
        foreign = report.foreign_rows if report and report.foreign_rows else 0
        extra = f", {foreign} foreign" if foreign else ""
        why = f": {node.reason}" if node.reason else ""
        lines.append(f"  {name:10} {node.role or '-':8} {state:8} rows {rows}{extra}{why}")
    if result.registry not in (None, "checked"):
        lines.append(f"  cannot tell: {result.registry}")
    counted = {k: n for k, n in v.anomaly_counts.items() if n}
    if counted:
        lines.append("  anomalies: " + ", ".join(f"{k} {n}" for k, n in counted.items()))
        runs = group_lines(v, result.started_at)
        if runs:
            lines.append("  in runs:")
            lines.extend(f"    {line}" for line in runs[:20])
        lines.extend(f"    {_describe(a)}" for a in v.anomalies[:20])
        if len(v.anomalies) > 20:
            lines.append(
                f"    ... {sum(counted.values()) - 20} more (--json shows up to {v.cap} per type)"
            )
    for f in v.failures:
        lines.append(f"  could not check {f.detector}: {f.error}")
    return lines


def _describe(a: Anomaly) -> str:
    where = " ".join(
        x for x in (a.node, a.writer_id, None if a.seq is None else f"seq {a.seq}") if x
    )
    detail = ", ".join(
        f"{k}={v}"
        for k, v in a.evidence.items()
        if isinstance(v, (int, float, str)) and k != "flavor"
    )
    return f"{a.type:13} {where}" + (f" ({detail})" if detail else "")
