"""Each lab fault and its undo behave, as a client sees them, as docs/lab.md's table says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checker import mysql
from checker.errors import DatabaseError, LabError
from checker.lab.topology import Lab
from tests._wait import wait_for
from tests.lab._sql import count, ensure_table, query, server_id


@pytest.fixture(autouse=True)
def clean(lab: Lab) -> Iterator[None]:
    """Every test starts from a healthy lab with the scratch table, and leaves it healthy."""
    ensure_table(lab)
    yield
    for name, faults in lab.load().faults.items():
        for key in list(faults):
            undo = {
                "endpoint_lost": "endpoint-restore",
                "partitioned": "heal",
                "paused": "resume",
                "lagging": "unlag",
            }[key]
            lab.fault(undo, name)
    for name, node in lab.status()["nodes"].items():
        if node["state"] == "killed":
            lab.fault("start", name)


def _replica_io(lab: Lab, node: str) -> str:
    return str(lab.status()["nodes"][node]["replication"]["io_running"])


def _caught_up(lab: Lab) -> bool:
    st = lab.status()
    return all(n.get("gtid") == st["primary_gtid"] for n in st["nodes"].values())


def test_endpoint_loss_refuses_new_connections_but_open_ones_commit(lab: Lab) -> None:
    """After endpoint-loss on the primary, new connections fail while an open one still commits."""
    open_conn = mysql.connect(lab.endpoint("writer"))
    lab.fault("endpoint-loss", "mysql-0")
    for where in ("writer", "mysql-0"):
        with pytest.raises(DatabaseError):
            query(lab, where, "SELECT 1")
    before = count(lab, "direct:mysql-0")
    with open_conn.cursor() as cur:
        cur.execute("INSERT INTO t (v) VALUES ('through the old connection')")
    open_conn.close()
    assert count(lab, "direct:mysql-0") == before + 1
    lab.fault("endpoint-restore", "mysql-0")
    assert server_id(lab, "writer") == 1


def test_endpoint_loss_of_a_replica_takes_it_out_of_mysql_read(lab: Lab) -> None:
    """mysql-read stops routing to a replica whose endpoint is lost, and uses it again after."""
    lab.fault("endpoint-loss", "mysql-1")
    seen = {server_id(lab, "reader") for _ in range(6)}
    assert seen == {3}
    lab.fault("endpoint-restore", "mysql-1")
    seen = {server_id(lab, "reader") for _ in range(6)}
    assert seen == {2, 3}


def test_partition_cuts_replication_and_heal_catches_up(lab: Lab) -> None:
    """A partitioned replica's IO thread stops running and it catches up after heal."""
    client = mysql.connect(lab.endpoint("mysql-1"))
    lab.fault("partition", "mysql-1")
    wait_for(lambda: _replica_io(lab, "mysql-1") != "Yes", timeout=15, what="IO thread to stop")
    with pytest.raises(Exception), client.cursor() as cur:  # noqa: B017 - any cut is fine
        cur.execute("SELECT 1")
    with pytest.raises(DatabaseError):
        query(lab, "mysql-1", "SELECT 1")
    query(lab, "writer", "INSERT INTO t (v) VALUES ('while partitioned')")
    primary_rows = count(lab, "direct:mysql-0")
    assert count(lab, "direct:mysql-1") < primary_rows
    lab.fault("heal", "mysql-1")
    wait_for(lambda: count(lab, "direct:mysql-1") == primary_rows, timeout=30, what="catch-up")
    assert _replica_io(lab, "mysql-1") == "Yes"


def test_partition_of_the_primary_cuts_open_writer_connections(lab: Lab) -> None:
    """Partitioning the primary breaks open client connections and refuses new ones."""
    client = mysql.connect(lab.endpoint("writer"))
    lab.fault("partition", "mysql-0")
    with pytest.raises(Exception), client.cursor() as cur:  # noqa: B017
        cur.execute("INSERT INTO t (v) VALUES ('must not arrive')")
    with pytest.raises(DatabaseError):
        query(lab, "writer", "SELECT 1")
    lab.fault("heal", "mysql-0")
    query(lab, "writer", "INSERT INTO t (v) VALUES ('after heal')")
    wait_for(lambda: _caught_up(lab), timeout=30, what="replicas to catch up")


def test_kill_and_start_keep_every_committed_row(lab: Lab) -> None:
    """SIGKILL of the primary loses no committed row, and it serves again after start."""
    for i in range(20):
        query(lab, "writer", f"INSERT INTO t (v) VALUES ('k{i}')")
    committed = count(lab, "writer")
    lab.fault("kill", "mysql-0")
    assert lab.status()["nodes"]["mysql-0"]["state"] == "killed"
    with pytest.raises(DatabaseError):
        query(lab, "writer", "SELECT 1")
    with pytest.raises(LabError, match="not running"):
        lab.fault("kill", "mysql-0")
    lab.fault("start", "mysql-0")
    assert count(lab, "writer") == committed
    query(lab, "writer", "INSERT INTO t (v) VALUES ('after restart')")
    wait_for(lambda: _caught_up(lab), timeout=30, what="replicas to reconnect and catch up")


def test_kill_and_start_a_replica_rejoins_replication(lab: Lab) -> None:
    """A killed replica restarts on its datadir and resumes replication."""
    lab.fault("kill", "mysql-2")
    query(lab, "writer", "INSERT INTO t (v) VALUES ('while mysql-2 is down')")
    lab.fault("start", "mysql-2")
    wait_for(
        lambda: count(lab, "direct:mysql-2") == count(lab, "direct:mysql-0"),
        timeout=30,
        what="mysql-2 to catch up",
    )


def test_pause_hangs_clients_and_resume_answers_again(lab: Lab) -> None:
    """A paused node answers nothing (clients time out) and leaves mysql-read until resumed."""
    lab.fault("pause", "mysql-1")
    with pytest.raises(DatabaseError):
        query(lab, "direct:mysql-1", "SELECT 1", timeout=1.0)
    assert {server_id(lab, "reader") for _ in range(4)} == {3}
    lab.fault("resume", "mysql-1")
    assert server_id(lab, "direct:mysql-1") == 2


def test_lag_stops_applying_and_unlag_catches_up(lab: Lab) -> None:
    """A lagged replica receives but does not apply writes until unlagged."""
    lab.fault("lag", "mysql-2")
    before = count(lab, "direct:mysql-2")
    query(lab, "writer", "INSERT INTO t (v) VALUES ('lagged')")
    wait_for(
        lambda: count(lab, "direct:mysql-1") == before + 1, timeout=20, what="mysql-1 to apply"
    )
    assert count(lab, "direct:mysql-2") == before
    assert lab.status()["nodes"]["mysql-2"]["replication"]["sql_running"] == "No"
    lab.fault("unlag", "mysql-2")
    wait_for(
        lambda: count(lab, "direct:mysql-2") == before + 1, timeout=20, what="mysql-2 to apply"
    )


def test_double_start_is_refused_and_the_original_still_commits(lab: Lab) -> None:
    """A second server on the primary's datadir is refused by file locks; the first serves on."""
    result = lab.fault("double-start", "mysql-0")
    assert result["refused"] is True
    assert "lock" in result["evidence"].lower()
    assert result["original_serving"] is True
    before = count(lab, "writer")
    query(lab, "writer", "INSERT INTO t (v) VALUES ('after double start')")
    assert count(lab, "writer") == before + 1
    assert not lab.status()["nodes"]["mysql-0"]["faults"]
