"""Percona's pt-table-checksum on the lab, as a peer to time `checker verify` against.

It checksums the checker's tables (ledger, accounts, chaos markers) on the primary with
`binlog_format=STATEMENT`; each replica re-executes the checksum statements on its own rows,
and pt-table-checksum waits for them and compares (pt-table-checksum(1)). The lab's replicas
listen on loopback ports of their own, so they are named in a DSN table
(`--recursion-method=dsn=...`); credentials go in a 0600 option file, never on a command line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from checker import mysql
from checker.lab.topology import Lab

TABLES = ("ledger", "accounts", "chaos_marker")
DSN_TABLE = "percona_dsn.dsns"


def executable() -> str | None:
    return shutil.which("pt-table-checksum")


def prepare(lab: Lab, directory: Path) -> list[str]:
    """Register the replicas in the DSN table and write the option file; the command line."""
    state = lab.load()
    primary = state.primary
    ports = {n: lab.endpoint(f"direct:{n}", user="root").port for n in state.nodes}
    root = lab.endpoint(f"direct:{primary}", user="root")
    conn = mysql.connect(root.with_(database=None))
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS percona_dsn")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {DSN_TABLE} (id INT AUTO_INCREMENT PRIMARY KEY, "
                "parent_id INT DEFAULT NULL, dsn VARCHAR(255) NOT NULL)"
            )
            cur.execute(f"DELETE FROM {DSN_TABLE}")
            for node, port in sorted(ports.items()):
                if node != primary:
                    cur.execute(
                        f"INSERT INTO {DSN_TABLE} (dsn) VALUES (%s)", (f"h=127.0.0.1,P={port}",)
                    )
    finally:
        conn.close()
    cnf = directory / "pt-client.cnf"
    cnf.touch(mode=0o600)
    password = root.password.reveal() if root.password is not None else ""
    cnf.write_text(f"[client]\nuser=root\npassword={password}\n")
    exe = executable() or "pt-table-checksum"
    return [
        exe,
        f"--defaults-file={cnf}",
        f"h=127.0.0.1,P={ports[primary]}",
        "--databases=integrity",
        "--tables=" + ",".join(f"integrity.{t}" for t in TABLES),
        "--recursion-method=dsn=D=percona_dsn,t=dsns",
        "--no-check-binlog-format",
        "--no-version-check",
        "--chunk-time=0.5",
    ]
