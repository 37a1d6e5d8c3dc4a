"""Benchmark of incremental verification: `python -m bench verify_incremental [--rows N]
[--new 100000] [--lab DIR] [--repeat K]`.

Fills a 3-node lab's ledger with N rows and a matching journal as `bench verify` does
(bench/_ledger_fill.py), runs one full verification (the watermark: the last complete pass),
then appends `--new` rows (another incarnation's writers, server and journal, the journal's
attempts invoked now), and times, alternately in the same run:

- a bare chunked checksum pass over the whole table, nodes one after another and in parallel
  (`bench verify`'s reference);
- a full verification (warm: the journal's expectations cached);
- an incremental pass after the watermark (`checker.verify.incremental.incremental_since`,
  then `verify(..., Options(since=...))`): the pass the periodic job runs between full ones,
  its lower bound computed each time (the journal bisection included);
- a bare chunked checksum pass over the incremental pass's id range only.

`--compact`: after the watermark pass, fold what it vouched for as the retention job would (a
watermark, then `checker.journal.compact`), so that every timed pass runs on a compacted journal:
the fill's attempts folded into grains, only the appended ones raw.

Wall time, the three mysqld processes' CPU and this process' CPU are reported (medians), with
the passes' phases, so that what an incremental cycle still pays per journal (the journal's own
checks, the counts) is seen apart from what it pays per new row. Exit 1 if an incremental pass
costs more than `GOAL` of a full one (wall time).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

from bench import _ledger_fill
from bench._lab import bench_lab
from bench.verify import _caught_up, _checksum, _connections, _Cpu, _range_of, bare_pass
from checker.journal import Journal, JournalReader
from checker.journal.compact import compact
from checker.lab.topology import Lab
from checker.settings import build
from checker.verify import Options, target_from_settings, verify
from checker.verify.incremental import FULL, Pass, incremental_since

GOAL = 0.25
Sample = tuple[float, float, float]


def _verify(lab: Lab, journal: Journal, since: int | None) -> dict[str, Any]:
    settings = build({"lab": str(lab.dir), "journal": str(journal.path)})
    options = Options(lag_bound=60.0, since=since)
    result = verify(target_from_settings(settings), journal, options, summary=False)
    v = result.verdict
    assert v.valid.json is True, v.to_json()
    return {
        "kind": result.kind,
        "range": result.id_range,
        "chunks": result.chunks,
        "seconds": round(result.seconds, 2),
        "phases": {k: round(x, 2) for k, x in result.phases.items()},
    }


def _bare_range(conns: dict[str, Any], lo: int, hi: int, chunk: int = 50_000) -> None:
    for conn in conns.values():
        for a in range(lo, hi + 1, chunk):
            _checksum(conn, a, min(hi, a + chunk - 1))


def _append(lab: Lab, journal_path: Path, n: int, writers: int) -> int:
    """`n` more rows of the journal's run (a new incarnation's writers), server and journal."""
    j = Journal.open_readonly(journal_path)
    prefix = f"{j.info.run_id}-{int(time.time())}-"
    j.close()
    start = _ledger_fill.fill_server(lab, prefix, n, writers)
    _ledger_fill.fill_journal(journal_path, prefix, start, n, writers, t0=time.time())
    return start


def _journal_mib(path: Path) -> str:
    """The journal's file (with its WAL) and its pages in use (the file less its free list)."""
    size = sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*")) / 2**20
    db = sqlite3.connect(str(path))
    try:
        pages, free, page = (
            int(db.execute(f"PRAGMA {p}").fetchone()[0])
            for p in ("page_count", "freelist_count", "page_size")
        )
    finally:
        db.close()
    return f"{size:,.1f} MiB ({(pages - free) * page / 2**20:,.1f} MiB in use)"


