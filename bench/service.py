"""Writer throughput of the checker vs a bare PyMySQL INSERT+COMMIT loop.

Same server, same endpoint (the lab's writer), same concurrency, in the same run, alternating
rounds so drift hits both. The bare loop does only INSERT + COMMIT; the checker's writers also
hash, classify, journal (group commit) and feed the live analysis. Measured twice: the writers
alone (the goal: >= 0.85x), and the full checker, which also reads through mysql-read and every
node, beats the heartbeat every 10 ms and runs the live analysis.

    .venv/bin/python -m bench service [--concurrency 4] [--seconds 10] [--rounds 6] [--lab DIR]
                                      [--tmp DIR] [--pin]

Without --lab a temporary 3-node lab is started and removed. `--pin` gives the client (both
loops) one CPU of its own and the lab's servers and proxy the others, as in a cluster where the
checker runs in its own pod: on a small machine the client otherwise takes CPU from the very
servers whose throughput is measured, and the ratio measures that contention as much as the
checker's overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from checker import _logging, mysql, workload
from checker._memory import limit_malloc_arenas
from checker.lab.topology import Lab
from checker.semisync import SemiSyncSampler
from checker.service import Service
from checker.settings import build

GOAL = 0.85  # the checker's writers vs the bare loop, median of the paired per-round ratios


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


def checker_run(lab: Lab, concurrency: int, seconds: float, journal: Path, *, full: bool) -> float:
    """Acknowledged writes per second of the checker at the same concurrency.

    `full=False` measures the write path the goal is about: the checker's writers (hash,
    classify, journal, live sink) with its readers, heartbeat and live analysis paused — those
    load the *server* with work the bare loop does not do. `full=True` runs everything.
    """
    service = Service(
        build({"lab": str(lab.dir), "journal": str(journal), "concurrency": concurrency})
    )
    service.start()
    if not full:
        service.scheduler.pause()
        for t in service.threads:
            if isinstance(
                t, (workload.Reader, workload.LagSampler, workload.Heartbeat, SemiSyncSampler)
            ):
                t.paused.set()
    try:
        time.sleep(1.0)
        start, before = time.monotonic(), service.live.counts["ok"]
        time.sleep(seconds)
        done, elapsed = service.live.counts["ok"] - before, time.monotonic() - start
    finally:
        service.stop()
    return done / elapsed


def _tasks(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return []


def pin(lab: Lab) -> dict[int, set[int]]:
    """Put this process on the last CPU it may use and the lab's processes on the others.

    Returns the lab's threads' previous affinities (to restore on a lab that outlives the run).
    Threads the servers start later inherit their creator's affinity."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least 2 CPUs (one for the client, the rest for the lab)")
    client, servers = {cpus[-1]}, set(cpus[:-1])
    state = lab.load()
    pids = [n.pid for n in state.nodes.values() if n.pid]
    pids += [state.proxy_pid] if state.proxy_pid else []
    before: dict[int, set[int]] = {}
    for pid in pids:
        for tid in _tasks(pid):
            try:
                before[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, servers)
            except (ProcessLookupError, PermissionError):
                continue  # a thread that ended meanwhile; or not ours to pin
    os.sched_setaffinity(0, client)
    print(f"pinned: client on CPU {cpus[-1]}, lab servers and proxy on CPUs {sorted(servers)}")
    return before


def unpin(before: dict[int, set[int]]) -> None:
    for tid, cpus in before.items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(tid, cpus)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench service", description=__doc__)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--lab", help="an existing lab directory (default: a temporary one)")
    p.add_argument(
        "--tmp",
        default=None,
        help="where the temporary lab lives, e.g. /dev/shm to take the disk's fsync "
        "jitter out of the comparison (default: the system's temp dir)",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="give the client one CPU and the lab's servers the others (Linux, >= 2 CPUs)",
    )
    args = p.parse_args(argv)
    limit_malloc_arenas()  # as `checker run` does
    _logging.configure(json=True, level="warning")
    tmp = tempfile.TemporaryDirectory(prefix="bench-service-", dir=args.tmp)
    lab = Lab(args.lab) if args.lab else Lab(Path(tmp.name) / "lab")
    if not args.lab:
        lab.up(replicas=2)
    pinned: dict[int, set[int]] = {}
    try:
        if args.pin:
            pinned = pin(lab)
        bare: list[float] = []
        writers: list[float] = []
        full: list[float] = []
        for i in range(args.rounds):
            bare.append(bare_loop(lab, args.concurrency, args.seconds))
            j = Path(tmp.name) / f"j{i}"
            writers.append(
                checker_run(lab, args.concurrency, args.seconds, j.with_suffix(".w"), full=False)
            )
            full.append(
                checker_run(lab, args.concurrency, args.seconds, j.with_suffix(".f"), full=True)
            )
            print(
                f"round {i + 1}: bare {bare[-1]:7.1f}/s  checker writers {writers[-1]:7.1f}/s "
                f"({writers[-1] / bare[-1]:.3f})  full checker {full[-1]:7.1f}/s "
                f"({full[-1] / bare[-1]:.3f})"
            )
        ratios = {}
        for label, runs in (("checker writers", writers), ("full checker", full)):
            ratios[label] = statistics.median(c / b for c, b in zip(runs, bare, strict=True))
            print(
                f"{label}: median {statistics.median(runs):.1f}/s vs bare "
                f"{statistics.median(bare):.1f}/s; median of paired ratios {ratios[label]:.3f} "
                f"(goal >= {GOAL} for the writers) at concurrency {args.concurrency}"
            )
        met = ratios["checker writers"] >= GOAL
        print(f"goal {'met' if met else 'NOT met'}{'' if args.pin else ' (CPUs shared, no --pin)'}")
        return 0 if met else 1
    finally:
        unpin(pinned)
        if not args.lab:
            lab.down(purge=True)
        tmp.cleanup()
