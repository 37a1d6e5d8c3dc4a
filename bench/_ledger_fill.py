"""A large ledger and a journal that matches it, generated fast and consistently.

Row `r` (ids `start..start+n-1`, `i = r - start`) is writer `i % W`'s seq `i // W + 1`; its
payload is `LEFT(sha256("p<r>") || sha256("q<r>"), 16 + r % 49)` (16..64 bytes), which the
server computes itself in `INSERT ... SELECT` from MariaDB's sequence engine (no row crosses
the network), and Python computes again for the journal's payload hashes. The journal gets one
acknowledged attempt per row, closed reservations, and a fresh read every 1000 rows.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from checker import mysql
from checker.journal import Journal
from checker.lab.topology import Lab

SERVER = "1@bench:3306@1700000000"
_ATTEMPT_SQL = (
    "INSERT INTO attempts (writer_id, seq, payload_sha256, outcome, invoke_wall, complete_wall, "
    "invoke_mono, complete_mono, server, node, row_id, error) "
    "VALUES (?, ?, ?, 'ok', ?, ?, ?, ?, ?, 'mysql-0', ?, NULL)"
)


def payload(r: int) -> bytes:
    both = hashlib.sha256(b"p%d" % r).digest() + hashlib.sha256(b"q%d" % r).digest()
    return both[: 16 + r % 49]


def fill_server(lab: Lab, prefix: str, n: int, writers: int, batch: int = 100_000) -> int:
    """Insert `n` rows of writer ids `<prefix><w>` on the primary; returns the first id."""
    ep = lab.endpoint("writer", user="root", database="integrity").with_(read_timeout=3600)
    conn = mysql.connect(ep)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM ledger")
            start = int(cur.fetchone()[0])
            for lo in range(start, start + n, batch):
                hi = min(start + n - 1, lo + batch - 1)
                cur.execute(
                    "INSERT INTO ledger (id, writer_id, seq, payload, checksum, written_at) "
                    "SELECT r, CONCAT(%s, (r - %s) MOD %s), (r - %s) DIV %s + 1, p, "
                    "SHA2(p, 256), NOW(6) FROM (SELECT seq AS r, "
                    "LEFT(CONCAT(UNHEX(SHA2(CONCAT('p', seq), 256)), "
                    "UNHEX(SHA2(CONCAT('q', seq), 256))), 16 + seq MOD 49) AS p "
                    f"FROM seq_{lo}_to_{hi}) t",
                    (prefix, start, writers, start, writers),
                )
    finally:
        conn.close()
    return start


def _attempt_rows(
    prefix: str, start: int, n: int, writers: int, t0: float = 1_700_000_000.0
) -> Iterator[tuple[Any, ...]]:
    for i in range(n):
        r = start + i
        t = t0 + i * 1e-4
        digest = hashlib.sha256(payload(r)).hexdigest()
        seq = i // writers + 1
        yield (f"{prefix}{i % writers}", seq, digest, t, t + 5e-5, t, t + 5e-5, SERVER, r)


def fill_journal(
    path: Path, prefix: str, start: int, n: int, writers: int, t0: float = 1_700_000_000.0
) -> None:
    """Write the attempts, reservations and reads of the `fill_server` rows into `path`, the
    attempts invoked from `t0` on, 0.1 ms apart."""
    db = sqlite3.connect(path)
    try:
        rows = _attempt_rows(prefix, start, n, writers, t0)
        while True:
            chunk = [next(rows, None) for _ in range(100_000)]
            chunk = [c for c in chunk if c is not None]
            if not chunk:
                break
            db.executemany(_ATTEMPT_SQL, chunk)
            reads = [
                (c[4] + 0.01, "mysql-1", "mysql-1", None, c[0], c[1])
                for c in chunk
                if c[8] % 1000 == 0
            ]
            db.executemany(
                "INSERT INTO reads (time, endpoint, node, server, writer_id, max_seq) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                reads,
            )
            db.commit()
        last = {f"{prefix}{w}": (n - 1 - w) // writers + 1 for w in range(min(writers, n))}
        db.executemany(
            "INSERT OR REPLACE INTO reservations (writer_id, upto, incarnation, closed) "
            "VALUES (?, ?, 1, 1)",
            sorted(last.items()),
        )
        db.commit()
    finally:
        db.close()


def build(lab: Lab, journal: Path, n: int, writers: int = 8) -> dict[str, float]:
    """A fresh journal for the lab's writer and `n` matching rows; returns timings."""
    w = lab.endpoint("writer")
    j = Journal(journal, target=f"{w.host}:{w.port}/integrity.ledger")
    prefix = f"{j.info.run_id}-1-"
    j.close()
    started = time.monotonic()
    start = fill_server(lab, prefix, n, writers)
    server = time.monotonic() - started
    fill_journal(journal, prefix, start, n, writers)
    return {"fill_server_s": server, "fill_journal_s": time.monotonic() - started - server}