def _compact(path: Path, vouched: int, started: float) -> None:
    """What `Service.verify` and the retention job do after a clean full pass: a watermark
    (the highest attempt id journaled before the pass began), then `compact` of everything it
    vouched for (keep 0, margin 0: the fill's attempts are all older than the pass)."""
    before = _journal_mib(path)
    compact(path)  # an older journal gets the retention tables first; no watermark yet: no-op
    db = sqlite3.connect(str(path))
    try:
        with db:
            db.execute(
                "INSERT INTO watermarks (started, attempt_id) VALUES (?, ?)", (started, vouched)
            )
    finally:
        db.close()
    done = compact(path, keep=0.0, margin=0.0)
    print(
        f"compacted: {done.attempts:,} attempts folded in {done.seconds:.1f} s; journal "
        f"{before} -> {_journal_mib(path)} (no VACUUM: later inserts reuse the freed pages)",
        flush=True,
    )


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench verify_incremental", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="ledger rows to create")
    p.add_argument("--new", type=int, default=100_000, help="rows appended after the watermark")
    p.add_argument("--lab", help="use (or create) the lab in this directory and keep it")
    p.add_argument("--journal", help="journal of an earlier fill to reuse (with --lab)")
    p.add_argument("--repeat", type=int, default=3, help="timed rounds (medians are reported)")
    p.add_argument("--buffer-pool-mb", type=int, default=2048)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument(
        "--compact",
        action="store_true",
        help="after the watermark pass, fold what it vouched for (retention) before appending",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    with bench_lab(args.lab, "bench-incremental-") as lab:
        return _run(args, lab)


def _run(args: argparse.Namespace, lab: Lab) -> int:
    t = time.monotonic()
    lab.up(replicas=2, buffer_pool_mb=args.buffer_pool_mb)
    print(f"lab up in {time.monotonic() - t:.1f} s ({lab.dir})", flush=True)
    if args.journal:
        path = Path(args.journal)
    else:
        path = lab.dir / f"bench-incremental-{args.rows}.sqlite"
        timings = _ledger_fill.build(lab, path, args.rows, args.writers)
        print(
            f"filled {args.rows:,} rows: server {timings['fill_server_s']:.1f} s, journal "
            f"{timings['fill_journal_s']:.1f} s, replicas caught up {_caught_up(lab):.1f} s "
            f"later; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    cpu = _Cpu(lab)
    conns = _connections(lab)
    runs: dict[str, list[Sample]] = {k: [] for k in ("seq", "par", "full", "inc", "bare_inc")}
    infos: dict[str, Any] = {}
    j = Journal.open_readonly(path)
    try:
        bare_pass(conns, parallel=True)  # buffer pools warm, untimed
        with JournalReader(j) as db:
            vouched = db.last_attempt_id()
        started = time.time()
        sample, info = cpu.measure(lambda: _verify(lab, j, None))
        print(f"watermark, a full pass (cold on a new fill): {info}, {sample[0]:.1f} s", flush=True)
        watermark = Pass(FULL, info["range"], started, time.time(), True, True)
        if args.compact:
            _compact(path, vouched, started)
        t = time.monotonic()
        first_new = _append(lab, path, args.new, args.writers)
        print(
            f"appended {args.new:,} rows from id {first_new} in {time.monotonic() - t:.1f} s, "
            f"replicas caught up {_caught_up(lab):.1f} s later",
            flush=True,
        )
        _verify(lab, j, None)  # the expectations cache brought up to date, untimed
        for _ in range(args.repeat):
            runs["par"].append(cpu.measure(lambda: bare_pass(conns, parallel=True))[0])
            sample, infos["full"] = cpu.measure(lambda: _verify(lab, j, None))
            runs["full"].append(sample)

            def incremental() -> dict[str, Any]:
                return _verify(lab, j, incremental_since(j, watermark, 120.0))

            sample, infos["inc"] = cpu.measure(incremental)
            runs["inc"].append(sample)
            lo, hi = infos["inc"]["range"]
            runs["bare_inc"].append(cpu.measure(lambda lo=lo, hi=hi: _bare_range(conns, lo, hi))[0])
            runs["seq"].append(cpu.measure(lambda: bare_pass(conns, parallel=False))[0])
            print(f"round: load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        j.close()
        for conn in conns.values():
            conn.close()
    return _report(args, lab, runs, infos)


def _report(
    args: argparse.Namespace, lab: Lab, runs: dict[str, list[Sample]], infos: dict[str, Any]
) -> int:
    conn = next(iter(_connections(lab).values()))
    lo, hi = _range_of(conn)
    conn.close()
    print(f"ids {lo}..{hi}; medians of {args.repeat} alternating rounds")
    print(f"{'':44}{'wall':>8}{'mysqld CPU':>14}{'verifier CPU':>14}")
    labels = {
        "seq": "bare pass, whole table, nodes one by one",
        "par": "bare pass, whole table, nodes in parallel",
        "full": "full verification (warm)",
        "inc": f"incremental pass ({args.new:,} new rows)",
        "bare_inc": "bare pass over the incremental range",
    }
    med = {
        k: tuple(statistics.median(r[i] for r in rs) for i in range(3)) for k, rs in runs.items()
    }
    for key, label in labels.items():
        wall, servers, own = med[key]
        print(f"{label:44}{wall:7.2f}s{servers:13.2f}s{own:13.2f}s")
    print(f"last full pass: {infos['full']}")
    print(f"last incremental pass: {infos['inc']}")
    ratio = med["inc"][0] / med["full"][0]
    cpu_ratio = (med["inc"][1] + med["inc"][2]) / (med["full"][1] + med["full"][2])
    print(
        f"incremental / full: wall {ratio:.3f} (goal <= {GOAL}), CPU {cpu_ratio:.3f}; "
        f"incremental / bare whole-table pass one by one: wall {med['inc'][0] / med['seq'][0]:.3f}"
    )
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(__import__("sys").argv[1:]))
