"""Bad lab input gets one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from checker.lab.topology import Lab

CHECKER = [sys.executable, "-m", "checker.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHECKER, *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_status_of_a_lab_that_does_not_exist(tmp_path: Path) -> None:
    """Asking a directory without a lab for its status says how to start one."""
    assert_one_line_error(
        run("lab", "status", "--dir", str(tmp_path / "none")), "no lab at", "lab up"
    )


def test_fault_on_a_stopped_lab(lab: Lab) -> None:
    """A fault on a lab whose processes are down is refused with a hint."""
    d = lab.dir.parent / "stopped-lab"
    stopped = Lab(d)
    stopped.up(replicas=0)
    stopped.down()
    try:
        assert_one_line_error(
            run("lab", "fault", "kill", "mysql-0", "--dir", str(d)), "not running"
        )
    finally:
        stopped.down(purge=True)


def test_unknown_node_and_unknown_action(lab: Lab) -> None:
    """An unknown node names the nodes that exist; an unknown action is rejected by the parser."""
    assert_one_line_error(
        run("lab", "fault", "kill", "mysql-9", "--dir", str(lab.dir)),
        "unknown node 'mysql-9'",
        "mysql-0, mysql-1, mysql-2",
    )
    assert_one_line_error(
        run("lab", "fault", "explode", "mysql-0", "--dir", str(lab.dir)), "explode"
    )
    assert_one_line_error(
        run("lab", "fault", "lag", "mysql-0", "--dir", str(lab.dir)), "not a replica"
    )


def test_busy_ports_are_reported(tmp_path: Path) -> None:
    """A --base-port block that overlaps a port in use is refused before anything starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run("lab", "up", "--dir", str(tmp_path / "busy"), "--base-port", str(port - 1))
    assert_one_line_error(proc, "already in use", str(port))
    assert not (tmp_path / "busy" / "data").exists()


def test_missing_server_binary_names_the_package(tmp_path: Path) -> None:
    """Without mariadbd/mysqld anywhere, `lab up` says which Debian package to install."""
    env = {**os.environ, "PATH": str(tmp_path), "CHECKER_LAB_SEARCH_DIRS": str(tmp_path)}
    env.pop("CHECKER_LAB_SERVER", None)
    proc = run("lab", "up", "--dir", str(tmp_path / "nobin"), env=env)
    assert_one_line_error(proc, "mariadb-server")


def test_bad_option_values(tmp_path: Path) -> None:
    """Out-of-range and unknown options are one-line usage errors."""
    assert_one_line_error(run("lab", "up", "--dir", str(tmp_path), "--replicas", "99"), "replicas")
    assert_one_line_error(run("lab", "up", "--bogus"), "--bogus")
