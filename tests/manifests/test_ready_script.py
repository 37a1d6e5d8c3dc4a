"""The MySQL pods' ready.sh, run for real with bash against the lab's MariaDB replicas."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from checker import mysql
from checker.lab.topology import Lab
from tests._wait import wait_for
from tests.manifests._k8s import BASE, find, render

REPLICA = "mysql-1"


@pytest.fixture(scope="module")
def ready_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ready.sh from the rendered mysql-scripts ConfigMap, as a file."""
    data = find(render(BASE), "ConfigMap", "mysql-scripts", "mysql")["data"]
    path = tmp_path_factory.mktemp("scripts") / "ready.sh"
    path.write_text(data["ready.sh"], encoding="utf-8")
    return path


def _ready(
    lab: Lab, script: Path, node: str, role: str = "replica", max_lag: int = 5
) -> tuple[int, str]:
    port = lab.load().nodes[node].port
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(script.parent),
        "READY_HOST": "127.0.0.1",
        "READY_PORT": str(port),
        "READY_USER": "root",
        "READY_PASSWORD_FILE": str(lab.password_file("root")),
        "READY_MAX_LAG_SECONDS": str(max_lag),
        "READY_ROLE": role,
    }
    proc = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


def _root(lab: Lab, node: str) -> pymysql.Connection:  # type: ignore[type-arg]
    ep = lab.endpoint(f"direct:{node}", user="root", database="integrity")
    return mysql.connect(ep.with_(read_timeout=30))


def _sql(lab: Lab, node: str, *statements: str) -> None:
    conn = _root(lab, node)
    try:
        with conn.cursor() as cur:
            for s in statements:
                cur.execute(s)
    finally:
        conn.close()


@pytest.fixture
def healthy(lab: Lab, ready_script: Path) -> Iterator[None]:
    """The replica starts and ends each test ready."""
    wait_for(lambda: _ready(lab, ready_script, REPLICA)[0] == 0, timeout=60, what="a ready replica")
    yield
    wait_for(lambda: _ready(lab, ready_script, REPLICA)[0] == 0, timeout=60, what="ready again")


def test_a_healthy_replica_and_the_primary_are_ready(
    lab: Lab, ready_script: Path, healthy: None
) -> None:
    """Both threads running, no lag, read-only: exit 0; the primary is ready while it answers."""
    code, out = _ready(lab, ready_script, REPLICA)
    assert code == 0, out
    assert _ready(lab, ready_script, "mysql-0", role="primary")[0] == 0


def test_a_replica_whose_io_thread_stopped_is_not_ready(
    lab: Lab, ready_script: Path, healthy: None
) -> None:
    """A replica that no longer receives (IO thread stopped, as when partitioned) is not ready."""
    _sql(lab, REPLICA, "STOP SLAVE IO_THREAD")
    try:
        code, out = _ready(lab, ready_script, REPLICA)
        assert code != 0
        assert "IO thread is No: not receiving" in out
    finally:
        _sql(lab, REPLICA, "START SLAVE IO_THREAD")


def test_a_replica_that_stopped_applying_is_not_ready(
    lab: Lab, ready_script: Path, healthy: None
) -> None:
    """The lab's lag fault (SQL thread stopped, lag NULL) makes the replica not ready."""
    lab.fault("lag", REPLICA)
    try:
        code, out = _ready(lab, ready_script, REPLICA)
        assert code != 0
        assert "SQL thread is No" in out
    finally:
        lab.fault("unlag", REPLICA)


def test_a_replica_lagging_beyond_the_bound_is_not_ready(
    lab: Lab, ready_script: Path, healthy: None
) -> None:
    """Both threads run but the applier is blocked by a row lock: lag grows past the bound."""
    _sql(
        lab,
        "mysql-0",
        "CREATE TABLE IF NOT EXISTS integrity.ready_probe (id INT PRIMARY KEY, v INT)",
        "REPLACE INTO integrity.ready_probe VALUES (1, 0)",
    )
    wait_for(
        lambda: _ready(lab, ready_script, REPLICA)[0] == 0, timeout=60, what="the table replicated"
    )
    blocker = _root(lab, REPLICA)
    try:
        with blocker.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM integrity.ready_probe")  # replicated yet?
            wait_for(
                lambda: cur.execute("SELECT 1 FROM integrity.ready_probe WHERE id = 1") == 1,
                timeout=30,
                what="the row on the replica",
            )
            cur.execute("BEGIN")
            cur.execute("SELECT v FROM integrity.ready_probe WHERE id = 1 FOR UPDATE")
            _sql(lab, "mysql-0", "UPDATE integrity.ready_probe SET v = v + 1 WHERE id = 1")
            wait_for(
                lambda: _ready(lab, ready_script, REPLICA, max_lag=2)[0] != 0,
                timeout=40,
                what="ready.sh to fail on lag",
            )
            code, out = _ready(lab, ready_script, REPLICA, max_lag=2)
            assert code != 0 and "more than 2 s" in out, out
            # With a generous bound the same replica is ready: it is the lag that failed it.
            assert _ready(lab, ready_script, REPLICA, max_lag=3600)[0] == 0
            cur.execute("ROLLBACK")
    finally:
        blocker.close()
