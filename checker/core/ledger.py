"""Detectors for the sequenced-write (ledger) workload, run on the primary's final state.

The rows of a node (all of them, or one id range at a time) are first matched against the
acknowledged attempts expected there, by row id: `match_rows` is one pass that keeps only what
does not fit (the `Match`). Each detector then looks at that small remainder:

- `lost`: acknowledged, and no row with its (writer, seq) anywhere. Only OK attempts are ever
  expected, so an indeterminate write is never lost, present or absent.
- `duplicated`: one (writer, seq) in more than one row.
- `corrupted`: a row whose payload hash differs from its stored checksum or from the hash the
  writer sent.
- `unexpected`: a row whose (writer, seq) was never attempted, or was attempted and reported
  FAILED (which must certainly not have applied).
- `recovered`: an INDETERMINATE attempt found present: reported, not an anomaly.

Chunked verification runs `match_rows` per id range with the attempts of that range
(`chunks.in_range`) and a `lookup` for any other attempt, then passes every range's Match of the
node to `lost` at once: a row can sit in another range than its id says. Duplicates that span
ranges come from the server's `GROUP BY writer_id, seq HAVING COUNT(*) > 1` through
`duplicated_groups`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter

from checker.core.history import Attempt, Key, Outcome, Row
from checker.core.verdict import Anomaly, Recovery

__all__ = [
    "AttemptIndex",
    "FoldedGrain",
    "Match",
    "corrupted",
    "duplicated",
    "duplicated_groups",
    "folded",
    "lost",
    "match_rows",
    "recovered",
    "unexpected",
    "unregistered",
]

_row_id = attrgetter("row_id")


class AttemptIndex(Mapping[Key, Attempt]):
    """Attempts by (writer, seq), the acknowledged ones indexed only when first needed.

    Rows that need a look-up are the odd ones, mostly indeterminate writes found present, so the
    common case touches only the small map of non-OK attempts; the map of acknowledged attempts
    is built the first time a key is not found there. Keys are unique in a history: a writer
    that retries takes a new seq.
    """

    __slots__ = ("_acked", "_acked_map", "_others")

    def __init__(self, acked: Sequence[Attempt], others: Iterable[Attempt]) -> None:
        self._acked = acked
        self._acked_map: dict[Key, Attempt] | None = None
        self._others = {(a.writer_id, a.seq): a for a in others}

    def _full(self) -> dict[Key, Attempt]:
        if self._acked_map is None:
            self._acked_map = {(a.writer_id, a.seq): a for a in self._acked}
        return self._acked_map

    def __getitem__(self, key: Key) -> Attempt:
        found = self._others.get(key)
        return found if found is not None else self._full()[key]

    def __iter__(self) -> Iterator[Key]:
        yield from self._others
        yield from (k for k in self._full() if k not in self._others)

    def __len__(self) -> int:
        return len(self._others) + sum(1 for k in self._full() if k not in self._others)


@dataclass(frozen=True, slots=True)
class Match:
    """What did not fit when a node's rows were matched with the writes expected there.

    `lo`/`hi` bound the id range checked (None: the whole table). `odd` are rows not at the id
    their acknowledged attempt reported (extra, recovered, duplicate or moved rows); `missing`
    the expected attempts with no row at their id; `mismatched` rows at the right id with the
    right key but another payload hash; `bad_checksum` rows whose payload hash differs from the
    checksum stored with it.
    """

    node: str
    lo: int | None
    hi: int | None
    rows: int
    odd: tuple[Row, ...]
    missing: tuple[Attempt, ...]
    mismatched: tuple[tuple[Row, Attempt], ...]
    bad_checksum: tuple[Row, ...]

    def covers(self, row_id: int) -> bool:
        return (self.lo is None or self.lo <= row_id) and (self.hi is None or row_id <= self.hi)


def match_rows(
    node: str,
    rows: Sequence[Row],
    expected: Sequence[Attempt],
    *,
    lo: int | None = None,
    hi: int | None = None,
) -> Match:
    """Match `rows` of `node` with the acknowledged attempts `expected` in the same id range.

    One pass over the rows with a dict keyed by row id: ids are ints, so no key tuple is built
    per row, which is what keeps a million rows well under a second.
    """
    by_id = dict(zip(map(_row_id, expected), expected, strict=True))
    loose: list[Attempt] = []
    if len(by_id) != len(expected) or None in by_id:
        # Attempts without a row id (or two claiming one id) can only be matched by key.
        by_id = {}
        for a in expected:
            if a.row_id is None or a.row_id in by_id:
                loose.append(a)
            else:
                by_id[a.row_id] = a
    pop = by_id.pop
    odd: list[Row] = []
    mismatched: list[tuple[Row, Attempt]] = []
    for row in rows:
        a = pop(row[0], None)
        if a is None:
            odd.append(row)
        elif a.seq != row[2] or a.writer_id != row[1]:
            odd.append(row)
            loose.append(a)
        elif a.payload_sha256 != row[3]:
            mismatched.append((row, a))
    bad = tuple(row for row in rows if row[3] != row[4])
    return Match(
        node=node,
        lo=lo,
        hi=hi,
        rows=len(rows),
        odd=tuple(odd),
        missing=(*by_id.values(), *loose),
        mismatched=tuple(mismatched),
        bad_checksum=bad,
    )


def _key(row: Row) -> Key:
    return (row[1], row[2])


def lost(matches: Iterable[Match]) -> list[Anomaly]:
    """Acknowledged writes with no row anywhere in the given matches of one node.

    Pass every range's Match of the node together: a write missing at its id may be found as
    an odd row in another range, and then it is not lost.
    """
    missing: dict[Key, tuple[str, Attempt]] = {}
    present: set[Key] = set()
    for m in matches:
        for a in m.missing:
            missing[(a.writer_id, a.seq)] = (m.node, a)
        present.update(map(_key, m.odd))
    return [
        Anomaly(
            "lost",
            node,
            a.writer_id,
            a.seq,
            {
                "row_id": a.row_id,
                "acked_at": a.complete_wall,
                "acked_by": a.server,
                "acked_via": a.node,
            },
        )
        for key, (node, a) in sorted(missing.items())
        if key not in present
    ]


def duplicated(match: Match, lookup: Mapping[Key, Attempt]) -> list[Anomaly]:
    """(writer, seq) pairs present in more than one row of the matched range."""
    copies: dict[Key, list[int]] = {}
    for row in match.odd:
        copies.setdefault(_key(row), []).append(row[0])
    missing = {(a.writer_id, a.seq) for a in match.missing}
    found: list[Anomaly] = []
    for key, where in sorted(copies.items()):
        ids = list(where)
        a = lookup.get(key)
        # The acknowledged copy sits at its own id when that id is in range and not missing.
        if (
            a is not None
            and a.outcome is Outcome.OK
            and a.row_id is not None
            and a.row_id not in ids
            and match.covers(a.row_id)
            and key not in missing
        ):
            ids = [a.row_id, *ids]
        if len(ids) > 1:
            found.append(
                Anomaly(
                    "duplicated",
                    match.node,
                    key[0],
                    key[1],
                    {"ids": sorted(ids), "copies": len(ids)},
                )
            )
    return found


def duplicated_groups(node: str, groups: Iterable[tuple[str, int, Sequence[int]]]) -> list[Anomaly]:
    """Duplicates from the server's `GROUP BY writer_id, seq HAVING COUNT(*) > 1` (with ids)."""
    return [
        Anomaly("duplicated", node, writer, seq, {"ids": sorted(ids), "copies": len(ids)})
        for writer, seq, ids in sorted(groups, key=lambda g: (g[0], g[1]))
        if len(ids) > 1
    ]


