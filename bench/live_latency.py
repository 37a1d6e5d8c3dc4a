"""How fast the live verdict flags an anomaly once it has become observable.

Three real faults on a temporary lab, each with the checker running in-process:
- lost:        lag mysql-2, write, kill mysql-0, promote mysql-2 (acked writes vanish);
               observable when the promote returns (the new primary answers without them);
- split_brain: promote mysql-1 with --keep-old-primary while writers hold connections to
               mysql-0; observable at the first ack from the new primary;
- stale:       lag mysql-1 and mysql-2; observable lag_bound seconds after the first write
               the replicas miss was acknowledged.

    .venv/bin/python -m bench live_latency [--lag-bound 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from checker import _logging
from checker.lab.topology import Lab
from checker.service import Service
from checker.settings import build


def _flagged(service: Service, kind: str) -> bool:
    return bool(service.verdict().anomaly_counts.get(kind))


def _wait(cond: Callable[[], bool], timeout: float) -> float:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)
    return time.time()


def _service(lab: Lab, tmp: Path, name: str, lag_bound: float) -> Service:
    s = Service(
        build(
            {
                "lab": str(lab.dir),
                "journal": str(tmp / f"{name}.sqlite"),
                "concurrency": 4,
                "lag_bound": lag_bound,
            }
        )
    )
    s.start()
    _wait(lambda: s.live.counts["ok"] > 200, 60)
    return s


def lost(tmp: Path, lag_bound: float) -> float:
    lab = Lab(tmp / "lab-lost")
    lab.up(replicas=2)
    s = _service(lab, tmp, "lost", lag_bound)
    try:
        lab.fault("lag", "mysql-2")
        before = s.live.counts["ok"]
        _wait(lambda: s.live.counts["ok"] > before + 200, 60)
        lab.fault("kill", "mysql-0")
        lab.fault("promote", "mysql-2")
        observable = time.time()
        return _wait(lambda: _flagged(s, "lost"), 60) - observable
    finally:
        s.stop()
        lab.down(purge=True)


def split_brain(tmp: Path, lag_bound: float) -> float:
    lab = Lab(tmp / "lab-split")
    lab.up(replicas=2)
    s = _service(lab, tmp, "split", lag_bound)
    try:
        lab.fault("promote", "mysql-1", keep_old_primary=True)
        observable = _wait(lambda: any(w.node == "mysql-1" and w.seq for w in s.writers), 60)
        return _wait(lambda: _flagged(s, "split_brain"), 60) - observable
    finally:
        s.stop()
        lab.down(purge=True)


def stale(tmp: Path, lag_bound: float) -> float:
    lab = Lab(tmp / "lab-stale")
    lab.up(replicas=2)
    s = _service(lab, tmp, "stale", lag_bound)
    try:
        lab.fault("lag", "mysql-1")
        lab.fault("lag", "mysql-2")
        first_missed_ack = time.time()
        observable = first_missed_ack + lag_bound
        return _wait(lambda: _flagged(s, "stale"), 60) - observable
    finally:
        s.stop()
        lab.down(purge=True)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench live_latency", description=__doc__)
    p.add_argument("--lag-bound", type=float, default=2.0)
    args = p.parse_args(argv)
    _logging.configure(json=True, level="error")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-live-") as d:
        for name, fn in (("lost", lost), ("split_brain", split_brain), ("stale", stale)):
            seconds = fn(Path(d), args.lag_bound)
            worst = max(worst, seconds)
            print(f"{name:12s} flagged {seconds:5.2f} s after it became observable")
    print(f"worst: {worst:.2f} s (goal: within 5 s)")
    return 0 if worst <= 5 else 1
