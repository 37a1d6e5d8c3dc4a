"""A game day's result: real `chaos run`s of tiny experiments, graceful timeouts and stops
(SIGTERM), each criterion."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from checker.gameday import Experiment, GameDay, load_plan
from checker.gameday.chaos import _stop_gracefully
from checker.gameday.result import evaluate
from checker.gameday.stop import StopRequest
from checker.gameday.timeouts import derive_timeouts
from checker.lab.topology import Lab
from tests._proc import processes_mentioning
from tests._wait import wait_for
from tests.chaos.conftest import TOKEN, Checker, checker_on


@pytest.fixture(scope="module")
def running_checker(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checker]:
    """A checker writing to the module's lab, VALID, with bearer token TOKEN."""
    with checker_on(lab, tmp_path_factory.mktemp("checker")) as checker:
        yield checker


def _process(name: str, path: str, *args: str, kind: str = "action") -> dict[str, Any]:
    return {
        "type": kind,
        "name": name,
        "provider": {"type": "process", "path": path, "arguments": list(args)},
    }


def _probe(name: str, path: str, *args: str, tolerance: Any = 0) -> dict[str, Any]:
    return {**_process(name, path, *args, kind="probe"), "tolerance": tolerance}


def _experiment(
    tmp: Path,
    method: list[dict[str, Any]],
    rollbacks: list[dict[str, Any]] | None = None,
) -> Path:
    """A tiny experiment whose steady state is "the file `healthy` exists in `tmp`"."""
    doc = {
        "version": "1.0.0",
        "title": "tiny",
        "description": "a test experiment",
        "configuration": {"dir": str(tmp)},
        "steady-state-hypothesis": {
            "title": "healthy exists",
            "probes": [_probe("healthy-exists", "test", "-e", "${dir}/healthy")],
        },
        "method": method,
        "rollbacks": rollbacks or [],
    }
    path = tmp / "experiment.json"
    path.write_text(json.dumps(doc))
    return path


def _run(
    tmp: Path, checker: Checker, experiment: Path, **extra: Any
) -> tuple[dict[str, Any], GameDay]:
    token = tmp / "token"
    token.write_text(TOKEN + "\n")
    plan_path = tmp / "plan.yaml"
    plan_path.write_text(
        yaml.safe_dump(
            {
                "checker": {"url": checker.url, "token_file": str(token)},
                "experiments": [{"name": "tiny", "path": str(experiment), **extra}],
                "results": {"dir": str(tmp / "results"), "keep": 5},
            }
        )
    )
    day = GameDay(load_plan(plan_path))
    try:
        summary = day.run(day.plan.experiments[0])
    finally:
        day.close()
    assert summary is not None
    on_disk = json.loads((Path(summary["folder"]) / "summary.json").read_text())
    assert on_disk["result"] == summary["result"] and on_disk["reasons"] == summary["reasons"]
    return summary, day


def test_a_full_success_is_result_success_and_exit_0(
    tmp_path: Path, running_checker: Checker
) -> None:
    """Steady state before and after, the method ran, its probe tolerance held, VALID: success."""
    (tmp_path / "healthy").touch()
    exp = _experiment(
        tmp_path,
        [
            _process("inject", "touch", str(tmp_path / "injected")),
            _probe("injected", "test", "-e", str(tmp_path / "injected")),
        ],
    )
    summary, _ = _run(tmp_path, running_checker, exp)
    assert summary["valid"] is True
    assert (summary["result"], summary["reasons"]) == ("success", [])
    assert (tmp_path / "injected").exists()


def test_steady_state_not_met_before_fails_and_says_so(
    tmp_path: Path, running_checker: Checker
) -> None:
    """No `healthy` file: the hypothesis fails, the method never runs; VALID is not enough."""
    exp = _experiment(tmp_path, [_process("inject", "touch", str(tmp_path / "injected"))])
    summary, _ = _run(tmp_path, running_checker, exp)
    assert summary["valid"] is True, "the data verdict alone would have called this a success"
    assert summary["result"] == "failed"
    assert any("not met before" in r and "healthy-exists" in r for r in summary["reasons"])
    assert "the method did not run" in summary["reasons"]
    assert not (tmp_path / "injected").exists()


