"""`checker gameday`: plans, one-shot runs with real chaos experiments, webhooks, no overlap."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from checker.errors import ConfigError
from checker.gameday import GameDay, load_plan
from checker.lab.topology import Lab
from tests._wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHECKER = [sys.executable, "-m", "checker.cli"]


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).received.append(
            {"body": json.loads(body), "auth": self.headers.get("authorization")}
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that records what the game day posts to it."""
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()


def write_plan(path: Path, plan: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(plan))
    return path


def test_once_runs_two_local_experiments_and_keeps_the_evidence(
    lab: Lab, tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    """--once runs two lab experiments with a checker it starts, writes each run's folder, posts
    a summary per run, and exits 0 because both verdicts are VALID."""
    url, received = webhook
    token = tmp_path / "hook-token"
    token.write_text("hook-secret-123\n")
    plan = write_plan(
        tmp_path / "plan.yaml",
        {
            "checker": {
                "start": {"lab": str(lab.dir), "journal": str(tmp_path / "checker.sqlite")}
            },
            "experiments": [
                {
                    "name": name,
                    "path": str(ROOT / "experiments" / "local" / f"{name}.json"),
                    "vars": {"lab_dir": str(lab.dir)},
                    "timeout": 240,
                }
                for name in ("kubelet-stop", "primary-pod-kill")
            ],
            "results": {"dir": str(tmp_path / "results"), "keep": 5},
            "webhook": {"url": url, "token_file": str(token)},
        },
    )
    proc = subprocess.run(
        [*CHECKER, "gameday", "--plan", str(plan), "--once"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    folders = sorted((tmp_path / "results").glob("*-*"))
    assert [f.name.split("-", 1)[1] for f in folders if f.is_dir()] == [
        "kubelet-stop",
        "primary-pod-kill",
    ]
    for folder in (f for f in folders if f.is_dir()):
        assert json.loads((folder / "journal.json").read_text())["status"] == "completed"
        assert json.loads((folder / "verdict.json").read_text())["valid"] is True
        assert (folder / "report" / "index.html").is_file()
        assert (folder / "checker-journal.sqlite").is_file()
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["valid"] is True and summary["chaos_status"] == "completed"
    assert [r["body"]["experiment"] for r in received] == ["kubelet-stop", "primary-pod-kill"]
    assert all(r["auth"] == "Bearer hook-secret-123" for r in received)
    assert "hook-secret-123" not in proc.stderr + proc.stdout


def test_runs_never_overlap_and_skips_are_logged(lab: Lab, tmp_path: Path) -> None:
    """A run due while the previous one still goes is skipped and logged, never run alongside."""
    plan = load_plan(
        write_plan(
            tmp_path / "plan.yaml",
            {
                "checker": {"start": {"lab": str(lab.dir), "journal": str(tmp_path / "c.sqlite")}},
                "experiments": [
                    {
                        "name": "slow",
                        "path": str(ROOT / "tests/gameday/data/slow.json"),
                        "schedule": "* * * * * *",
                        "vars": {"lab_dir": str(lab.dir)},
                    }
                ],
                "results": {"dir": str(tmp_path / "results"), "keep": 2},
            },
        )
    )
    day = GameDay(plan)
    day.connect()
    sched = day.scheduler()
    sched.start()
    try:
        wait_for(lambda: len(day.runs) >= 3, timeout=180, what="three scheduled runs")
    finally:
        sched.shutdown(wait=True)
        day.close()
    assert day.skipped, "no run was skipped although each takes longer than the schedule's period"
    spans = sorted((r["started"], r["finished"]) for r in day.runs)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
    # keep: 2 — older run folders were pruned
    assert len([d for d in (tmp_path / "results").glob("*-slow") if d.is_dir()]) == 2


@pytest.mark.parametrize(
    ("plan", "needle"),
    [
        ("[1, 2]", "must be a mapping"),
        ("experiments: []\nchecker: {url: http://127.0.0.1:1}", "no experiment"),
        ("experiments: [{name: a, path: nowhere.json}]\nchecker: {url: x}", "is not a file"),
        (
            "experiments: [{name: a, path: plan.yaml, schedule: 'every day'}]\nchecker: {url: x}",
            "bad schedule",
        ),
        ("experiments: [{name: a, path: plan.yaml}]", "`checker` needs"),
        (
            "experiments: [{name: a, path: plan.yaml}]\nchecker: {url: x}\nresults: {keep: 0}",
            "results.keep",
        ),
        (
            "experiments: [{name: a, path: plan.yaml}]\nchecker: {url: x}\nfrobnicate: 1",
            "unknown key",
        ),
        (
            "experiments: [{name: a, path: plan.yaml}, {name: a, path: plan.yaml}]\n"
            "checker: {url: x}",
            "unique",
        ),
        ("experiments: [{name: a, path: plan.yaml, timeout: -1}]\nchecker: {url: x}", "timeout"),
        ("experiments: [{name: a, path: plan.yaml\n", "not valid YAML"),
    ],
)
def test_bad_plans_are_one_clear_line(tmp_path: Path, plan: str, needle: str) -> None:
    """Each malformed plan is refused with a ConfigError naming what is wrong."""
    path = tmp_path / "plan.yaml"
    path.write_text(plan)
    with pytest.raises(ConfigError, match=needle):
        load_plan(path)
    proc = subprocess.run(
        [*CHECKER, "gameday", "--plan", str(path), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        len([line for line in proc.stderr.splitlines() if line.startswith("checker: error:")]) == 1
    )


def test_the_kubernetes_plan_is_a_valid_plan(tmp_path: Path) -> None:
    """The game-day ConfigMap's plan parses with the same loader (image paths mapped here)."""
    configmap = yaml.safe_load((ROOT / "manifests/base/chaos/gameday-plan.yaml").read_text())
    text = configmap["data"]["plan.yaml"].replace(
        "/app/experiments/", str(ROOT / "experiments") + "/"
    )
    token = tmp_path / "api-token"
    token.write_text("t0ken\n")
    text = text.replace("/var/run/secrets/checker/api-token", str(token))
    plan = load_plan(write_plan(tmp_path / "plan.yaml", yaml.safe_load(text)))
    assert [e.name for e in plan.experiments] == ["kubelet-stop", "force-delete-pod"]
    assert plan.checker_url is not None and plan.checker_token is not None


def test_a_deviated_steady_state_is_not_summarised_as_completed(lab: Lab, tmp_path: Path) -> None:
    """chaostoolkit calls a run whose steady state failed afterwards `completed` (with
    `deviated: true`): the game-day summary says `deviated`."""
    flag = tmp_path / "flag"
    flag.write_text("up\n")
    experiment = tmp_path / "deviates.json"
    experiment.write_text(
        json.dumps(
            {
                "title": "the steady state deviates",
                "description": "the method removes what the hypothesis checks",
                "steady-state-hypothesis": {
                    "title": "the flag file exists",
                    "probes": [
                        {
                            "type": "probe",
                            "name": "flag-exists",
                            "tolerance": 0,
                            "provider": {
                                "type": "process",
                                "path": "test",
                                "arguments": ["-f", str(flag)],
                            },
                        }
                    ],
                },
                "method": [
                    {
                        "type": "action",
                        "name": "remove-the-flag",
                        "provider": {
                            "type": "process",
                            "path": "rm",
                            "arguments": ["-f", str(flag)],
                        },
                    }
                ],
            }
        )
    )
    plan = write_plan(
        tmp_path / "plan.yaml",
        {
            "checker": {
                "start": {"lab": str(lab.dir), "journal": str(tmp_path / "checker.sqlite")}
            },
            "experiments": [{"name": "deviates", "path": str(experiment), "timeout": 120}],
            "results": {"dir": str(tmp_path / "results"), "keep": 5},
        },
    )
    proc = subprocess.run(
        [*CHECKER, "gameday", "--plan", str(plan), "--once"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    (folder,) = [f for f in (tmp_path / "results").glob("*-deviates") if f.is_dir()]
    chaos = json.loads((folder / "journal.json").read_text())
    assert chaos["status"] == "completed" and chaos["deviated"] is True, proc.stderr[-3000:]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["chaos_status"] == "deviated", summary
    assert summary["steady_state_deviated"] is True


def test_the_summary_gives_anomaly_runs_on_the_experiment_clock() -> None:
    """Lost writes placed in a fault's window come out as one line per run, timed from the
    experiment's start, next to a plain `completed` status."""
    from checker.core.verdict import Anomaly, build_verdict, place_groups
    from checker.findings import gameday_fields
    from checker.report.chaos import load_chaos_journal

    chaos = ROOT / "tests" / "report" / "data" / "chaos-journal.json"
    start = load_chaos_journal(chaos).start
    assert start is not None
    found = [
        Anomaly(
            "lost",
            "mysql-2",
            "w-1",
            seq,
            {"row_id": seq, "acked_at": start + 12 + seq / 100, "acked_by": "s0@1"},
        )
        for seq in (9, 10, 11)
    ]
    v = build_verdict(found)
    placed = place_groups(v.groups, [("promote-the-lagging-replica", start + 12, start + 13)])
    verdict = {**v.to_dict(), "groups": [g.to_dict() for g in placed]}
    fields = gameday_fields(verdict, chaos, "completed")
    assert fields["chaos_status"] == "completed" and fields["steady_state_deviated"] is False
    assert fields["anomaly_runs"] == [
        "3 acknowledged writes lost (absent from the primary) on mysql-2, 1 writer(s), seq 9..11, "
        "acknowledged by s0@1 between t+12.09 s and t+12.11 s, during "
        "`promote-the-lagging-replica`"
    ]
