"""`checker run` against the lab: clean runs, a primary crash, and the checker's own crash."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from checker.core.history import Outcome
from checker.journal import Journal
from checker.lab.topology import Lab
from tests._wait import wait_for
from tests.service._run import get, running, start_subprocess, wait_writes


def test_clean_run_is_valid_with_zero_anomalies(lab: Lab, tmp_path: Path) -> None:
    """About 20 s of four writers, readers and the bank on a healthy lab give VALID, no anomaly."""
    with running(lab, tmp_path / "j.sqlite", workload="ledger,bank") as (service, url):
        assert url is not None
        wait_writes(service, 500, timeout=60)
        wait_for(lambda: service.live.cycles >= 10, timeout=60, what="ten analysis cycles")
        wait_for(
            lambda: get(url, "/status")["uptime_seconds"] >= 20, timeout=60, what="20 s of running"
        )
        status = get(url, "/status")
        assert status["valid"] is True
        assert status["writes"]["failed"] == 0 and status["writes"]["indeterminate"] == 0
        assert status["bank_transfers"]["ok"] > 0
        assert status["reads"] > 0
        assert set(status["lag_seconds"]) == {"mysql-0", "mysql-1", "mysql-2"}
        service.stop_workload()
        verdict = service.analyse()
    assert verdict.valid.json is True, verdict.to_dict()
    assert sum(verdict.anomaly_counts.values()) == 0
    assert verdict.counts.ok == service.live.counts["ok"] >= 500
    journal = Journal.open_readonly(tmp_path / "j.sqlite")
    ok = sum(1 for a in journal.attempts() if a.outcome is Outcome.OK)
    assert ok == verdict.counts.ok


def test_killing_the_primary_mid_run_is_survived_and_classified(lab: Lab, tmp_path: Path) -> None:
    """A SIGKILLed primary gives only FAILED/INDETERMINATE outcomes near the crash, VALID after."""
    with running(lab, tmp_path / "j.sqlite") as (service, url):
        assert url is not None
        wait_writes(service, 200)
        lab.fault("kill", "mysql-0")
        wait_for(
            lambda: service.live.counts["failed"] + service.live.counts["indeterminate"] > 0,
            timeout=30,
            what="writes to fail while the primary is down",
        )
        ok_while_down = service.live.counts["ok"]
        lab.fault("start", "mysql-0")
        wait_writes(service, 200, timeout=60)
        assert service.live.counts["ok"] > ok_while_down
        service.stop_workload()
        verdict = service.analyse()
        status = service.status()
    assert verdict.valid.json is True, verdict.to_dict()
    journal = Journal.open_readonly(tmp_path / "j.sqlite")
    bad = [a for a in journal.attempts() if a.outcome is not Outcome.OK]
    assert bad, "the crash produced no failed or indeterminate write"
    assert all(a.error for a in bad)
    assert status["writes"]["ok"] == verdict.counts.ok


def test_sigkill_of_the_checker_and_restart_give_no_false_anomaly(lab: Lab, tmp_path: Path) -> None:
    """A checker killed with SIGKILL and restarted on the same journal reports no anomaly."""
    journal, ready = tmp_path / "j.sqlite", tmp_path / "ready.json"
    proc, url = start_subprocess(lab, journal, ready)
    try:
        wait_for(lambda: get(url, "/status")["writes"]["ok"] >= 300, timeout=60, what="300 writes")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    proc, url = start_subprocess(lab, journal, ready, "--duration", "6")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert '"valid": true' in out
    j = Journal.open_readonly(journal)
    assert j.info.incarnation == 2
    outcomes = {a.outcome for a in j.attempts()}
    assert Outcome.OK in outcomes
    # The first incarnation's unflushed tail became indeterminate, never lost or unexpected.
    assert '"lost"' not in out and '"unexpected"' not in out


def test_bench_pin_separates_client_and_servers_and_restores(lab: Lab) -> None:
    """`bench service --pin`: the lab's every thread on the other CPUs, the client on its own;
    `unpin` gives the lab its CPUs back (the lab may outlive the benchmark)."""
    from bench.service import _tasks, pin, unpin

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("pinning needs 2 CPUs")
    state = lab.load()
    pids = [n.pid for n in state.nodes.values()] + [state.proxy_pid]
    before = {tid: os.sched_getaffinity(tid) for pid in pids for tid in _tasks(pid)}
    saved: dict[int, set[int]] = {}
    try:
        saved = pin(lab)
        assert os.sched_getaffinity(0) == {cpus[-1]}
        for pid in pids:
            assert {frozenset(os.sched_getaffinity(t)) for t in _tasks(pid)} == {
                frozenset(cpus[:-1])
            }, pid
    finally:
        os.sched_setaffinity(0, set(cpus))
        unpin(saved)
    assert {tid: os.sched_getaffinity(tid) for tid in before if tid in saved} == {
        tid: cpus_ for tid, cpus_ in before.items() if tid in saved
    }


def test_compaction_under_a_running_checker_keeps_verdict_report_and_restart(
    lab: Lab, tmp_path: Path
) -> None:
    """Retention folds a running checker's verified history: later verifications, the report
    and a restart on the compacted journal stay valid and count every write."""
    from checker.journal import JournalReader
    from checker.journal.compact import compact
    from checker.report import write_report

    path, ready = tmp_path / "j.sqlite", tmp_path / "ready.json"
    with running(lab, path, http=False) as (service, _url):
        wait_writes(service, 300, timeout=60)
        first = service.verify()
        assert first.valid.json is True, first.to_dict()
        service.journal.flush()
        wait_writes(service, 100, timeout=60)
        with service.journal_lock:
            done = compact(service.journal, keep=0, margin=0)
        assert done.attempts >= 300
        with JournalReader(service.journal) as db:
            assert db.folded.attempt_id == done.folded_id
            raw = db.count("attempts")
        wait_writes(service, 100, timeout=60)
        second = service.verify()
        assert second.valid.json is True, second.to_dict()
        assert second.counts.ok >= done.attempts + 100
        assert second.counts.ok > raw
    page = write_report(path, tmp_path / "report")
    html = page.read_text()
    assert 'id="summarised"' in html
    assert f"{done.attempts:,} writes" in html
    proc, _url = start_subprocess(lab, path, ready, "--duration", "6")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert '"valid": true' in out
    assert '"lost"' not in out and '"unexpected"' not in out


def test_an_anomaly_found_before_compaction_stays_with_its_raw_attempt(
    lab: Lab, tmp_path: Path
) -> None:
    """A row lost after a clean verification is found `lost`; compaction then folds past it but
    keeps its raw attempt (pinned), and the next verification names it again with the same
    evidence."""
    from checker.journal import JournalReader
    from checker.journal.compact import compact
    from tests.verify._support import root

    path = tmp_path / "j.sqlite"
    with running(lab, path, http=False) as (service, _url):
        wait_writes(service, 300, timeout=60)
        assert service.verify().valid.json is True
        with JournalReader(service.journal) as db:
            vouched = db.last_attempt_id()
            victim = list(db.acked())[50]  # journaled well before the verification began
        (row,) = root(lab, "mysql-0", "SELECT * FROM ledger WHERE id = %s", args=(victim.row_id,))
        root(lab, "mysql-0", "DELETE FROM ledger WHERE id = %s", args=(victim.row_id,))
        try:
            # The live analysis may flag the same row too (its own evidence): compare as sets.
            def lost(verdict: Any) -> set[tuple[Any, ...]]:
                return {
                    (a.node, a.writer_id, a.seq, json.dumps(a.evidence, sort_keys=True))
                    for a in verdict.anomalies
                    if a.type == "lost"
                }

            found = lost(service.verify())
            assert {(w, s) for _n, w, s, _e in found} == {(victim.writer_id, victim.seq)}
            service.journal.flush()
            with service.journal_lock:
                done = compact(service.journal, keep=0, margin=0)
            with JournalReader(service.journal) as db:
                assert db.count("verifications") == 2
                # The finding does not stop retention: it folded past the lost write's attempt
                # (journaled before `vouched`), and kept that one attempt raw.
                assert db.folded.attempt_id > vouched
                kept = db.lookup([(victim.writer_id, victim.seq)])
                pins = set(db.db.execute("SELECT writer_id, seq FROM pins"))
            assert done.folded_id == db.folded.attempt_id and done.attempts > 0
            assert pins == {(victim.writer_id, victim.seq)}
            assert kept[(victim.writer_id, victim.seq)].row_id == victim.row_id
            again = service.verify()
            assert again.valid.json is False
            assert found <= lost(again)
            assert {(w, s) for _n, w, s, _e in lost(again)} == {(victim.writer_id, victim.seq)}
        finally:
            marks = ", ".join(["%s"] * len(row))
            root(lab, "mysql-0", f"INSERT INTO ledger VALUES ({marks})", args=row)


def test_a_folded_row_deleted_or_rewritten_later_is_found(lab: Lab, tmp_path: Path) -> None:
    """After retention folded verified writes, a row deleted on the primary is `lost` (named by
    its row id) and a row rewritten whole (payload and checksum) makes its grain `corrupted`;
    folded rows are never counted as recovered writes. Restored, the verdict is VALID again."""
    import hashlib

    from checker.journal import JournalReader
    from checker.journal.compact import compact
    from tests.verify._support import root

    path = tmp_path / "j.sqlite"
    with running(lab, path, http=False) as (service, _url):
        wait_writes(service, 300, timeout=60)
        assert service.verify().valid.json is True
        service.journal.flush()
        with service.journal_lock:
            done = compact(service.journal, keep=0, margin=0)
        assert done.attempts >= 300
        with JournalReader(service.journal) as db:
            assert db.folded.row_lo is not None and db.folded.row_hi is not None
            grain = max(db.folded_grains(db.folded.row_lo, db.folded.row_hi), key=lambda g: g.n)
        victim = sorted(grain.ids)[len(grain.ids) // 2]
        (row,) = root(lab, "mysql-0", "SELECT * FROM ledger WHERE id = %s", args=(victim,))
        marks = ", ".join(["%s"] * len(row))

        def found(kind: str) -> list[Any]:
            verdict = service.verify()
            assert verdict.counts.recovered == 0, verdict.to_dict()["counts"]
            return [a for a in verdict.anomalies if a.type == kind]

        root(lab, "mysql-0", "DELETE FROM ledger WHERE id = %s", args=(victim,))
        try:
            lost = [a for a in found("lost") if a.evidence.get("folded")]
            assert [a.evidence["row_id"] for a in lost] == [victim]
            assert lost[0].evidence["grain"] == [grain.lo, grain.hi]
        finally:
            root(lab, "mysql-0", f"INSERT INTO ledger VALUES ({marks})", args=row)
        payload = b"rewritten after retention"
        root(
            lab,
            "mysql-0",
            "UPDATE ledger SET payload = %s, checksum = %s WHERE id = %s",
            args=(payload, hashlib.sha256(payload).hexdigest(), victim),
        )
        try:
            (rewritten,) = [a for a in found("corrupted") if a.evidence.get("folded")]
            assert rewritten.evidence["grain"] == [grain.lo, grain.hi]
            assert rewritten.evidence["mismatch"] == ["folded_grain"]
        finally:
            root(
                lab,
                "mysql-0",
                "UPDATE ledger SET payload = %s, checksum = %s WHERE id = %s",
                args=(row[3], row[4], victim),
            )
        again = service.verify()
        assert again.valid.json is True, again.to_dict()
        assert again.counts.recovered == 0


def test_a_journal_disk_short_of_space_is_warned_in_the_log_and_metrics(
    lab: Lab, tmp_path: Path
) -> None:
    """Less free space than --disk-warn-bytes on the journal's filesystem: a `journal_disk_low`
    warning at start and `checker_journal_disk_low 1.0`; with room to spare, neither."""
    import shutil

    import requests
    from structlog.testing import capture_logs

    threshold = shutil.disk_usage(tmp_path).free + 2**40
    low = running(lab, tmp_path / "low.sqlite", disk_warn_bytes=str(threshold))
    with capture_logs() as logs, low as (s, url):
        assert s.disk_low is True
        assert "checker_journal_disk_low 1.0" in requests.get(f"{url}/metrics", timeout=10).text
    (line,) = [x for x in logs if x["event"] == "journal_disk_low"]
    assert line["threshold_bytes"] == threshold and line["log_level"] == "warning"
    assert line["free_bytes"] < threshold and line["journal_bytes"] > 0
    with capture_logs() as logs, running(lab, tmp_path / "ok.sqlite") as (s, url):
        assert s.disk_low is False
        assert "checker_journal_disk_low 0.0" in requests.get(f"{url}/metrics", timeout=10).text
    assert not [x for x in logs if x["event"] == "journal_disk_low"]
