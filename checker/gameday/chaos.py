"""One `chaos run` of an experiment: started in its run folder with the plan's variables, stopped
gracefully at its timeout or when the game day is asked to stop, and how it ended."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from checker import _logging
from checker.errors import CheckerError
from checker.gameday.plan import Experiment
from checker.gameday.stop import StopRequest

log = _logging.get("checker.gameday")


@dataclass(frozen=True)
class ChaosRun:
    """How one `chaos run` ended: the journal's status, its exit code, and whether (and how) it
    had to be stopped (its timeout, or a stop request)."""

    status: str
    exit_code: int
    stopped: str | None = None


# How often a wait on `chaos run` looks at the stop request: a stop is acted on within this.
STOP_POLL_SECONDS = 0.25


def _ended_within(
    proc: subprocess.Popen[bytes], seconds: float, stop: threading.Event | None = None
) -> bool:
    """Wait up to `seconds` for `proc` to end, in slices of STOP_POLL_SECONDS so that a set
    `stop` ends the wait early; True when the process has ended."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (stop is not None and stop.is_set()):
            return proc.poll() is not None
        try:
            proc.wait(timeout=min(remaining, STOP_POLL_SECONDS))
            return True
        except subprocess.TimeoutExpired:
            continue


def _stop_gracefully(
    proc: subprocess.Popen[bytes], exp: Experiment, stop: threading.Event | None = None
) -> str | None:
    """Wait `exp.timeout` for `chaos run`, or until `stop` is set (SIGTERM/SIGINT to the game
    day: checker.gameday.stop); then SIGINT it and wait `exp.grace` for its rollbacks; SIGKILL
    (its whole process group) only after that. None when it ended by itself, else the reason.

    chaostoolkit turns SIGINT into KeyboardInterrupt, marks the journal "interrupted" and, with
    `--rollback-strategy always`, still plays the rollbacks (chaoslib/run.py, Runner._run and
    run_rollback). Only the chaos process gets the SIGINT, not its group, and only once: a second
    interrupt during the rollbacks would make chaoslib skip the rest of them (run_rollback
    catches KeyboardInterrupt and returns), so `stop` is not looked at again during the grace.
    """
    if _ended_within(proc, exp.timeout, stop):
        return None
    cause = None
    if stop is not None and stop.is_set():
        why = stop.why if isinstance(stop, StopRequest) else None
        cause = f"stopped by {why or 'a stop request'}"
    log.warning(
        "gameday_chaos_interrupted",
        experiment=exp.name,
        cause=cause or "timeout",
        timeout=exp.timeout,
        grace=exp.grace,
    )
    proc.send_signal(signal.SIGINT)  # the one interrupt it gets
    if _ended_within(proc, exp.grace):
        if cause:
            return f"{cause}: interrupted, and it ended within its {exp.grace:g} s grace"
        return (
            f"timed out after {exp.timeout:g} s: interrupted, and it ended within its "
            f"{exp.grace:g} s grace"
        )
    log.error("gameday_chaos_killed", experiment=exp.name, grace=exp.grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if cause:
        return (
            f"{cause} and killed {exp.grace:g} s after the interrupt: "
            "its rollbacks may not have run"
        )
    return (
        f"timed out after {exp.timeout:g} s and killed {exp.grace:g} s after the interrupt: "
        "its rollbacks may not have run"
    )


def run_chaos(
    exp: Experiment, checker_url: str, folder: Path, stop: threading.Event | None = None
) -> ChaosRun:
    """`chaos run` of `exp` into `folder` (journal.json, chaos.log), pointed at the checker;
    interrupted at its timeout or when `stop` is set, whichever comes first."""
    chaos = shutil.which("chaos", path=str(Path(sys.executable).parent)) or shutil.which("chaos")
    if chaos is None:
        raise CheckerError("the `chaos` command is not installed (pip install chaostoolkit)")
    args = [
        chaos,
        "run",
        str(exp.path.resolve()),
        "--journal-path",
        str(folder / "journal.json"),
        "--rollback-strategy",
        "always",
    ]
    variables = {"checker_url": checker_url, **exp.vars}
    for key, value in variables.items():
        args += ["--var", f"{key}={value}"]
    for f in exp.var_files:
        args += ["--var-file", str(f.resolve())]
    with (folder / "chaos.log").open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        stopped = _stop_gracefully(proc, exp, stop)
    try:
        status = str(json.loads((folder / "journal.json").read_text()).get("status"))
    except (OSError, ValueError):
        status = f"failed (exit {proc.returncode}, no journal; see chaos.log)"
    return ChaosRun(status=status, exit_code=proc.returncode, stopped=stopped)
