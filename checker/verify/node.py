"""The MySQL side of a verification: one connection per node, the SQL each node runs (chunk
aggregates, rows, the writer registry, the small tables, GTIDs), and finding the primary."""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import pymysql

from checker import _logging, mysql
from checker.core import gtid
from checker.core.history import Row
from checker.errors import AuthError, DatabaseError, GrantError, SchemaError, VerifyError
from checker.mysql import Endpoint, ServerInfo
from checker.schema import Names

log = _logging.get("checker.verify")  # one logger name for the whole verification

ROW_HASH_SQL = "CRC32(CONCAT_WS('#', id, writer_id, seq, checksum))"
"""Per-row hash the journal predicts: the checksum column stands for the payload, whose own
hash is checked against it by `BAD_PAYLOAD_SQL` (expected 0 per range)."""

BAD_PAYLOAD_SQL = "CAST(SHA2(payload, 256) AS BINARY) <> CAST(checksum AS BINARY)"
"""A row whose payload does not hash to its checksum. CAST to BINARY: an exact comparison,
and SHA2's utf8mb4 result would clash with a latin1 table's collation."""

COPY_HASH_SQL = "CRC32(CONCAT_WS('#', id, writer_id, seq, checksum, payload))"
"""Per-row hash of the row as stored, payload bytes included: cheap (no SHA-256), used to
compare nodes with each other. Only the primary pays for the payload's SHA-256."""

_MINE = "LEFT(writer_id, %(prefix_len)s) = CAST(%(prefix)s AS BINARY)"


def row_hash(row: Row) -> int:
    """`ROW_HASH_SQL` of one row, computed in Python bit for bit as the server does."""
    return zlib.crc32(f"{row[0]}#{row[1]}#{row[2]}#{row[4]}".encode())


@dataclass(frozen=True)
class Aggregate:
    """One node's aggregates over one id range: `all` rows and their `copy` hash (every row,
    whoever wrote it: nodes are compared on these), `mine` this run's rows; `row` and `bad`
    (this run's rows only) where the row hash was asked for."""

    mine: int
    copy: int
    row: int | None
    bad: int | None
    seconds: float
    all: int = 0


