"""The analysis driver: every detector, unknown when a check cannot be done, crashes contained."""

from __future__ import annotations

from typing import cast

import pytest

from checker.core.analysis import analyze
from checker.core.history import NodeState, Role, Row
from checker.core.notation import scenario
from checker.core.verdict import Validity

A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


def test_small_clean_run_is_valid_with_counts() -> None:
    """A run where everything acknowledged is everywhere is valid, with counts by outcome."""
    v = analyze(
        *scenario(
            "w:1 @p | w:2 ? | w:3 fail | w:4 @p | r w=4 @mysql-1 t=9",
            f"mysql-0 primary gtid={A}:1-3 : w:1 w:2 w:4 ; "
            f"mysql-1 replica gtid={A}:1-3 : w:1 w:2 w:4",
        )
    )
    assert v.valid is Validity.VALID, v.to_json()
    assert v.counts.to_dict() == {
        "attempted": 4,
        "ok": 2,
        "failed": 1,
        "indeterminate": 1,
        "recovered": 1,
    }
    assert {n: (x.valid, x.rows, x.role) for n, x in v.nodes.items()} == {
        "mysql-0": (Validity.VALID, 3, "primary"),
        "mysql-1": (Validity.VALID, 3, "replica"),
    }


def test_unreadable_node_makes_the_verdict_unknown() -> None:
    """A node whose final state could not be read is unknown, and so is the verdict."""
    v = analyze(*scenario("w:1", "mysql-0 primary : w:1 ; mysql-1 replica error=timed_out"))
    assert v.valid is Validity.UNKNOWN
    assert v.nodes["mysql-1"].valid is Validity.UNKNOWN
    assert v.nodes["mysql-1"].reason == "timed_out"


def test_replica_not_caught_up_is_unknown_not_divergent() -> None:
    """A replica behind the primary's GTID set is not judged for divergence: it is unknown."""
    v = analyze(
        *scenario(
            "w:1 | w:2",
            f"mysql-0 primary gtid={A}:1-2 : w:1 w:2 ; mysql-1 replica gtid={A}:1 : w:1",
        )
    )
    assert v.valid is Validity.UNKNOWN and v.anomaly_counts["divergent"] == 0
    reason = v.nodes["mysql-1"].reason
    assert reason is not None and "not caught up" in reason


def test_catch_up_is_decided_from_gtids_when_not_given() -> None:
    """With both GTID sets known and no word from the caller, containment decides catch-up."""
    v = analyze(
        *scenario(
            "w:1 | w:2",
            f"mysql-0 primary gtid={A}:1-2 : w:1 w:2 ; mysql-1 replica gtid={A}:1-2 : w:1",
        )
    )
    assert v.anomaly_counts["divergent"] == 1 and v.nodes["mysql-1"].valid is Validity.INVALID


def test_explicit_behind_wins_over_gtids() -> None:
    """The caller saying a replica is behind keeps it unknown even if GTIDs look complete."""
    v = analyze(
        *scenario(
            "w:1", f"mysql-0 primary gtid={A}:1 : w:1 ; mysql-1 replica behind gtid={A}:1 : w:1"
        )
    )
    assert v.nodes["mysql-1"].valid is Validity.UNKNOWN


@pytest.mark.parametrize(
    "states",
    [
        "",
        "mysql-0 replica : w:1",
        "mysql-0 primary : w:1 ; mysql-1 primary : w:1",
    ],
)
def test_without_exactly_one_primary_the_verdict_is_unknown(states: str) -> None:
    """No final state, no primary or two primaries: the ledger cannot be judged."""
    v = analyze(*scenario("w:1", states))
    assert v.valid is Validity.UNKNOWN
    assert [f.detector for f in v.failures] == ["final_state"]


def test_primary_rows_not_read_is_unknown() -> None:
    """A primary whose rows were not read cannot clear the ledger."""
    h, _ = scenario("w:1", "")
    v = analyze(h, [NodeState("mysql-0", Role.PRIMARY)])
    assert v.valid is Validity.UNKNOWN
    assert v.nodes["mysql-0"].reason == "the primary's rows were not read"


