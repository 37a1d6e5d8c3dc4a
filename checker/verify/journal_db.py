"""SQL over the journal's SQLite file for a verification, one statement at a time, streamed
where it is long."""

from __future__ import annotations

import operator
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from itertools import groupby
from operator import itemgetter
from typing import Any

from checker.core.history import Attempt, Key, Outcome
from checker.core.verdict import Counts
from checker.journal import Journal

_UNJOURNALED = "not in the journal: the checker stopped before recording it"
ATTEMPT_COLUMNS = (
    "writer_id, seq, payload_sha256, outcome, invoke_wall, complete_wall, invoke_mono, "
    "complete_mono, server, node, row_id, error"
)
_ROW_TEXT = "row_id || '#' || writer_id || '#' || seq || '#' || payload_sha256"
_MAX_ID = 2**63 - 1
FETCH_BATCH = 20_000
LOOKUP_BATCH = 500


class JournalDB:
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
        while batch := cur.fetchmany(FETCH_BATCH):
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
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE row_id BETWEEN ? AND ? "
            "AND outcome = 'ok' ORDER BY row_id",
            (lo, hi),
        )
        return [attempt(r) for r in found]

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
            for i in range(0, len(ordered), LOOKUP_BATCH):
                part = ordered[i : i + LOOKUP_BATCH]
                marks = ", ".join("?" * len(part))
                for r in self.db.execute(
                    f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE writer_id = ? "
                    f"AND seq IN ({marks})",
                    (writer, *part),
                ):
                    found[(r[0], r[1])] = attempt(r)
            upto = self.reserved.get(writer, 0)
            for seq in ordered:
                if (writer, seq) not in found and 1 <= seq <= upto:
                    found[(writer, seq)] = _unjournaled(writer, seq)
        return found

    def unplaced_acks(self) -> Iterator[list[Attempt]]:
        """Acknowledged attempts without a row id, in batches: they can only be found by key."""
        cur = self.db.execute(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE row_id IS NULL AND outcome = 'ok' "
            "ORDER BY writer_id, seq"
        )
        while batch := cur.fetchmany(LOOKUP_BATCH):
            yield [attempt(r) for r in batch]

    def max_seq(self, writer_id: str) -> int:
        found = self.db.execute(
            "SELECT MAX(seq) FROM attempts WHERE writer_id = ?", (writer_id,)
        ).fetchone()[0]
        return int(found or 0)

    def outcomes(self, after: int = -1, upto: int = _MAX_ID) -> Outcomes:
        """Attempts with ids in after+1..upto by outcome (`servers`: see `servers()`)."""
        total, ok, failed = self.db.execute(
            "SELECT COUNT(*), TOTAL(outcome = 'ok'), TOTAL(outcome = 'failed') FROM attempts "
            "WHERE id > ? AND id <= ?",
            (after, upto),
        ).fetchone()
        return Outcomes(int(total), int(ok), int(failed), len(self.servers(after, upto)))

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
                x = reduce(operator.xor, map(zlib.crc32, map(str.encode, texts)), x)
                found[g] = (n + len(texts), x)
        return found

    def counts(self, outcomes: Outcomes, live_seqs: Mapping[str, int] | None = None) -> Counts:
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
class Outcomes:
    total: int
    ok: int
    failed: int
    servers: int


def attempt(r: Sequence[Any]) -> Attempt:
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
