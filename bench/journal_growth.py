"""Journal growth with and without retention: a long history at CHECKER_RATE=50 plus reads,
written at an accelerated pace through the real `Journal` writer (no MySQL).

    python -m bench journal_growth [--days 30] [--rate 50] [--reads 80] [--no-retention]

Simulated time: every record carries the time it would have had in a real run. Each simulated
hour the service's two retention steps run as they would: a watermark is journaled as a clean
verification journals one (`Service.verify`: the last attempt id at its start; here no server
is checked, the watermark is *marked*, not earned), then `compact(keep=3600, now=<simulated
time>)`. Reported per simulated day: the journal's bytes (with its WAL), the raw rows left, and
the process' RSS; `used_MiB` is the journal's pages in use (the file less its free list),
`folded_*` the rows of the retention tables. `--failed-per-hour`: writes that fail each simulated
hour (one burst, half failed, half indeterminate; default 60): retention keeps them raw.
`--minutes M`: stop after M minutes of wall time
(reporting the last simulated hour reached). `--reads`: reads journaled per second (4
readers, one per endpoint, reading 4 writers every 0.2 s: 80/s); lag: one sample per replica
(2) per second. Records go to `Journal.record` as the very rows `record_attempt`/`record_read`
build (one dict per record, no Attempt/Read object: the bench's own cost is not the journal's).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import tempfile
import time
from pathlib import Path

from checker.core.history import Outcome
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
    p.add_argument(
        "--failed-per-hour",
        type=int,
        default=60,
        help="writes per simulated hour that fail (half failed, half indeterminate): they stay raw",
    )
    p.add_argument("--no-retention", action="store_true")
    p.add_argument("--dir", default=None)
    p.add_argument(
        "--minutes", type=float, default=0.0, help="stop after this much wall time (0: never)"
    )
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
    nodes = ("mysql-0", "mysql-1", "mysql-2")
    row = 0
    started = time.monotonic()
    print(
        f"journal {path}; {a.rate} writes/s, {a.reads} reads/s, retention "
        f"{'off' if a.no_retention else 'on (keep 3600 s)'}"
    )
    print(
        "  day  journal_MiB  used_MiB  raw_attempts  raw_reads  folded_writes  folded_lag"
        "  folded_grains  rss_MiB  elapsed_s"
    )
    hours = int(a.days * 24)
    ok = Outcome.OK.value
    # One burst of non-acknowledged writes per simulated hour (a fault every hour, far more
    # than a game day schedule): retention keeps them raw.
    burst = range(HOUR // 2, HOUR // 2 + max(0, a.failed_per_hour) // max(1, a.rate) + 1)
    bad = (Outcome.FAILED.value, Outcome.INDETERMINATE.value)
    flush_every = 600  # simulated seconds per flush: ~80,000 rows, the writer's batch * 4
    for hour in range(hours):
        base = t0 + hour * HOUR
        for second in range(HOUR):
            now = base + second
            # The rows `Journal.record_attempt`/`record_read` build from an Attempt/Read, given
            # to `Journal.record` directly: one dict per record, no intermediate object.
            failing = a.failed_per_hour - (second - burst[0]) * a.rate if second in burst else 0
            for k in range(a.rate):
                w = writers[k % a.writers]
                seqs[w] += 1
                t = now + k / a.rate
                outcome = bad[k % 2] if k < failing else ok
                row += outcome == ok
                j.record(
                    "attempts",
                    {
                        "writer_id": w,
                        "seq": seqs[w],
                        "payload_sha256": digest,
                        "outcome": outcome,
                        "invoke_wall": t,
                        "complete_wall": t + 0.004,
                        "invoke_mono": t,
                        "complete_mono": t + 0.004,
                        "server": "srv-1",
                        "node": "mysql-0",
                        "row_id": row if outcome == ok else None,
                        "error": None if outcome == ok else "bench: a fault",
                    },
                )
            for k in range(a.reads):
                w = writers[k % a.writers]
                j.record(
                    "reads",
                    {
                        "time": now,
                        "endpoint": "reader",
                        "node": nodes[k % 3],
                        "server": "srv",
                        "writer_id": w,
                        "max_seq": seqs[w] - 1,
                    },
                )
            for node in ("mysql-1", "mysql-2"):
                j.record("lag", {"time": now, "node": node, "seconds": 0.01})
            if second % flush_every == flush_every - 1:
                j.flush()
        j.flush()
        if not a.no_retention:
            with JournalReader(j) as db:
                vouched = db.last_attempt_id()
            # As Service.verify after a clean verification that started at this time.
            j.record("watermarks", {"started": base + HOUR, "attempt_id": vouched})
            j.flush()
            compact(j, keep=HOUR, now=base + HOUR)
        out_of_time = a.minutes and time.monotonic() - started > a.minutes * 60
        if (hour + 1) % 24 == 0 or hour + 1 == hours or out_of_time:
            with JournalReader(j) as db:
                raw, reads = db.count("attempts"), db.count("reads")
                pages, free, size = (
                    int(db.db.execute(f"PRAGMA {p}").fetchone()[0])
                    for p in ("page_count", "freelist_count", "page_size")
                )
                folded = {
                    t: int(db.db.execute(f"SELECT COUNT(*) FROM folded_{t}").fetchone()[0])
                    for t in ("writes", "lag", "grains", "groups")
                }
            print(
                f"{(hour + 1) / 24:5.2f} {_bytes(path) / 2**20:11.1f} "
                f"{(pages - free) * size / 2**20:8.1f} {raw:13,d} {reads:10,d} "
                f"{folded['writes']:14,d} {folded['lag']:11,d} {folded['grains']:13,d} "
                f"{_rss_mib():8.1f} {time.monotonic() - started:10.0f}",
                flush=True,
            )
        if out_of_time:
            print(f"stopped after {hour + 1} simulated hours: --minutes {a.minutes} reached")
            break
    j.close()
    return 0
