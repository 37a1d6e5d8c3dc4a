"""`chaos run experiments/local/kubelet-stop.json` against a lab and a running checker."""

from __future__ import annotations

import pytest

from checker.lab.topology import Lab
from tests.chaos.conftest import (
    LOCAL,
    TOKEN,
    ChaosRun,
    Checker,
    failed_activities,
    log_lines,
    outputs,
    run_experiment,
    steady_output,
    steady_states,
    writable_servers,
)
from tests.service._run import get


@pytest.fixture(scope="module")
def run(lab: Lab, checker: Checker, tmp_path_factory: pytest.TempPathFactory) -> ChaosRun:
    """One real run: configuration through --var, the checker's token through --var-file."""
    return run_experiment(
        LOCAL / "kubelet-stop.json",
        tmp_path_factory.mktemp("kubelet-stop"),
        {"lab_dir": lab.dir, "checker_url": checker.url, "endpoint_down_seconds": 3},
        {"checker": {"token": TOKEN}},
        timeout=120,
    )


def test_the_run_completes(run: ChaosRun, checker: Checker, lab: Lab) -> None:
    """The experiment completes, steady state met before and after with exactly one writable
    primary each time, every activity succeeded, and the lab has exactly one writable server."""
    why = (steady_states(run), log_lines(run, "WARNING", ""), get(checker.url, "/verdict"))
    assert run.proc.returncode == 0, why
    assert run.journal["status"] == "completed", why
    assert run.journal["deviated"] is False, why
    # chaos exits 0 even when the hypothesis does not hold before the method: check it.
    assert run.journal["steady_states"]["before"]["steady_state_met"] is True, why
    assert run.journal["steady_states"]["after"]["steady_state_met"] is True, why
    assert failed_activities(run.journal) == []
    for when in ("before", "after"):
        assert steady_output(run, when, "exactly-one-writable-primary") == 1, why
    assert writable_servers(lab) == [lab.info()["primary"]]


def test_the_fault_was_applied_observed_and_undone(run: ChaosRun, lab: Lab) -> None:
    """The endpoint went away and came back, the checker was watched meanwhile, no server other
    than the lost primary was writable, and the lab has no fault left."""
    out = outputs(run.journal)
    assert out["take-the-primary-out-of-its-endpoints"]["endpoint_lost"] is True
    assert out["put-the-primary-back-into-its-endpoints"]["endpoint_lost"] is False
    window = out["writes-while-the-primary-is-not-ready"]
    assert window["seconds"] >= 3.0  # the --var reached the probe
    # The one writable server is out of its endpoints (the probe cannot reach it, as on a
    # cluster whose headless Service drops a NotReady pod) and no replica was made writable:
    # exactly 0. 1 would be a replica promoted behind the checker's back, 2 a split brain.
    assert out["at-most-one-writable-primary-while-it-is-lost"] == 0
    assert out["checker-writes-again-after-recovery"] is True
    assert out["checker-anomaly-counts"]["total"] == 0
    assert all(not node["faults"] for node in lab.status()["nodes"].values())


def test_the_checker_verdict_is_valid_afterwards(run: ChaosRun, checker: Checker) -> None:
    """After the run the checker itself says VALID, having kept writing throughout."""
    verdict = get(checker.url, "/verdict")
    assert verdict["valid"] is True
    assert verdict["anomalies"] == []
    assert verdict["counts"]["ok"] > 0


def test_the_control_annotated_every_method_activity(run: ChaosRun, checker: Checker) -> None:
    """The checker-timeline control posted a start and an end for each method activity, the
    method and the experiment, authenticated with the token from --var-file."""
    annotations = get(checker.url, "/annotations")
    marks = {(a["name"], a["phase"]) for a in annotations}
    for activity in run.journal["experiment"]["method"]:
        assert (activity["name"], "start") in marks, activity["name"]
        assert (activity["name"], "end") in marks, activity["name"]
    assert {("method", "start"), ("method", "end")} <= marks
    title = f"experiment: {run.journal['experiment']['title']}"
    ends = [a for a in annotations if a["name"] == title and a["phase"] == "end"]
    assert [a["detail"] for a in ends] == [
        "chaostoolkit experiment: status completed, deviated False"
    ]
    loss = [a for a in annotations if a["name"] == "take-the-primary-out-of-its-endpoints"]
    assert [a["detail"] for a in loss] == [
        "action probes.lab.endpoint_loss",
        "action probes.lab.endpoint_loss: succeeded",
    ]
    assert log_lines(run, "WARNING", "checker-timeline") == []  # every annotation was taken


def test_the_token_is_in_no_output(run: ChaosRun) -> None:
    """The bearer token given through --var-file appears in neither the log nor the console."""
    assert TOKEN not in run.log
    assert TOKEN not in run.proc.stdout + run.proc.stderr
