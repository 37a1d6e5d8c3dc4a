"""The other local experiments run for real, one after the other, on one lab and one checker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

# Each heals what it did (rollback heal_all), so they can share a lab; order as in the README.
NAMES = ["force-delete-pod", "out-of-service-taint", "primary-pod-kill", "replica-partition"]


@dataclass(frozen=True)
class Outcome:
    """A run, and the lab and the checker as the run left them."""

    run: ChaosRun
    nodes: dict[str, Any]
    verdict: dict[str, Any]
    writable: list[str]
    primary: str


@pytest.fixture(scope="module")
def outcomes(
    lab: Lab, checker: Checker, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """Every experiment in NAMES, run in order against one checker."""
    found = {}
    for name in NAMES:
        run = run_experiment(
            LOCAL / f"{name}.json",
            tmp_path_factory.mktemp(name),
            {"lab_dir": lab.dir, "checker_url": checker.url, "settle_seconds": 2},
            {"checker": {"token": TOKEN}},
            timeout=120,
        )
        found[name] = Outcome(
            run,
            lab.status()["nodes"],
            get(checker.url, "/verdict"),
            writable_servers(lab),
            lab.info()["primary"],
        )
    return found


@pytest.mark.parametrize("name", NAMES)
def test_the_experiment_completes_and_the_verdict_stays_valid(
    name: str, outcomes: dict[str, Outcome]
) -> None:
    """The run completes with its hypothesis met before and after, every activity succeeded,
    the checker found nothing, the lab has no fault left and exactly one writable server: the
    primary."""
    outcome = outcomes[name]
    run = outcome.run
    why = (steady_states(run), log_lines(run, "WARNING", ""), outcome.verdict)
    assert run.proc.returncode == 0, why
    assert run.journal["deviated"] is False, why
    assert run.journal["steady_states"]["before"]["steady_state_met"] is True, why
    assert run.journal["steady_states"]["after"]["steady_state_met"] is True, why
    assert failed_activities(run.journal) == [], why
    assert outputs(run.journal)["checker-anomaly-counts"]["total"] == 0
    assert outcome.verdict["valid"] is True
    assert all(not node["faults"] for node in outcome.nodes.values()), outcome.nodes
    assert all(node["state"] == "running" for node in outcome.nodes.values()), outcome.nodes
    assert outcome.writable == [outcome.primary], outcome.nodes
    if name != "replica-partition":  # its hypothesis checks replication instead
        for when in ("before", "after"):
            assert steady_output(run, when, "exactly-one-writable-primary") == 1, why


def test_the_double_start_was_refused(outcomes: dict[str, Outcome]) -> None:
    """In force-delete-pod the second server on the shared datadir was refused by the file locks
    while the original kept serving, and no other server was writable meanwhile."""
    out = outputs(outcomes["force-delete-pod"].run.journal)
    double = out["replacement-on-the-same-volume-is-refused-while-the-old-one-runs"]
    assert double["refused"] is True, double
    assert double["original_serving"] is True, double
    # The original primary is still out of its endpoints (unreachable for the probe) and the
    # refused second server never served: exactly 0 reachable writable servers; 1 would be a
    # replica made writable, or the double start serving writes.
    assert out["at-most-one-writable-primary-after-the-double-start"] == 0


def test_the_partitioned_replica_missed_nothing_for_the_primary(
    outcomes: dict[str, Outcome],
) -> None:
    """In replica-partition the primary kept acknowledging writes while the replica was cut
    off, and the replica was replicating again afterwards."""
    out = outputs(outcomes["replica-partition"].run.journal)
    assert out["partition-the-replica"]["partitioned"] == "reset"
    assert out["writes-while-the-replica-is-cut-off"]["ok"] > 0
    assert out["primary-keeps-acknowledging-writes"] is True
    assert out["replica-caught-up"] is True