def test_a_crashing_detector_yields_unknown_and_keeps_the_others() -> None:
    """A detector that raises on real input is recorded by name; the verdict is unknown when
    nothing else was found, and the other detectors' findings are kept when something was."""
    states = "mysql-0 primary gtid=garbage : w:1 ; mysql-1 replica caught_up gtid=junk : w:1"
    clean = analyze(*scenario("w:1", states))
    assert clean.valid is Validity.UNKNOWN
    assert [f.detector for f in clean.failures] == ["errant"]
    assert clean.failures[0].error.startswith("ValueError: malformed GTID set 'junk'")

    dirty = analyze(*scenario("w:1 | w:2", states))
    assert dirty.valid is Validity.INVALID and dirty.anomaly_counts["lost"] == 1
    assert [(a.type, a.writer_id, a.seq) for a in dirty.anomalies] == [("lost", "w", 2)]
    assert [f.detector for f in dirty.failures] == ["errant"]


def test_a_crash_in_the_shared_match_step_is_reported_too() -> None:
    """If matching rows fails (a malformed row from the adapter), the ledger detectors depending
    on it are not run and the failure is named: unknown, never valid."""
    h, _ = scenario("w:1", "")
    short_row = cast(Row, (1, "w", 1))  # an adapter bug: a row without its hashes
    v = analyze(h, [NodeState("mysql-0", Role.PRIMARY, rows=(short_row,))])
    assert v.valid is Validity.UNKNOWN
    assert [f.detector for f in v.failures] == ["match_rows"]
    assert v.failures[0].error.startswith("IndexError")
    assert v.anomaly_counts["lost"] == 0  # `lost` did not run on a half-built match


def test_malformed_gtid_is_a_failed_check_not_a_pass() -> None:
    """An unparsable GTID set makes the errant check fail, so the verdict is unknown."""
    v = analyze(
        *scenario(
            "w:1", "mysql-0 primary gtid=garbage : w:1 ; mysql-1 replica caught_up gtid=junk : w:1"
        )
    )
    assert v.valid is Validity.UNKNOWN
    assert [f.detector for f in v.failures] == ["errant"]
    assert "ValueError" in v.failures[0].error


def test_mariadb_flavor_is_used_for_gtids() -> None:
    """MariaDB GTID lists are compared with MariaDB's rules when the flavor says so."""
    states = "mysql-0 primary gtid=0-1-10 : w:1 ; mysql-1 replica gtid=0-1-10,0-3-2 : w:1"
    v = analyze(*scenario("w:1", states), flavor="mariadb")
    assert v.anomaly_counts["errant"] == 1
    assert v.anomalies[0].evidence["errant"] == "0-3-2"


def test_bank_run_without_ledger_rows_is_judged_on_totals() -> None:
    """A bank-only run needs totals, not ledger rows, and flags the node whose total broke."""
    v = analyze(
        *scenario(
            "total=100 | b mysql-0=100 t=1 | b mysql-1=100 t=2",
            "mysql-0 primary bank=100 ; mysql-1 replica caught_up bank=90",
        )
    )
    assert v.valid is Validity.INVALID
    assert [(a.type, a.node) for a in v.anomalies] == [("bank_total", "mysql-1")]


def test_bank_total_not_read_is_unknown() -> None:
    """When the bank ran, a node whose total was not read is unknown."""
    v = analyze(*scenario("total=100", "mysql-0 primary bank=100 ; mysql-1 replica caught_up"))
    assert (
        v.valid is Validity.UNKNOWN and v.nodes["mysql-1"].reason == "the bank total was not read"
    )


def test_stale_reads_and_split_brain_are_part_of_analyze() -> None:
    """analyze runs the read and acknowledgement detectors on the history too."""
    v = analyze(
        *scenario(
            "w:1 @a t=1 | w:2 @b t=2 | w:3 @a t=3 | r w=1 @mysql-1 t=20 | r w=0 @mysql-1 t=21",
            "mysql-0 primary : w:1 w:2 w:3",
        ),
        lag_bound=5,
    )
    assert {t: n for t, n in v.anomaly_counts.items() if n} == {
        "split_brain": 1,
        "stale": 2,
        "non_monotonic": 1,
    }
