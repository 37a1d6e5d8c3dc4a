"""The report's parts without a lab: buckets, quantiles, decimation, spans, the chaos journal,
a journal-only analysis that finds something, and bounded memory on a large journal."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from checker.core.history import Attempt, Outcome
from checker.errors import ConfigError
from checker.journal import Journal
from checker.report import write_report
from checker.report.chaos import load_chaos_journal
from checker.report.data import (
    BINS_PER_DECADE,
    MAX_BUCKETS,
    bucket_width,
    quantile,
    spans_from_annotations,
)
from checker.report.svg import decimate

DATA = Path(__file__).parent / "data"
T0 = 1_790_000_000.0  # a wall-clock time in 2026


def test_bucket_width_keeps_plots_within_a_few_thousand_points() -> None:
    """Short runs get sub-second buckets, minutes per-second ones, and no run more than
    MAX_BUCKETS of them."""
    assert bucket_width(12) == 0.1
    assert bucket_width(300) == 1.0
    assert bucket_width(3600) == 5.0
    assert bucket_width(86_400) == 60.0
    for duration in (0.5, 12, 299, 3600, 86_400, 100 * 86_400):
        width = bucket_width(duration)
        assert duration / width <= MAX_BUCKETS, duration
    assert bucket_width(100 * 86_400) % 3600 == 0


def test_histogram_quantiles_are_within_the_bin_error() -> None:
    """p50/p95/p99 from the log histogram are within one bin (about 12 %) of the exact ones."""
    rng = random.Random(7)
    samples = sorted(rng.lognormvariate(math.log(0.004), 0.8) for _ in range(20_000))
    histogram: dict[int, int] = {}
    for s in samples:
        b = math.floor(BINS_PER_DECADE * math.log10(s))
        histogram[b] = histogram.get(b, 0) + 1
    for q in (0.5, 0.95, 0.99):
        exact = samples[math.ceil(q * len(samples)) - 1]
        got = quantile(histogram, q, samples[-1])
        assert got is not None and abs(got / exact - 1) < 0.125, (q, got, exact)
    assert quantile({}, 0.5, 1.0) is None
    assert quantile({-60: 3}, 0.99, 0.00101) == 0.00101  # never above the largest sample


def test_decimation_keeps_every_column_extreme() -> None:
    """A series denser than the pixels shrinks to four points per column and keeps its spikes."""
    rng = random.Random(3)
    points = [(i / 100, rng.random()) for i in range(200_000)]
    points[123_456] = (points[123_456][0], 50.0)
    kept = decimate(points, columns=2000)
    assert len(kept) <= 4 * 2000
    assert max(y for _, y in kept) == 50.0
    assert min(y for _, y in kept) == min(y for _, y in points)
    assert [x for x, _ in kept] == sorted(x for x, _ in kept)


def test_annotations_pair_by_name_and_unmatched_ones_still_show() -> None:
    """start/end pairs become spans; a start never ended is open; an end never started stays."""
    rows = [
        {"name": "kill", "phase": "start", "time": 10.0, "detail": None},
        {"name": "pause", "phase": "start", "time": 11.0, "detail": "d"},
        {"name": "kill", "phase": "end", "time": 12.0, "detail": None},
        {"name": "heal", "phase": "end", "time": 20.0, "detail": None},
    ]
    spans = spans_from_annotations(rows)
    got = [(s.name, s.start, s.end, s.status) for s in spans]
    assert got == [
        ("kill", 10.0, 12.0, None),
        ("pause", 11.0, None, "never ended"),
        ("heal", 20.0, 20.0, "end without start"),
    ]


def test_chaos_journal_gives_spans_without_providers_or_secrets(tmp_path: Path) -> None:
    """A real chaostoolkit journal becomes named spans; naive times are UTC, a failed
    activity keeps the last line of its exception, and no argument reaches a span."""
    run = load_chaos_journal(DATA / "chaos-journal.json")
    assert run.status == "completed" and run.deviated is False
    assert run.steady_before is True and run.steady_after is True
    kinds = [(s.name, s.kind) for s in run.spans]
    assert kinds == [
        ("before: lab-is-running", "steady-state"),
        ("kill-mysql-0", "action"),
        ("start-mysql-0", "action"),
        ("primary-after-restart", "probe"),
        ("after: lab-is-running", "steady-state"),
        ("rollback: heal-everything", "rollback"),
    ]
    assert all(s.end is not None and s.end >= s.start for s in run.spans)

    data = json.loads((DATA / "chaos-journal.json").read_text())
    kill = data["run"][0]
    kill["start"], kill["end"] = "2026-11-26T21:25:18.024631", "2026-11-26T21:25:18.042014"
    kill["status"] = "failed"
    kill["activity"]["provider"]["arguments"]["password"] = "hunter2-secret"
    kill["exception"] = ["Traceback ...\n", "ActivityFailed: login failed password=hunter2\n"]
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(data))
    span = next(s for s in load_chaos_journal(path).spans if s.name == "kill-mysql-0")
    assert span.start == pytest.approx(1_795_728_318.024631)
    assert span.status == "failed"
    assert span.detail == "ActivityFailed: login failed password=***"
    assert "hunter2" not in repr(load_chaos_journal(path))


def _journal(path: Path, attempts: list[Attempt]) -> Path:
    j = Journal(path, target="127.0.0.1:3306/integrity.ledger")
    for a in attempts:
        j.record_attempt(a)
    j.record_event("checker_started", incarnation=1)
    j.flush_now()
    j.close()
    return path


def test_journal_only_analysis_finds_a_split_brain(tmp_path: Path) -> None:
    """Two server identities acking at overlapping times are reported from the journal alone,
    with both identities named and the data checks marked not run."""
    ok = Outcome.OK
    attempts = [
        Attempt("w1", i, "ab" * 32, ok, T0 + i, T0 + i + 0.01, server="1@old", node="mysql-0")
        for i in range(1, 20)
    ] + [
        Attempt("w2", i, "cd" * 32, ok, T0 + 10 + i, T0 + 10.01 + i, server="2@new", node="mysql-1")
        for i in range(1, 10)
    ]
    page = write_report(_journal(tmp_path / "j.sqlite", attempts), tmp_path / "out")
    html = page.read_text()
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["valid"] is False and verdict["anomaly_counts"]["split_brain"] == 1
    row = re.search(r'<tr class="anomaly" data-type="split_brain">.*?</tr>', html, re.S)
    assert row is not None and "1@old vs 2@new" in row.group(0)
    assert 'data-check="lost">' in html and "not run" in html
    assert "primary moves from mysql-0 to mysql-1" in html


def test_large_journal_is_aggregated_in_bounded_memory(tmp_path: Path) -> None:
    """100,000 attempts over two hours: the report holds no per-attempt object, and each plot
    has at most MAX_BUCKETS points per series."""
    path = _journal(tmp_path / "big.sqlite", [])
    n, span = 100_000, 7200.0
    rows = (
        (
            f"w{i % 4}",
            i // 4 + 1,
            "ab" * 32,
            "ok" if i % 997 else "indeterminate",
            T0 + i * span / n,
            T0 + i * span / n + 0.002,
            None,
            None,
            "1@srv",
            "mysql-0",
            i + 1,
            None,
        )
        for i in range(n)
    )
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO attempts (writer_id, seq, payload_sha256, outcome, invoke_wall, "
            "complete_wall, invoke_mono, complete_mono, server, node, row_id, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    tracemalloc.start()
    try:
        page = write_report(path, tmp_path / "out", analysis_limit=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 100,000 Attempt objects alone would take over 20 MiB; the aggregates take well under 1.
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    html = page.read_text()
    points = [int(p) for p in re.findall(r'class="series line[^"]*"[^>]*data-points="(\d+)"', html)]
    assert points and max(points) <= MAX_BUCKETS
    assert "an in-memory analysis may hold" in html  # the limit is said, not hidden
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["valid"] == "unknown" and verdict["counts"]["attempted"] == n


def test_verdict_file_errors_name_the_file(tmp_path: Path) -> None:
    """A verdict file that is missing, not JSON or not a verdict is refused in one line."""
    journal = _journal(tmp_path / "j.sqlite", [])
    bad = tmp_path / "v.json"
    for content, expected in (
        (None, "does not exist"),
        ("[1,", "is not JSON"),
        ('{"valid": "maybe"}', "is not a checker verdict"),
        ('{"anomalies": []}', 'no "valid"'),
    ):
        if content is None:
            bad.unlink(missing_ok=True)
        else:
            bad.write_text(content)
        with pytest.raises(ConfigError, match=re.escape(expected)) as err:
            write_report(journal, tmp_path / "out", verdict_file=bad)
        assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_crafted_verdict_fields_are_escaped(tmp_path: Path) -> None:
    """Markup in any field of a verdict file (seq, writer, node, server, type) never renders raw."""
    ok = Outcome.OK
    attempts = [
        Attempt("w1", i, "ab" * 32, ok, T0 + i, T0 + i + 0.01, server="1@old", node="mysql-0")
        for i in range(1, 20)
    ] + [
        Attempt("w2", i, "cd" * 32, ok, T0 + 10 + i, T0 + 10.01 + i, server="2@new", node="mysql-1")
        for i in range(1, 10)
    ]
    journal = _journal(tmp_path / "j.sqlite", attempts)
    write_report(journal, tmp_path / "first")
    verdict = json.loads((tmp_path / "first" / "verdict.json").read_text())
    evil = "<script>alert(1)</script>"
    anomaly = verdict["anomalies"][0]
    anomaly.update(seq=evil, writer_id=evil, node=evil)
    anomaly["evidence"] = {**anomaly.get("evidence", {}), "server": evil, evil: evil}
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(verdict))
    html = write_report(journal, tmp_path / "out", verdict_file=crafted).read_text()
    assert "<script" not in html
    assert "&lt;script&gt;" in html


def test_csp_allows_no_inline_script_and_only_the_pages_own_style(tmp_path: Path) -> None:
    """The policy names no 'unsafe-inline' and no script; the one <style> matches its hash."""
    html = write_report(_journal(tmp_path / "j.sqlite", []), tmp_path / "out").read_text()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy is not None
    assert "unsafe-inline" not in policy.group(1) and "script-src" not in policy.group(1)
    assert "<script" not in html and " style=" not in html
    (style,) = re.findall(r"<style>(.*?)</style>", html, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy.group(1)
