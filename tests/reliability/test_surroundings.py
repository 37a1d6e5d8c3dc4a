"""The checker survives faults of its own surroundings: MySQL down at start, a hung primary,
a full or read-only journal disk, and being SIGKILLed again and again."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from checker.core.history import Outcome
from checker.journal import Journal
from checker.lab.topology import Lab
from tests._wait import wait_for
from tests.service._run import get, running, start_subprocess, wait_writes

CHECKER = [sys.executable, "-m", "checker.cli"]


@pytest.fixture
def healthy(lab: Lab) -> Iterator[Lab]:
    """The shared lab, put back to health after the test whatever it did."""
    yield lab
    for name, node in lab.status()["nodes"].items():
        if node["state"] == "paused":
            lab.fault("resume", name)
        elif node["state"] == "killed":
            lab.fault("start", name)


def test_mysql_unreachable_at_start_then_works(healthy: Lab, tmp_path: Path) -> None:
    """Started while the primary is down, the checker reports unknown, retries, then works."""
    lab = healthy
    lab.fault("kill", "mysql-0")
    with running(lab, tmp_path / "j.sqlite") as (service, url):
        assert url is not None
        status = get(url, "/status")
        assert status["valid"] == "unknown"
        assert status["mysql_reachable"] is False
        assert any("MySQL" in e["error"] for e in status["errors"])
        assert get(url, "/verdict")["valid"] == "unknown"
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        lab.fault("start", "mysql-0")
        wait_for(
            lambda: service.live.counts["ok"] >= 100, timeout=60, what="writes once MySQL is up"
        )
        wait_for(lambda: get(url, "/verdict")["valid"] is True, timeout=30, what="a valid verdict")


def test_a_paused_primary_neither_hangs_writers_nor_the_api(healthy: Lab, tmp_path: Path) -> None:
    """With the primary SIGSTOPped past every timeout, writes end unacked and HTTP still answers."""
    lab = healthy
    # Why wider than the default 5 s: the primary stays frozen for as long as the waits below
    # take (up to 60 s on a loaded machine), and reads through the replicas miss the writes
    # acknowledged just before the pause for that long: truly `stale`. This test is about the
    # checker staying responsive, so the bound is longer than the pause can last.
    with running(
        lab, tmp_path / "j.sqlite", statement_timeout=1.0, connect_timeout=1.0, lag_bound=120
    ) as (service, url):
        assert url is not None
        wait_writes(service, 100)
        lab.fault("pause", "mysql-0")
        paused_at = time.monotonic()
        # An INSERT that times out is FAILED (no COMMIT was sent, the server rolls back on
        # disconnect); a COMMIT that times out is INDETERMINATE. Never OK.
        wait_for(
            lambda: service.live.counts["indeterminate"] + service.live.counts["failed"] >= 1,
            timeout=30,
            what="in-flight statements to time out",
        )
        # Every writer gave up on its statement (none is stuck in a read without timeout).
        wait_for(
            lambda: all(w.conn is None for w in service.writers),
            timeout=30,
            what="every writer to drop its hung connection",
        )
        started = time.monotonic()
        status = requests.get(url + "/status", timeout=5).json()
        assert time.monotonic() - started < 5
        assert status["writes"]["indeterminate"] + status["writes"]["failed"] >= 1
        assert time.monotonic() - paused_at >= 1.0
        lab.fault("resume", "mysql-0")
        wait_writes(service, 100, timeout=60)
        service.stop_workload()
        verdict = service.analyse()
    assert verdict.valid.json is True, verdict.to_dict()
    assert verdict.counts.indeterminate + verdict.counts.failed >= 1
    bad = [
        a
        for a in Journal.open_readonly(tmp_path / "j.sqlite").attempts()
        if a.outcome is not Outcome.OK
    ]
    assert bad and all(a.error and "timed out" in a.error for a in bad), [a.error for a in bad]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a disk that can really fill up and be remounted read-only (room for the
    journal's WAL, which reaches 4 MiB before SQLite checkpoints it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill needs root (CI runs as root)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> Path:
    """Fill the disk. Unbuffered: a buffered file would raise ENOSPC again on close."""
    filler = mnt / "filler"
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while f.write(b"\0" * 65536):
            pass
    return filler


def test_full_journal_disk_is_unknown_then_recovers(healthy: Lab, small_disk: Path) -> None:
    """A full journal disk stops writes and turns the verdict unknown; freeing it resumes both."""
    journal = small_disk / "j.sqlite"
    with running(healthy, journal) as (service, url):
        assert url is not None
        wait_writes(service, 100)
        filler = _fill(small_disk)
        wait_for(
            lambda: service.journal.error is not None, timeout=30, what="the journal to hit ENOSPC"
        )
        status = get(url, "/status")
        assert status["valid"] == "unknown"
        assert "journal" in " ".join(e["detector"] for e in status["errors"])
        stalled = service.live.counts["ok"]
        wait_for(
            lambda: all(w.journal.error for w in service.writers),
            timeout=5,
            what="writers to see it",
        )
        cycles = service.live.cycles
        wait_for(
            lambda: service.live.cycles >= cycles + 2, timeout=30, what="two more analysis cycles"
        )
        assert service.live.counts["ok"] <= stalled + len(service.writers)
        filler.unlink()
        wait_for(lambda: service.journal.error is None, timeout=30, what="the journal to recover")
        wait_writes(service, 100, timeout=60)
        service.stop_workload()
        verdict = service.analyse()
    assert verdict.valid.json is True, verdict.to_dict()
    conn = sqlite3.connect(journal)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    proc = subprocess.run(
        [*CHECKER, "verify", "--lab", str(healthy.dir), "--journal", str(journal)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_read_only_journal_disk_is_a_clear_error_and_keeps_the_journal(
    healthy: Lab, small_disk: Path
) -> None:
    """On a read-only journal disk `checker run` stops with one line; the journal stays intact."""
    journal = small_disk / "j.sqlite"
    with running(healthy, journal, http=False) as (service, _):
        wait_writes(service, 50)
    before = hashlib.sha256(journal.read_bytes()).hexdigest()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        proc = subprocess.run(
            [
                *CHECKER,
                "run",
                "--lab",
                str(healthy.dir),
                "--journal",
                str(journal),
                "--duration",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("checker: error:")]
    assert len(errors) == 1 and "journal" in errors[0] and "Traceback" not in proc.stderr
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before
    conn = sqlite3.connect(journal)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_ten_sigkills_of_the_checker_leave_a_valid_history(healthy: Lab, tmp_path: Path) -> None:
    """SIGKILLed at ten points of one run and restarted each time, the checker ends VALID."""
    journal, ready = tmp_path / "j.sqlite", tmp_path / "ready.json"
    for i in range(10):
        proc, url = start_subprocess(healthy, journal, ready)
        try:
            target = 20 + 37 * i % 150  # kill at different depths of each incarnation
            wait_for(
                lambda url=url, target=target: get(url, "/status")["writes"]["ok"] >= target,
                timeout=60,
                what=f"{target} writes in incarnation {i + 1}",
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
    proc, _ = start_subprocess(healthy, journal, ready, "--duration", "3")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err[-3000:]
    assert '"valid": true' in out
    verify = subprocess.run(
        [*CHECKER, "verify", "--lab", str(healthy.dir), "--journal", str(journal), "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
    assert '"valid": true' in verify.stdout
