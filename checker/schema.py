"""The checker's schema, its least-privilege user, and `checker setup`.

Tables (names configurable, validated as identifiers):
- `ledger`: the sequenced writes. A NON-unique index on (writer_id, seq) keeps duplicates
  visible instead of refusing them.
- `accounts`: the bank workload; the sum of balances is invariant.
- `heartbeat`: one row rewritten every 10 ms on the primary (pt-heartbeat style) for lag.
- `chaos_marker`: the steady-state probe's marker rows (`probes.mysql.marker_write_read`).
- `run_writer`: the registry: every run's writer ids, registered on the primary before the
  run's first write, so that verification can tell a row no checker wrote.

docs/grants.md explains every grant of the checker's user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from checker import mysql
from checker.errors import ConfigError, DatabaseError, GrantError, SchemaError
from checker.mysql import Endpoint, quote_ident


@dataclass(frozen=True)
class Names:
    """Database and table names, validated once."""

    database: str = "integrity"
    ledger: str = "ledger"
    accounts: str = "accounts"
    heartbeat: str = "heartbeat"
    marker: str = "chaos_marker"
    registry: str = "run_writer"

    def __post_init__(self) -> None:
        for value in (
            self.database,
            self.ledger,
            self.accounts,
            self.heartbeat,
            self.marker,
            self.registry,
        ):
            quote_ident(value)

    def q(self, table: str) -> str:
        """`db`.`table`, both validated."""
        return f"{quote_ident(self.database)}.{quote_ident(getattr(self, table))}"


def ddl(names: Names) -> list[str]:
    """CREATE statements, idempotent. InnoDB everywhere: the checker tests crash safety."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {quote_ident(names.database)}",
        f"""CREATE TABLE IF NOT EXISTS {names.q("ledger")} (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            writer_id VARCHAR(64) NOT NULL,
            seq BIGINT NOT NULL,
            payload VARBINARY(255) NOT NULL,
            checksum CHAR(64) NOT NULL,
            written_at DATETIME(6) NOT NULL,
            KEY writer_seq (writer_id, seq)
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {names.q("accounts")} (
            id INT NOT NULL PRIMARY KEY,
            balance BIGINT NOT NULL
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {names.q("heartbeat")} (
            id INT NOT NULL PRIMARY KEY,
            ts DATETIME(6) NOT NULL,
            server_id INT UNSIGNED NOT NULL
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {names.q("marker")} (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            marker VARCHAR(64) NOT NULL,
            written_at DATETIME(6) NOT NULL
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {names.q("registry")} (
            writer_id VARCHAR(64) NOT NULL PRIMARY KEY,
            run_id VARCHAR(64) NOT NULL,
            registered_at DATETIME(6) NOT NULL,
            KEY run (run_id)
        ) ENGINE=InnoDB""",
    ]


def grants(names: Names, user: str, host: str, flavor: str) -> list[str]:
    """The checker user's minimal grants: DML on its own database, replication status reads.

    MariaDB >= 10.5 splits the replication-status privilege out as SLAVE MONITOR; MySQL 8
    reads SHOW REPLICA STATUS with REPLICATION CLIENT.
    """
    account = f"'{_account_part(user)}'@'{_account_part(host)}'"
    monitor = "SLAVE MONITOR, REPLICATION CLIENT" if flavor == "mariadb" else "REPLICATION CLIENT"
    return [
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {quote_ident(names.database)}.* TO {account}",
        f"GRANT {monitor} ON *.* TO {account}",
    ]


def _account_part(value: str) -> str:
    if not value or any(c in value for c in "'\\`\n\r\0"):
        raise ConfigError(f"invalid account name part {value!r}")
    return value


