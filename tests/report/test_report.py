"""`checker report` on journals of a real lab run, looked at in headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from checker.cli import main
from checker.report import write_report
from tests.report._chromium import Browser, Rendered
from tests.report.conftest import ANNOTATION, Runs, screenshot_target

pytestmark = pytest.mark.lab

# Facts about the rendered DOM, gathered in the page by the browser itself.
PROBE = """(() => {
  const points = (plot) => [...document.querySelectorAll(`svg[data-plot="${plot}"] .series`)]
      .reduce((n, s) => n + Number(s.dataset.points || 0), 0);
  const link = document.querySelector('#verdict a.download');
  return {
    verdict: document.querySelector('.verdict').dataset.valid,
    plots: [...document.querySelectorAll('svg.plot')].map((s) => s.dataset.plot),
    points: {writes: points('writes'), latency: points('latency'), lag: points('lag')},
    failedMarks: document.querySelectorAll('svg[data-plot="writes"] .s-failed use, '
        + 'svg[data-plot="writes"] .s-indeterminate use').length,
    lagSeries: [...document.querySelectorAll('svg[data-plot="lag"] .series')]
        .map((s) => s.dataset.series),
    activities: [...document.querySelectorAll('svg[data-plot="activities"] .activity text')]
        .map((t) => t.textContent),
    shaded: document.querySelectorAll('svg[data-plot="writes"] rect.span').length,
    anomalies: [...document.querySelectorAll('table.anomalies tr.anomaly')]
        .map((tr) => [...tr.cells].map((td) => td.innerText)),
    nodes: [...document.querySelectorAll('table.nodes tr[data-node]')].map((tr) => tr.dataset.node),
    download: link ? atob(link.getAttribute('href').split(',')[1]) : null,
    width: document.documentElement.scrollWidth,
  };
})()"""


def _report(tmp_path: Path, journal: Path, *extra: str, name: str = "out") -> Path:
    out = tmp_path / name
    assert main(["report", "--journal", str(journal), "--out", str(out), *extra]) == 0
    return out


def _look(browser: Browser, out: Path) -> Rendered:
    page = browser.render(out / "index.html", PROBE)
    assert page.errors == [], page.errors
    # The page itself and nothing else: no request, even one the policy would block.
    assert page.requests == [(out / "index.html").resolve().as_uri()], page.requests
    assert page.png.startswith(b"\x89PNG\r\n\x1a\n") and len(page.png) > 50_000
    return page


def _no_network(html: str) -> None:
    assert re.search(r"https?://", html) is None, re.search(r".{60}https?://.{60}", html)
    meta = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert meta is not None
    assert meta.group(1).startswith("default-src 'none'; style-src 'sha256-")
    assert "unsafe-inline" not in meta.group(1) and "script-src" not in meta.group(1)


def test_fault_run_renders_offline_with_plots_and_chaos_spans(
    runs: Runs, browser: Browser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A killed primary shows as failed writes under labelled chaos spans, with no console
    error and no request in Chromium."""
    out = _report(tmp_path, runs.valid, "--chaos-journal", str(runs.chaos_journal))
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    html = (out / "index.html").read_text()
    _no_network(html)
    page = _look(browser, out)
    facts: dict[str, Any] = page.facts
    assert facts["verdict"] == "valid"
    assert facts["plots"] == ["activities", "writes", "latency", "lag"]
    assert facts["points"]["writes"] >= 20 and facts["points"]["latency"] >= 20
    assert facts["failedMarks"] >= 1, "the outage left no failed/indeterminate mark"
    assert facts["lagSeries"] == ["mysql-0 lag", "mysql-1 lag", "mysql-2 lag"]
    labels = set(facts["activities"])
    assert {ANNOTATION, "kill-mysql-0", "start-mysql-0", "rollback: heal-everything"} <= labels
    assert "before: lab-is-running" in labels and "after: lab-is-running" in labels
    assert facts["shaded"] == len(facts["activities"])
    assert facts["nodes"] == ["mysql-0", "mysql-1", "mysql-2"]
    assert facts["width"] <= 1400, "the page scrolls sideways"
    assert json.loads(facts["download"]) == json.loads((out / "verdict.json").read_text())
    assert "restarted (new server identity)" in page.dom


