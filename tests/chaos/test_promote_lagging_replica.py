"""`chaos run experiments/local/promote-lagging-replica.json`: the steady state can fail."""

from __future__ import annotations

import pytest

from checker.lab.topology import Lab
from tests.chaos.conftest import (
    LOCAL,
    TOKEN,
    ChaosRun,
    Checker,
    log_lines,
    outputs,
    run_experiment,
    steady_states,
)
from tests.service._run import get


@pytest.fixture(scope="module")
def run(lab: Lab, checker: Checker, tmp_path_factory: pytest.TempPathFactory) -> ChaosRun:
    """One real run, with the checker's token: its GET probes (verdict, counts) need it too."""
    return run_experiment(
        LOCAL / "promote-lagging-replica.json",
        tmp_path_factory.mktemp("promote"),
        {"lab_dir": lab.dir, "checker_url": checker.url},
        {"checker": {"token": TOKEN}},
        timeout=120,
    )


def test_the_steady_state_deviates_on_the_checkers_verdict(run: ChaosRun, checker: Checker) -> None:
    """The run deviates (chaos exits 1) and the probe that failed is the checker's verdict,
    which held before the fault."""
    detail = (
        steady_states(run),
        outputs(run.journal),
        get(checker.url, "/verdict")["anomaly_counts"],
    )
    assert run.proc.returncode == 1, detail
    assert run.journal["deviated"] is True
    assert run.journal["status"] == "completed"  # every probe ran; a tolerance was missed
    before = run.journal["steady_states"]["before"]
    assert before["steady_state_met"] is True
    after = run.journal["steady_states"]["after"]
    assert after["steady_state_met"] is False
    failed = [p for p in after["probes"] if not p["tolerance_met"]]
    assert [p["activity"]["name"] for p in failed] == ["checker-verdict-is-valid"]
    assert failed[0]["output"] is False


def test_the_failover_really_discarded_writes(run: ChaosRun) -> None:
    """The lagging replica was promoted over a dead primary, discarding its relay log, and the
    method's own count saw the loss."""
    out = outputs(run.journal)
    promoted = out["a-careless-failover-promotes-the-lagging-replica"]
    assert promoted["new_primary"] == "mysql-2"
    assert promoted["old_primary_state"] == "down"
    assert promoted["discarded_relay_log_up_to"]
    assert out["checker-anomaly-counts"]["lost"] > 0


def test_the_checker_lists_the_lost_writes(run: ChaosRun, checker: Checker) -> None:
    """The checker's verdict is INVALID with `lost` anomalies: acknowledged, then gone."""
    verdict = get(checker.url, "/verdict")
    assert verdict["valid"] is False
    assert verdict["anomaly_counts"]["lost"] > 0
    lost = [a for a in verdict["anomalies"] if a["type"] == "lost"]
    assert lost
    assert all(a["writer_id"] and a["seq"] is not None for a in lost)


def test_the_control_annotated_the_timeline(run: ChaosRun, checker: Checker) -> None:
    """With the token the control's annotations reach the checker, without a warning (its
    refusal without one is tests/chaos/test_control.py's)."""
    assert get(checker.url, "/annotations") != []
    assert log_lines(run, "WARNING", "checker-timeline") == []
