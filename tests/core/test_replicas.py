"""Replica and read detectors: divergent, errant, stale, non_monotonic."""

from __future__ import annotations

import random

from checker.core import replicas
from checker.core.chunks import ChunkAggregate, diff_chunks
from checker.core.history import Read, Row
from checker.core.notation import parse_history, scenario


def _rows(text: str, history: str = "") -> list[Row]:
    _, (state,) = scenario(history, f"n primary : {text}")
    assert state.rows is not None
    return list(state.rows)


def test_identical_replica_does_not_diverge_whatever_the_row_order() -> None:
    """A replica with the primary's rows, in any order, is not divergent."""
    rows = _rows("a:1 a:2 b:1 b:2")
    shuffled = rows[:]
    random.Random(4).shuffle(shuffled)
    assert replicas.divergent_rows(rows, shuffled, node="r", reference="p") == []


def test_missing_extra_and_changed_rows_each_diverge() -> None:
    """Each differing row id is one divergent anomaly saying how it differs."""
    history = "a:1 | a:2 | a:3"
    primary = _rows("a:1 a:2 a:3", history)
    replica = _rows("a:1 a:3~ z:9", history)
    found = replicas.divergent_rows(primary, replica, node="mysql-2", reference="mysql-0")
    summary = [(x.node, x.writer_id, x.seq, x.evidence["id"], x.evidence["kind"]) for x in found]
    assert summary == [
        ("mysql-2", "a", 2, 2, "missing"),
        ("mysql-2", "a", 3, 3, "differs"),
        ("mysql-2", "z", 9, 4, "extra"),
    ]
    assert found[1].evidence["fields"] == ["payload_sha256", "checksum"]
    assert found[1].evidence["reference"] == "mysql-0"


def test_chunk_level_divergence_names_the_range_and_both_aggregates() -> None:
    """Without rows, a differing chunk is reported with its range and both aggregates."""
    diffs = diff_chunks(
        {
            "mysql-0": [ChunkAggregate(1, 10, 10, 77), ChunkAggregate(11, 20, 3, 5)],
            "mysql-1": [ChunkAggregate(1, 10, 9, 70), ChunkAggregate(11, 20, 3, 5)],
        },
        reference="mysql-0",
    )
    (anomaly,) = replicas.divergent_chunks(diffs)
    assert anomaly.node == "mysql-1" and anomaly.writer_id is None
    assert anomaly.evidence == {
        "lo": 1,
        "hi": 10,
        "reference": "mysql-0",
        "kind": "chunk",
        "count": 9,
        "checksum": 70,
        "reference_count": 10,
        "reference_checksum": 77,
    }


def test_errant_gtids_are_reported_with_the_difference() -> None:
    """A replica holding a GTID the primary lacks is errant, and the evidence names it."""
    primary = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10"
    replica = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-12,5a33bc69-93ec-33a3-9a55-ea2cc1641784:4"
    (anomaly,) = replicas.errant(primary, replica, node="mysql-2", flavor="mysql")
    assert anomaly.node == "mysql-2"
    assert anomaly.evidence["errant"] == (
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:11-12,5a33bc69-93ec-33a3-9a55-ea2cc1641784:4"
    )
    assert replicas.errant(replica, primary, node="mysql-2", flavor="mysql") == []


def test_read_missing_a_write_acked_before_the_lag_bound_is_stale() -> None:
    """A read issued more than lag_bound after an ack, not showing it, is stale."""
    h = parse_history("w:1 t=1 | w:2 t=2 | w:3 t=3 | w:4 ? t=4")
    reads = [
        Read(7.9, "w", 1, "mysql-1"),  # deadline 2.9: w:2 acked at 2 was missed
        Read(7.9, "w", 3, "mysql-2"),  # saw everything
        Read(6.5, "w", 1, "mysql-1"),  # deadline 1.5: w:2 not yet due
        Read(20, "w", 3, "mysql-1"),  # w:4 was never acknowledged
    ]
    (anomaly,) = replicas.stale(h.attempts, reads, lag_bound=5.0)
    assert (anomaly.node, anomaly.writer_id, anomaly.seq) == ("mysql-1", "w", 2)
    assert anomaly.evidence["read_at"] == 7.9
    assert anomaly.evidence["acked_at"] == 2.0
    assert anomaly.evidence["missed_acked"] == 1  # w:3, acked at 3, was not due yet
    assert replicas.stale(h.attempts, reads, lag_bound=10.0) == []


def test_a_read_seeing_nothing_is_stale_once_a_write_is_due() -> None:
    """A read that sees no row at all of a writer with a due ack is stale."""
    h = parse_history("w:1 t=1 | v:1 t=1")
    (anomaly,) = replicas.stale(h.attempts, [Read(30, "w", None, "mysql-1")])
    assert (anomaly.writer_id, anomaly.seq, anomaly.evidence["max_seq_visible"]) == ("w", 1, None)


def test_view_going_back_on_one_node_is_non_monotonic() -> None:
    """A later read of the same node showing a lower seq is non-monotonic."""
    reads = [
        Read(1, "w", 5, "mysql-1"),
        Read(2, "w", 7, "mysql-1"),
        Read(3, "w", 6, "mysql-1"),
        Read(3, "w", 2, "mysql-2"),  # another node may be behind
        Read(4, "w", None, "mysql-1"),
    ]
    found = replicas.non_monotonic(reads)
    assert [
        (x.node, x.seq, x.evidence["read_at"], x.evidence["max_seq_visible"]) for x in found
    ] == [
        ("mysql-1", 7, 3, 6),
        ("mysql-1", 7, 4, None),
    ]
    assert found[0].evidence["earlier_read_at"] == 2


def test_reads_at_the_same_time_are_not_ordered() -> None:
    """Two reads issued at the same instant cannot contradict each other."""
    reads = [Read(1, "w", 5, "mysql-1"), Read(1, "w", 3, "mysql-1")]
    assert replicas.non_monotonic(reads) == []


def test_reads_without_a_known_backend_are_not_judged_for_monotonicity() -> None:
    """Through a load balancer with no backend identity, going back is not an anomaly."""
    reads = [Read(1, "w", 5), Read(2, "w", 3)]
    assert replicas.non_monotonic(reads) == []


def test_read_detectors_do_not_depend_on_input_order() -> None:
    """Shuffling the reads gives the same stale and non-monotonic findings."""
    h = parse_history("w:1 t=1 | w:2 t=2 | v:1 t=2 | w:3 t=3")
    reads = [
        Read(t, w, m, n)
        for t, w, m, n in [
            (9, "w", 1, "a"),
            (10, "w", 3, "a"),
            (11, "w", 2, "a"),
            (11, "v", None, "b"),
            (12, "v", 1, "b"),
            (13, "v", None, "b"),
            (9, "w", 2, "b"),
        ]
    ]
    expected = (replicas.stale(h.attempts, reads), replicas.non_monotonic(reads))
    assert expected[0] and expected[1]
    rng = random.Random(7)
    for _ in range(20):
        shuffled = reads[:]
        rng.shuffle(shuffled)
        assert (replicas.stale(h.attempts, shuffled), replicas.non_monotonic(shuffled)) == expected
