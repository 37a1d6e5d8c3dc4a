"""Helpers for the verification tests: a checker run on a lab, root SQL, verdicts as keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from checker import mysql
from checker.core.history import Attempt, Outcome
from checker.core.verdict import Verdict
from checker.journal import Journal
from checker.lab.topology import Lab
from checker.service import Service
from checker.service_verify import verify_service
from checker.settings import build
from checker.verify import Options, Verification, target_from_settings, verify
from tests._wait import wait_for

# The checker's own default lag bound (5 s) applies unless a test says otherwise: a test that
# makes a replica lag (or freezes the primary) on purpose gets reads through it that really
# are stale, and passes `lag_bound=WIDE_LAG_BOUND` to both `checker` and `verify_journal`,
# saying why at the call.
WIDE_LAG_BOUND = 300.0

_UNDO = {
    "endpoint_lost": "endpoint-restore",
    "partitioned": "heal",
    "paused": "resume",
    "lagging": "unlag",
}


@contextmanager
def checker(lab: Lab, journal: Path, **raw: Any) -> Iterator[Service]:
    """A started in-process checker writing to the lab (four writers); stopped on exit."""
    options = {"lab": str(lab.dir), "journal": str(journal), "concurrency": 4}
    settings = build({**options, **raw})
    service = Service(settings, verify=verify_service)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def wait_acks(service: Service, n: int, timeout: float = 60.0) -> None:
    """Wait until `n` more writes have been acknowledged."""
    target = service.live.counts["ok"] + n
    wait_for(
        lambda: service.live.counts["ok"] >= target,
        timeout=timeout,
        what=f"{n} more acknowledged writes",
    )


def verify_journal(lab: Lab, journal: Path, **options: Any) -> Verification:
    """What `checker verify --lab DIR --journal J` computes, as an object."""
    settings = build({"lab": str(lab.dir), "journal": str(journal)})
    j = Journal.open_readonly(journal)
    try:
        return verify(target_from_settings(settings), j, Options(**options))
    finally:
        j.close()


def keys(verdict: Verdict) -> list[tuple[str, str | None, str | None, int | None]]:
    """The verdict's anomalies as (type, node, writer, seq), sorted."""
    return sorted((a.type, a.node, a.writer_id, a.seq) for a in verdict.anomalies)


def attempts(journal: Path) -> list[Attempt]:
    j = Journal.open_readonly(journal)
    try:
        return list(j.attempts())
    finally:
        j.close()


def acked(journal: Path) -> list[Attempt]:
    return [a for a in attempts(journal) if a.outcome is Outcome.OK]


def root(lab: Lab, node: str, *statements: str, args: Sequence[Any] | None = None) -> list[Any]:
    """Run statements as root on `node`'s own port (not through the proxy); the last one's rows.

    `args` go with the last statement.
    """
    ep = lab.endpoint(f"direct:{node}", user="root", database="integrity")
    conn = mysql.connect(ep.with_(read_timeout=30))
    try:
        rows: list[Any] = []
        with conn.cursor() as cur:
            for i, sql in enumerate(statements):
                cur.execute(sql, args if i == len(statements) - 1 else None)
                rows = list(cur.fetchall())
        return rows
    finally:
        conn.close()


def caught_up(lab: Lab) -> bool:
    st = lab.status()
    return all(
        n.get("gtid") == st["primary_gtid"] for n in st["nodes"].values() if n["state"] == "running"
    )


def heal(lab: Lab) -> None:
    """Undo every fault, start killed nodes, and wait until the replicas caught up."""
    for name, faults in lab.load().faults.items():
        for key, on in list(faults.items()):
            if on and key in _UNDO:
                lab.fault(_UNDO[key], name)
    for name, node in lab.status()["nodes"].items():
        if node["state"] == "killed":
            lab.fault("start", name)
    wait_for(lambda: caught_up(lab), timeout=60, what="the replicas to catch up")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`checker ARGS...` as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "checker.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def verdict_of(stdout: str) -> tuple[Verdict, dict[str, Any]]:
    data = json.loads(stdout)
    return Verdict.from_dict(data), data
