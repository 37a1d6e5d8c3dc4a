"""One `chaos run` of an experiment: started in its run folder with the plan's variables, stopped
gracefully at its timeout, and how it ended."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from checker import _logging
from checker.errors import CheckerError
from checker.gameday.plan import Experiment

log = _logging.get("checker.gameday")


@dataclass(frozen=True)
class ChaosRun:
    """How one `chaos run` ended: the journal's status, its exit code, and whether (and how) it
    had to be stopped at its timeout."""

    status: str
    exit_code: int
    stopped: str | None = None


def _stop_gracefully(proc: subprocess.Popen[bytes], exp: Experiment) -> str | None:
    """Wait `exp.timeout` for `chaos run`; then SIGINT it and wait `exp.grace` for its rollbacks;
    SIGKILL (its whole process group) only after that. None when it ended by itself.

    chaostoolkit turns SIGINT into KeyboardInterrupt, marks the journal "interrupted" and, with
    `--rollback-strategy always`, still plays the rollbacks (chaoslib/run.py, Runner._run and
    run_rollback). Only the chaos process gets the SIGINT, not its group: a second interrupt
    during the rollbacks would make chaoslib skip the rest of them.
    """
    try:
        proc.wait(timeout=exp.timeout)
        return None
    except subprocess.TimeoutExpired:
        pass
    log.warning(
        "gameday_chaos_interrupted", experiment=exp.name, timeout=exp.timeout, grace=exp.grace
    )
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=exp.grace)
        return (
            f"timed out after {exp.timeout:g} s: interrupted, and it ended within its "
            f"{exp.grace:g} s grace"
        )
    except subprocess.TimeoutExpired:
        pass
    log.error("gameday_chaos_killed", experiment=exp.name, grace=exp.grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return (
        f"timed out after {exp.timeout:g} s and killed {exp.grace:g} s after the interrupt: "
        "its rollbacks may not have run"
    )


def run_chaos(exp: Experiment, checker_url: str, folder: Path) -> ChaosRun:
    """`chaos run` of `exp` into `folder` (journal.json, chaos.log), pointed at the checker."""
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
        stopped = _stop_gracefully(proc, exp)
    try:
        status = str(json.loads((folder / "journal.json").read_text()).get("status"))
    except (OSError, ValueError):
        status = f"failed (exit {proc.returncode}, no journal; see chaos.log)"
    return ChaosRun(status=status, exit_code=proc.returncode, stopped=stopped)