def test_anomaly_table_shows_the_duplicate_with_its_evidence(
    runs: Runs, browser: Browser, tmp_path: Path
) -> None:
    """A row copied on the primary is listed with writer, seq, node, server identity and time."""
    out = _report(tmp_path, runs.invalid, "--chaos-journal", str(runs.chaos_journal))
    page = _look(browser, out)
    facts = page.facts
    assert facts["verdict"] == "invalid"
    writer, seq = runs.duplicate
    dups = [row for row in facts["anomalies"] if row[0] == "duplicated"]
    assert dups, facts["anomalies"]
    _, node, got_writer, got_seq, server, when, evidence = dups[0]
    assert (node, got_writer, got_seq) == ("mysql-0", writer, str(seq))
    assert server.strip() not in ("", "-") and "+" in when and "UTC" in when
    assert "copies 2" in evidence
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["valid"] is False and verdict["anomaly_counts"]["duplicated"] >= 1
    assert json.loads(facts["download"]) == verdict
    target = screenshot_target()
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(page.png)


def test_journal_without_verification_says_server_checks_were_not_run(
    runs: Runs, browser: Browser, tmp_path: Path
) -> None:
    """With no verification the journal alone is analysed, and the page marks the data
    checks 'not run' and the verdict unknown, never valid."""
    out = _report(tmp_path, runs.no_verification)
    page = _look(browser, out)
    assert page.facts["verdict"] == "unknown"
    html = (out / "index.html").read_text()
    assert 'id="not-verified"' in html
    for check in ("lost", "duplicated", "corrupted", "unexpected", "divergent", "errant"):
        row = re.search(rf'data-check="{check}">.*?</tr>', html)
        assert row is not None and "not run" in row.group(0), check
    for check in ("split_brain", "stale", "non_monotonic"):
        row = re.search(rf'data-check="{check}">.*?</tr>', html)
        assert row is not None and "not run" not in row.group(0), check
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["valid"] == "unknown"
    assert [f["detector"] for f in verdict["failures"]] == ["verification"]
    assert verdict["counts"]["failed"] + verdict["counts"]["indeterminate"] > 0


def test_verdict_file_overrides_the_journal(runs: Runs, tmp_path: Path) -> None:
    """`--verdict FILE` is shown (and written) instead of the journal's own verdict."""
    out = _report(tmp_path, runs.no_verification, "--verdict", str(runs.verdict_file))
    html = (out / "index.html").read_text()
    assert 'data-valid="invalid"' in html and "(--verdict)" in html
    assert 'id="not-verified"' not in html
    given = json.loads(runs.verdict_file.read_text())
    assert json.loads((out / "verdict.json").read_text()) == given


def test_no_password_reaches_the_page(runs: Runs, tmp_path: Path) -> None:
    """Neither the lab's passwords nor a password in a journaled event, annotation or
    verification (failure, node reason) reaches the page or verdict.json."""
    journal = tmp_path / "leaky.sqlite"
    shutil.copy(runs.no_verification, journal)
    leaked = runs.secrets[0]
    with sqlite3.connect(journal) as db:
        db.execute(
            "INSERT INTO events (time, kind, detail) VALUES "
            "((SELECT MAX(time) FROM events), 'connect_failed', ?)",
            (json.dumps({"error": f"mysql://root:{leaked}@127.0.0.1 password={leaked}"}),),
        )
        db.execute(
            "INSERT INTO annotations (name, phase, time, received, detail) VALUES "
            "('probe token=s3cr3t-token', 'start', (SELECT MIN(time) FROM events), 0, NULL)"
        )
        verdict = json.loads(runs.verdict_file.read_text())
        verdict["failures"] = [{"detector": "verify", "error": f"denied, password={leaked}"}]
        verdict["nodes"]["mysql-2"]["reason"] = f"login as root:{leaked} refused"
        db.execute(
            "INSERT INTO verifications (started, finished, valid, verdict) VALUES "
            "((SELECT MAX(time) FROM events), (SELECT MAX(time) FROM events), 'false', ?)",
            (json.dumps(verdict),),
        )
    out = _report(tmp_path, journal)
    text = (out / "index.html").read_text() + (out / "verdict.json").read_text()
    for secret in (*runs.secrets, "s3cr3t-token"):
        assert secret not in text
    assert "password=***" in text and "token=***" in text


