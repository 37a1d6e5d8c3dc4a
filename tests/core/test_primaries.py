"""split_brain: two server identities acknowledging writes in overlapping time."""

from __future__ import annotations

from checker.core.notation import parse_history
from checker.core.primaries import primary_spans, split_brain


def test_zombie_primary_acking_alongside_the_new_one_is_split_brain() -> None:
    """Acks of the old primary continuing after the new one's first ack are split brain."""
    h = parse_history(
        "a:1 @mysql-0/1 t=1 | a:2 @mysql-0/1 t=2 | b:1 @mysql-1/1 t=3 | a:3 @mysql-0/1 t=4 | "
        "b:2 @mysql-1/1 t=5"
    )
    (anomaly,) = split_brain(h.attempts)
    assert (anomaly.node, anomaly.writer_id, anomaly.seq) == ("mysql-1", "b", 1)
    early, late = anomaly.evidence["identities"]
    assert (early["server"], early["first_ack"], early["last_ack"], early["acks"]) == (
        "mysql-0/1",
        1.0,
        4.0,
        3,
    )
    assert early["example"] == {"writer_id": "a", "seq": 3, "acked_at": 4.0}
    assert (late["server"], late["first_ack"], late["last_ack"]) == ("mysql-1/1", 3.0, 5.0)
    assert anomaly.evidence["overlap"] == [3.0, 4.0]


def test_clean_failover_and_restart_are_not_split_brain() -> None:
    """Identities that ack one after the other (failover, then a restart) are fine."""
    h = parse_history(
        "a:1 @mysql-0/1 t=1 | a:2 @mysql-0/1 t=2 | a:3 @mysql-1/1 t=3 | a:4 @mysql-1/1 t=4 | "
        "a:5 @mysql-1/2 t=6"
    )
    assert split_brain(h.attempts) == []
    assert [(s.server, s.first, s.last, s.acks) for s in primary_spans(h.attempts)] == [
        ("mysql-0/1", 1.0, 2.0, 2),
        ("mysql-1/1", 3.0, 4.0, 2),
        ("mysql-1/2", 6.0, 6.0, 1),
    ]


def test_touching_intervals_do_not_overlap() -> None:
    """The new primary's first ack at the very instant of the old one's last is not overlap."""
    h = parse_history("a:1 @x t=1 | a:2 @x t=2 | b:1 @y t=2 | b:2 @y t=3")
    assert split_brain(h.attempts) == []


def test_only_acknowledged_writes_with_an_identity_count() -> None:
    """Failed, indeterminate and unattributed writes say nothing about who was primary."""
    h = parse_history(
        "a:1 @x t=1 | b:1 ? @y t=2 | b:2 fail @y t=2.5 | a:2 t=2.7 | a:3 @x t=3 | b:3 @y t=4"
    )
    assert split_brain(h.attempts) == []


def test_three_identities_report_each_overlapping_pair() -> None:
    """Every overlapping pair of identities is reported once."""
    h = parse_history("a:1 @x t=1 | b:1 @y t=2 | c:1 @z t=3 | a:2 @x t=4 | b:2 @y t=5")
    found = split_brain(h.attempts)
    pairs = [tuple(i["server"] for i in x.evidence["identities"]) for x in found]
    assert pairs == [("x", "y"), ("x", "z"), ("y", "z")]
