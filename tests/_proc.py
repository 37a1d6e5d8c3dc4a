"""Find processes by command line, to prove nothing was left behind."""

from __future__ import annotations

import os
from pathlib import Path


def processes_mentioning(needle: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains `needle`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


def threads_mentioning(needle: str) -> list[int]:
    """Tids of live threads whose process's command line contains `needle`, looked up per
    thread: a server whose main thread has exited (a zombie leader, its own command line
    empty) while other threads still shut it down is still running."""
    tids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            tasks = list((entry / "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                cmdline = (task / "cmdline").read_bytes().decode(errors="replace")
                state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if needle in cmdline and state not in ("Z", "X"):
                tids.append(int(task.name))
    return tids
