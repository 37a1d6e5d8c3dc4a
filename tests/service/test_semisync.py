"""The checker on a semi-sync lab: the sampler's windows, the lab's fallback fault, the probe."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from checker.api import probe_answer
from checker.core.verdict import Anomaly, Failure, build_verdict
from checker.errors import LabError
from checker.journal.reader import load_samples
from checker.lab.topology import Lab
from checker.service import Service
from probes import lab as lab_probes
from tests._wait import wait_for
from tests.conftest import module_lab
from tests.service._run import running, wait_writes

FAULT_CLI = [sys.executable, "-m", "checker.cli", "lab", "fault", "semi-sync-fallback"]


# A primary and one semi-sync replica.
lab = module_lab("semi-lab", replicas=1, semi_sync=True)


@pytest.fixture(scope="module")
def checker(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    with running(lab, tmp_path_factory.mktemp("c") / "journal.sqlite", lag_bound=30.0) as (
        service,
        url,
    ):
        assert url is not None
        wait_writes(service, 20)
        yield service, url


def _state(service: Service) -> str | None:
    sampler = service.semi_sync
    return sampler.current.state if sampler and sampler.current else None


def test_the_sampler_sees_semi_sync_on_and_counts_writes_in_it(
    checker: tuple[Service, str],
) -> None:
    """With a replica acknowledging, the primary's semi-sync is on and writes land in `on`."""
    service, url = checker
    wait_for(lambda: _state(service) == "on", timeout=30, what="semi-sync on")
    sampler = service.semi_sync
    assert sampler is not None and sampler.current is not None
    assert sampler.current.enabled is True and sampler.current.clients == 1
    wait_for(lambda: sampler.acked_by_state["on"] > 10, timeout=30, what="writes while on")
    assert sampler.acked_by_state["off"] == 0
    status = requests.get(url + "/status", timeout=10).json()["semi_sync"]
    assert status["state"] == "on" and status["enabled"] is True and status["clients"] == 1
    metrics = requests.get(url + "/metrics", timeout=10).text
    assert "checker_semi_sync_active 1.0" in metrics
    assert 'checker_commit_latency_seconds_count{outcome="ok"}' in metrics


def test_the_fallback_fault_makes_the_primary_async_and_the_undo_restores_it(
    lab: Lab, checker: tuple[Service, str]
) -> None:
    """semi-sync-fallback stops every replica acknowledging and the primary goes async; the
    writes acknowledged meanwhile are counted `off` and the journal holds the window;
    semi-sync-restore turns it on again."""
    service, url = checker
    wait_for(lambda: _state(service) == "on", timeout=30, what="semi-sync on")
    done = lab.fault("semi-sync-fallback", "mysql-0")
    assert done["replicas_not_acknowledging"] == ["mysql-1"]
    assert done["semi_sync"] == "OFF"
    # The canary commit waited out the lab's 2 s timeout before the primary gave up.
    assert done["canary_commit_seconds"] >= 1.5
    sampler = service.semi_sync
    assert sampler is not None
    try:
        wait_for(lambda: _state(service) == "off", timeout=30, what="semi-sync off")
        before = sampler.acked_by_state["off"]
        wait_writes(service, 50)
        wait_for(
            lambda: sampler.acked_by_state["off"] >= before + 50,
            timeout=10,
            what="the sampler to count the writes acknowledged while async",
        )
        assert "checker_semi_sync_active 0.0" in requests.get(url + "/metrics", timeout=10).text
        status = lab.status()["nodes"]["mysql-0"]
        assert "semi_sync_fallback" in status["faults"]
    finally:
        undone = lab.fault("semi-sync-restore", "mysql-0")
    assert undone["replicas_acknowledging"] == ["mysql-1"]
    assert undone["semi_sync"] == "ON"
    wait_for(lambda: _state(service) == "on", timeout=30, what="semi-sync on again")
    service.journal.flush()
    db = sqlite3.connect(service.journal.path)
    try:
        states = [s.state for s in load_samples(db)]
    finally:
        db.close()
    # on, then off, then on again: the window is in the journal for the analysis.
    first_off = states.index("off")
    assert "on" in states[:first_off] and "on" in states[first_off:]
    assert "semi_sync_fallback" not in lab.status()["nodes"]["mysql-0"]["faults"]


def test_the_fault_refuses_a_replica_in_one_line(lab: Lab) -> None:
    """Naming a replica is refused: a LabError, and one line with exit 2 from the CLI."""
    with pytest.raises(LabError, match="not the primary"):
        lab.fault("semi-sync-fallback", "mysql-1")
    proc = subprocess.run(
        [*FAULT_CLI, "mysql-1", "--dir", str(lab.dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not the primary" in lines[0], proc.stderr


def test_the_cli_and_heal_all_undo_the_fallback(lab: Lab, checker: tuple[Service, str]) -> None:
    """`checker lab fault semi-sync-fallback` from the command line turns semi-sync off, and
    the experiments' rollback (probes.lab.heal_all) turns it on again."""
    service, _ = checker
    proc = subprocess.run(
        [*FAULT_CLI, "mysql-0", "--dir", str(lab.dir), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["semi_sync"] == "OFF"
    wait_for(lambda: _state(service) == "off", timeout=30, what="semi-sync off")
    healed = lab_probes.heal_all(configuration={"lab_dir": str(lab.dir)})
    assert healed["undone"] == ["semi-sync-restore mysql-0"]
    wait_for(lambda: _state(service) == "on", timeout=30, what="semi-sync on again")
    assert lab.status()["nodes"]["mysql-0"]["faults"] == []


def test_the_probe_answers_200_while_valid(checker: tuple[Service, str]) -> None:
    """GET /probe/verdict is 200 with status VALID, without any token."""
    service, url = checker
    wait_for(lambda: service.verdict().valid.json is True, timeout=30, what="a VALID verdict")
    r = requests.get(url + "/probe/verdict", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "VALID"


def test_the_probe_says_why_not_in_few_words() -> None:
    """INVALID is 409 with anomaly counts; UNKNOWN is 503 naming the checks that could not
    run; neither body carries error texts, rows or hosts."""
    lost = Anomaly("lost", "mysql-1", "w", 1, {"acked_by": "1@secret-host:3306@1"})
    code, body = probe_answer(build_verdict([lost]))
    assert code == 409
    assert body["status"] == "INVALID" and body["anomalies"] == {"lost": 1}
    assert "lost=1" in body["reason"] and "secret-host" not in str(body)
    failure = Failure("mysql", "cannot connect to secret-host:3306 as checker")
    code, body = probe_answer(build_verdict([], failures=[failure]))
    assert code == 503
    assert body["status"] == "UNKNOWN" and body["checks"] == ["mysql"]
    assert "secret-host" not in str(body)
