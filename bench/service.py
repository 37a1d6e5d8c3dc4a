"""Writer throughput of the checker vs a bare PyMySQL INSERT+COMMIT loop.

Same server, same endpoint (the lab's writer), same concurrency, in the same run, alternating
rounds so drift hits both. The bare loop does only INSERT + COMMIT; the checker also hashes,
classifies, journals (group commit), reads through mysql-read and every node, beats the
heartbeat and runs the live analysis.

    .venv/bin/python -m bench service [--concurrency 4] [--seconds 15] [--rounds 3] [--lab DIR]

Without --lab a temporary 3-node lab is started and removed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from checker import _logging, mysql
from checker.lab.topology import Lab
from checker.service import Service
from checker.settings import build


def bare_loop(lab: Lab, concurrency: int, seconds: float) -> float:
    """Commits per second of `concurrency` threads doing only INSERT + COMMIT."""
    root = mysql.connect(lab.endpoint("writer", user="root", database="integrity"))
    with root.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_bare LIKE ledger")
    root.close()
    stop = threading.Event()
    counts = [0] * concurrency

    def worker(i: int) -> None:
        conn = mysql.connect(lab.endpoint("writer"), autocommit=False)
        seq = 0
        while not stop.is_set():
            seq += 1
            payload = os.urandom(random.randint(16, 128))
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO bench_bare (writer_id, seq, payload, checksum, written_at) "
                    "VALUES (%s, %s, %s, %s, NOW(6))",
                    (f"bare-{i}", seq, payload, "0" * 64),
                )
            conn.commit()
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # warm-up: connections made, first commits done
    start, before = time.monotonic(), sum(counts)
    time.sleep(seconds)
    done, elapsed = sum(counts) - before, time.monotonic() - start
    stop.set()
    for t in threads:
        t.join()
    return done / elapsed


def checker_run(lab: Lab, concurrency: int, seconds: float, journal: Path) -> float:
    """Acknowledged writes per second of the full checker at the same concurrency."""
    service = Service(
        build({"lab": str(lab.dir), "journal": str(journal), "concurrency": concurrency})
    )
    service.start()
    try:
        time.sleep(1.0)
        start, before = time.monotonic(), service.live.counts["ok"]
        time.sleep(seconds)
        done, elapsed = service.live.counts["ok"] - before, time.monotonic() - start
    finally:
        service.stop()
    return done / elapsed


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench service", description=__doc__)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lab", help="an existing lab directory (default: a temporary one)")
    args = p.parse_args(argv)
    _logging.configure(json=True, level="warning")
    tmp = tempfile.TemporaryDirectory(prefix="bench-service-")
    lab = Lab(args.lab) if args.lab else Lab(Path(tmp.name) / "lab")
    if not args.lab:
        lab.up(replicas=2)
    try:
        bare, checker = [], []
        for i in range(args.rounds):
            bare.append(bare_loop(lab, args.concurrency, args.seconds))
            journal = Path(tmp.name) / f"j{i}-{os.urandom(3).hex()}.sqlite"
            checker.append(checker_run(lab, args.concurrency, args.seconds, journal))
            print(
                f"round {i + 1}: bare {bare[-1]:8.1f}/s   checker {checker[-1]:8.1f}/s   "
                f"ratio {checker[-1] / bare[-1]:.3f}"
            )
        ratio = statistics.median(checker) / statistics.median(bare)
        print(
            f"median: bare {statistics.median(bare):.1f}/s, "
            f"checker {statistics.median(checker):.1f}/s, "
            f"ratio {ratio:.3f} (goal >= 0.85) at concurrency {args.concurrency}"
        )
    finally:
        if not args.lab:
            lab.down(purge=True)
        tmp.cleanup()
    return 0
