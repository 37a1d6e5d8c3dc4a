"""The lab comes up as a replicated topology, is idempotent, and goes down without orphans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pymysql

from checker.lab.state import save
from checker.lab.topology import Lab
from tests._flavor import semi_sync_status, server_flavor
from tests._proc import processes_mentioning, threads_mentioning
from tests._wait import wait_for
from tests.lab._sql import count, ensure_table, query

CHECKER = [sys.executable, "-m", "checker.cli"]


def test_up_replicates_is_idempotent_and_down_leaves_no_process(tmp_path: Path) -> None:
    """A row written through the writer endpoint reaches every replica; down stops everything."""
    lab = Lab(tmp_path / "lab")
    info = lab.up(replicas=2)
    try:
        assert not info["already_running"]
        assert {n: v["role"] for n, v in info["nodes"].items()} == {
            "mysql-0": "primary",
            "mysql-1": "replica",
            "mysql-2": "replica",
        }
        ensure_table(lab)
        query(lab, "writer", "INSERT INTO t (v) VALUES ('first')")
        for node in info["nodes"]:
            wait_for(
                lambda node=node: count(lab, f"direct:{node}") == 1,
                timeout=20,
                what=f"row on {node}",
            )
        again = lab.up(replicas=2)
        assert again["already_running"]
        assert again["nodes"]["mysql-0"]["pid"] == info["nodes"]["mysql-0"]["pid"]
    finally:
        stopped = lab.down()
    assert set(stopped["stopped"]) >= {"proxy", "mysql-0", "mysql-1", "mysql-2"}
    wait_for(
        lambda: not processes_mentioning(str(lab.dir)), timeout=15, what="lab processes to exit"
    )

    # Data is kept across down/up (without --purge), and replication resumes.
    lab.up(replicas=2)
    try:
        assert count(lab, "writer") == 1
        query(lab, "writer", "INSERT INTO t (v) VALUES ('second')")
        wait_for(
            lambda: count(lab, "direct:mysql-2") == 2, timeout=20, what="replication after restart"
        )
    finally:
        lab.down(purge=True)
    assert not (lab.dir / "data").exists()
    assert not processes_mentioning(str(lab.dir))


def test_down_returns_only_once_every_server_thread_is_gone(tmp_path: Path) -> None:
    """`down` (and `down --purge`) returns only when no thread of any server on the lab's
    datadirs is left, so a datadir is never purged under a running server; checked the moment
    it returns."""
    lab = Lab(tmp_path / "lab")
    lab.up(replicas=2)
    ensure_table(lab)
    query(lab, "writer", "INSERT INTO t (v) VALUES ('x')")
    lab.down()
    assert threads_mentioning(str(lab.dir / "data")) == []
    # A server whose pid the state lost (a start that crashed before saving it) is found by
    # its datadir, stopped, and only then is its data purged.
    lab.up(replicas=2)
    save(lab.load().with_node("mysql-2", pid=None))
    lab.down(purge=True)
    assert threads_mentioning(str(lab.dir)) == []
    assert not (lab.dir / "data").exists()


def test_cli_up_json_gives_endpoints_pymysql_can_use(tmp_path: Path) -> None:
    """`checker lab up --json` prints endpoints that a plain PyMySQL client can write and read."""
    d = tmp_path / "cli-lab"
    out = subprocess.run(
        [*CHECKER, "lab", "up", "--dir", str(d), "--replicas", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    try:
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["flavor"] == server_flavor(Lab(d))  # the lab's claim, checked with the server
        assert set(info["nodes"]) == {"mysql-0", "mysql-1"}
        password = Path(info["password_file"]).read_text().strip()
        root_pw = Path(info["root_password_file"]).read_text().strip()
        assert oct(Path(info["password_file"]).stat().st_mode & 0o777) == "0o600"

        def conn(addr: str, user: str, pw: str) -> pymysql.Connection:  # type: ignore[type-arg]
            host, port = addr.split(":")
            return pymysql.connect(
                host=host,
                port=int(port),
                user=user,
                password=pw,
                database=info["database"],
                autocommit=True,
                connect_timeout=5,
            )

        with conn(info["writer"], "root", root_pw) as c, c.cursor() as cur:
            cur.execute("CREATE TABLE cli_t (id INT PRIMARY KEY, v VARCHAR(10))")
        with conn(info["writer"], info["user"], password) as c, c.cursor() as cur:
            cur.execute("INSERT INTO cli_t VALUES (1, 'x')")

        def read() -> bool:
            with conn(info["reader"], info["user"], password) as c, c.cursor() as cur:
                cur.execute("SELECT v FROM cli_t WHERE id = 1")
                return cur.fetchone() == ("x",)

        wait_for(read, timeout=20, what="the row through mysql-read")
        status = subprocess.run(
            [*CHECKER, "lab", "status", "--dir", str(d), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        st = json.loads(status.stdout)
        assert st["nodes"]["mysql-1"]["replication"]["io_running"] == "Yes"
        assert password not in status.stdout and password not in out.stdout
    finally:
        down = subprocess.run(
            [*CHECKER, "lab", "down", "--dir", str(d), "--purge"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert down.returncode == 0, down.stderr
    assert not processes_mentioning(str(d))


def test_semi_sync_lab_acknowledges_through_a_replica(tmp_path: Path) -> None:
    """With --semi-sync the primary's commits wait for a replica's acknowledgement."""
    lab = Lab(tmp_path / "semi")
    lab.up(replicas=1, semi_sync=True)
    try:
        assert lab.info()["semi_sync"] is True
        flavor = server_flavor(lab)

        def status(what: str) -> str:
            name = semi_sync_status(flavor, what)
            rows = query(lab, "direct:mysql-0", f"SHOW GLOBAL STATUS LIKE '{name}'", user="root")
            return str(rows[0][1]) if rows else ""

        wait_for(
            lambda: status("clients") == "1",
            timeout=30,
            what="the replica to connect as a semi-sync client",
        )
        assert status("status") == "ON"
        before = int(status("yes_tx"))
        ensure_table(lab)
        query(lab, "writer", "INSERT INTO t (v) VALUES ('semi-sync')")
        assert int(status("yes_tx")) > before
    finally:
        lab.down(purge=True)
