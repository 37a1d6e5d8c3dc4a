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