def test_bad_input_is_one_line_and_exit_2(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each kind of bad input gives exit 2 and one `checker: error:` line naming the problem."""
    not_json = tmp_path / "bad.json"
    not_json.write_text("{ not json")
    not_chaos = tmp_path / "other.json"
    not_chaos.write_text('{"hello": 1}')
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    j, out = str(runs.valid), str(tmp_path / "out")
    cases = {
        "does not exist": ["--journal", str(tmp_path / "missing.sqlite"), "--out", out],
        "not a checker journal": ["--journal", str(not_json), "--out", out],
        "is not JSON (line 1": ["--journal", j, "--out", out, "--chaos-journal", str(not_json)],
        "not a chaostoolkit journal": [
            *("--journal", j, "--out", out, "--chaos-journal", str(not_chaos)),
        ],
        "is not a checker verdict": ["--journal", j, "--out", out, "--verdict", str(not_chaos)],
        "cannot write the report to": ["--journal", j, "--out", str(a_file / "sub")],
        "is a file": ["--journal", j, "--out", str(a_file)],
    }
    for expected, args in cases.items():
        assert main(["report", *args]) == 2, expected
        err = capsys.readouterr().err
        assert err.startswith("checker: error: ") and err.count("\n") == 1, err
        assert expected in err, (expected, err)
        assert "Traceback" not in err


def test_download_link_is_a_data_url_of_the_verdict(runs: Runs, tmp_path: Path) -> None:
    """The page's download link carries verdict.json itself, so saving it needs no server."""
    page = write_report(runs.invalid, tmp_path / "out")
    html = page.read_text()
    hrefs = re.findall(r'download="verdict.json" href="data:application/json;base64,([^"]+)"', html)
    assert len(hrefs) == 2
    assert base64.b64decode(hrefs[0]) == (tmp_path / "out" / "verdict.json").read_bytes().rstrip()


FAULT_PROBE = """(() => {
  const rects = [...document.querySelectorAll('svg[data-plot="writes"] rect.span')];
  return {
    kinds: rects.map((r) => [...r.classList].find((c) => c.startsWith('span-'))),
    fills: rects.map((r) => getComputedStyle(r).fill),
    titles: rects.map((r) => r.querySelector('title').textContent),
  };
})()"""


def test_fault_windows_stand_out_from_probes_and_the_experiment_band(
    runs: Runs, browser: Browser, tmp_path: Path
) -> None:
    """Each method action is shaded as a fault window until its rollback ended, drawn on top
    and filled, while the experiment-wide band and the probes are outlines only."""
    out = _report(tmp_path, runs.valid, "--chaos-journal", str(runs.chaos_journal))
    page = browser.render(out / "index.html", FAULT_PROBE)
    assert page.errors == [], page.errors
    facts: dict[str, Any] = page.facts
    kinds, fills = facts["kinds"], facts["fills"]
    faults = [i for i, k in enumerate(kinds) if k == "span-fault"]
    assert len(faults) == 2, kinds  # kill-mysql-0 and start-mysql-0
    assert faults == list(range(len(kinds) - 2, len(kinds))), "faults are not drawn on top"
    assert all(fills[i] not in ("none", "rgba(0, 0, 0, 0)") for i in faults), fills
    for i, kind in enumerate(kinds):
        if kind in ("span-annotation", "span-probe", "span-steady-state"):
            assert fills[i] == "none", (kind, fills[i])
    kill = facts["titles"][faults[0]]
    assert kill.startswith("fault: kill-mysql-0") and "rollback: heal-everything" in kill


def test_anomalies_are_also_summarised_as_runs(runs: Runs, tmp_path: Path) -> None:
    """Above the one-by-one table, the verdict's anomaly groups in words: the duplicated write
    as one run on mysql-0, of one writer, at its seq."""
    out = _report(tmp_path, runs.invalid, "--chaos-journal", str(runs.chaos_journal))
    html = (out / "index.html").read_text()
    found = re.search(r'<ul class="runs">(.*?)</ul>', html)
    assert found is not None, "no anomaly runs in the report"
    _, seq = runs.duplicate
    items = re.findall(r"<li>(.*?)</li>", found.group(1))
    assert any(
        "writes present more than once on mysql-0, 1 writer(s)" in item
        and f"seq {seq}..{seq}" in item
        for item in items
    ), items
