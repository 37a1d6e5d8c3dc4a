"""Benchmark of full verification: `python -m bench verify [--rows N] [--lab DIR] [--repeat K]`.

Fills a 3-node lab's ledger with N rows and a journal that matches them (bench/_ledger_fill.py:
server-side INSERT ... SELECT, no checker writers), then times, alternately in the same run:

- a bare chunked checksum pass: `COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, writer_id, seq,
  checksum, payload)))` per 50k-id range on every node, the nodes one after another (as
  docs/design.md's 1M-row figure was measured, per node) and also all at once (as the
  verifier queries them);
- `checker.verify.verify` (barrier, chunks on every node, the journal's expected aggregates,
  the duplicate GROUP BY, the journal's reads and acks) in this process;

- Percona's pt-table-checksum over the same tables and nodes (bench/_peer.py), when it is
  installed (Debian's `percona-toolkit`): the peer `checker verify` is compared with;

and the peak RSS of a verification in a fresh subprocess (`VmHWM`: `ru_maxrss` would include
the forking parent's high-water mark, which Linux carries across exec). Goals: full
verification <= 1.5x the bare pass (nodes one after another), <= 0.75x pt-table-checksum's
time (goal 0.5x), peak RSS <= 200 MB; the ratio to the parallel bare pass is reported too.
Exit 1 if a goal is missed.

Besides wall time, each measurement reports CPU seconds: the three mysqld processes' (from
/proc) and this process' own. On a shared machine wall time mostly measures the neighbours;
CPU time is what the work costs. The first verification of a journal (cold: the journal's
expected aggregates computed and cached next to it) is reported apart from the later (warm)
ones, which only fold in what the journal gained since.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import _ledger_fill, _peer
from bench._lab import bench_lab
from checker import mysql
from checker.journal import Journal
from checker.lab.topology import Lab
from checker.settings import build
from checker.verify import Options, target_from_settings, verify

RATIO_GOAL = 1.5
PEER_GOAL = 0.75
RSS_GOAL_MB = 200.0
BARE_CHUNK = 50_000
BARE_SQL = (
    "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, writer_id, seq, checksum, payload))) "
    "FROM integrity.ledger WHERE id BETWEEN %s AND %s"
)


class _Cpu:
    """CPU seconds (user + system) of the lab's mysqld processes and of this process."""

    def __init__(self, lab: Lab) -> None:
        self.pids = [n.pid for n in lab.load().nodes.values() if n.pid]
        self.tick = os.sysconf("SC_CLK_TCK")

    def servers(self) -> float:
        total = 0
        for pid in self.pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / self.tick

    @staticmethod
    def own() -> float:
        """This process' CPU and its finished children's (pt-table-checksum's)."""
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            r = resource.getrusage(who)
            total += r.ru_utime + r.ru_stime
        return total

    def measure(self, fn: Callable[[], Any]) -> tuple[tuple[float, float, float], Any]:
        """((wall, mysqld CPU, own CPU), result) of `fn()`."""
        s0, o0, t0 = self.servers(), self.own(), time.monotonic()
        out = fn()
        return (time.monotonic() - t0, self.servers() - s0, self.own() - o0), out


def _connections(lab: Lab) -> dict[str, Any]:
    nodes = lab.load().nodes
    return {n: mysql.connect(lab.endpoint(n).with_(read_timeout=3600)) for n in sorted(nodes)}


def _range_of(conn: Any) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT MIN(id), MAX(id) FROM integrity.ledger")
        lo, hi = cur.fetchone()
    return int(lo), int(hi)


def _checksum(conn: Any, lo: int, hi: int) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute(BARE_SQL, (lo, hi))
        count, crc = cur.fetchone()
    return int(count), int(crc or 0)


def bare_pass(conns: dict[str, Any], *, parallel: bool) -> None:
    """One chunked checksum pass over every node (all nodes per range at once, or node by node)."""
    lo, hi = _range_of(next(iter(conns.values())))
    ranges = [(a, min(hi, a + BARE_CHUNK - 1)) for a in range(lo, hi + 1, BARE_CHUNK)]
    if parallel:
        with ThreadPoolExecutor(len(conns)) as pool:
            for a, b in ranges:
                results = list(pool.map(lambda c, a=a, b=b: _checksum(c, a, b), conns.values()))
                assert len(set(results)) == 1, (a, b, results)
    else:
        for conn in conns.values():
            for a, b in ranges:
                _checksum(conn, a, b)


