"""The journal's one reader: every query the verifier, the report and the semi-sync
attribution run against a journal's tables, answered with the core's records.

Reads go straight to SQLite through the DB-API (the journal's own tables and indexes:
`attempts_row_id`, `attempts_writer_seq`): building an object per row through SQLAlchemy
would be the slowest part of a verification or a report, and long queries are streamed
(`fetchmany`), so memory follows a batch, not the journal. Two rules live here and nowhere
else: the row -> `Attempt` mapping (`attempt`), and the crash window (module docstring of
`checker.journal`): a reserved seq with no journaled attempt is an INDETERMINATE attempt with
an unknown payload (`unjournaled`), never lost, never unexpected.

Its sections follow the callers: verification, the journal's own checks, the report, semi-sync.
It is longer than the usual ~600 lines on purpose: every query stays in this one place, and
retention (`checker.journal.compact`) adds the folded side to most of them.
"""

from __future__ import annotations

import json
import math
import operator
import sqlite3
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import reduce
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from checker.core.history import Attempt, BankObservation, Key, Outcome, Read
from checker.core.ledger import FoldedGrain
from checker.core.semisync import Sample
from checker.core.verdict import Counts
from checker.errors import JournalError
from checker.journal.schema import FOLD_GRAIN, TABLES

if TYPE_CHECKING:
    from checker.journal.writer import Journal

__all__ = [
    "FETCH_BATCH",
    "LOOKUP_BATCH",
    "AttemptGroup",
    "FoldedGrain",
    "JournalReader",
    "Outcomes",
    "attempt",
    "is_folded",
    "load_samples",
    "unjournaled",
]

_UNJOURNALED = "not in the journal: the checker stopped before recording it"
_ATTEMPT_COLUMNS = (
    "writer_id, seq, payload_sha256, outcome, invoke_wall, complete_wall, invoke_mono, "
    "complete_mono, server, node, row_id, error"
)
_ROW_TEXT = "row_id || '#' || writer_id || '#' || seq || '#' || payload_sha256"
_READ_COLUMNS = "time, writer_id, max_seq, node, server, endpoint"
_LATENCY = "COALESCE(complete_mono - invoke_mono, complete_wall - invoke_wall)"
_WHEN = "COALESCE(complete_wall, invoke_wall)"
_MAX_ID = 2**63 - 1
FETCH_BATCH = 20_000
"""Rows fetched from SQLite at once by the long streamed queries."""
LOOKUP_BATCH = 500
"""Keys looked up per statement (an IN list)."""
_OUTCOMES = {o.value: o for o in Outcome}


def attempt(r: Any) -> Attempt:
    """One `attempts` row (`_ATTEMPT_COLUMNS` order) as an `Attempt`. Repeated strings are
    interned: a million attempts share a handful of writer, server and node ids."""
    return Attempt(
        writer_id=sys.intern(r[0]),
        seq=int(r[1]),
        payload_sha256=r[2],
        outcome=_OUTCOMES[r[3]],
        invoke_wall=r[4],
        complete_wall=r[5],
        invoke_mono=r[6],
        complete_mono=r[7],
        server=sys.intern(r[8]) if r[8] else r[8],
        node=sys.intern(r[9]) if r[9] else r[9],
        row_id=r[10],
        error=r[11],
    )


def crc_xor(texts: Iterable[str], start: int = 0) -> int:
    """XOR of the CRC32 of each row text (`_ROW_TEXT`) onto `start`: the servers'
    `BIT_XOR(CRC32(...))`, computed in C (no Python per row)."""
    return reduce(operator.xor, map(zlib.crc32, map(str.encode, texts)), start)


def unjournaled(writer_id: str, seq: int) -> Attempt:
    """The attempt a reserved seq stands for when the journal has none: the crash window."""
    return Attempt(writer_id, seq, None, Outcome.INDETERMINATE, 0.0, error=_UNJOURNALED)


def _read(r: Any) -> Read:
    return Read(time=r[0], writer_id=r[1], max_seq=r[2], node=r[3], server=r[4], endpoint=r[5])


@dataclass(frozen=True)
class Outcomes:
    """Attempts by outcome, and how many server identities acknowledged any."""

    total: int
    ok: int
    failed: int
    servers: int


