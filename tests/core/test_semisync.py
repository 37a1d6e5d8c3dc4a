"""Semi-sync windows from samples, and which window a lost write was acknowledged in."""

from __future__ import annotations

from checker.core.semisync import Sample, Window, WindowIndex, annotate, parse_status, windows
from checker.core.verdict import Anomaly, Counts, build_verdict

S = "1@db:3306@1"


def on(t: float, no_tx: int = 0, server: str | None = S) -> Sample:
    return Sample(t, server, True, True, 1, 10, no_tx)


def off(t: float, no_tx: int = 0, server: str | None = S) -> Sample:
    return Sample(t, server, True, False, 0, 10, no_tx)


def test_mysql_84_and_mariadb_names_both_parse() -> None:
    """Source names (MySQL 8.4) and master names (MariaDB, MySQL 8.0) give the same state."""
    source = parse_status(
        {
            "Rpl_semi_sync_source_status": "ON",
            "Rpl_semi_sync_source_clients": "2",
            "Rpl_semi_sync_source_yes_tx": "7",
            "Rpl_semi_sync_source_no_tx": "1",
        },
        {"rpl_semi_sync_source_enabled": "ON"},
    )
    master = parse_status(
        {
            "Rpl_semi_sync_master_status": "ON",
            "Rpl_semi_sync_master_clients": "2",
            "Rpl_semi_sync_master_yes_tx": "7",
            "Rpl_semi_sync_master_no_tx": "1",
        },
        {"rpl_semi_sync_master_enabled": "ON"},
    )
    assert source == master == (True, True, 2, 7, 1)
    assert parse_status({}, {}) == (False, False, None, None, None)
    fallen = parse_status(
        {"Rpl_semi_sync_master_status": "OFF"}, {"rpl_semi_sync_master_enabled": "ON"}
    )
    assert fallen[:2] == (True, False)


def test_windows_follow_the_status_and_the_unacknowledged_counter() -> None:
    """On while on at both ends and no_tx still; off when off at an end or no_tx grew;
    unknown across a gap, an unreachable sample or another server."""
    samples = [
        on(0.0, 5),
        on(1.0, 5),
        on(2.0, 6),  # a commit went unacknowledged between 1 and 2
        off(3.0, 9),
        off(4.0, 12),
        on(5.0, 12),
        on(30.0, 12),  # a 25 s gap: the sampler was not watching
        Sample(31.0, None, None, None),
        on(32.0, 12, server="2@db:3306@9"),
    ]
    got = [(w.start, w.end, w.state) for w in windows(samples)]
    assert got == [
        (0.0, 1.0, "on"),
        (1.0, 5.0, "off"),
        (5.0, 30.0, "unknown"),
        (30.0, 32.0, "unknown"),
    ]


def test_an_ack_is_judged_by_its_own_servers_window() -> None:
    """Lookup by server and time; a boundary ack takes the less reassuring state."""
    index = WindowIndex(
        [Window(0.0, 10.0, S, "on"), Window(10.0, 20.0, S, "off"), Window(0, 20, "x", "off")]
    )
    assert index.state(S, 5.0) == "on"
    assert index.state(S, 10.0) == "off"
    assert index.state(S, 15.0) == "off"
    assert index.state(S, 25.0) == "unknown"
    assert index.state("other", 5.0) == "unknown"
    assert not WindowIndex([])


def test_a_lost_write_says_semi_sync_was_off_and_stays_lost() -> None:
    """annotate adds evidence.semi_sync to lost examples only; validity and counts stay."""
    lost_async = Anomaly("lost", "mysql-1", "w", 1, {"acked_at": 15.0, "acked_by": S})
    lost_sync = Anomaly("lost", "mysql-1", "w", 2, {"acked_at": 5.0, "acked_by": S})
    stale = Anomaly("stale", "mysql-1", "w", 3, {"acked_at": 15.0})
    verdict = build_verdict([lost_async, lost_sync, stale], counts=Counts(attempted=3, ok=3))
    index = WindowIndex([Window(0.0, 10.0, S, "on"), Window(10.0, 20.0, S, "off")])
    out = annotate(verdict, index)
    assert out.valid is verdict.valid
    assert out.anomaly_counts == verdict.anomaly_counts
    by_seq = {a.seq: a.evidence for a in out.anomalies}
    assert by_seq[1]["semi_sync"] == "off"
    assert by_seq[2]["semi_sync"] == "on"
    assert "semi_sync" not in by_seq[3]
    assert by_seq[1]["acked_by"] == S
    assert annotate(verdict, WindowIndex([])) is verdict


def test_an_early_unknown_is_refined_by_a_later_index_but_never_undone() -> None:
    """A finding annotated `unknown` before the samples around its ack were recorded takes the
    state a later index knows; a known state is kept, and unknown never replaces it."""
    early = Anomaly("lost", "mysql-1", "w", 1, {"acked_at": 15.0, "acked_by": S})
    verdict = build_verdict([early], counts=Counts(attempted=1, ok=1))
    first = annotate(verdict, WindowIndex([Window(0.0, 10.0, S, "on")]))
    assert first.anomalies[0].evidence["semi_sync"] == "unknown"
    later = annotate(first, WindowIndex([Window(0.0, 10.0, S, "on"), Window(10.0, 20.0, S, "off")]))
    assert later.anomalies[0].evidence["semi_sync"] == "off"
    again = annotate(later, WindowIndex([Window(0.0, 10.0, S, "on")]))
    assert again.anomalies[0].evidence["semi_sync"] == "off"