def full_verification(lab: Lab, journal: Journal) -> dict[str, Any]:
    """One verification of the lab against an open journal (as the service holds it); it must
    be VALID."""
    settings = build({"lab": str(lab.dir), "journal": str(journal.path)})
    result = verify(target_from_settings(settings), journal, Options(lag_bound=60.0), summary=False)
    v = result.verdict
    assert v.valid.json is True, v.to_json()
    phases = {k: round(x, 2) for k, x in result.phases.items()}
    return {"seconds": result.seconds, "chunks": result.chunks, "phases": phases}


def peer_pass(command: list[str]) -> None:
    """One pt-table-checksum run; it must find no difference (exit status 0)."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"pt-table-checksum exited {done.returncode}: "
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def child(lab_dir: str, journal: str) -> int:
    """`--child`: one verification in this fresh process; prints seconds and peak RSS."""
    j = Journal.open_readonly(journal)
    try:
        info = full_verification(Lab(lab_dir), j)
    finally:
        j.close()
    print(json.dumps({"peak_rss_mb": _hwm_mb(), **info}))
    return 0


def _peak_rss(lab: Lab, journal: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "verify", "--child", str(lab.dir), str(journal)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def _hwm_mb() -> float:
    """This process image's peak resident set size (`VmHWM`), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _baseline_rss() -> float:
    """Peak RSS of a process that only imports the verifier (what the interpreter costs)."""
    code = "import bench.verify as b; print(b._hwm_mb())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def _caught_up(lab: Lab, timeout: float = 3600.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        st = lab.status()
        if all(n.get("gtid") == st["primary_gtid"] for n in st["nodes"].values()):
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit("the replicas did not catch up with the fill")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench verify", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="ledger rows to create")
    p.add_argument("--lab", help="use (or create) the lab in this directory and keep it")
    p.add_argument("--journal", help="journal of an earlier fill to reuse (with --lab)")
    p.add_argument("--repeat", type=int, default=3, help="timed rounds (medians are reported)")
    p.add_argument("--buffer-pool-mb", type=int, default=2048)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--no-rss", action="store_true", help="skip the subprocess RSS measurement")
    p.add_argument("--no-peer", action="store_true", help="do not time pt-table-checksum")
    p.add_argument(
        "--rss-only", action="store_true", help="only the RSS measurements, cold then warm"
    )
    p.add_argument("--child", nargs=2, metavar=("LAB", "JOURNAL"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if args.child:
        return child(*args.child)
    with bench_lab(args.lab, "bench-verify-") as lab:
        return _run(args, lab)


def _fill(args: argparse.Namespace, lab: Lab) -> Path:
    if args.journal:
        return Path(args.journal)
    journal = lab.dir / f"bench-{args.rows}.sqlite"
    timings = _ledger_fill.build(lab, journal, args.rows, args.writers)
    replication = _caught_up(lab)
    print(
        f"filled {args.rows:,} rows: server {timings['fill_server_s']:.1f} s, journal "
        f"{timings['fill_journal_s']:.1f} s, replicas caught up {replication:.1f} s later"
    )
    return journal


Sample = tuple[float, float, float]


def _measure(args: argparse.Namespace, lab: Lab, journal: Path) -> dict[str, list[Sample]]:
    """Cold once, then bare (parallel), warm verification, bare (one by one), alternating."""
    cpu = _Cpu(lab)
    conns = _connections(lab)
    runs: dict[str, list[Sample]] = {
        "seq": [],
        "par": [],
        "warm": [],
        "cold": [],
        "open": [],
        "peer": [],
    }
    peer = _peer.prepare(lab, lab.dir) if _peer.executable() and not args.no_peer else None
    if peer is None:
        print("pt-table-checksum not timed (not installed, or --no-peer)")
    else:
        peer_pass(peer)  # creates percona.checksums, untimed
    try:
        bare_pass(conns, parallel=True)  # every node's buffer pool warm, untimed
        Path(f"{journal}.verify-cache").unlink(missing_ok=True)
        sample, j = cpu.measure(lambda: Journal.open_readonly(journal))
        runs["open"].append(sample)
        try:
            sample, info = cpu.measure(lambda: full_verification(lab, j))
            runs["cold"].append(sample)
            print(f"cold run: {info}")
            for _ in range(args.repeat):
                runs["par"].append(cpu.measure(lambda: bare_pass(conns, parallel=True))[0])
                sample, info = cpu.measure(lambda: full_verification(lab, j))
                runs["warm"].append(sample)
                runs["seq"].append(cpu.measure(lambda: bare_pass(conns, parallel=False))[0])
                if peer is not None:
                    runs["peer"].append(cpu.measure(lambda: peer_pass(peer))[0])
            print(f"last warm run: {info}")
        finally:
            j.close()
    finally:
        for conn in conns.values():
            conn.close()
    return runs


def _run(args: argparse.Namespace, lab: Lab) -> int:
    started = time.monotonic()
    lab.up(replicas=2, buffer_pool_mb=args.buffer_pool_mb)
    print(f"lab up in {time.monotonic() - started:.1f} s ({lab.dir})")
    journal = _fill(args, lab)
    if args.rss_only:
        return _rss_only(lab, journal)
    runs = _measure(args, lab, journal)
    print(f"rows per node: {_range_of_rows(lab):,}; medians of {args.repeat} alternating runs")
    print(f"{'':32}{'wall':>8}{'mysqld CPU':>14}{'verifier CPU':>14}")
    labels = {
        "seq": "bare pass, nodes one by one",
        "par": "bare pass, nodes in parallel",
        "warm": "full verification (warm)",
        "cold": "first verification (cold)",
        "open": "opening the journal (CLI)",
        "peer": "pt-table-checksum",
    }
    med = {
        k: tuple(statistics.median(r[i] for r in rs) for i in range(3))
        for k, rs in runs.items()
        if rs
    }
    for key, label in labels.items():
        if key not in med:
            continue
        wall, servers, own = med[key]
        print(f"{label:32}{wall:7.2f}s{servers:13.2f}s{own:13.2f}s")
    ratio = med["warm"][0] / med["seq"][0]
    cpu_ratio = (med["warm"][1] + med["warm"][2]) / (med["seq"][1] + med["seq"][2])
    print(
        f"warm / bare one by one: wall {ratio:.2f} (goal <= {RATIO_GOAL}), CPU {cpu_ratio:.2f}; "
        f"cold / bare one by one: wall {med['cold'][0] / med['seq'][0]:.2f}; "
        f"warm / bare in parallel: wall {med['warm'][0] / med['par'][0]:.2f}"
    )
    ok = ratio <= RATIO_GOAL
    if "peer" in med:
        peer_ratio = med["warm"][0] / med["peer"][0]
        peer_cpu = (med["warm"][1] + med["warm"][2]) / (med["peer"][1] + med["peer"][2])
        print(
            f"warm / pt-table-checksum: wall {peer_ratio:.2f} (goal <= {PEER_GOAL}, aim 0.5), "
            f"CPU {peer_cpu:.2f}; cold / pt-table-checksum: wall "
            f"{med['cold'][0] / med['peer'][0]:.2f}"
        )
        ok = ok and peer_ratio <= PEER_GOAL
    if not args.no_rss:
        rss = _peak_rss(lab, journal)
        base = _baseline_rss()
        print(
            f"peak RSS of a verification in its own process: {rss['peak_rss_mb']:.0f} MB "
            f"(imports alone: {base:.0f} MB; that run took {rss['seconds']:.1f} s; "
            f"goal <= {RSS_GOAL_MB:.0f} MB)"
        )
        ok = ok and rss["peak_rss_mb"] <= RSS_GOAL_MB
    return 0 if ok else 1


def _rss_only(lab: Lab, journal: Path) -> int:
    base = _baseline_rss()
    Path(f"{journal}.verify-cache").unlink(missing_ok=True)
    peaks = []
    for label in ("cold", "warm"):
        rss = _peak_rss(lab, journal)
        peaks.append(rss["peak_rss_mb"])
        print(
            f"{label}: peak RSS {rss['peak_rss_mb']:.0f} MB in {rss['seconds']:.1f} s "
            f"(imports alone: {base:.0f} MB; goal <= {RSS_GOAL_MB:.0f} MB)"
        )
    return 0 if max(peaks) <= RSS_GOAL_MB else 1


def _range_of_rows(lab: Lab) -> int:
    conn = mysql.connect(lab.endpoint("writer"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM integrity.ledger")
            return int(cur.fetchone()[0])
    finally:
        conn.close()
