"""`chaos run experiments/local/semi-sync-fallback.json`: writes acknowledged while the primary
had fallen back to async are lost by a failover, and the checker says semi-sync was off."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from checker.lab.topology import Lab
from checker.report import write_report
from tests.chaos.conftest import (
    LOCAL,
    TOKEN,
    ChaosRun,
    Checker,
    checker_on,
    outputs,
    run_experiment,
    steady_states,
)
from tests.conftest import module_lab
from tests.service._run import get

VERIFY = [sys.executable, "-m", "checker.cli", "verify"]
FALLBACK = "the-replicas-stop-acknowledging-and-the-primary-falls-back-to-async"


# A semi-sync lab of its own (the promotion changes it for good): primary, two replicas.
lab = module_lab("semi-sync-lab", replicas=2, semi_sync=True)


@pytest.fixture(scope="module")
def checker(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checker]:
    """The module's checker. After the failover the stopped replicas never reach the new
    primary's GTID set, so a full verification waits its whole barrier timeout before it says
    they cannot be judged: 10 s instead of the default 60 keeps that wait short."""
    with checker_on(lab, tmp_path_factory.mktemp("checker"), verify_timeout=10) as running:
        yield running


@pytest.fixture(scope="module")
def run(lab: Lab, checker: Checker, tmp_path_factory: pytest.TempPathFactory) -> ChaosRun:
    """One real run, with the checker's token."""
    return run_experiment(
        LOCAL / "semi-sync-fallback.json",
        tmp_path_factory.mktemp("semi-sync-run"),
        {"lab_dir": lab.dir, "checker_url": checker.url},
        {"checker": {"token": TOKEN}},
        timeout=180,
    )


def test_the_steady_state_deviates_on_the_checkers_verdict(run: ChaosRun, checker: Checker) -> None:
    """The run deviates and the first probe that failed is the checker's verdict, which held
    before the fault."""
    detail = (steady_states(run), outputs(run.journal), run.proc.stderr[-2000:])
    assert run.proc.returncode == 1, detail
    assert run.journal["steady_states"]["before"]["steady_state_met"] is True, detail
    after = run.journal["steady_states"]["after"]
    assert after["steady_state_met"] is False
    failed = [p["activity"]["name"] for p in after["probes"] if not p["tolerance_met"]]
    assert failed[0] == "checker-verdict-is-valid", detail


def test_the_primary_fell_back_and_the_replica_never_got_the_writes(run: ChaosRun) -> None:
    """The fault left semi-sync OFF with every replica not acknowledging; the promoted replica
    had nothing unapplied to discard (it never received the writes), yet writes are lost."""
    out = outputs(run.journal)
    fallback = out[FALLBACK]
    assert fallback["semi_sync"] == "OFF"
    assert fallback["replicas_not_acknowledging"] == ["mysql-1", "mysql-2"]
    promoted = out["a-failover-promotes-a-replica-that-never-received-them"]
    assert promoted["new_primary"] == "mysql-2"
    assert promoted["old_primary_state"] == "down"
    assert promoted["discarded_relay_log_up_to"] is None
    assert out["checker-anomaly-counts"]["lost"] > 0


def _ended(run: ChaosRun, name: str) -> float:
    (entry,) = [r for r in run.journal["run"] if r["activity"]["name"] == name]
    ended = datetime.fromisoformat(entry["end"])
    return (ended if ended.tzinfo else ended.replace(tzinfo=UTC)).timestamp()


def test_the_lost_writes_were_acknowledged_while_semi_sync_was_off(
    run: ChaosRun, checker: Checker
) -> None:
    """Lost writes say `off` when acknowledged after the fallback; `on` only for the few
    acknowledged while the replicas were being stopped one by one (then another replica than
    the promoted one had acknowledged them); the metrics count the async window's writes."""
    by_state = outputs(run.journal)["lost-writes-by-semi-sync-window"]
    assert by_state["lost"] > 0
    assert by_state["off"] > by_state["on"]
    fallen_back = _ended(run, FALLBACK)
    verdict = get(checker.url, "/verdict")
    lost = [a for a in verdict["anomalies"] if a["type"] == "lost"]
    assert lost
    for a in lost:
        if a["evidence"]["semi_sync"] == "on":
            assert a["evidence"]["acked_at"] <= fallen_back, a
    after = [a for a in lost if a["evidence"]["acked_at"] > fallen_back]
    assert after and {a["evidence"]["semi_sync"] for a in after} <= {"off", "unknown"}
    assert "off" in {a["evidence"]["semi_sync"] for a in after}
    metrics = requests.get(checker.url + "/metrics", timeout=10).text
    prefix = 'checker_semi_sync_acked_writes_total{state="off"}'
    (line,) = [m for m in metrics.splitlines() if m.startswith(prefix)]
    # Every lost write acknowledged in the async window was counted there when acknowledged
    # (how many writes the window holds depends on the machine's speed, not on the checker).
    lost_off = sum(1 for a in lost if a["evidence"]["semi_sync"] == "off")
    assert float(line.split()[-1]) >= lost_off > 0


def test_the_verdict_probe_answers_409_with_the_reason(run: ChaosRun, checker: Checker) -> None:
    """GET /probe/verdict, as Litmus or Chaos Mesh would ask it, fails with 409 and says lost."""
    r = requests.get(checker.url + "/probe/verdict", timeout=10)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["status"] == "INVALID"
    assert body["anomalies"]["lost"] > 0 and "lost=" in body["reason"]


def test_the_report_shades_the_async_window(
    run: ChaosRun, checker: Checker, tmp_path: Path
) -> None:
    """`checker report` on the run's journal shades the window semi-sync was off, and its
    lost writes (from the full verification it journaled) carry `semi_sync` in their evidence."""
    assert checker.service.verify().valid.json is False
    page = write_report(checker.service.journal.path, tmp_path / "report")
    html = page.read_text()
    assert html.count('class="span span-semi-sync-off') >= 3  # one band per chart at least
    assert "semi-sync off: primary acknowledging without a replica" in html
    verdict = json.loads((tmp_path / "report" / "verdict.json").read_text())
    assert verdict["anomaly_counts"]["lost"] > 0
    lost = [a for a in verdict["anomalies"] if a["type"] == "lost"]
    assert any(a["evidence"].get("semi_sync") == "off" for a in lost)


def test_checker_verify_offline_says_semi_sync_too(
    run: ChaosRun, lab: Lab, checker: Checker
) -> None:
    """`checker verify --json` on the run's journal, from another process, finds the lost
    writes and marks them with the window of their ack, as the running checker does."""
    checker.service.journal.flush()
    proc = subprocess.run(
        [
            *VERIFY,
            *("--lab", str(lab.dir), "--journal", str(checker.service.journal.path)),
            *("--json", "--timeout", "10"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    verdict = json.loads(proc.stdout)
    verdict = verdict.get("verdict", verdict)
    lost = [a for a in verdict["anomalies"] if a["type"] == "lost"]
    assert lost
    assert {a["evidence"]["semi_sync"] for a in lost} <= {"on", "off", "unknown"}
    assert any(a["evidence"]["semi_sync"] == "off" for a in lost)