def test_a_failed_method_action_fails_the_run(tmp_path: Path, running_checker: Checker) -> None:
    """An action that raises (nothing injected) is a failed run naming the action."""
    (tmp_path / "healthy").touch()
    failing = {
        "type": "action",
        "name": "inject-nothing",
        "provider": {
            "type": "python",
            "module": "os",
            "func": "remove",
            "arguments": {"path": str(tmp_path / "no-such-file")},
        },
    }
    summary, _ = _run(tmp_path, running_checker, _experiment(tmp_path, [failing]))
    assert summary["result"] == "failed"
    assert "method action 'inject-nothing' failed" in summary["reasons"]


def test_a_method_probe_outside_its_tolerance_fails_the_run(
    tmp_path: Path, running_checker: Checker
) -> None:
    """chaostoolkit completes a run whose method probe misses its tolerance; a game day fails."""
    (tmp_path / "healthy").touch()
    exp = _experiment(
        tmp_path, [_probe("fault-visible", "test", "-e", str(tmp_path / "never-created"))]
    )
    summary, _ = _run(tmp_path, running_checker, exp)
    journal = json.loads((Path(summary["folder"]) / "journal.json").read_text())
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert summary["result"] == "failed"
    (reason,) = summary["reasons"]
    assert "method probe 'fault-visible'" in reason and "outside its tolerance 0" in reason


def test_steady_state_not_met_after_fails_the_run(tmp_path: Path, running_checker: Checker) -> None:
    """A method that breaks the steady state for good: the after-check fails, named as such."""
    (tmp_path / "healthy").touch()
    exp = _experiment(tmp_path, [_process("break", "rm", str(tmp_path / "healthy"))])
    summary, _ = _run(tmp_path, running_checker, exp)
    assert summary["result"] == "failed"
    assert any("not met after" in r for r in summary["reasons"]), summary["reasons"]


def test_invalid_and_unknown_verdicts_on_a_real_journal(
    tmp_path: Path, running_checker: Checker
) -> None:
    """On a clean run's journal, INVALID is a failure (exit 1), unknown is exit 2, VALID exit 0."""
    (tmp_path / "healthy").touch()
    exp = _experiment(tmp_path, [_process("inject", "touch", str(tmp_path / "x"))])
    summary, _ = _run(tmp_path, running_checker, exp)
    journal = json.loads((Path(summary["folder"]) / "journal.json").read_text())
    assert evaluate(journal, True).exit_code == 0
    invalid = evaluate(journal, False)
    assert (invalid.result, invalid.exit_code) == ("failed", 1)
    assert invalid.reasons == ("the checker's verdict is INVALID",)
    unknown = evaluate(journal, "unknown")
    assert (unknown.result, unknown.exit_code) == ("unknown", 2)
    assert evaluate(None, True).exit_code == 1


def test_a_timeout_interrupts_chaos_and_its_rollback_runs(
    tmp_path: Path, running_checker: Checker
) -> None:
    """At the timeout chaos run gets SIGINT, plays its rollback and ends by itself (no SIGKILL)."""
    (tmp_path / "healthy").touch()
    exp = _experiment(
        tmp_path,
        [_process("long-fault", "sleep", "300")],
        rollbacks=[_process("undo", "touch", str(tmp_path / "rolled-back"))],
    )
    summary, _ = _run(tmp_path, running_checker, exp, timeout=15, grace=120)
    assert (tmp_path / "rolled-back").exists(), "the rollback did not run"
    assert summary["chaos_exit_code"] != -signal.SIGKILL
    assert summary["chaos_status"] == "interrupted"
    assert "interrupted, and it ended within its 120 s grace" in summary["chaos_stopped"]
    assert summary["result"] == "failed"
    assert summary["chaos_stopped"] in summary["reasons"]


