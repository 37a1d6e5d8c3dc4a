"""Per id-range aggregates: how nodes are compared without reading every row.

The verifier asks each node for `(count, checksum)` over id ranges, computed server-side, and
compares them with each other and with what the checker's own history predicts. Only ranges
that differ are fetched as rows. The core knows nothing of SQL: the row hash is passed in by
the adapter so that the expected aggregate can be made bit-identical with the server's (for
example CRC32 of the concatenated columns, combined with XOR like `BIT_XOR`).
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

# ChunkAggregate is a record and lives with the others; it is re-exported here.
from checker.core.history import Attempt, ChunkAggregate, Outcome, Row

__all__ = [
    "ChunkAggregate",
    "ChunkDiff",
    "Combine",
    "RowHash",
    "aggregate_rows",
    "chunk_bounds",
    "diff_chunks",
    "expected_chunks",
    "in_range",
]

RowHash = Callable[[Row], int]
"""Hash of one row, as the server computes it in its aggregate query."""
Combine = Callable[[int, int], int]
"""Order-independent fold of row hashes (XOR by default, like `BIT_XOR`)."""


@dataclass(frozen=True, slots=True)
class ChunkDiff:
    """One id range on which some nodes disagree with the reference.

    `aggregates` holds `(count, checksum)` per node, None where the node reported no aggregate
    for the range (read as an empty range).
    """

    lo: int
    hi: int
    reference: str
    nodes: tuple[str, ...]
    aggregates: Mapping[str, tuple[int, int] | None]


def chunk_bounds(first_id: int, last_id: int, size: int) -> list[tuple[int, int]]:
    """Inclusive id ranges of `size` ids covering `first_id..last_id`, in order."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    return [(lo, min(lo + size - 1, last_id)) for lo in range(first_id, last_id + 1, size)]


def in_range(attempts: Iterable[Attempt], lo: int, hi: int) -> list[Attempt]:
    """Acknowledged attempts whose row id lies in `lo..hi`: what a chunk is expected to hold."""
    ok = Outcome.OK
    return [
        a for a in attempts if a.outcome is ok and a.row_id is not None and lo <= a.row_id <= hi
    ]


def _fold(
    items: Iterable[tuple[int, int]],
    bounds: Sequence[tuple[int, int]],
    combine: Combine,
    initial: int,
) -> list[ChunkAggregate]:
    """Fold `(id, hash)` pairs into the range of `bounds` (sorted, disjoint) each id falls in."""
    los = [lo for lo, _ in bounds]
    counts = [0] * len(bounds)
    sums = [initial] * len(bounds)
    for row_id, value in items:
        i = bisect.bisect_right(los, row_id) - 1
        if i < 0 or row_id > bounds[i][1]:
            continue
        counts[i] += 1
        sums[i] = combine(sums[i], value)
    return [
        ChunkAggregate(lo, hi, count, checksum)
        for (lo, hi), count, checksum in zip(bounds, counts, sums, strict=True)
    ]


def aggregate_rows(
    rows: Iterable[Row],
    bounds: Sequence[tuple[int, int]],
    row_hash: RowHash,
    *,
    combine: Combine = operator.xor,
    initial: int = 0,
) -> list[ChunkAggregate]:
    """The aggregates a node holding `rows` would report for `bounds`."""
    return _fold(((row[0], row_hash(row)) for row in rows), bounds, combine, initial)


def expected_chunks(
    attempts: Iterable[Attempt],
    bounds: Sequence[tuple[int, int]],
    row_hash: RowHash,
    *,
    combine: Combine = operator.xor,
    initial: int = 0,
) -> list[ChunkAggregate]:
    """The aggregates the history predicts: one row per acknowledged attempt with a row id.

    Indeterminate attempts are left out on purpose: they may or may not be there, so a range
    holding one differs from the prediction and is fetched, which is how it gets `recovered`.
    """
    ok = Outcome.OK
    return _fold(
        (
            (
                a.row_id,
                row_hash(Row(a.row_id, a.writer_id, a.seq, a.payload_sha256, a.payload_sha256)),
            )
            for a in attempts
            if a.outcome is ok and a.row_id is not None and a.payload_sha256 is not None
        ),
        bounds,
        combine,
        initial,
    )


def _value(aggregate: ChunkAggregate | None) -> tuple[int, int] | None:
    return None if aggregate is None else (aggregate.count, aggregate.checksum)


def _same(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    # An absent aggregate stands for an empty range: adapters may skip ranges with no rows.
    if a is None or b is None:
        other = b if a is None else a
        return other is None or other[0] == 0
    return a == b


def diff_chunks(
    chunks: Mapping[str, Sequence[ChunkAggregate]], *, reference: str
) -> list[ChunkDiff]:
    """Id ranges where any node's aggregate differs from `reference`'s, in range order.

    `chunks` maps a node name (or a pseudo-node such as "expected") to its aggregates. Ranges are
    matched by `(lo, hi)`; a range one side lacks counts as empty there.
    """
    by_node = {node: {(c.lo, c.hi): c for c in aggs} for node, aggs in chunks.items()}
    ref = by_node.get(reference, {})
    ranges = sorted({rng for aggs in by_node.values() for rng in aggs})
    diffs: list[ChunkDiff] = []
    for rng in ranges:
        ref_value = _value(ref.get(rng))
        values = {node: _value(aggs.get(rng)) for node, aggs in sorted(by_node.items())}
        differing = tuple(
            node
            for node, value in values.items()
            if node != reference and not _same(ref_value, value)
        )
        if differing:
            diffs.append(ChunkDiff(rng[0], rng[1], reference, differing, values))
    return diffs
