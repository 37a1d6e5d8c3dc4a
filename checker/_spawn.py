"""Start `checker run` as its own process and wait until its HTTP API is up.

Shared by the demo, game days and the soak benchmark: one place that knows the ready-file
handshake (`--ready-file` is written once the checker runs) and how to stop it cleanly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from checker.errors import CheckerError


class Spawned:
    """A running `checker run` process and its API URL."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path | None) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 180.0) -> bytes:
        """SIGTERM (the checker verifies and prints its summary), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or b""


def spawn_checker(
    options: list[str],
    *,
    ready: Path,
    log: Path | None = None,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    timeout: float = 120.0,
) -> Spawned:
    """`checker run --http 127.0.0.1:0 --ready-file READY OPTIONS...`, once it is serving.

    stderr (the structured log) goes to `log` when given; a checker that exits or does not come
    up in `timeout` seconds is a CheckerError naming the log.
    """
    if ready.exists():
        ready.unlink()
    args = [
        sys.executable,
        "-m",
        "checker.cli",
        "run",
        "--http",
        "127.0.0.1:0",
        "--ready-file",
        str(ready),
        *options,
    ]
    err = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(args, stdout=stdout, stderr=err, start_new_session=True)
    finally:
        if log is not None and not isinstance(err, int):
            err.close()
    where = f"; see {log}" if log is not None else ""
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise CheckerError(f"the checker exited at start (exit {proc.returncode}){where}")
        if time.monotonic() > deadline:
            proc.kill()
            raise CheckerError(f"the checker did not start within {timeout:.0f} s{where}")
        time.sleep(0.1)
    return Spawned(proc, str(json.loads(ready.read_text())["url"]), log)
