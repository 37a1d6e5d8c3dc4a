"""Failovers that lose acknowledged writes, found exactly: each promotion on its own lab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from checker.core.verdict import Validity
from checker.lab.topology import Lab
from tests._wait import wait_for
from tests.conftest import start_lab
from tests.verify._support import (
    WIDE_LAG_BOUND,
    acked,
    checker,
    keys,
    root,
    verify_journal,
    wait_acks,
)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Lab]:
    """A new lab of mysql-0 and one replica: a promotion changes the topology for good."""
    lab = start_lab(tmp_path / "lab", replicas=1)
    try:
        yield lab
    finally:
        lab.down(purge=True)


def _max_seqs(lab: Lab, node: str) -> dict[str, int]:
    """Each writer's highest seq in `node`'s ledger, read on the node itself."""
    rows = root(lab, node, "SELECT writer_id, MAX(seq) FROM ledger GROUP BY writer_id")
    return {str(w): int(s) for w, s in rows}


def test_promoting_a_lagging_replica_loses_exactly_what_it_had_not_applied(
    pair: Lab, tmp_path: Path
) -> None:
    """Lag mysql-1, write more, kill mysql-0, promote mysql-1: exactly the writes acknowledged
    by mysql-0 beyond what mysql-1 had applied are lost, on mysql-1; nothing else is reported."""
    lab, journal = pair, tmp_path / "j.sqlite"
    # mysql-1 lags on purpose and mysql-read reads through it: those reads really are stale.
    # The test is about what the promotion loses, so stale reads are kept out of its keys.
    with checker(lab, journal, lag_bound=WIDE_LAG_BOUND) as service:
        wait_acks(service, 100)
        lab.fault("lag", "mysql-1")
        wait_acks(service, 100)
        applied = _max_seqs(lab, "mysql-1")  # frozen: its SQL thread is stopped
        lab.fault("kill", "mysql-0")
        lab.fault("promote", "mysql-1")
        wait_acks(service, 50)  # the writers carry on against the new primary
    expected = sorted(
        ("lost", "mysql-1", a.writer_id, a.seq)
        for a in acked(journal)
        if a.node == "mysql-0" and a.seq > applied.get(a.writer_id, 0)
    )
    assert len(expected) >= 100
    v = verify_journal(lab, journal, timeout=5, cap=10_000, lag_bound=WIDE_LAG_BOUND).verdict
    assert keys(v) == expected
    assert v.nodes["mysql-1"].role == "primary"
    assert v.nodes["mysql-0"].valid is Validity.UNKNOWN  # killed: unreachable, says why
    assert "connection to MySQL at mysql-0" in (v.nodes["mysql-0"].reason or "")


def test_a_zombie_primary_acking_after_promotion_is_split_brain(pair: Lab, tmp_path: Path) -> None:
    """promote --keep-old-primary while two writers keep their connections to mysql-0: a split
    brain reported on mysql-1 at its first ack, and the zombie's later acks lost, nothing else."""
    lab, journal = pair, tmp_path / "j.sqlite"
    # Writers keep their connections until they fail: which ones move is up to the test.
    # The zombie's acknowledged writes never reach mysql-1, so reads through it miss them for
    # good: stale as well as lost. The test pins the split brain and the lost writes, so stale
    # reads are kept out of its keys by a bound longer than the test.
    with checker(lab, journal, reconnect_every=0, lag_bound=WIDE_LAG_BOUND) as service:
        wait_acks(service, 100)
        lab.fault("promote", "mysql-1", keep_old_primary=True)
        applied = _max_seqs(lab, "mysql-1")  # nobody writes to mysql-1 before the kills below
        moved = service.writers[:2]
        threads = [w.conn.thread_id() for w in moved]
        for thread in threads:
            root(lab, "mysql-0", f"KILL CONNECTION {int(thread)}")
        wait_for(lambda: all(w.node == "mysql-1" for w in moved), what="two writers on mysql-1")
        wait_acks(service, 100)
        assert {w.node for w in service.writers[2:]} == {"mysql-0"}
    lab.fault("kill", "mysql-0")  # fenced at last, before the verification
    oks = acked(journal)
    first_new = min(
        (a for a in oks if a.node == "mysql-1"),
        key=lambda a: (a.complete_wall or 0.0, a.writer_id, a.seq),
    )
    lost = [
        ("lost", "mysql-1", a.writer_id, a.seq)
        for a in oks
        if a.node == "mysql-0" and a.seq > applied.get(a.writer_id, 0)
    ]
    assert lost, "the zombie acknowledged nothing after the promotion"
    v = verify_journal(lab, journal, timeout=5, cap=10_000, lag_bound=WIDE_LAG_BOUND).verdict
    assert keys(v) == sorted(
        [("split_brain", "mysql-1", first_new.writer_id, first_new.seq), *lost]
    )
    brain = next(a for a in v.anomalies if a.type == "split_brain")
    servers = {i["server"] for i in brain.evidence["identities"]}
    assert servers == {
        next(a.server for a in oks if a.node == "mysql-0"),
        first_new.server,
    }
    counts = {i["server"]: i["acks"] for i in brain.evidence["identities"]}
    assert counts[first_new.server] == sum(1 for a in oks if a.server == first_new.server)
