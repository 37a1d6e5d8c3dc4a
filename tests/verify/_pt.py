"""Percona's pt-table-checksum as an oracle: which replicas does a real peer say differ?

pt-table-checksum runs on the primary with `binlog_format=STATEMENT` for its own session: each
replica re-executes the checksum statements over its own rows and stores its result next to the
primary's in `percona.checksums`. A replica differs where its `this_cnt`/`this_crc` are not the
primary's `master_cnt`/`master_crc` (pt-table-checksum(1), "REPLICA CHECKS").

The lab's replicas listen on loopback ports of their own, so they are named in a DSN table
(`--recursion-method=dsn=...`). Credentials go in a 0600 defaults file, never on a command line.
Installed with apt-get when missing and root (Debian's `percona-toolkit`), like Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from checker.lab.topology import Lab
from tests.verify._support import root

TABLES = ("ledger", "accounts", "chaos_marker")


def find_or_install() -> str:
    """pt-table-checksum's path; installed with apt-get when missing and root."""
    found = shutil.which("pt-table-checksum")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail(
            "pt-table-checksum is needed as the tests' oracle and is not installed; as root run "
            "`apt-get update && apt-get install -y percona-toolkit` (Debian), then rerun"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q"]
    for cmd in (["apt-get", "update", "-q"], [*install, "percona-toolkit"]):
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr[-1500:]}")
    found = shutil.which("pt-table-checksum")
    if not found:
        pytest.fail("apt-get installed percona-toolkit but pt-table-checksum is not on PATH")
    return found


def defaults_file(lab: Lab, directory: Path) -> Path:
    """A [client] option file with the lab's root password, mode 0600."""
    path = directory / "pt-client.cnf"
    ep = lab.endpoint("direct:mysql-0", user="root")
    password = ep.password.reveal() if ep.password is not None else ""
    path.touch(mode=0o600)
    path.write_text(f"[client]\nuser=root\npassword={password}\n")
    return path


def command(lab: Lab, exe: str, cnf: Path, primary: str = "mysql-0") -> list[str]:
    """The pt-table-checksum command line for the lab's checker tables, replicas by DSN."""
    ep = lab.endpoint(f"direct:{primary}", user="root")
    return [
        exe,
        f"--defaults-file={cnf}",
        f"h=127.0.0.1,P={ep.port}",
        "--databases=integrity",
        "--tables=" + ",".join(f"integrity.{t}" for t in TABLES),
        "--recursion-method=dsn=D=percona_dsn,t=dsns",
        "--no-check-binlog-format",
        "--no-version-check",
        "--chunk-time=0.5",
    ]


def register_replicas(lab: Lab, primary: str = "mysql-0") -> None:
    """The DSN table naming every other node (on the primary, replicated like any table)."""
    nodes = [n for n in lab.status()["nodes"] if n != primary]
    dsns = [f"h=127.0.0.1,P={lab.endpoint(f'direct:{n}', user='root').port}" for n in nodes]
    root(
        lab,
        primary,
        "CREATE DATABASE IF NOT EXISTS percona_dsn",
        "CREATE TABLE IF NOT EXISTS percona_dsn.dsns (id INT AUTO_INCREMENT PRIMARY KEY, "
        "parent_id INT DEFAULT NULL, dsn VARCHAR(255) NOT NULL)",
        "DELETE FROM percona_dsn.dsns",
        "INSERT INTO percona_dsn.dsns (dsn) VALUES " + ", ".join(["(%s)"] * len(dsns)),
        args=dsns,
    )


def differing(lab: Lab, exe: str, directory: Path, primary: str = "mysql-0") -> set[str]:
    """The nodes pt-table-checksum reports as differing from the primary on the checker's
    tables (read from each replica's `percona.checksums` once pt-table-checksum is done)."""
    register_replicas(lab, primary)
    cnf = defaults_file(lab, directory)
    done = subprocess.run(
        command(lab, exe, cnf, primary), capture_output=True, text=True, timeout=240, check=False
    )
    # Exit status bits (pt-table-checksum(1), EXIT STATUS): 16 DIFFS is expected here; any
    # other bit but 32 (NO_SLAVES_FOUND can't be: the DSN table names them) is a failed run.
    assert done.returncode & ~16 == 0, (done.returncode, done.stdout[-3000:], done.stderr[-3000:])
    found: set[str] = set()
    for node in lab.status()["nodes"]:
        if node == primary:
            continue
        rows = root(
            lab,
            node,
            "SELECT COUNT(*) FROM percona.checksums WHERE db = 'integrity' AND ("
            "master_cnt <> this_cnt OR master_crc <> this_crc "
            "OR ISNULL(master_crc) <> ISNULL(this_crc))",
        )
        if int(rows[0][0]):
            found.add(node)
    return found