class AttemptGroup(NamedTuple):
    """Attempts of one node, server and outcome (the report's summary): how many, the first
    invocation, the last time, and the first and last completion."""

    node: str
    server: str | None
    outcome: str
    attempts: int
    first: float
    last: float
    first_ack: float | None
    last_ack: float | None


@dataclass(frozen=True)
class Folded:
    """What retention folded (`checker.journal.compact`): the acknowledged attempts with ids
    up to `attempt_id` (`total`: they and the crash window's seqs, counted indeterminate; every
    other attempt stays raw), samples older than `before`."""

    attempt_id: int
    before: float
    total: int
    ok: int
    first: float | None
    last: float | None
    row_lo: int | None
    row_hi: int | None
    compactions: int


_NOTHING_FOLDED = Folded(0, 0.0, 0, 0, None, None, None, None, 0)


class JournalReader:
    """One read-only look at a journal, on a connection of its own (close it, or use `with`).

    The reservations are read once, when it opens: a live run's later reservations are the
    next reader's. So is what retention folded (`folded`, `folded_seq`): every answer below
    adds the folded aggregates to the raw rows (a journal never compacted has none).
    """

    def __init__(self, journal: Journal) -> None:
        self._raw = journal.engine.raw_connection()
        db = self._raw.driver_connection
        if not isinstance(db, sqlite3.Connection):  # pragma: no cover - SQLite by construction
            raise JournalError(f"journal {journal.path} did not open as an SQLite database")
        self.db = db
        self.reserved: dict[str, int] = {
            str(w): int(upto)
            for w, upto in self.db.execute("SELECT writer_id, upto FROM reservations")
        }
        self.folded = _NOTHING_FOLDED
        self.folded_seq: dict[str, int] = {}
        self.folded_window: set[Key] = set()
        try:
            row = self.db.execute(
                "SELECT attempt_id, before, total, ok, first, last, row_lo, row_hi, "
                "compactions FROM folded WHERE id = 1"
            ).fetchone()
            if row is not None:
                self.folded = Folded(*row)
                self.folded_seq = {
                    str(w): int(s) for w, s in self.db.execute("SELECT * FROM folded_writers")
                }
                self.folded_window = {
                    (str(w), int(s)) for w, s in self.db.execute("SELECT * FROM folded_window")
                }
        except sqlite3.OperationalError:  # an older journal opened read-only: nothing folded
            pass

    def _folded_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of a folded table ([] if nothing was folded)."""
        if not self.folded.compactions:
            return []
        return self.db.execute(sql, params).fetchall()

    def _folded_grains(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """Folded grains overlapping row ids lo..hi (folded grains are authoritative)."""
        return [
            (int(g), int(n), int(x))
            for g, n, x in self._folded_rows(
                "SELECT grain, n, x FROM folded_grains WHERE grain BETWEEN ? AND ?",
                (lo // FOLD_GRAIN, hi // FOLD_GRAIN),
            )
        ]

    def folded_grains(self, lo: int, hi: int) -> list[FoldedGrain]:
        """The folded grains overlapping row ids lo..hi, whole, in row id order."""
        return [
            FoldedGrain(
                lo=int(g) * FOLD_GRAIN,
                hi=int(g) * FOLD_GRAIN + FOLD_GRAIN - 1,
                n=int(n),
                x=int(x),
                ids=frozenset(
                    int(g) * FOLD_GRAIN + i for i in range(FOLD_GRAIN) if ids[i // 8] >> (i % 8) & 1
                ),
                first=first,
                last=last,
            )
            for g, n, x, ids, first, last in self._folded_rows(
                "SELECT grain, n, x, ids, first, last FROM folded_grains "
                "WHERE grain BETWEEN ? AND ? ORDER BY grain",
                (lo // FOLD_GRAIN, hi // FOLD_GRAIN),
            )
        ]

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- verification ---------------------------------------------------------------------------
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
        while batch := cur.fetchmany(FETCH_BATCH):
            count += len(batch)
            texts = map(itemgetter(0), batch)
            checksum = crc_xor(texts, checksum)
        for _, n, x in self._folded_grains(lo, hi):
            count, checksum = count + n, checksum ^ x
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
        return [attempt(r) for r in found]

    def row_ids(self) -> tuple[int | None, int | None]:
        """The lowest and highest row id any attempt got: two seeks in the row_id index."""
        lo, hi = self.db.execute(
            "SELECT (SELECT MIN(row_id) FROM attempts), (SELECT MAX(row_id) FROM attempts)"
        ).fetchone()
        f = self.folded
        if f.row_lo is not None:
            lo = f.row_lo if lo is None else min(lo, f.row_lo)
        if f.row_hi is not None:
            hi = f.row_hi if hi is None else max(hi, f.row_hi)
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
            for i in range(0, len(ordered), LOOKUP_BATCH):
                part = ordered[i : i + LOOKUP_BATCH]
                marks = ", ".join("?" * len(part))
                for r in self.db.execute(
                    f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE writer_id = ? "
                    f"AND seq IN ({marks})",
                    (writer, *part),
                ):
                    found[(r[0], r[1])] = attempt(r)
            upto = self.reserved.get(writer, 0)
            folded = self.folded_seq.get(writer, 0)
            window = self.folded_window
            for seq in ordered:
                if (writer, seq) in found or seq < 1:
                    continue
                if seq <= folded and (writer, seq) not in window:
                    found[(writer, seq)] = _folded(writer, seq)
                elif seq <= max(upto, folded):
                    found[(writer, seq)] = unjournaled(writer, seq)
        return found

    def unplaced_acks(self) -> Iterator[list[Attempt]]:
        """Acknowledged attempts without a row id, in batches: they can only be found by key."""
        cur = self.db.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE row_id IS NULL AND outcome = 'ok' "
            "ORDER BY writer_id, seq"
        )
        while batch := cur.fetchmany(LOOKUP_BATCH):
            yield [attempt(r) for r in batch]

    def max_seq(self, writer_id: str) -> int:
        found = self.db.execute(
            "SELECT MAX(seq) FROM attempts WHERE writer_id = ?", (writer_id,)
        ).fetchone()[0]
        return max(int(found or 0), self.folded_seq.get(writer_id, 0))

    def outcomes(self, after: int = -1, upto: int = _MAX_ID) -> Outcomes:
        """Attempts with ids in after+1..upto by outcome (`servers`: see `servers()`)."""
        total, ok, failed = self.db.execute(
            "SELECT COUNT(*), TOTAL(outcome = 'ok'), TOTAL(outcome = 'failed') FROM attempts "
            "WHERE id > ? AND id <= ?",
            (after, upto),
        ).fetchone()
        if after < self.folded.attempt_id:
            # The folded totals stand for every folded id (a range cannot split them).
            f = self.folded
            total, ok = total + f.total, ok + f.ok
        return Outcomes(int(total), int(ok), int(failed), len(self.servers(after, upto)))

    def servers(self, after: int = -1, upto: int = _MAX_ID) -> set[str]:
        """The server identities that acknowledged attempts with ids in after+1..upto (the
        folded ones' too, if `after` is below the folded ids)."""
        found = {
            str(s)
            for (s,) in self.db.execute(
                "SELECT DISTINCT server FROM attempts WHERE id > ? AND id <= ? "
                "AND outcome = 'ok' AND server IS NOT NULL",
                (after, upto),
            )
        }
        if after < self.folded.attempt_id:
            found |= {str(s) for (s,) in self._folded_rows("SELECT server FROM folded_servers")}
        return found

    def expected_grains(
        self, lo: int, hi: int, upto: int, grain: int
    ) -> dict[int, tuple[int, int]]:
        """`expected` per grain of `grain` ids in lo..hi (whole grains), in one index walk."""
        cur = self.db.execute(
            f"SELECT row_id / {grain}, {_ROW_TEXT} FROM attempts WHERE row_id BETWEEN ? AND ? "
            "AND outcome = 'ok' AND payload_sha256 IS NOT NULL AND id <= ? ORDER BY row_id",
            (lo, hi, upto),
        )
        found: dict[int, tuple[int, int]] = {}
        while batch := cur.fetchmany(FETCH_BATCH):
            for g, rows in groupby(batch, key=itemgetter(0)):
                texts = [t for _, t in rows]
                n, x = found.get(g, (0, 0))
                x = crc_xor(texts, x)
                found[g] = (n + len(texts), x)
        if grain == FOLD_GRAIN:
            for g, n, x in self._folded_grains(lo, hi):
                known = found.get(g, (0, 0))
                found[g] = (known[0] + n, known[1] ^ x)
        return found

    def counts(self, outcomes: Outcomes, live_seqs: Mapping[str, int] | None = None) -> Counts:
        """Attempts by outcome, the synthesized ones (the checker's crash window) included;
        a live writer's window ends at its current seq."""
        o = outcomes
        indeterminate = o.total - o.ok - o.failed + self.unjournaled(live_seqs)
        return Counts(o.ok + o.failed + indeterminate, o.ok, o.failed, indeterminate)

    def unjournaled(self, live_seqs: Mapping[str, int] | None = None) -> int:
        """Reserved seqs with no journaled attempt: the checker's crash window (a live
        writer's ends at its current seq)."""
        live = live_seqs or {}
        missing = 0
        for writer, upto in list(self.reserved.items()):
            end = min(upto, live[writer]) if writer in live else upto
            # Seqs up to the folded one were counted when folded (`Folded.total`).
            start = self.folded_seq.get(writer, 0) + 1
            # An index range count: a journal records each (writer, seq) once.
            n = self.db.execute(
                "SELECT COUNT(*) FROM attempts WHERE writer_id = ? AND seq BETWEEN ? AND ?",
                (writer, start, end),
            ).fetchone()[0]
            missing += max(0, end - start + 1 - int(n))
        return missing

    def attempts(self) -> Iterator[Attempt]:
        """Every journaled attempt in (writer_id, seq) order, plus one `unjournaled` attempt
        for each reserved seq that has none. Streams: memory does not grow with the journal."""
        reserved = dict(self.reserved)
        cur = self.db.execute(f"SELECT {_ATTEMPT_COLUMNS} FROM attempts ORDER BY writer_id, seq")
        writer: str | None = None
        last = 0
        while rows := cur.fetchmany(5000):
            for r in rows:
                w, seq = r[0], r[1]
                if w != writer:
                    if writer is not None:
                        yield from _window(writer, last, reserved.pop(writer, 0))
                    writer, last = w, self.folded_seq.get(w, 0)
                if seq - 1 > last and reserved.get(w, 0) > last:
                    yield from _window(w, last, min(seq - 1, reserved[w]))
                last = max(last, seq)
                yield attempt(r)
        if writer is not None:
            yield from _window(writer, last, reserved.pop(writer, 0))
        for writer_id, upto in sorted(reserved.items()):
            yield from _window(writer_id, self.folded_seq.get(writer_id, 0), upto)

    def acked(self) -> Iterator[Attempt]:
        """Acknowledged attempts with a payload and a completion time (an analysis without
        the servers' final state needs no others)."""
        cur = self.db.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE outcome = 'ok' "
            "AND payload_sha256 IS NOT NULL AND complete_wall IS NOT NULL"
        )
        while batch := cur.fetchmany(FETCH_BATCH):
            yield from map(attempt, batch)

    def first_attempt(self, writer_id: str, seq: int) -> Attempt | None:
        """The journal's record of one write (the first, if journaled twice)."""
        row = self.db.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE writer_id = ? AND seq = ? "
            "ORDER BY id LIMIT 1",
            (writer_id, seq),
        ).fetchone()
        return None if row is None else attempt(row)

    # -- the journal's own checks: acknowledgements, reads, bank observations -------------------
    def ack_servers(self) -> list[str]:
        """The server identities that acknowledged any write."""
        found = [
            s
            for (s,) in self.db.execute(
                "SELECT DISTINCT server FROM attempts WHERE outcome = 'ok' AND server IS NOT NULL"
            ).fetchall()
        ]
        return found + [s for s in self._folded_spans() if s not in found]

    def _folded_spans(self) -> dict[str, tuple[int, Attempt, Attempt]]:
        return {
            str(s): (int(n), attempt(json.loads(a)), attempt(json.loads(b)))
            for s, n, a, b in self._folded_rows(
                "SELECT server, acks, first, last FROM folded_servers"
            )
        }

    def ack_span(self, server: str) -> tuple[int, Attempt, Attempt]:
        """How many writes `server` acknowledged, its first and its last acknowledgement (a
        bare column next to MIN/MAX comes from the row holding it)."""
        ok = "FROM attempts WHERE outcome = 'ok' AND server = ?"
        first = self.db.execute(
            f"SELECT MIN(complete_wall), COUNT(*), {_ATTEMPT_COLUMNS} {ok}", (server,)
        ).fetchone()
        last = self.db.execute(
            f"SELECT MAX(complete_wall), {_ATTEMPT_COLUMNS} {ok}", (server,)
        ).fetchone()
        folded = self._folded_spans().get(server)
        if folded is None:
            return int(first[1]), attempt(first[2:]), attempt(last[1:])
        if not first[1]:
            return folded
        # Folded acknowledgements are older than every journaled one of the same identity.
        return int(first[1]) + folded[0], folded[1], attempt(last[1:])

    def first_ack_since(self, server: str, since: float) -> list[Attempt]:
        """`server`'s first acknowledgement completed at or after `since` (none or one); of
        folded acknowledgements only the first and last are known."""
        folded = self._folded_spans().get(server)
        if folded is not None:
            for a in folded[1:]:
                if (a.complete_wall or 0.0) >= since:
                    return [a]
        return [
            attempt(r)
            for r in self.db.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE outcome = 'ok' "
                "AND server = ? AND complete_wall >= ? "
                "ORDER BY complete_wall, writer_id, seq LIMIT 1",
                (server, since),
            )
        ]

    def acks_after(self, writer: str, seen: int, limit: int) -> list[tuple[int, float | None]]:
        """(seq, completion) of `writer`'s first `limit` acknowledgements after seq `seen`, in
        seq order (index seeks)."""
        return [
            (int(seq), t)
            for seq, t in self.db.execute(
                "SELECT seq, complete_wall FROM attempts WHERE writer_id = ? AND seq > ? "
                "AND outcome = 'ok' ORDER BY seq LIMIT ?",
                (writer, seen, limit),
            ).fetchall()
        ]

    def acks_missed(self, writer: str, visible: int, before: float) -> int:
        """`writer`'s acknowledgements after seq `visible` completed before `before`."""
        found = self.db.execute(
            "SELECT COUNT(*) FROM attempts WHERE writer_id = ? AND outcome = 'ok' AND seq > ? "
            "AND complete_wall < ?",
            (writer, visible, before),
        ).fetchone()[0]
        return int(found)

    def reads(self) -> Iterator[Read]:
        """Every read, in the order journaled."""
        cur = self.db.execute(f"SELECT {_READ_COLUMNS} FROM reads ORDER BY id")
        while batch := cur.fetchmany(FETCH_BATCH):
            yield from map(_read, batch)

    def reads_by_writer(self) -> Iterator[Read]:
        """Every read, by writer, then time."""
        cur = self.db.execute(f"SELECT {_READ_COLUMNS} FROM reads ORDER BY writer_id, time, id")
        while batch := cur.fetchmany(FETCH_BATCH):
            yield from map(_read, batch)

    def reads_by_backend(self) -> Iterator[tuple[str, Read]]:
        """(backend, read) of every read that names its backend (the node, else the server),
        by backend, writer, then time."""
        cur = self.db.execute(
            f"SELECT {_READ_COLUMNS}, COALESCE(node, server) AS backend FROM reads "
            "WHERE COALESCE(node, server) IS NOT NULL ORDER BY backend, writer_id, time, id"
        )
        while batch := cur.fetchmany(FETCH_BATCH):
            for r in batch:
                yield r[6], _read(r)

    def bank(self) -> Iterator[BankObservation]:
        """Every bank observation, in the order journaled."""
        cur = self.db.execute("SELECT node, time, total, server FROM bank ORDER BY id")
        while batch := cur.fetchmany(FETCH_BATCH):
            for n, t, x, s in batch:
                yield BankObservation(node=n, time=t, total=int(x), server=s)

    # -- the report -----------------------------------------------------------------------------
    def attempt_groups(self) -> Iterator[AttemptGroup]:
        """Attempts grouped by node (`?` if none), server and outcome; the crash window's
        (with no time) are not among them."""
        folded = self._union(
            "SELECT node, NULLIF(server, %s), outcome, n, first, last, first_ack, last_ack "
            "FROM folded_groups"
        )
        for r in self.db.execute(
            f"SELECT node, server, outcome, SUM(n), MIN(a), MAX(b), MIN(c), MAX(d) FROM ("
            f"SELECT COALESCE(node, '?') AS node, server, outcome, COUNT(*) AS n, "
            f"MIN(invoke_wall) AS a, MAX({_WHEN}) AS b, MIN(complete_wall) AS c, "
            "MAX(complete_wall) AS d FROM attempts WHERE invoke_wall > 0 GROUP BY 1, 2, 3 "
            f"{folded}"
            ") GROUP BY 1, 2, 3"
        ):
            yield AttemptGroup(*r)

    def _union(self, folded_select: str) -> str:
        """` UNION ALL <folded_select>` if anything was folded, else nothing."""
        if not self.folded.compactions:
            return ""
        return " UNION ALL " + folded_select.replace("%s", "''")

    def time_span(self, table: str) -> tuple[float, float] | None:
        """The earliest and latest `time` of a table with one (lag, events, annotations);
        None if it is empty."""
        lo, hi = self.db.execute(
            f"SELECT MIN(time), MAX(time) FROM {TABLES[table].name}"
        ).fetchone()
        if table == "lag":
            for a, b in self._folded_rows("SELECT MIN(second), MAX(second) FROM folded_lag"):
                if a is not None:
                    lo = a if lo is None else min(lo, a)
                    hi = b if hi is None else max(hi, b)
        return None if lo is None else (float(lo), float(hi))

    def count(self, table: str) -> int:
        """The rows of one table."""
        return int(self.db.execute(f"SELECT COUNT(*) FROM {TABLES[table].name}").fetchone()[0])

    def write_buckets(
        self, origin: float, width: float, bins_per_decade: int, min_latency: float
    ) -> Iterator[tuple[int, str, int | None, int, float | None]]:
        """(bucket, outcome, latency bin, count, slowest) of every attempt with a time, in
        buckets of `width` seconds from `origin` and log bins of latency (`bins_per_decade`
        per factor of ten, latencies below `min_latency` in the lowest): SQLite groups them
        in C, so no Python runs per attempt."""
        ensure_math(self.db)
        # Folded seconds (their latency bins are `FOLD_BINS_PER_DECADE` ones, the report's)
        # fall in the bucket of their second's middle.
        folded = self._union(
            f"SELECT CAST((second + 0.5 - :origin) / :width AS INTEGER), outcome, "
            f"NULLIF(bin, {-(2**31)}), n, top FROM folded_writes"
        )
        yield from self.db.execute(
            "SELECT b, outcome, bin, SUM(n), MAX(top) FROM ("
            f"SELECT CAST(({_WHEN} - :origin) / :width AS INTEGER) AS b, outcome, "
            "CAST(FLOOR(:bins * LOG10(MAX(lat, :least))) AS INTEGER) AS bin, COUNT(*) AS n, "
            f"MAX(lat) AS top FROM (SELECT outcome, invoke_wall, complete_wall, {_LATENCY} AS lat "
            "FROM attempts WHERE invoke_wall > 0) GROUP BY 1, 2, 3"
            f"{folded}) GROUP BY b, outcome, bin ORDER BY b, outcome, bin",
            {"origin": origin, "width": width, "bins": bins_per_decade, "least": min_latency},
        )

    def lag_buckets(
        self, origin: float, width: float
    ) -> Iterator[tuple[int, str, float | None, int]]:
        """(bucket, node, worst lag, samples saying unknown) per node and bucket."""
        folded = self._union(
            "SELECT CAST((second + 0.5 - :origin) / :width AS INTEGER), node, worst, unknown "
            "FROM folded_lag"
        )
        yield from self.db.execute(
            "SELECT b, node, MAX(w), SUM(u) FROM (SELECT CAST((time - :origin) / :width AS "
            "INTEGER) AS b, node, MAX(seconds) AS w, SUM(seconds IS NULL) AS u FROM lag "
            f"GROUP BY node, b{folded}) GROUP BY node, b ORDER BY node, b",
            {"origin": origin, "width": width},
        )

    def events(self, limit: int) -> Iterator[tuple[float, str, str | None]]:
        """(time, kind, detail) of the first `limit` events."""
        for t, kind, detail in self.db.execute(
            "SELECT time, kind, detail FROM events ORDER BY id LIMIT ?", (limit,)
        ):
            yield float(t), str(kind), detail

    def last_event_detail(self, kind: str) -> str | None:
        row = self.db.execute(
            "SELECT detail FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)
        ).fetchone()
        return None if row is None else row[0]

    def last_verification(self) -> tuple[float, float, str] | None:
        """(started, finished, verdict JSON) of the last verification journaled."""
        row = self.db.execute(
            "SELECT started, finished, verdict FROM verifications ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (float(row[0]), float(row[1]), str(row[2]))

    # -- incremental verification (checker.verify.incremental) ----------------------------------
    def first_attempt_since(self, wall: float) -> int | None:
        """The id of the first attempt journaled at or after `wall` (invoke time), by bisecting
        the primary key: attempts are journaled in about the order they started, so a few
        dozen seeks find it however long the journal. None: no attempt since then."""
        # Two subqueries: SQLite answers a lone MIN or MAX by one seek, both at once by a scan.
        lo, hi = self.db.execute(
            "SELECT (SELECT MIN(id) FROM attempts), (SELECT MAX(id) FROM attempts)"
        ).fetchone()
        if hi is None or self._invoked_at(int(hi)) < wall:
            return None
        lo, hi = int(lo), int(hi)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._invoked_at(mid) < wall:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _invoked_at(self, attempt_id: int) -> float:
        row = self.db.execute(
            "SELECT invoke_wall FROM attempts WHERE id >= ? ORDER BY id LIMIT 1", (attempt_id,)
        ).fetchone()
        return math.inf if row is None else float(row[0])

    def lowest_row_id_from(self, attempt_id: int) -> int | None:
        """The lowest row id of the attempts journaled from `attempt_id` on: a range of the
        primary key (`+ 0`: not a walk of the row_id index), so its cost follows the attempts
        since, not the journal."""
        found = self.db.execute(
            "SELECT MIN(row_id + 0) FROM attempts WHERE id >= ?", (attempt_id,)
        ).fetchone()[0]
        return None if found is None else int(found)

    # -- semi-sync ------------------------------------------------------------------------------
    def semi_sync_samples(self) -> list[Sample]:
        return load_samples(self.db)


_FOLDED = "folded: verified clean, then summarised by retention (checker.journal.compact)"


def _folded(writer_id: str, seq: int) -> Attempt:
    """The attempt a folded seq stands for: an acknowledged write whose record was deleted once
    a verification had vouched for it. Its payload and row id are unknown here: its row is
    judged against its folded grain (`folded_grains`, `checker.core.ledger.folded`), and for
    anything else it counts as a write whose row may exist (never unexpected)."""
    return Attempt(writer_id, seq, None, Outcome.INDETERMINATE, 0.0, error=_FOLDED)


def is_folded(a: Attempt) -> bool:
    """Whether `a` stands for a folded acknowledged write (`lookup`), not a journaled attempt."""
    return a.error is _FOLDED and a.payload_sha256 is None


def _window(writer_id: str, after: int, upto: int) -> Iterator[Attempt]:
    for seq in range(after + 1, upto + 1):
        yield unjournaled(writer_id, seq)


def load_samples(db: sqlite3.Connection) -> list[Sample]:
    """Every semi-sync sample journaled, from a journal's SQLite connection; [] for a journal
    written before the sampler existed."""
    try:
        return [_sample(r) for r in db.execute(_SAMPLES)]
    except sqlite3.OperationalError:
        return []


_SAMPLES = "SELECT time, server, enabled, active, clients, yes_tx, no_tx FROM semi_sync ORDER BY id"


def _sample(r: Any) -> Sample:
    def flag(v: Any) -> bool | None:
        return None if v is None else bool(v)

    return Sample(
        time=float(r[0]),
        server=r[1],
        enabled=flag(r[2]),
        active=flag(r[3]),
        clients=r[4],
        yes_tx=r[5],
        no_tx=r[6],
    )


def ensure_math(db: sqlite3.Connection) -> None:
    """LOG10 and FLOOR exist only in SQLite builds with math functions; supply them otherwise."""
    try:
        db.execute("SELECT LOG10(10), FLOOR(1.5)").fetchone()
    except sqlite3.OperationalError:
        db.create_function("LOG10", 1, _log10, deterministic=True)
        db.create_function("FLOOR", 1, _floor, deterministic=True)


def _log10(x: float | None) -> float | None:
    return None if x is None or x <= 0 else math.log10(x)


def _floor(x: float | None) -> float | None:
    return None if x is None else float(math.floor(x))
