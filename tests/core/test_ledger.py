"""Ledger detectors on the primary's rows: lost, duplicated, corrupted, unexpected, recovered."""

from __future__ import annotations

import zlib

from checker.core import ledger
from checker.core.history import History, NodeState, Row, partition
from checker.core.notation import payload_hash, scenario
from checker.core.verdict import Anomaly, Recovery


def _check(history: str, rows: str) -> tuple[dict[str, list[Anomaly]], list[Recovery]]:
    h, (state,) = scenario(history, f"mysql-0 primary : {rows}")
    return _run(h, state)


def _run(h: History, state: NodeState) -> tuple[dict[str, list[Anomaly]], list[Recovery]]:
    acked, others = partition(h.attempts)
    assert state.rows is not None
    m = ledger.match_rows(state.node, state.rows, acked)
    lookup = ledger.AttemptIndex(acked, others)
    found = {
        "lost": ledger.lost([m]),
        "duplicated": ledger.duplicated(m, lookup),
        "corrupted": ledger.corrupted(m, lookup),
        "unexpected": ledger.unexpected(m, lookup),
    }
    return found, ledger.recovered(m, lookup)


def _only(found: dict[str, list[Anomaly]]) -> dict[str, int]:
    return {k: len(v) for k, v in found.items() if v}


def test_every_acknowledged_write_present_is_clean() -> None:
    """Rows matching every acknowledged write exactly give no finding at all."""
    found, recovered = _check("a:1 | b:1 | a:2", "a:1 b:1 a:2")
    assert _only(found) == {} and recovered == []


def test_acknowledged_write_absent_is_lost() -> None:
    """An OK write with no row is lost, on the primary, with its ack in the evidence."""
    found, _ = _check("a:1 @mysql-0 | a:2 @mysql-0 t=7 | a:3", "a:1 a:3")
    assert _only(found) == {"lost": 1}
    (anomaly,) = found["lost"]
    assert (anomaly.node, anomaly.writer_id, anomaly.seq) == ("mysql-0", "a", 2)
    assert anomaly.evidence["row_id"] == 2
    assert anomaly.evidence["acked_at"] == 7.0
    assert anomaly.evidence["acked_by"] == "mysql-0"


def test_indeterminate_writes_are_never_lost_and_recovered_when_present() -> None:
    """An absent indeterminate write is nothing; a present one is recovered, not an anomaly."""
    found, recovered = _check("a:1 | a:2 ? | a:3 ? h=? | a:4 ?", "a:1 a:2 a:3")
    assert _only(found) == {}
    assert [(r.node, r.writer_id, r.seq) for r in recovered] == [
        ("mysql-0", "a", 2),
        ("mysql-0", "a", 3),
    ]


def test_a_row_at_another_id_than_acknowledged_is_not_lost() -> None:
    """A write found under a different id than its ack reported is present, so not lost."""
    found, _ = _check("a:1 | a:2", "a:1 a:2#9")
    assert _only(found) == {}


def test_acknowledged_writes_without_row_id_are_matched_by_key() -> None:
    """OK writes whose row id was not recorded are looked for by (writer, seq)."""
    h, (state,) = scenario("a:1 | a:2 | a:3", "mysql-0 primary : a:1 a:3")
    from dataclasses import replace

    h = replace(h, attempts=[replace(a, row_id=None) for a in h.attempts])
    found, _ = _run(h, state)
    assert _only(found) == {"lost": 1}
    assert found["lost"][0].seq == 2


def test_same_write_twice_is_duplicated_with_both_ids() -> None:
    """Two rows of one acknowledged (writer, seq) give one duplicated anomaly listing both ids."""
    found, _ = _check("a:1 | a:2", "a:1 a:2 a:1")
    assert _only(found) == {"duplicated": 1}
    (anomaly,) = found["duplicated"]
    assert (anomaly.writer_id, anomaly.seq) == ("a", 1)
    assert anomaly.evidence == {"ids": [1, 3], "copies": 2}


def test_duplicates_of_an_indeterminate_write_are_found_too() -> None:
    """An indeterminate write applied twice is both recovered and duplicated."""
    found, recovered = _check("a:1 ? | a:2", "a:1 a:1 a:2")
    assert _only(found) == {"duplicated": 1}
    assert found["duplicated"][0].evidence["copies"] == 2
    assert [(r.writer_id, r.seq) for r in recovered] == [("a", 1)]


def test_broken_stored_checksum_is_corrupted() -> None:
    """A flipped payload differs from its stored checksum (and from what was written)."""
    found, _ = _check("a:1 | a:2", "a:1! a:2")
    assert _only(found) == {"corrupted": 1}
    (anomaly,) = found["corrupted"]
    assert anomaly.seq == 1
    assert anomaly.evidence["mismatch"] == ["stored_checksum", "written_hash"]
    assert anomaly.evidence["stored_sha256"] == payload_hash("a:1")


def test_payload_other_than_written_is_corrupted() -> None:
    """A payload consistent with its checksum but not what the writer sent is corrupted."""
    found, _ = _check("a:1 | a:2 ? | a:3", "a:1 a:2~ a:3")
    assert _only(found) == {"corrupted": 1}
    (anomaly,) = found["corrupted"]
    assert anomaly.seq == 2
    assert anomaly.evidence["mismatch"] == ["written_hash"]
    assert anomaly.evidence["written_sha256"] == payload_hash("a:2")


def test_row_never_attempted_is_unexpected() -> None:
    """A row whose (writer, seq) the checker never attempted is unexpected."""
    found, _ = _check("a:1", "a:1 a:2 z:1")
    assert _only(found) == {"unexpected": 2}
    assert {(x.writer_id, x.seq, x.evidence["reason"]) for x in found["unexpected"]} == {
        ("a", 2, "never_attempted"),
        ("z", 1, "never_attempted"),
    }