def corrupted(match: Match, lookup: Mapping[Key, Attempt]) -> list[Anomaly]:
    """Rows whose payload hash differs from their stored checksum or from the written hash."""
    expected: dict[int, str] = {
        row[0]: a.payload_sha256 for row, a in match.mismatched if a.payload_sha256
    }
    for row in match.odd:
        a = lookup.get(_key(row))
        if a is not None and a.payload_sha256 is not None and a.payload_sha256 != row[3]:
            expected[row[0]] = a.payload_sha256
    rows = {row[0]: row for row in match.bad_checksum}
    rows.update((row[0], row) for row, _ in match.mismatched)
    rows.update((row[0], row) for row in match.odd if row[0] in expected)
    found = []
    for row_id in sorted(rows):
        row = rows[row_id]
        reasons = []
        if row[3] != row[4]:
            reasons.append("stored_checksum")
        if row_id in expected:
            reasons.append("written_hash")
        found.append(
            Anomaly(
                "corrupted",
                match.node,
                row[1],
                row[2],
                {
                    "id": row_id,
                    "mismatch": reasons,
                    "actual_sha256": row[3],
                    "stored_sha256": row[4],
                    "written_sha256": expected.get(row_id),
                },
            )
        )
    return found


def unexpected(match: Match, lookup: Mapping[Key, Attempt]) -> list[Anomaly]:
    """Rows whose (writer, seq) was never attempted, or whose attempt was reported FAILED."""
    found = []
    for row in sorted(match.odd):
        a = lookup.get(_key(row))
        if a is None:
            evidence: dict[str, object] = {"id": row[0], "reason": "never_attempted"}
        elif a.outcome is Outcome.FAILED:
            evidence = {
                "id": row[0],
                "reason": "reported_failed",
                "error": a.error,
                "failed_at": a.complete_wall,
                "server": a.server,
            }
        else:
            continue
        found.append(Anomaly("unexpected", match.node, row[1], row[2], evidence))
    return found


