"""Anomalies in runs: exact groups per type, node, writer and server, placed on the timeline."""

from __future__ import annotations

from checker.core.ledger import unregistered
from checker.core.replicas import divergent_table_rows
from checker.core.verdict import (
    Anomaly,
    Group,
    Verdict,
    build_verdict,
    group_anomalies,
    merge,
    place_groups,
)


def _lost(writer: str, seq: int, at: float, server: str = "s1@1") -> Anomaly:
    return Anomaly(
        "lost", "mysql-2", writer, seq, {"row_id": seq + 1000, "acked_at": at, "acked_by": server}
    )


def test_groups_count_every_anomaly_not_only_the_capped_examples() -> None:
    """300 lost writes of one writer and server are one group of 300 with their ranges, even
    though the verdict keeps 100 examples."""
    v = build_verdict([_lost("w-1", s, 10.0 + s / 100) for s in range(1, 301)])
    assert len(v.anomalies) == 100
    assert v.groups == (
        Group("lost", "mysql-2", "w-1", "s1@1", 300, 1, 300, 1001, 1300, 10.01, 13.0),
    )


def test_groups_split_by_writer_and_server_and_survive_json_and_merge() -> None:
    """Another writer or another acknowledging server is another group; the JSON reads back
    equal, and merging two parts folds equal keys."""
    found = [_lost("w-1", 1, 5.0), _lost("w-2", 7, 6.0), _lost("w-1", 2, 7.0, server="s2@9")]
    v = build_verdict(found)
    assert [(g.writer_id, g.server, g.count) for g in v.groups] == [
        ("w-1", "s1@1", 1),
        ("w-1", "s2@9", 1),
        ("w-2", "s1@1", 1),
    ]
    assert Verdict.from_json(v.to_json()) == v
    both = merge([v, build_verdict([_lost("w-1", 3, 8.0)])])
    first = next(g for g in both.groups if g.writer_id == "w-1" and g.server == "s1@1")
    assert (first.count, first.seq_first, first.seq_last, first.time_last) == (2, 1, 3, 8.0)


def test_place_groups_names_the_innermost_activity_window() -> None:
    """A group whose first anomaly lies in a fault window inside the experiment's window is
    placed in the fault window; outside every window, nowhere."""
    groups = group_anomalies([_lost("w-1", 1, 12.1), _lost("w-2", 1, 50.0)])
    windows = [("gameday x", 0.0, 40.0), ("promote-the-lagging-replica", 12.0, 12.5)]
    placed = place_groups(groups, windows)
    assert [g.activity for g in placed] == ["promote-the-lagging-replica", None]


def test_unregistered_rows_are_unexpected_and_small_table_rows_divergent() -> None:
    """Rows of an unregistered writer are `unexpected` with their ids; a small table's
    differing rows are `divergent` naming the table, missing/extra/differs."""
    found = unregistered("mysql-0", [(9, "x-1", 2), (4, "x-1", 1)])
    assert [(a.type, a.seq, a.evidence) for a in found] == [
        ("unexpected", 1, {"id": 4, "reason": "unregistered_writer"}),
        ("unexpected", 2, {"id": 9, "reason": "unregistered_writer"}),
    ]
    ref = [(1, 100), (2, 100), (3, 100)]
    mine = [(1, 100), (2, 107), (4, 5)]
    kinds = [
        (a.evidence["table"], a.evidence["id"], a.evidence["kind"])
        for a in divergent_table_rows("accounts", ref, mine, node="mysql-1", reference="mysql-0")
    ]
    assert kinds == [
        ("accounts", 2, "differs"),
        ("accounts", 3, "missing"),
        ("accounts", 4, "extra"),
    ]
    assert divergent_table_rows("accounts", ref, ref, node="mysql-1", reference="mysql-0") == []