def test_a_rollback_beyond_the_grace_is_killed(tmp_path: Path, running_checker: Checker) -> None:
    """A rollback still running when the grace ends: SIGKILL, and the reason says so."""
    (tmp_path / "healthy").touch()
    exp = _experiment(
        tmp_path,
        [_process("long-fault", "sleep", "300")],
        rollbacks=[
            _process("slow-undo", "sleep", "300"),
            _process("undo", "touch", str(tmp_path / "rolled-back")),
        ],
    )
    summary, _ = _run(tmp_path, running_checker, exp, timeout=15, grace=5)
    assert summary["chaos_exit_code"] == -signal.SIGKILL
    assert not (tmp_path / "rolled-back").exists()
    assert "killed" in summary["chaos_stopped"]
    assert summary["result"] == "failed"


def test_default_timeout_and_grace_come_from_the_experiment(tmp_path: Path) -> None:
    """Without `timeout`/`grace` the plan derives both from the substituted durations (+ margin)."""
    exp = {
        "version": "1.0.0",
        "title": "t",
        "description": "d",
        "configuration": {"down": 100, "wait": {"type": "env", "key": "NOPE_UNSET", "default": 7}},
        "steady-state-hypothesis": {
            "title": "h",
            "probes": [
                {
                    "type": "probe",
                    "name": "p",
                    "tolerance": True,
                    "provider": {
                        "type": "python",
                        "module": "os",
                        "func": "getcwd",
                        "arguments": {"timeout": 10},
                    },
                }
            ],
        },
        "method": [
            {
                "type": "action",
                "name": "a",
                "provider": {
                    "type": "python",
                    "module": "os",
                    "func": "getcwd",
                    "arguments": {"duration": "${down}", "pod_lost_timeout": "${wait}", "n": 5},
                },
                "pauses": {"after": 3},
            },
            {
                "type": "probe",
                "name": "b",
                "provider": {"type": "process", "path": "true", "timeout": 4},
            },
        ],
        "rollbacks": [
            {
                "type": "action",
                "name": "r",
                "provider": {
                    "type": "python",
                    "module": "os",
                    "func": "getcwd",
                    "arguments": {"timeout": "${wait}"},
                },
            }
        ],
    }
    # hypothesis twice (2 x 10) + method (down 250 from --var, 7, pause 3, provider timeout 4)
    derived = derive_timeouts(exp, {"down": "250"})
    assert derived.timeout == 1.25 * (20 + 250 + 7 + 3 + 4) + 60
    assert derived.grace == 69  # ceil(1.25 * 7 + 60)
    path = tmp_path / "e.json"
    path.write_text(json.dumps(exp))
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "checker": {"url": "http://127.0.0.1:1"},
                "experiments": [
                    {"name": "derived", "path": str(path), "vars": {"down": 250}},
                    {"name": "given", "path": str(path), "timeout": 42, "grace": 9},
                ],
            }
        )
    )
    derived_exp, given = load_plan(plan).experiments
    assert (derived_exp.timeout, derived_exp.grace) == (derived.timeout, derived.grace)
    assert (given.timeout, given.grace) == (42.0, 9.0)


