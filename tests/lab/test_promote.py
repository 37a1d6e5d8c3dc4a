"""`promote` is an operator-style failover: the writer endpoint moves, the others follow it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from checker import mysql
from checker.errors import LabError
from checker.lab.topology import Lab
from tests._wait import wait_for
from tests.conftest import start_lab
from tests.lab._sql import count, ensure_table, query, server_id


@pytest.fixture
def fresh_lab(tmp_path: Path) -> Iterator[Lab]:
    """A new 3-node lab per test: promotions change the topology for good."""
    lab = start_lab(tmp_path / "lab", replicas=2)
    try:
        ensure_table(lab)
        yield lab
    finally:
        lab.down(purge=True)


def test_promote_moves_the_writer_and_the_others_follow(fresh_lab: Lab) -> None:
    """After promote mysql-1, writes through the writer land on mysql-1 and reach everyone."""
    lab = fresh_lab
    query(lab, "writer", "INSERT INTO t (v) VALUES ('before')")
    result = lab.fault("promote", "mysql-1")
    assert result["new_primary"] == "mysql-1" and result["old_primary"] == "mysql-0"
    assert server_id(lab, "writer") == 2
    assert query(lab, "writer", "SELECT @@read_only")[0][0] == 0
    query(lab, "writer", "INSERT INTO t (v) VALUES ('after')")
    for node in ("mysql-0", "mysql-2"):
        wait_for(
            lambda node=node: count(lab, f"direct:{node}") == 2,
            timeout=30,
            what=f"{node} to follow",
        )
    st = lab.status()
    assert st["primary"] == "mysql-1"
    assert st["nodes"]["mysql-0"]["role"] == "replica" and st["nodes"]["mysql-0"]["read_only"]
    with pytest.raises(LabError, match="already the primary"):
        lab.fault("promote", "mysql-1")


def test_promote_keeping_the_old_primary_leaves_a_writable_zombie(fresh_lab: Lab) -> None:
    """With --keep-old-primary, clients still connected to the old primary keep committing there."""
    lab = fresh_lab
    old = mysql.connect(lab.endpoint("writer"))
    lab.fault("promote", "mysql-1", keep_old_primary=True)
    assert server_id(lab, "writer") == 2
    with old.cursor() as cur:
        cur.execute("INSERT INTO t (v) VALUES ('zombie write')")
        cur.execute("SELECT @@server_id")
        assert cur.fetchone()[0] == 1
    old.close()
    assert count(lab, "direct:mysql-0") == 1
    assert count(lab, "direct:mysql-1") == 0
    assert lab.status()["nodes"]["mysql-0"]["role"] == "zombie"


def test_promote_of_a_lagging_replica_discards_its_relay_log(fresh_lab: Lab) -> None:
    """Promoting a replica whose SQL thread was stopped loses the writes it had not applied."""
    lab = fresh_lab
    lab.fault("lag", "mysql-2")
    for i in range(5):
        query(lab, "writer", f"INSERT INTO t (v) VALUES ('acked {i}')")
    wait_for(lambda: count(lab, "direct:mysql-1") == 5, timeout=20, what="mysql-1 to apply")
    lab.fault("kill", "mysql-0")
    result = lab.fault("promote", "mysql-2")
    assert result["discarded_relay_log_up_to"]
    assert count(lab, "writer") == 0  # the five acknowledged writes are gone on the new primary
