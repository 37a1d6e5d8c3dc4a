"""Journal growth with and without retention: a long history at CHECKER_RATE=50 plus reads,
written at an accelerated pace through the real `Journal` writer (no MySQL).

    python -m bench journal_growth [--days 30] [--rate 50] [--reads 80] [--no-retention]

Simulated time: every record carries the time it would have had in a real run. Each simulated
hour the service's two retention steps run as they would: a watermark is journaled as a clean
verification journals one (`Service.verify`: the last attempt id at its start; here no server
is checked, the watermark is *marked*, not earned), then `compact(keep=3600, now=<simulated
time>)`. Reported per simulated day: the journal's bytes (with its WAL), the raw rows left, and
the process' RSS. `--reads`: reads journaled per second (4 readers, one per endpoint, reading
4 writers every 0.2 s: 80/s); lag: one sample per replica (2) per second.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import tempfile
import time
from pathlib import Path

from checker.core.history import Attempt, Outcome, Read
from checker.journal import Journal, JournalReader
from checker.journal.compact import compact

HOUR = 3600


def _bytes(path: Path) -> int:
    return sum(
        os.stat(f"{path}{s}").st_size for s in ("", "-wal", "-shm") if Path(f"{path}{s}").exists()
    )


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench journal_growth")
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--rate", type=int, default=50, help="writes per second")
    p.add_argument("--reads", type=int, default=80, help="reads journaled per second")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--no-retention", action="store_true")
    p.add_argument("--dir", default=None)
    a = p.parse_args(argv)
    workdir = Path(a.dir or tempfile.mkdtemp(prefix="journal-growth-"))
    path = workdir / "journal.sqlite"
    j = Journal(path, target="bench:3306/checker.ledger", batch=20_000)
    writers = [f"{j.info.run_id}-1-{i}" for i in range(a.writers)]
    seqs = dict.fromkeys(writers, 0)
    for w in writers:
        j.reserve(w, 10**12)
    t0 = time.time() - a.days * 86400 - HOUR
    digest = hashlib.sha256(b"x").hexdigest()
    row = 0
    started = time.monotonic()
    print(
        f"journal {path}; {a.rate} writes/s, {a.reads} reads/s, retention "
        f"{'off' if a.no_retention else 'on (keep 3600 s)'}"
    )
    print("day  journal_MiB  raw_attempts  raw_reads  rss_MiB  elapsed_s")
    hours = int(a.days * 24)
    for hour in range(hours):
        base = t0 + hour * HOUR
        for second in range(HOUR):
            now = base + second
            for k in range(a.rate):
                w = writers[k % a.writers]
                seqs[w] += 1
                row += 1
                t = now + k / a.rate
                j.record_attempt(
                    Attempt(
                        w,
                        seqs[w],
                        digest,
                        Outcome.OK,
                        t,
                        t + 0.004,
                        t,
                        t + 0.004,
                        "srv-1",
                        "mysql-0",
                        row,
                        None,
                    )
                )
            for k in range(a.reads):
                w = writers[k % a.writers]
                j.record_read(
                    Read(
                        time=now,
                        writer_id=w,
                        max_seq=seqs[w] - 1,
                        node=f"mysql-{k % 3}",
                        server="srv",
                        endpoint="reader",
                    )
                )
            for node in ("mysql-1", "mysql-2"):
                j.record("lag", {"time": now, "node": node, "seconds": 0.01})
            if second % 60 == 59:
                j.flush()
        j.flush()
        if not a.no_retention:
            with JournalReader(j) as db:
                vouched = db.last_attempt_id()
            # As Service.verify after a clean verification that started at this time.
            j.record("watermarks", {"started": base + HOUR, "attempt_id": vouched})
            j.flush()
            compact(j, keep=HOUR, now=base + HOUR)
        if (hour + 1) % 24 == 0 or hour + 1 == hours:
            with JournalReader(j) as db:
                raw, reads = db.count("attempts"), db.count("reads")
            print(
                f"{(hour + 1) / 24:5.2f} {_bytes(path) / 2**20:11.1f} {raw:13,d} {reads:10,d} "
                f"{_rss_mib():8.1f} {time.monotonic() - started:10.0f}",
                flush=True,
            )
    j.close()
    return 0