class Node:
    """One node: its own connection, used by one thread at a time."""

    def __init__(
        self, name: str, endpoint: Endpoint, names: Names, prefix: str, timeout: float = 120.0
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.timeout = timeout
        self.ledger = names.q("ledger")
        self.accounts = names.q("accounts")
        self.params: dict[str, Any] = {"prefix": prefix, "prefix_len": len(prefix)}
        self.conn: Any = None
        self.info: ServerInfo | None = None
        self.error: str | None = None

    def open(self) -> bool:
        """Connect and identify the server. Wrong credentials or grants are the user's to fix
        and raise; an unreachable node is recorded as the reason it is unknown."""
        try:
            # The endpoint's own timeouts bound the handshake: a port that is not MySQL fails
            # fast. Verification's statements may then take longer than a workload statement
            # (a barrier wait, a chunk on a busy server): PyMySQL applies `_read_timeout`
            # before each read.
            self.conn = mysql.connect(self.endpoint)
            self.info = mysql.server_info(self.conn)
            self.conn._read_timeout = self.timeout
        except (AuthError, GrantError):
            raise
        except DatabaseError as exc:
            self.fail(str(exc))
        except (pymysql.err.MySQLError, OSError) as exc:
            self.fail(str(mysql.classify(exc, self.endpoint)))
        return self.error is None

    def fail(self, reason: str) -> None:
        self.error = self.error or reason
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            # Closing a broken connection may fail any way; it is being dropped regardless.
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    @property
    def ok(self) -> bool:
        return self.conn is not None and self.error is None

    @property
    def flavor(self) -> gtid.Flavor:
        return "mariadb" if self.info is not None and self.info.flavor == "mariadb" else "mysql"

    def rows(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement; a failure becomes a one-line `DatabaseError` naming the node."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except (pymysql.err.MySQLError, OSError) as exc:
            raise mysql.classify(exc, self.endpoint) from None

    def dict_rows(self, sql: str) -> list[dict[str, Any]]:
        try:
            with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        except (pymysql.err.MySQLError, OSError) as exc:
            raise mysql.classify(exc, self.endpoint) from None

    def value(self, sql: str, args: Any = None) -> Any:
        found = self.rows(sql, args)
        return found[0][0] if found else None

    # -- ledger queries -------------------------------------------------------------------------
    def id_bounds(self) -> tuple[int | None, int | None]:
        lo, hi = self.rows(f"SELECT MIN(id), MAX(id) FROM {self.ledger}")[0]
        return (None if lo is None else int(lo), None if hi is None else int(hi))

    def aggregate(self, lo: int, hi: int, *, with_row_hash: bool, filtered: bool) -> Aggregate:
        """Count and copy hash of every row in lo..hi (nodes are compared on these, whoever
        wrote the rows), and this run's count and hashes. Unless `filtered`, the table is taken
        to hold no other run's rows (checked before: telling them apart costs per row)."""
        cols = ["COUNT(*)", f"COALESCE(BIT_XOR({COPY_HASH_SQL}), 0)"]
        mine = f"({_MINE})"
        if filtered:
            cols.append(f"COALESCE(SUM({mine}), 0)")
        if with_row_hash:
            row_hash_sql = f"IF({mine}, {ROW_HASH_SQL}, 0)" if filtered else ROW_HASH_SQL
            bad_sql = f"{mine} AND {BAD_PAYLOAD_SQL}" if filtered else BAD_PAYLOAD_SQL
            cols += [
                f"COALESCE(BIT_XOR({row_hash_sql}), 0)",
                f"COALESCE(SUM({bad_sql}), 0)",
            ]
        sql = f"SELECT {', '.join(cols)} FROM {self.ledger} WHERE id BETWEEN %(lo)s AND %(hi)s"
        started = time.monotonic()
        found = self.rows(sql, {**self.params, "lo": lo, "hi": hi})[0]
        rest = list(found[3:] if filtered else found[2:])
        return Aggregate(
            mine=int(found[2]) if filtered else int(found[0]),
            copy=int(found[1]),
            row=int(rest[0]) if with_row_hash else None,
            bad=int(rest[1]) if with_row_hash else None,
            seconds=time.monotonic() - started,
            all=int(found[0]),
        )

    def foreign_rows(self) -> int:
        """Rows of other runs: two ranges of the (writer_id, seq) index around this run's."""
        prefix = str(self.params["prefix"])
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first id past "<run_id>-..."
        found = self.value(
            f"SELECT COUNT(*) FROM {self.ledger} WHERE writer_id < %s OR writer_id >= %s",
            (prefix, after),
        )
        return int(found or 0)

    def fetch(self, lo: int, hi: int) -> list[Row]:
        """Every row with ids in `lo..hi` (any writer's), in id order, with the payload's
        SHA-256: nodes are compared row by row, and the caller keeps this run's for the
        journal's detectors."""
        sql = (
            f"SELECT id, writer_id, seq, SHA2(payload, 256), checksum FROM {self.ledger} "
            "WHERE id BETWEEN %(lo)s AND %(hi)s ORDER BY id"
        )
        return [_row(r) for r in self.rows(sql, {**self.params, "lo": lo, "hi": hi})]

    # -- the writer registry and the small tables ----------------------------------------------
    def registered_writers(self, table: str) -> set[str] | None:
        """Every registered writer id; None: the registry table does not exist (old tables)."""
        try:
            return {str(w) for (w,) in self.rows(f"SELECT writer_id FROM {table}")}
        except SchemaError:
            return None

    def distinct_writers(self, seeks: int = 200) -> list[str]:
        """Every writer id in the table: one seek of the (writer_id, seq) index per writer,
        not a pass over the rows. Past `seeks` writers, `SELECT DISTINCT` (a loose index scan
        when the optimizer's statistics are fresh, a scan of the index otherwise)."""
        found: list[str] = []
        last: str | None = None
        for _ in range(seeks):
            if last is None:
                value = self.value(f"SELECT MIN(writer_id) FROM {self.ledger}")
            else:
                value = self.value(
                    f"SELECT MIN(writer_id) FROM {self.ledger} WHERE writer_id > %s", (last,)
                )
            if value is None:
                return sorted(set(found))
            last = str(value)
            found.append(last)
        rows = self.rows(f"SELECT DISTINCT writer_id FROM {self.ledger}")
        return sorted({str(w) for (w,) in rows})

    def writer_rows(self, writer_id: str, lo: int, hi: int) -> list[tuple[int, str, int]]:
        found = self.rows(
            f"SELECT id, writer_id, seq FROM {self.ledger} WHERE writer_id = %s "
            "AND id BETWEEN %s AND %s ORDER BY id",
            (writer_id, lo, hi),
        )
        return [(int(i), str(w), int(q)) for i, w, q in found if str(w) == writer_id]

    def table_checksum(self, table: str, columns: str) -> tuple[int, int]:
        n, x = self.rows(
            f"SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', {columns}))), 0) FROM {table}"
        )[0]
        return int(n), int(x)

    def table_rows(self, table: str, columns: str) -> list[tuple[Any, ...]]:
        return [
            tuple(str(v) if not isinstance(v, int) else v for v in r)
            for r in self.rows(f"SELECT {columns} FROM {table} ORDER BY id")
        ]

    def fetch_keys(self, writer_id: str, seqs: Sequence[int]) -> list[Row]:
        marks = ", ".join(["%s"] * len(seqs))
        sql = (
            f"SELECT id, writer_id, seq, SHA2(payload, 256), checksum FROM {self.ledger} "
            f"WHERE writer_id = %s AND seq IN ({marks}) ORDER BY id"
        )
        return [_row(r) for r in self.rows(sql, [writer_id, *seqs]) if r[1] == writer_id]

    def duplicate_groups(
        self, writer_id: str, seqs: Sequence[int]
    ) -> list[tuple[str, int, list[int]]]:
        """`GROUP BY writer_id, seq HAVING COUNT(*) > 1` for these keys (the index only)."""
        self.rows("SET SESSION group_concat_max_len = 1048576")
        marks = ", ".join(["%s"] * len(seqs))
        found = self.rows(
            f"SELECT writer_id, seq, GROUP_CONCAT(id ORDER BY id) FROM {self.ledger} "
            f"WHERE writer_id = %s AND seq IN ({marks}) GROUP BY writer_id, seq "
            "HAVING COUNT(*) > 1",
            (writer_id, *seqs),
        )
        # The column's collation may ignore case: keep the exact writer only.
        return [
            (str(w), int(s), [int(i) for i in str(ids).split(",")])
            for w, s, ids in found
            if str(w) == writer_id
        ]

    def bank_total(self) -> int | None:
        total, count = self.rows(
            f"SELECT COALESCE(SUM(balance), 0), COUNT(*) FROM {self.accounts}"
        )[0]
        return int(total) if int(count) else None

    # -- replication ----------------------------------------------------------------------------
    def read_only(self) -> bool:
        return bool(int(self.value("SELECT @@read_only")))

    def gtid_position(self) -> str:
        """What a replica must have executed to hold everything this node has committed."""
        sql = "SELECT @@gtid_binlog_pos" if self.flavor == "mariadb" else "SELECT @@gtid_executed"
        return _gtid_text(self.value(sql))

    def gtid_state(self) -> str:
        """The full GTID set, for errant transactions (MariaDB keeps every server's last one)."""
        sql = "SELECT @@gtid_binlog_state" if self.flavor == "mariadb" else "SELECT @@gtid_executed"
        return _gtid_text(self.value(sql))

    def executed(self, target: str) -> bool:
        """Has this replica executed `target` already (no waiting)?"""
        if self.flavor == "mariadb":
            # What replication applied, as MASTER_GTID_WAIT compares: @@gtid_current_pos would
            # count a replica's own errant 0-3-N as having executed the primary's 0-1-N.
            have = _gtid_text(self.value("SELECT @@gtid_slave_pos"))
            return gtid.gtid_contains(target, have, "mariadb")
        return bool(int(self.value("SELECT GTID_SUBSET(%s, @@gtid_executed)", (target,))))

    def wait_executed(self, target: str, seconds: float) -> bool | None:
        """Wait up to `seconds` for this replica to execute `target`; None: the server would
        not say (not a replica, malformed position)."""
        if self.flavor == "mariadb":
            # Compares with @@gtid_slave_pos, per domain: 0 reached, -1 timed out.
            found = self.value("SELECT MASTER_GTID_WAIT(%s, %s)", (target, seconds))
            return None if found is None else int(found) == 0
        found = self.value("SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)", (target, seconds))
        return None if found is None else int(found) == 0

    def replication_summary(self) -> str:
        """The replica's threads and last errors, in a few words (for an `unknown` reason)."""
        sql = mysql.replica_status_sql(self.flavor, self.info.version if self.info else "")
        try:
            status = self.dict_rows(sql)
        except DatabaseError as exc:
            return f"replication status unreadable: {exc}"
        if not status:
            return "it does not replicate from anything"
        s = status[0]
        io = s.get("Slave_IO_Running", s.get("Replica_IO_Running"))
        sql_thread = s.get("Slave_SQL_Running", s.get("Replica_SQL_Running"))
        parts = [f"IO thread {'running' if io == 'Yes' else f'not running ({io})'}"]
        parts.append(f"SQL thread {'running' if sql_thread == 'Yes' else 'not running'}")
        for key in ("Last_IO_Error", "Last_SQL_Error"):
            if s.get(key):
                parts.append(f"{key}: {s[key]}")
        behind = s.get("Seconds_Behind_Master", s.get("Seconds_Behind_Source"))
        if behind is not None:
            parts.append(f"{behind} s behind")
        return "; ".join(parts)


def _gtid_text(value: Any) -> str:
    return "".join(str(value or "").split())


def _row(r: Sequence[Any]) -> Row:
    return Row(int(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]))


# -- the nodes and the primary ------------------------------------------------------------------
def connect(nodes: Mapping[str, Node], pool: Executor) -> None:
    """Open every node. In parallel: one node that hangs (a paused server) must not hold up
    the others."""
    for node, opened in zip(nodes.values(), pool.map(Node.open, nodes.values()), strict=True):
        if not opened:
            # Debug only: the verdict names the node unknown with this reason (or the
            # error does, if it was the primary).
            log.debug("node_unreachable", node=node.name, reason=node.error)


def find_primary(nodes: Mapping[str, Node], primary: str | None, writer: Endpoint | None) -> Node:
    """The primary: the only node, the one named (the lab's state), the one the writer
    endpoint reaches, or the only writable one; it must be readable."""
    if len(nodes) == 1:
        node = next(iter(nodes.values()))
    elif primary is not None:
        if primary not in nodes:
            raise VerifyError(f"the primary {primary!r} is not among the nodes {sorted(nodes)}")
        node = nodes[primary]
    elif writer is not None:
        node = _reached_by_writer(nodes, writer)
    else:
        node = _only_writable(nodes)
    if not node.ok:
        raise VerifyError(f"cannot read the primary {node.name}: {node.error}")
    if node.read_only():
        log.warning("primary_read_only", node=node.name)
    return node


def _reached_by_writer(nodes: Mapping[str, Node], writer: Endpoint) -> Node:
    try:
        conn = mysql.connect(writer)
        try:
            info = mysql.server_info(conn)
        finally:
            conn.close()
    except DatabaseError as exc:
        raise VerifyError(f"cannot tell the primary: the writer endpoint fails ({exc})") from None
    for node in nodes.values():
        if node.info is not None and node.info.server_id == info.server_id:
            return node
    raise VerifyError(
        f"the writer endpoint {writer.label()} reaches server_id {info.server_id}, which is "
        f"none of the reachable nodes {sorted(n.name for n in nodes.values() if n.ok)}"
    )


def _only_writable(nodes: Mapping[str, Node]) -> Node:
    writable = [n for n in nodes.values() if n.ok and not n.read_only()]
    if len(writable) == 1:
        return writable[0]
    if not writable:
        down = [n.name for n in nodes.values() if not n.ok]
        extra = f" ({', '.join(down)} unreachable)" if down else ""
        raise VerifyError(f"no writable node to call the primary{extra}: name it with --writer")
    names = ", ".join(n.name for n in writable)
    raise VerifyError(f"several writable nodes ({names}): say which is the primary with --writer")
