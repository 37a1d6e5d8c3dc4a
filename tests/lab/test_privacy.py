"""The lab's back door is private: its socket directory is 0700, root needs a password there too."""

from __future__ import annotations

import stat
from pathlib import Path

import pymysql
import pytest

from checker.lab.topology import Lab

ACCESS_DENIED = 1045


def _socket(lab: Lab, node: str) -> Path:
    return lab.load().nodes[node].socket


def test_socket_directory_is_private(lab: Lab) -> None:
    """Only the lab's owner can even reach the sockets (mode 0700)."""
    run = _socket(lab, "mysql-0").parent
    assert stat.S_IMODE(run.stat().st_mode) == 0o700


@pytest.mark.parametrize("node", ["mysql-0", "mysql-1", "mysql-2"])
def test_root_needs_its_password_over_the_socket(lab: Lab, node: str) -> None:
    """root@localhost without a password is refused on every node; with the lab's one it works."""
    sock = _socket(lab, node)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(unix_socket=str(sock), user="root", password="", connect_timeout=5)
    assert refused.value.args[0] == ACCESS_DENIED
    password = lab.secret("root").reveal()
    conn = pymysql.connect(unix_socket=str(sock), user="root", password=password, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone() == ("root@localhost",)
    finally:
        conn.close()


def test_lab_operations_still_use_the_socket(lab: Lab) -> None:
    """The lab's own socket work (status, faults) keeps working with the password in place."""
    lab.fault("kill", "mysql-2")
    lab.fault("start", "mysql-2")
    assert lab.status()["nodes"]["mysql-2"]["state"] == "running"