def unregistered(node: str, rows: Iterable[tuple[int, str, int]]) -> list[Anomaly]:
    """Rows `(id, writer_id, seq)` whose writer belongs to no registered run: no checker wrote
    them, whatever their seq says."""
    return [
        Anomaly("unexpected", node, writer, seq, {"id": row_id, "reason": "unregistered_writer"})
        for row_id, writer, seq in sorted(rows)
    ]


def recovered(match: Match, lookup: Mapping[Key, Attempt]) -> list[Recovery]:
    """INDETERMINATE attempts whose row is present: they did apply."""
    found: dict[Key, Recovery] = {}
    for row in sorted(match.odd):
        key = _key(row)
        a = lookup.get(key)
        if a is not None and a.outcome is Outcome.INDETERMINATE and key not in found:
            found[key] = Recovery(match.node, key[0], key[1], row[0])
    return list(found.values())


@dataclass(frozen=True)
class FoldedGrain:
    """What retention kept of the acknowledged writes whose rows have ids in lo..hi (one grain)
    once it deleted their attempts: how many (`n`), the XOR of the CRC32 of their row text
    `id#writer_id#seq#sha256` (`x`), their row ids, and their first and last acknowledgement."""

    lo: int
    hi: int
    n: int
    x: int
    ids: frozenset[int]
    first: float | None
    last: float | None


_FOLDED_NOTE = "its attempt was verified, then summarised by retention: only its grain is known"


def folded(node: str, rows: Iterable[Row], grains: Iterable[FoldedGrain]) -> list[Anomaly]:
    """Rows of folded writes (`rows`: the node's rows whose (writer, seq) retention folded, in
    and around the grains) judged against their grains:

    - `corrupted`: a row whose payload hash differs from its stored checksum (named);
    - `lost`: a folded row id with no row of a folded write at it (named by row id; the
      writer, seq and exact acknowledgement were folded, the grain's first and last are given);
    - `corrupted` for the grain: every folded row id holds a folded write, but the count or
      the XOR of their row text differs (a row rewritten whole, payload and checksum alike).

    A folded write's row at an id retention did not fold there is left to the duplicate check
    (another copy of it) and to `lost` (the id it left)."""
    by_id: dict[int, Row] = {}
    found: list[Anomaly] = []
    for row in rows:
        by_id[row[0]] = row
        if row[3] != row[4]:
            found.append(
                Anomaly(
                    "corrupted",
                    node,
                    row[1],
                    row[2],
                    {
                        "id": row[0],
                        "mismatch": ["stored_checksum"],
                        "actual_sha256": row[3],
                        "stored_sha256": row[4],
                        "written_sha256": None,
                        "folded": _FOLDED_NOTE,
                    },
                )
            )
    bad = {a.evidence["id"] for a in found}
    for g in grains:
        acked = {
            "acked_at": None,
            "acked_by": None,
            "acked_via": None,
            "acked_between": [g.first, g.last],
            "folded": _FOLDED_NOTE,
        }
        missing = sorted(i for i in g.ids if i not in by_id)
        found.extend(
            Anomaly("lost", node, None, None, {"row_id": i, "grain": [g.lo, g.hi], **acked})
            for i in missing
        )
        here = [by_id[i] for i in sorted(g.ids) if i in by_id]
        if missing or bad.intersection(g.ids):
            continue
        x = 0
        for r in here:
            x ^= zlib.crc32(f"{r[0]}#{r[1]}#{r[2]}#{r[4]}".encode())
        if (len(here), x) != (g.n, g.x):
            found.append(
                Anomaly(
                    "corrupted",
                    node,
                    None,
                    None,
                    {
                        "grain": [g.lo, g.hi],
                        "mismatch": ["folded_grain"],
                        "rows": len(here),
                        "expected_rows": g.n,
                        "folded": _FOLDED_NOTE,
                    },
                )
            )
    return found
