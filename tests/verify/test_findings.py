"""Findings a person can read, and nothing observed dropped when verification cannot finish.

A lagging replica promoted loses writes: verification groups them into runs (per writer, the
server identity that acknowledged them, seq and time ranges) placed in the fault's window.
Then the primary dies: the running checker's verdict and `checker verify --json` still carry
the journal's counts and what was found while it lived.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checker.core.verdict import Validity
from checker.lab.topology import Lab
from checker.verify.text import summary_lines
from tests._wait import wait_for
from tests.conftest import start_lab
from tests.verify._support import (
    acked,
    attempts,
    checker,
    cli,
    root,
    verdict_of,
    verify_journal,
    wait_acks,
)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Lab]:
    """mysql-0 and one replica, for this test alone (it promotes or kills)."""
    lab = start_lab(tmp_path / "lab", replicas=1)
    try:
        yield lab
    finally:
        lab.down(purge=True)


def _annotate(service: object, name: str, phase: str) -> None:
    # What POST /annotations journals.
    now = time.time()
    row = {"name": name, "phase": phase, "time": now, "received": now, "detail": None}
    service.journal.record("annotations", row)  # type: ignore[attr-defined]


def _max_seqs(lab: Lab, node: str) -> dict[str, int]:
    rows = root(lab, node, "SELECT writer_id, MAX(seq) FROM ledger GROUP BY writer_id")
    return {str(w): int(s) for w, s in rows}


def test_lost_writes_are_runs_per_writer_placed_in_the_fault_window(
    pair: Lab, tmp_path: Path
) -> None:
    """The writes lost by promoting a lagging replica come as one group per writer, with the
    old primary's identity, exact counts and seq ranges, placed in the lag fault's window
    (not the experiment-wide one); the summary says it in words."""
    lab, journal = pair, tmp_path / "j.sqlite"
    with checker(lab, journal) as service:
        _annotate(service, "experiment", "start")
        wait_acks(service, 100)
        _annotate(service, "lag-mysql-1", "start")
        lab.fault("lag", "mysql-1")
        wait_acks(service, 100)
        applied = _max_seqs(lab, "mysql-1")
        lab.fault("kill", "mysql-0")
        lab.fault("promote", "mysql-1")
        _annotate(service, "lag-mysql-1", "end")
        wait_acks(service, 50)
        _annotate(service, "experiment", "end")
    lost = [
        a for a in acked(journal) if a.node == "mysql-0" and a.seq > applied.get(a.writer_id, 0)
    ]
    assert len(lost) >= 100
    result = verify_journal(lab, journal, timeout=5)
    v = result.verdict
    groups = [g for g in v.groups if g.type == "lost"]
    by_writer: dict[str, list[int]] = {}
    for a in lost:
        by_writer.setdefault(a.writer_id, []).append(a.seq)
    assert {
        g.writer_id: (g.count, g.seq_first, g.seq_last, g.node, g.server, g.activity)
        for g in groups
    } == {
        w: (len(s), min(s), max(s), "mysql-1", lost[0].server, "lag-mysql-1")
        for w, s in by_writer.items()
    }
    assert sum(g.count for g in groups) == v.anomaly_counts["lost"] == len(lost)
    assert all(g.time_first is not None and g.time_first <= (g.time_last or 0) for g in groups)
    assert result.to_dict()["groups"] == [g.to_dict() for g in v.groups]
    text = "\n".join(summary_lines(result))
    assert f"{len(lost)} acknowledged writes lost" in text
    assert "during `lag-mysql-1`" in text and f"acknowledged by {lost[0].server}" in text


class _Deleter(threading.Thread):
    """Deletes the run's new rows on the primary as they come: acknowledged writes that the
    live analysis then finds missing (lost)."""

    def __init__(self, lab: Lab, above: int) -> None:
        super().__init__(daemon=True)
        self.lab, self.above = lab, above
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            root(self.lab, "mysql-0", "DELETE FROM ledger WHERE id > %s", args=[self.above])
            time.sleep(0.02)


def test_nothing_observed_is_dropped_when_the_primary_dies(pair: Lab, tmp_path: Path) -> None:
    """Lost writes flagged live, then the primary killed: the final verification cannot
    finish, yet the verdict is INVALID with those lost writes and the journal's counts, and
    says why the rest is unknown; `checker verify --json` prints the same kind of document
    (exit 1), and one for a journal with nothing found (exit 2, `unknown`, counts there)."""
    lab = pair
    quiet = tmp_path / "quiet.sqlite"
    with checker(lab, quiet) as service:
        wait_acks(service, 50)
    journal = tmp_path / "j.sqlite"
    with checker(lab, journal) as service:
        wait_acks(service, 50)
        top = int(root(lab, "mysql-0", "SELECT MAX(id) FROM ledger")[0][0])
        deleter = _Deleter(lab, top)
        deleter.start()
        try:
            wait_for(
                lambda: sum(1 for k in service.live.anomalies if k[0] == "lost") >= 5,
                timeout=60,
                what="lost writes flagged by the live analysis",
            )
        finally:
            deleter.halt.set()
            deleter.join()
        flagged = sum(1 for k in service.live.anomalies if k[0] == "lost")
        lab.fault("kill", "mysql-0")
        v = service.verify()
    assert v.valid is Validity.INVALID
    assert v.anomaly_counts["lost"] >= flagged
    assert v.counts.attempted > 0 and v.counts.ok >= 50
    assert any(f.detector == "verify" for f in v.failures), v.failures
    lost = [a for a in v.anomalies if a.type == "lost"]
    assert lost and all("acked_at" in a.evidence for a in lost)

    done = cli("verify", "--lab", str(lab.dir), "--journal", str(journal), "--json")
    assert done.returncode == 1, done.stderr
    cv, data = verdict_of(done.stdout)
    assert cv.valid is Validity.INVALID and cv.anomaly_counts["lost"] >= flagged
    assert data["counts"]["attempted"] == len(attempts(journal))
    assert "checker: error:" in done.stderr

    done = cli("verify", "--lab", str(lab.dir), "--journal", str(quiet), "--json")
    assert done.returncode == 2, done.stderr
    qv, data = verdict_of(done.stdout)
    assert qv.valid is Validity.UNKNOWN
    assert data["counts"]["ok"] == len(acked(quiet)) >= 50
    assert [f["detector"] for f in data["failures"]] == ["verify"]
    assert all(n["valid"] == "unknown" and n["reason"] for n in data["nodes"].values())