def setup(
    admin: Endpoint,
    names: Names,
    *,
    create_user: str | None = None,
    user_host: str = "%",
    user_password: str | None = None,
) -> dict[str, Any]:
    """Create the schema (and optionally the checker's user with its grants) as an admin."""
    conn = mysql.connect(admin.with_(database=None))
    try:
        info = mysql.server_info(conn)
        with conn.cursor() as cur:
            for stmt in ddl(names):
                _run(cur, stmt, admin)
            created = None
            if create_user:
                if not user_password:
                    raise ConfigError(
                        "--create-user needs the new user's password (--password-file or "
                        "CHECKER_PASSWORD)"
                    )
                account = f"'{_account_part(create_user)}'@'{_account_part(user_host)}'"
                _run(cur, f"CREATE USER IF NOT EXISTS {account}", admin)
                cur.execute(f"ALTER USER {account} IDENTIFIED BY %s", (user_password,))
                for stmt in grants(names, create_user, user_host, info.flavor):
                    _run(cur, stmt, admin)
                created = f"{create_user}@{user_host}"
    finally:
        conn.close()
    return {"database": names.database, "flavor": info.flavor, "user": created}


def register_writers(
    conn: Any, endpoint: Endpoint, names: Names, run_id: str, writer_ids: list[str]
) -> bool:
    """Register a run's writer ids in the registry table (on the primary, replicated), before
    its first write. False: the table does not exist (tables set up before the registry):
    the run goes on, and verification says it cannot tell unregistered writers' rows."""
    rows = [(w, run_id) for w in writer_ids]
    try:
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT IGNORE INTO {names.q('registry')} (writer_id, run_id, registered_at) "
                "VALUES (%s, %s, NOW(6))",
                rows,
            )
        conn.commit()
    except pymysql.err.MySQLError as exc:
        err = mysql.classify(exc, endpoint)
        if isinstance(err, SchemaError):
            return False
        raise err from None
    return True


def _run(cur: Any, stmt: str, endpoint: Endpoint) -> None:
    try:
        cur.execute(stmt)
    except pymysql.err.MySQLError as exc:
        raise mysql.classify(exc, endpoint) from None


# What `run` needs, probed without side effects on the data: each check names the grant.
_CHECKS = (
    ("SELECT", "SELECT id FROM {ledger} LIMIT 0"),
    (
        "INSERT",
        "INSERT INTO {ledger} (writer_id, seq, payload, checksum, written_at) "
        "SELECT 'x', 0, '', '', NOW(6) FROM DUAL WHERE 1 = 0",
    ),
    ("UPDATE", "UPDATE {accounts} SET balance = balance WHERE 1 = 0"),
    ("DELETE", "DELETE FROM {marker} WHERE 1 = 0"),
)


def check_access(conn: Any, endpoint: Endpoint, names: Names, *, write: bool = True) -> None:
    """Fail with one clear line if the schema is missing or a needed grant is.

    The statements match no rows, so they change nothing, but the server still checks the
    privilege for each.
    """
    tables = {t: names.q(t) for t in ("ledger", "accounts", "heartbeat", "marker")}
    with conn.cursor() as cur:
        for grant, sql in _CHECKS:
            if not write and grant != "SELECT":
                continue
            try:
                cur.execute(sql.format(**tables))
            except pymysql.err.MySQLError as exc:
                err = mysql.classify(exc, endpoint)
                if isinstance(err, GrantError):
                    raise GrantError(
                        f"user {endpoint.user!r} lacks {grant} on {names.database}.* at "
                        f"{endpoint.label()}: run `checker setup` or see docs/grants.md"
                    ) from None
                if isinstance(err, SchemaError):
                    raise SchemaError(
                        f"the checker's tables are missing in {names.database!r} at "
                        f"{endpoint.label()}: run `checker setup` first"
                    ) from None
                raise err from None
        conn.rollback()


def check_monitor(conn: Any, endpoint: Endpoint, flavor: str, version: str = "") -> None:
    """Replication status needs SLAVE MONITOR (MariaDB) / REPLICATION CLIENT (MySQL)."""
    sql = mysql.replica_status_sql(flavor, version)
    with conn.cursor() as cur:
        try:
            cur.execute(sql)
            cur.fetchall()
        except pymysql.err.MySQLError as exc:
            err = mysql.classify(exc, endpoint)
            if isinstance(err, GrantError):
                need = "SLAVE MONITOR" if flavor == "mariadb" else "REPLICATION CLIENT"
                raise GrantError(
                    f"user {endpoint.user!r} lacks {need} at {endpoint.label()} (needed to read "
                    "replication status): see docs/grants.md"
                ) from None
            if isinstance(err, DatabaseError):
                raise err from None
