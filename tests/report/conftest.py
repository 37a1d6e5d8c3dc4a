"""Journals of a real lab run, chaos included, and a headless Chromium to look at reports.

One checker run against the lab gives every journal the report tests need:
- `chaos run` kills mysql-0 and starts it again while the checker writes (its journal.json is
  real), inside a span the test annotates on the checker's timeline;
- `no_verification`: a copy of the journal taken before any verification;
- `valid`: a copy after a full verification that found nothing;
- `invalid`: the journal after a copy of an acknowledged row was inserted on the primary as
  root and a second verification found it duplicated.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from checker.core.verdict import Validity
from checker.journal import Journal
from checker.lab.topology import Lab
from checker.service import Service
from tests.lab._sql import query
from tests.report._chromium import Browser, find_or_install
from tests.service._run import running, wait_writes

DATA = Path(__file__).parent / "data"
EXPERIMENT = DATA / "kill-primary.json"
CHAOS = Path(sys.executable).with_name("chaos")
ANNOTATION = "game day: kill the primary"


@dataclass(frozen=True)
class Runs:
    no_verification: Path
    valid: Path
    invalid: Path
    chaos_journal: Path
    verdict_file: Path  # the invalid run's verdict, as `checker verify --json` would print it
    duplicate: tuple[str, int]  # (writer_id, seq) of the row copied on the primary
    secrets: tuple[str, ...]  # the lab's passwords: never on a page


@pytest.fixture(scope="session")
def chromium() -> str:
    return find_or_install()


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(chromium, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


def _annotate(service: Service, phase: str) -> None:
    now = time.time()
    service.journal.record(
        "annotations",
        {"name": ANNOTATION, "phase": phase, "time": now, "received": now, "detail": None},
    )


def _copy(service: Service, to: Path) -> Path:
    """A consistent copy of the live journal (SQLite's online backup)."""
    service.journal.flush()
    src, dst = sqlite3.connect(service.journal.path), sqlite3.connect(to)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return to


def _chaos_run(lab: Lab, work: Path) -> Path:
    journal = work / "journal.json"
    settings = work / "settings.yaml"
    settings.write_text("{}\n")
    done = subprocess.run(
        [
            str(CHAOS),
            "--no-version-check",
            "--no-log-file",
            "--settings",
            str(settings),
            "run",
            str(EXPERIMENT),
            "--journal-path",
            str(journal),
            "--var",
            f"lab_dir={lab.dir}",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(journal.read_text())["status"] == "completed"
    return journal


def _duplicate_a_row(lab: Lab, journal: Path) -> tuple[str, int]:
    """Insert, as root on the primary, a copy of an acknowledged row from the middle."""
    j = Journal.open_readonly(journal)
    try:
        with j.engine.connect() as conn:
            row_id, writer, seq = conn.exec_driver_sql(
                "SELECT row_id, writer_id, seq FROM attempts WHERE outcome = 'ok' "
                "AND row_id IS NOT NULL ORDER BY row_id LIMIT 1 OFFSET 100"
            ).one()
    finally:
        j.engine.dispose()
    query(
        lab,
        "writer",
        "INSERT INTO integrity.ledger (writer_id, seq, payload, checksum, written_at) "
        f"SELECT writer_id, seq, payload, checksum, written_at FROM integrity.ledger "
        f"WHERE id = {int(row_id)}",
        user="root",
    )
    return str(writer), int(seq)


@pytest.fixture(scope="module")
def runs(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    work = tmp_path_factory.mktemp("report-runs")
    journal = work / "run.sqlite"
    with running(lab, journal, http=False) as (service, _):
        wait_writes(service, 1500)
        _annotate(service, "start")
        chaos_journal = _chaos_run(lab, work)
        _annotate(service, "end")
        wait_writes(service, 1500, timeout=60)
        service.stop_workload()
        bad = service.live.counts["failed"] + service.live.counts["indeterminate"]
        assert bad > 0, "killing the primary made no write fail"
        no_verification = _copy(service, work / "no-verification.sqlite")
        assert service.verify().valid is Validity.VALID
        valid = _copy(service, work / "valid.sqlite")
        duplicate = _duplicate_a_row(lab, journal)
        verdict = service.verify()
        assert verdict.anomaly_counts["duplicated"] >= 1, verdict.to_dict()
    verdict_file = work / "verdict.json"
    verdict_file.write_text(verdict.to_json(indent=2))
    secrets = tuple(p.read_text().strip() for p in (lab.dir / "secrets").glob("*.password"))
    assert secrets
    return Runs(no_verification, valid, journal, chaos_journal, verdict_file, duplicate, secrets)


def screenshot_target() -> Path | None:
    """Where to also save the documentation's screenshot (set when regenerating it)."""
    target = os.environ.get("CHECKER_REPORT_SCREENSHOT")
    return Path(target) if target else None