def test_the_cli_exits_1_and_posts_the_reasons_when_nothing_was_injected(
    tmp_path: Path, running_checker: Checker
) -> None:
    """`checker gameday --once` (the CronJob's command) exits 1 for a run whose method never ran
    although the verdict is VALID, and its webhook payload names why."""
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        exp = _experiment(tmp_path, [_process("inject", "touch", str(tmp_path / "injected"))])
        token = tmp_path / "token"
        token.write_text(TOKEN + "\n")
        plan = tmp_path / "plan.yaml"
        plan.write_text(
            yaml.safe_dump(
                {
                    "checker": {"url": running_checker.url, "token_file": str(token)},
                    "experiments": [{"name": "tiny", "path": str(exp)}],
                    "results": {"dir": str(tmp_path / "results")},
                    "webhook": {"url": f"http://127.0.0.1:{server.server_address[1]}/hook"},
                }
            )
        )
        proc = subprocess.run(
            [sys.executable, "-m", "checker.cli", "gameday", "--plan", str(plan), "--once"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=tmp_path,
        )
    finally:
        server.shutdown()
    assert proc.returncode == 1, proc.stderr[-3000:]
    (body,) = received
    assert body["valid"] is True and body["result"] == "failed"
    assert "the method did not run" in body["reasons"]
    assert "gameday_run_not_successful" in proc.stderr + proc.stdout


# -- a stop request: SIGTERM/SIGINT to the game day, as when the kubelet terminates its pod --------

# A stand-in for `chaos run` (a real process): counts its SIGINTs, and on the first one "plays its
# rollbacks": waits for the test's `release` file, then works 1 s more (four stop polls) before
# it exits 0, so that an interrupt sent again during the grace would be counted.
_INTERRUPTIBLE = """
import signal, sys, time
from pathlib import Path

d = Path(sys.argv[1])
interrupts = 0


def on_sigint(signum, frame):
    global interrupts
    interrupts += 1
    (d / "interrupts").write_text(str(interrupts))


signal.signal(signal.SIGINT, on_sigint)
(d / "ready").touch()
while not interrupts:
    signal.pause()
while not (d / "release").exists():
    time.sleep(0.02)
time.sleep(1.0)
(d / "interrupts").write_text(str(interrupts))
"""


def test_a_stop_request_interrupts_once_and_keeps_the_grace(tmp_path: Path) -> None:
    """A stop request during the run: one SIGINT, as at a timeout; a second request during the
    grace sends no second SIGINT (chaoslib would skip the remaining rollbacks) and does not
    shorten the grace; the reason says who stopped it."""
    script = tmp_path / "interruptible.py"
    script.write_text(_INTERRUPTIBLE)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], start_new_session=True)
    exp = Experiment(name="child", path=script, schedule=None, timeout=120, grace=30)
    stop = StopRequest()
    result: list[str | None] = []
    waiter = threading.Thread(target=lambda: result.append(_stop_gracefully(proc, exp, stop)))
    started = time.monotonic()
    waiter.start()
    try:
        wait_for((tmp_path / "ready").exists, timeout=30, what="the child's handler")
        assert stop.request("SIGTERM") is True
        wait_for(
            lambda: (tmp_path / "interrupts").read_text() == "1",
            timeout=10,
            what="the SIGINT that the stop request sends",
        )
        assert stop.request("SIGINT") is False, "a second request is not a first one"
        stop.set()
        (tmp_path / "release").touch()
        waiter.join(timeout=30)
        assert not waiter.is_alive(), "_stop_gracefully did not return within the grace"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "interrupts").read_text() == "1", "the child got more than one SIGINT"
    assert proc.returncode == 0, "the child was killed instead of ending within its grace"
    assert result == ["stopped by SIGTERM: interrupted, and it ended within its 30 s grace"]
    assert time.monotonic() - started < exp.timeout, "the stop waited for the timeout"


