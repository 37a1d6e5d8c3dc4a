"""Retention (checker.journal.compact) on journals written by the real writer: the reader's
answers survive compaction, and nothing a clean verification did not vouch for is folded."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from checker.core.history import Attempt, Outcome, Read
from checker.journal import Journal, JournalReader
from checker.journal.compact import compact
from checker.journal.reader import is_folded

T0 = time.time() - 7200


def _history(path: Path, n: int = 2000) -> tuple[Journal, int]:
    """Two writers, n seqs each (writer b never journaled seqs 5..7: a crash window), one read
    and one lag sample per second, two server identities."""
    j = Journal(path, target="t")
    for w in ("a", "b"):
        j.reserve(w, n + 1000)
    row = 0
    for i in range(1, n + 1):
        for w in ("a", "b"):
            if w == "b" and 5 <= i <= 7:
                continue
            outcome = Outcome.OK if i % 10 else Outcome.FAILED
            row += outcome is Outcome.OK
            t = T0 + i
            j.record_attempt(
                Attempt(
                    w,
                    i,
                    hashlib.sha256(b"%d" % i).hexdigest(),
                    outcome,
                    t,
                    t + 0.01,
                    1.0,
                    1.01,
                    "s1" if i < n // 2 else "s2",
                    "n1",
                    row if outcome is Outcome.OK else None,
                    None,
                )
            )
        j.record_read(Read(time=T0 + i, writer_id="a", max_seq=i - 1, node="n2", endpoint="r"))
        j.record("lag", {"time": T0 + i, "node": "n2", "seconds": 0.1 * (i % 7)})
    j.flush()
    return j, row


def _answers(j: Journal, rows: int) -> dict[str, Any]:
    with JournalReader(j) as r:
        return {
            "expected": r.expected(0, rows),
            "grains": r.expected_grains(0, 3999, 2**62, 1000),
            "row_ids": r.row_ids(),
            "counts": r.counts(r.outcomes()),
            "servers": sorted(r.servers()),
            "spans": {s: (r.ack_span(s)[0], r.ack_span(s)[1].seq) for s in r.ack_servers()},
            "groups": sorted(r.attempt_groups()),
            "max_seq": (r.max_seq("a"), r.max_seq("b")),
        }


def test_reader_answers_are_the_same_after_compaction(tmp_path: Path) -> None:
    """Expected aggregates, counts (crash window included), ack spans and the report's groups
    read the same from a compacted journal, while the raw rows are gone."""
    j, rows = _history(tmp_path / "j.sqlite")
    before = _answers(j, rows)
    with JournalReader(j) as r:
        last = r.last_attempt_id()
    j.record("watermarks", {"started": T0 + 1500, "attempt_id": last})
    j.flush()
    done = compact(j, keep=600, margin=100)
    assert done.attempts > 2000
    assert _answers(j, rows) == before
    with JournalReader(j) as r:
        assert r.count("attempts") < last - 2000
        assert r.count("reads") < 600
        window = r.lookup([("b", 6)])[("b", 6)]
        assert window.outcome is Outcome.INDETERMINATE and "stopped before" in str(window.error)
        assert r.folded_window == {("b", 5), ("b", 6), ("b", 7)}
        # Only acknowledged attempts are folded: a failed one stays raw, to judge its row.
        failed = r.lookup([("a", 10)])[("a", 10)]
        assert failed.outcome is Outcome.FAILED and failed.invoke_wall == T0 + 10
        assert not is_folded(failed) and is_folded(r.lookup([("a", 11)])[("a", 11)])
        # Each grain knows which row ids it folded.
        grains = r.folded_grains(0, rows)
        assert sum(len(g.ids) for g in grains) == sum(g.n for g in grains) == done.attempts
        assert all(g.lo <= i <= g.hi for g in grains for i in g.ids)
    j.close()


def test_nothing_is_folded_without_a_clean_verification(tmp_path: Path) -> None:
    """With no watermark (no verification, or only `unknown` ones) compaction keeps all."""
    j, _rows = _history(tmp_path / "j.sqlite", n=200)
    j.record("verifications", {"started": T0, "finished": T0, "valid": "false", "verdict": "{}"})
    j.flush()
    with JournalReader(j) as r:
        attempts = r.count("attempts")
    done = compact(j, keep=0, margin=0)
    assert done.attempts == 0 and done.samples == 0
    with JournalReader(j) as r:
        assert r.count("attempts") == attempts
        assert r.count("verifications") == 1
    j.close()


def test_cli_compact_names_a_missing_journal_in_one_line(tmp_path: Path) -> None:
    """`checker journal compact` on a missing file: one line, non-zero, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "checker.cli", "journal", "compact", "--journal", f"{tmp_path}/x"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
