"""Small SQL helpers for lab tests (real PyMySQL connections through the lab's endpoints)."""

from __future__ import annotations

from typing import Any

from checker import mysql
from checker.lab.topology import Lab


def query(
    lab: Lab, where: str, sql: str, *, user: str = "checker", timeout: float = 5.0
) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection to `where` and return its rows."""
    ep = lab.endpoint(where, user=user).with_(connect_timeout=timeout, read_timeout=timeout)
    conn = mysql.connect(ep)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def server_id(lab: Lab, where: str) -> int:
    return int(query(lab, where, "SELECT @@server_id")[0][0])


def ensure_table(lab: Lab, table: str = "t") -> None:
    """A scratch table in the app database, created by root on the current primary."""
    query(
        lab,
        "writer",
        f"CREATE TABLE IF NOT EXISTS integrity.{table} "
        "(id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64))",
        user="root",
    )


def count(lab: Lab, where: str, table: str = "t") -> int:
    return int(query(lab, where, f"SELECT COUNT(*) FROM integrity.{table}")[0][0])