def test_sigterm_stops_a_once_run_after_its_rollbacks_and_runs_nothing_more(
    tmp_path: Path, running_checker: Checker
) -> None:
    """SIGTERM to `checker gameday --once` (the kubelet terminating the CronJob's pod) during a
    long method: the chaos run is interrupted and plays its rollbacks, a second signal during them
    (SIGINT) cuts none short, the run's evidence says it was stopped by SIGTERM, the second
    experiment never starts, and the process exits 1 within the interrupted experiment's grace."""
    first, second = tmp_path / "first", tmp_path / "second"
    for d in (first, second):
        d.mkdir()
        (d / "healthy").touch()
    long_fault = _experiment(
        first,
        [_process("long-fault", "sleep", "300")],
        rollbacks=[
            _process("slow-undo", "sleep", "2"),
            _process("undo", "touch", str(first / "rolled-back")),
        ],
    )
    never = _experiment(second, [_process("inject", "touch", str(second / "ran"))])
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    grace = 60
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "checker": {"url": running_checker.url, "token_file": str(token)},
                "experiments": [
                    {"name": "first", "path": str(long_fault), "timeout": 600, "grace": grace},
                    {"name": "second", "path": str(never), "timeout": 600, "grace": grace},
                ],
                "results": {"dir": str(tmp_path / "results"), "keep": 5},
            }
        )
    )
    log = tmp_path / "gameday.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "checker.cli", "gameday", "--plan", str(plan), "--once"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        wait_for(
            lambda: any(
                "Action: long-fault" in f.read_text()
                for f in (tmp_path / "results").glob("*-first/chaos.log")
            ),
            timeout=120,
            what="the first experiment's method to start",
        )
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        wait_for(
            lambda: (
                "Action: slow-undo"
                in next((tmp_path / "results").glob("*-first/chaos.log")).read_text()
            ),
            timeout=grace,
            what="the rollbacks to start",
        )
        proc.send_signal(signal.SIGINT)  # a second stop: Ctrl-C, or a repeated SIGTERM
        proc.wait(timeout=grace)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert proc.returncode == 1, output[-3000:]
    assert took < grace
    assert (first / "rolled-back").exists(), "the rollbacks were cut short"
    (folder,) = (tmp_path / "results").glob("*-first")
    journal = json.loads((folder / "journal.json").read_text())
    assert [(r["activity"]["name"], r["status"]) for r in journal["rollbacks"]] == [
        ("slow-undo", "succeeded"),
        ("undo", "succeeded"),
    ]
    assert "gameday_stop_already_requested" in output
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["chaos_status"] == "interrupted"
    assert summary["chaos_exit_code"] != -signal.SIGKILL
    assert summary["chaos_stopped"] == (
        f"stopped by SIGTERM: interrupted, and it ended within its {grace} s grace"
    )
    assert summary["chaos_stopped"] in summary["reasons"]
    assert summary["result"] == "failed"
    assert "pending" not in summary, "the verification's summary did not replace the early one"
    assert summary["valid"] is True, "the interrupted run was not verified"
    assert not (second / "ran").exists(), "the second experiment ran after SIGTERM"
    assert not list((tmp_path / "results").glob("*-second")), "the second run was started"
    skipped = [line for line in output.splitlines() if "gameday_run_skipped" in line]
    assert len(skipped) == 1 and "second" in skipped[0] and "SIGTERM" in skipped[0], output
    assert not processes_mentioning(str(long_fault)), "the chaos run outlived the game day"


def test_a_stop_request_ends_serve_mode_within_the_grace(
    tmp_path: Path, running_checker: Checker
) -> None:
    """Serve mode: a stop request interrupts the scheduled run going (its rollback runs) and the
    scheduler's shutdown then completes within the run's grace, not at the end of its timeout."""
    (tmp_path / "healthy").touch()
    exp = _experiment(
        tmp_path,
        [_process("long-fault", "sleep", "300")],
        rollbacks=[_process("undo", "touch", str(tmp_path / "rolled-back"))],
    )
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    plan = tmp_path / "plan.yaml"
    grace = 60
    plan.write_text(
        yaml.safe_dump(
            {
                "checker": {"url": running_checker.url, "token_file": str(token)},
                "experiments": [
                    {
                        "name": "tiny",
                        "path": str(exp),
                        "schedule": "* * * * * *",
                        "timeout": 600,
                        "grace": grace,
                    }
                ],
                "results": {"dir": str(tmp_path / "results"), "keep": 5},
            }
        )
    )
    day = GameDay(load_plan(plan))
    exit_code: list[int] = []
    serving = threading.Thread(target=lambda: exit_code.append(day.serve()))
    serving.start()
    try:
        wait_for(
            lambda: any(
                "Action: long-fault" in f.read_text()
                for f in (tmp_path / "results").glob("*-tiny/chaos.log")
            ),
            timeout=120,
            what="the scheduled run's method to start",
        )
    finally:
        day.stop.request("SIGTERM")
        serving.join(timeout=grace)
    assert not serving.is_alive(), "serve() did not return within the grace"
    assert exit_code == [0]
    assert (tmp_path / "rolled-back").exists(), "the rollback did not run"
    (summary,) = day.runs
    assert summary["chaos_stopped"].startswith("stopped by SIGTERM: interrupted, and it ended")
    assert summary["result"] == "failed"
