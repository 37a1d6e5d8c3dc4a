"""The detector registry's one guard, and each anomaly's own `when` and `server`."""

from __future__ import annotations

from checker.core import replicas
from checker.core.analysis import analyze
from checker.core.detectors import JOURNAL_TYPES, Findings, combine, journal_checks
from checker.core.notation import scenario
from checker.core.verdict import Anomaly, Verdict


def _found(*anomalies: Anomaly) -> list[Anomaly]:
    return list(anomalies)


def test_combine_turns_a_crash_into_a_named_failure_and_keeps_the_others() -> None:
    """A check that raises is a failure naming it; the checks before and after it still count."""
    lost = Anomaly("lost", "mysql-0", "w", 1, {"acked_at": 1.0, "acked_by": "a"})
    stale = Anomaly("stale", "mysql-1", "w", 1, {"acked_at": 1.0, "server": "b"})
    found = combine(
        [
            ("lost", lambda: _found(lost)),
            ("errant", lambda: replicas.errant("x", "junk", node="mysql-1", flavor="mysql")),
            ("stale", lambda: _found(stale)),
        ]
    )
    assert found.anomalies == [lost, stale]
    assert [f.detector for f in found.failures] == ["errant"]
    assert found.failures[0].error.startswith("ValueError: malformed GTID set")


def test_a_step_returns_its_result_or_none_with_the_failure() -> None:
    """A step whose result the next check needs gives it back, or None and a named failure."""
    found = Findings()
    assert found.step("match_rows", int, "7") == 7
    assert found.step("catch_up:mysql-1", int, "junk") is None
    assert [f.detector for f in found.failures] == ["catch_up:mysql-1"]
    assert found.failures[0].error.startswith("ValueError: invalid literal")


def test_journal_checks_are_every_journal_detector_in_order() -> None:
    """Every journal detector is bound, in the registry's order; a bank that did not run is left
    out."""

    def nothing() -> list[Anomaly]:
        return []

    bound = journal_checks(
        stale=nothing, non_monotonic=nothing, split_brain=nothing, bank_total=nothing
    )
    assert [name for name, _ in bound] == list(JOURNAL_TYPES)
    no_bank = journal_checks(
        stale=nothing, non_monotonic=nothing, split_brain=nothing, bank_total=None
    )
    assert [name for name, _ in no_bank] == ["split_brain", "stale", "non_monotonic"]


def test_every_anomaly_says_when_and_on_which_server_and_keeps_it_through_json() -> None:
    """Each detector's anomaly carries its own time and server identity (none where its type
    has none), read back the same from the verdict's JSON."""
    v = analyze(
        *scenario(
            "w:1 @a t=1 | w:2 @b t=2 | w:3 @a t=3 | w:4 fail @a t=4 | r w=1 @mysql-1 t=20 "
            "| r w=0 @mysql-1 t=21 | total=100 | b mysql-0=90 @a t=5",
            "mysql-0 primary bank=100 : w:1 w:2 w:4 w:2 x:1 w:1!",
        ),
        lag_bound=5,
    )
    placed = [(a.type, a.writer_id, a.seq, a.when, a.server) for a in v.anomalies]
    assert placed == [
        ("lost", "w", 3, 3.0, "a"),  # acknowledged by a at 3
        ("duplicated", "w", 1, None, None),
        ("duplicated", "w", 2, None, None),
        ("corrupted", "w", 1, None, None),
        ("unexpected", "w", 4, 4.0, "a"),  # reported failed by a at 4
        ("unexpected", "x", 1, None, None),  # never attempted
        ("split_brain", "w", 2, 2.0, None),  # the overlap's start; two identities
        ("stale", "w", 1, 1.0, "mysql-1"),  # the missed write's ack; the server read
        ("stale", "w", 2, 2.0, "mysql-1"),
        ("non_monotonic", "w", 1, 21.0, "mysql-1"),  # the read that went back
        ("bank_total", None, None, 5.0, "a"),
    ]
    again = Verdict.from_json(v.to_json())
    assert [(a.type, a.writer_id, a.seq, a.when, a.server) for a in again.anomalies] == placed
    assert [(g.type, g.time_first, g.server) for g in v.groups][:2] == [
        ("lost", 3.0, "a"),
        ("duplicated", None, None),
    ]
