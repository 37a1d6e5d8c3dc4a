"""Chunk aggregates, their comparison, and chunked verification agreeing with whole analysis."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.core.analysis import analyze, check_chunk, count_outcomes, verdict_from_chunks
from checker.core.chunks import (
    ChunkAggregate,
    aggregate_rows,
    chunk_bounds,
    diff_chunks,
    expected_chunks,
    in_range,
)
from checker.core.history import Row, partition
from checker.core.ledger import AttemptIndex, duplicated_groups
from checker.core.notation import scenario
from checker.core.verdict import NodeVerdict, Validity, Verdict
from tests.core.sim import FAULTS, Run, runs

LEDGER = ("lost", "duplicated", "corrupted", "unexpected")


def crc(row: Row) -> int:
    """Stand-in for CRC32(CONCAT_WS('|', id, writer_id, seq, SHA2(payload, 256), checksum))."""
    return zlib.crc32("|".join(map(str, row)).encode())


def test_bounds_cover_the_id_range_in_order() -> None:
    """Chunk bounds are inclusive, consecutive and end at the last id."""
    assert chunk_bounds(1, 10, 4) == [(1, 4), (5, 8), (9, 10)]
    assert chunk_bounds(1, 0, 4) == []
    with pytest.raises(ValueError):
        chunk_bounds(1, 10, 0)


def test_expected_aggregates_equal_those_of_a_correct_node() -> None:
    """The history's prediction matches, bit for bit, a node holding exactly the acked rows."""
    h, (state,) = scenario("a:1 | a:2 | b:1 | a:3 fail | b:2", "mysql-0 primary : a:1 a:2 b:1 b:2")
    assert state.rows is not None
    bounds = chunk_bounds(1, 4, 3)
    assert expected_chunks(h.attempts, bounds, crc) == aggregate_rows(state.rows, bounds, crc)
    assert [c.count for c in aggregate_rows(state.rows, bounds, crc)] == [3, 1]


def test_diff_names_the_ranges_and_nodes_that_differ() -> None:
    """Only ranges where some node differs from the reference come back, with those nodes."""
    diffs = diff_chunks(
        {
            "expected": [ChunkAggregate(1, 5, 5, 11), ChunkAggregate(6, 10, 2, 3)],
            "mysql-0": [ChunkAggregate(1, 5, 5, 11), ChunkAggregate(6, 10, 3, 9)],
            "mysql-1": [ChunkAggregate(1, 5, 4, 10), ChunkAggregate(6, 10, 3, 9)],
        },
        reference="expected",
    )
    assert [(d.lo, d.hi, d.nodes) for d in diffs] == [
        (1, 5, ("mysql-1",)),
        (6, 10, ("mysql-0", "mysql-1")),
    ]
    assert diffs[0].aggregates["mysql-1"] == (4, 10)


def test_a_missing_aggregate_counts_as_an_empty_range() -> None:
    """A node that skipped an empty range agrees with one that reported it as empty."""
    diffs = diff_chunks(
        {
            "p": [ChunkAggregate(1, 5, 0, 0), ChunkAggregate(6, 9, 1, 4)],
            "r": [ChunkAggregate(6, 9, 1, 4)],
        },
        reference="p",
    )
    assert diffs == []
    (diff,) = diff_chunks({"p": [ChunkAggregate(1, 5, 2, 7)], "r": []}, reference="p")
    assert diff.aggregates == {"p": (2, 7), "r": None}


def _chunked(run: Run, size: int) -> Verdict:
    """Verify the primary as the verifier does: aggregates first, rows only where they differ."""
    primary = run.state(run.primary)
    rows = list(primary.rows or ())
    attempts = run.history.attempts
    ids = [r.id for r in rows] + [a.row_id for a in attempts if a.row_id is not None]
    bounds = chunk_bounds(1, max(ids, default=0), size)
    diffs = diff_chunks(
        {
            "expected": expected_chunks(attempts, bounds, crc),
            run.primary: aggregate_rows(rows, bounds, crc),
        },
        reference="expected",
    )
    acked, others = partition(attempts)
    lookup = AttemptIndex(acked, others)
    checks = [
        check_chunk(
            run.primary,
            [r for r in rows if d.lo <= r.id <= d.hi],
            in_range(attempts, d.lo, d.hi),
            lookup,
            lo=d.lo,
            hi=d.hi,
        )
        for d in diffs
    ]
    keys: dict[tuple[str, int], list[int]] = {}
    for r in rows:
        keys.setdefault((r.writer_id, r.seq), []).append(r.id)
    groups = [(w, s, found) for (w, s), found in keys.items() if len(found) > 1]
    return verdict_from_chunks(
        checks,
        counts=count_outcomes(attempts),
        nodes={run.primary: NodeVerdict(Validity.VALID, "primary")},
        anomalies=duplicated_groups(run.primary, groups),
    )


def _ledger_view(v: Verdict) -> tuple[object, ...]:
    return (
        {t: v.anomaly_counts[t] for t in LEDGER},
        [a for a in v.anomalies if a.type in LEDGER],
        v.counts,
        v.recovered,
    )


@st.composite
def _faulty_runs(draw: st.DrawFn) -> Run:
    run = draw(runs(max_attempts=30))
    name = draw(st.sampled_from([None, *LEDGER]))
    if name is None:
        return run
    fault, applicable = FAULTS[name]
    return draw(fault(run))[0] if applicable(run) else run


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(_faulty_runs(), st.integers(1, 8))
def test_chunked_verification_finds_what_whole_analysis_finds(run: Run, size: int) -> None:
    """Per-range checks of the ranges that differ, merged, report the ledger findings of analyze."""
    whole = analyze(run.history, [run.state(run.primary)])
    assert _ledger_view(_chunked(run, size)) == _ledger_view(whole)
