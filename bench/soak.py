"""Soak: run the checker for a while against the lab and watch its memory and descriptors.

    .venv/bin/python -m bench soak [--seconds 600] [--every 10]

Starts a temporary 3-node lab and `checker run` (ledger + bank, HTTP API) as a subprocess,
samples its RSS and open file descriptors, and compares the last quarter of the run with the
second (the first is warm-up: live windows filling, the first verifications). Exit 0 when both
are flat (RSS within +10 %, descriptors within +5), 1 otherwise. Also run as
`pytest -m soak` (tests/reliability/test_soak.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from checker._spawn import spawn_checker
from checker.errors import CheckerError
from checker.lab.topology import Lab


def _sample(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss_kb, len(os.listdir(f"/proc/{pid}/fd"))


def soak(seconds: float, every: float, verify_interval: float = 120) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as d:
        lab = Lab(Path(d) / "lab")
        lab.up(replicas=2)
        try:
            checker = spawn_checker(
                [
                    "--lab",
                    str(lab.dir),
                    "--journal",
                    str(Path(d) / "j.sqlite"),
                    "--workload",
                    "ledger,bank",
                    "--log-format",
                    "json",
                    "--log-level",
                    "warning",
                    "--verify-interval",
                    str(verify_interval),
                ],
                ready=Path(d) / "ready.json",
            )
        except CheckerError as exc:
            lab.down(purge=True)
            return False, str(exc)
        pid = checker.pid
        try:
            samples: list[tuple[float, int, int]] = []
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                rss, fds = _sample(pid)
                samples.append((time.monotonic() - start, rss, fds))
                print(f"t={samples[-1][0]:6.0f}s rss={rss / 1024:7.1f} MiB fds={fds}", flush=True)
                time.sleep(every)
        finally:
            checker.stop()
            lab.down(purge=True)
    # Flat: over the second half of the run (after the first verifications and the live
    # windows have filled) RSS grows by at most 10 % and descriptors by at most 5.
    quarter = max(1, len(samples) // 4)
    middle = samples[quarter : 2 * quarter] or samples[:1]
    late = samples[-quarter:]
    rss0, rss1 = statistics.mean(s[1] for s in middle), statistics.mean(s[1] for s in late)
    fd0, fd1 = statistics.mean(s[2] for s in middle), statistics.mean(s[2] for s in late)
    flat = rss1 <= rss0 * 1.10 and fd1 <= fd0 + 5
    summary = (
        f"{seconds:.0f} s, pid {pid}: RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB, "
        f"fds {fd0:.0f} -> {fd1:.0f}: {'flat' if flat else 'GROWING'}"
    )
    return flat, summary


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--every", type=float, default=10)
    p.add_argument("--verify-interval", type=float, default=120)
    args = p.parse_args(argv)
    flat, summary = soak(args.seconds, args.every, args.verify_interval)
    print(summary)
    return 0 if flat else 1
