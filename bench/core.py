"""The pure analysis: `python -m bench core [--attempts N] [--replicas R] [--repeat K]`.

Builds a ledger history the way a chaos run leaves it (8 writers interleaved, a failover from
mysql-0 to mysql-1 half-way with indeterminate and failed writes around it, some of the
indeterminate ones applied, reads through mysql-read all along), the final state of the new
primary and of R replicas (each with its own row objects, as separate queries return them),
and times `checker.core.analyze` on it. Building is not timed. The goal is >= 500k attempts/s.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time

from checker.core import Attempt, History, NodeState, Outcome, Read, Role, Row, Validity, analyze

GOAL = 500_000
WRITERS = 8
UUID_A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID_B = "4f22ab58-82db-22f2-8f44-d91bb0530673"


def _fresh(text: str) -> str:
    # A new str object with the same value, as a driver returns for every row it reads.
    return text.encode().decode()


def build(n: int, replicas: int) -> tuple[History, list[NodeState]]:
    """A history of `n` attempts with one failover at n/2, and the final states."""
    writers = [f"writer-{i}" for i in range(WRITERS)]
    server_a = f"{UUID_A}@1700000000"
    server_b = f"{UUID_B}@1700000100"
    failover = n // 2
    attempts: list[Attempt] = []
    rows: list[Row] = []
    reads: list[Read] = []
    t0 = 1_700_000_000.0
    row_id = 0
    seqs = [0] * WRITERS
    for i in range(n):
        w = i % WRITERS
        seqs[w] += 1
        seq = seqs[w]
        t = t0 + i * 0.0005
        digest = hashlib.sha256(b"%d:%d" % (w, seq)).hexdigest()
        around = failover - 200 <= i < failover + 100
        if around and i < failover:
            outcome, server, node = Outcome.INDETERMINATE, server_a, "mysql-0"
        elif around:
            outcome, server, node = Outcome.FAILED, None, None
        elif i < failover:
            outcome, server, node = Outcome.OK, server_a, "mysql-0"
        else:
            outcome, server, node = Outcome.OK, server_b, "mysql-1"
        applied = outcome is Outcome.OK or (outcome is Outcome.INDETERMINATE and i % 3 == 0)
        rid = None
        if applied:
            row_id += 1
            rid = row_id
            rows.append(Row(rid, writers[w], seq, digest, digest))
        attempts.append(
            Attempt(
                writer_id=writers[w],
                seq=seq,
                payload_sha256=digest,
                outcome=outcome,
                invoke_wall=t,
                complete_wall=t + 0.0004,
                invoke_mono=float(i),
                complete_mono=i + 0.0004,
                server=server,
                node=node,
                row_id=rid if outcome is Outcome.OK else None,
                error=None
                if outcome is Outcome.OK
                else "(2013, 'Lost connection to MySQL server')",
            )
        )
        if i % 50 == 0:
            seen = max(seq - 3, 0)
            reads.append(Read(t, writers[w], seen, f"mysql-{2 - i // failover}", None))
    gtid = f"{UUID_A}:1-{failover},{UUID_B}:1-{n - failover}"

    def node_rows() -> list[Row]:
        return [Row(r[0], _fresh(r[1]), r[2], _fresh(r[3]), _fresh(r[4])) for r in rows]

    states = [NodeState("mysql-1", Role.PRIMARY, rows=node_rows(), gtid=gtid)]
    names = ["mysql-0", "mysql-2", "mysql-3", "mysql-4"]
    states += [
        NodeState(names[k], Role.REPLICA, rows=node_rows(), gtid=gtid, caught_up=True)
        for k in range(replicas)
    ]
    return History(attempts=attempts, reads=reads), states


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench core", description=__doc__)
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    history, states = build(args.attempts, args.replicas)
    built = time.perf_counter() - started
    print(
        f"built {len(history.attempts):,} attempts, {len(states[0].rows or ()):,} rows on "
        f"{len(states)} nodes, {len(history.reads):,} reads in {built:.1f} s"
    )
    walls: list[float] = []
    cpus: list[float] = []
    verdict = None
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        verdict = analyze(history, states)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    assert verdict is not None
    if verdict.valid is not Validity.VALID:
        print("unexpected verdict:", verdict.to_json(indent=2)[:2000])
        return 1
    n = len(history.attempts)
    # The best run is the estimate of the analysis' own cost; the rest is other processes'
    # noise on a shared machine, which the median and the CPU time show.
    rate = n / min(walls)
    print(
        f"analyze, {args.repeat} runs: wall best {min(walls):.3f} s, median "
        f"{statistics.median(walls):.3f} s; CPU best {min(cpus):.3f} s"
    )
    print(f"counts: {verdict.counts.to_dict()}")
    print(
        f"rate: {rate:,.0f} attempts/s best, {n / statistics.median(walls):,.0f} median, "
        f"{n / min(cpus):,.0f} per CPU second (goal {GOAL:,}): "
        f"{'ok' if rate >= GOAL else 'BELOW GOAL'}"
    )
    return 0 if rate >= GOAL else 1