def test_row_of_a_failed_write_is_unexpected_with_its_error() -> None:
    """A write reported FAILED must not have applied: its row is unexpected."""
    found, _ = _check("a:1 | a:2 fail err=1290", "a:1 a:2")
    assert _only(found) == {"unexpected": 1}
    (anomaly,) = found["unexpected"]
    assert anomaly.evidence["reason"] == "reported_failed"
    assert anomaly.evidence["error"] == "1290"


def test_range_checks_merge_into_lost_across_ranges() -> None:
    """A write missing from its range but present in another is not lost once ranges merge."""
    h, (state,) = scenario("a:1 | a:2 | a:3 | a:4", "mysql-0 primary : a:1 a:3#30 a:4")
    acked, _ = partition(h.attempts)
    assert state.rows is not None
    low = ledger.match_rows("mysql-0", [r for r in state.rows if r.id <= 4], acked, lo=1, hi=4)
    high = ledger.match_rows("mysql-0", [r for r in state.rows if r.id > 4], [], lo=5, hi=50)
    assert {a.seq for a in low.missing} == {2, 3}
    assert [(x.seq) for x in ledger.lost([low, high])] == [2]


def test_duplicated_groups_from_the_server() -> None:
    """The GROUP BY report becomes one duplicated anomaly per group of two or more ids."""
    found = ledger.duplicated_groups(
        "mysql-0", [("b", 2, [9, 4]), ("a", 1, [3]), ("a", 5, [1, 7, 8])]
    )
    assert [(x.writer_id, x.seq, x.evidence["ids"]) for x in found] == [
        ("a", 5, [1, 7, 8]),
        ("b", 2, [4, 9]),
    ]


def test_attempt_index_finds_every_attempt_by_key() -> None:
    """The lazy index answers for acknowledged and other attempts alike, and nothing else."""
    h, _ = scenario("a:1 | a:2 ? | a:3 fail", "")
    acked, others = partition(h.attempts)
    index = ledger.AttemptIndex(acked, others)
    assert index.get(("a", 2)) is h.attempts[1]
    assert index[("a", 1)] is h.attempts[0]
    assert ("a", 9) not in index
    assert sorted(index) == [("a", 1), ("a", 2), ("a", 3)] and len(index) == 3


def test_plain_tuples_work_as_rows() -> None:
    """Rows given as plain 5-tuples, as a driver returns them, are judged like Row values."""
    h, (state,) = scenario("a:1 | a:2", "mysql-0 primary : a:1")
    assert state.rows is not None
    plain = [tuple(r) for r in state.rows]
    acked, _ = partition(h.attempts)
    m = ledger.match_rows("mysql-0", plain, acked)  # type: ignore[arg-type]
    assert [x.seq for x in ledger.lost([m])] == [2]
    assert isinstance(state.rows[0], Row)


def test_damaged_checksum_column_alone_is_corrupted() -> None:
    """A row whose payload is as written but whose stored checksum changed is corrupted too."""
    h, (state,) = scenario("a:1", "mysql-0 primary : a:1")
    assert state.rows is not None
    (row,) = state.rows
    damaged = NodeState("mysql-0", state.role, rows=[row._replace(checksum="0" * 64)])
    found, _ = _run(h, damaged)
    assert _only(found) == {"corrupted": 1}
    assert found["corrupted"][0].evidence["mismatch"] == ["stored_checksum"]


def _grain(rows: list[Row]) -> ledger.FoldedGrain:
    """The folded grain of `rows` as retention writes it (from the journal's attempts)."""
    x = 0
    for r in rows:
        x ^= zlib.crc32(f"{r.id}#{r.writer_id}#{r.seq}#{r.payload_sha256}".encode())
    return ledger.FoldedGrain(0, 999, len(rows), x, frozenset(r.id for r in rows), 10.0, 20.0)


def _folded_rows() -> list[Row]:
    return [Row(i, "w", i, payload_hash(f"w:{i}"), payload_hash(f"w:{i}")) for i in range(1, 6)]


def test_folded_rows_matching_their_grain_are_clean() -> None:
    rows = _folded_rows()
    assert ledger.folded("mysql-0", rows, [_grain(rows)]) == []


def test_a_folded_row_gone_is_lost_by_row_id() -> None:
    rows = _folded_rows()
    (lost,) = ledger.folded("mysql-0", rows[:2] + rows[3:], [_grain(rows)])
    assert (lost.type, lost.writer_id, lost.seq) == ("lost", None, None)
    assert lost.evidence["row_id"] == 3 and lost.evidence["acked_between"] == [10.0, 20.0]


def test_a_folded_row_with_a_broken_checksum_is_corrupted_by_name() -> None:
    rows = _folded_rows()
    broken = [*rows[:1], rows[1]._replace(payload_sha256=payload_hash("other")), *rows[2:]]
    (found,) = ledger.folded("mysql-0", broken, [_grain(rows)])
    assert (found.type, found.writer_id, found.seq) == ("corrupted", "w", 2)
    assert found.evidence["mismatch"] == ["stored_checksum"]


def test_a_folded_row_rewritten_whole_corrupts_its_grain() -> None:
    rows = _folded_rows()
    other = payload_hash("rewritten")
    rewritten = [*rows[:1], rows[1]._replace(payload_sha256=other, checksum=other), *rows[2:]]
    (found,) = ledger.folded("mysql-0", rewritten, [_grain(rows)])
    assert (found.type, found.writer_id) == ("corrupted", None)
    assert found.evidence["grain"] == [0, 999] and found.evidence["mismatch"] == ["folded_grain"]
