"""MySQL/MariaDB adapter: endpoints, connections, error classification, identity, GTIDs.

Everything that knows the difference between MySQL 8 and MariaDB lives here (or in the lab's
server set-up). Connections are plain PyMySQL for the hot paths and SQLAlchemy engines for the
rest; both classify failures into `checker.errors` with one clear line and no password.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pymysql
import pymysql.cursors

from checker.errors import (
    AuthError,
    ConfigError,
    DatabaseError,
    GrantError,
    SchemaError,
    UnreachableError,
)
from checker.secrets import Secret, redact

DEFAULT_PORT = 3306
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# PyMySQL / server error codes we classify (see MySQL's errmsg reference).
ER_ACCESS_DENIED = 1045
ER_DBACCESS_DENIED = 1044
ER_TABLEACCESS_DENIED = 1142
ER_COLUMNACCESS_DENIED = 1143
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_PROCACCESS_DENIED = 1370
ER_BAD_DB = 1049
ER_NO_SUCH_TABLE = 1146
ER_READ_ONLY = 1290
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013
CR_HANDSHAKE = 2012  # PyMySQL: bad handshake (not a MySQL server?)
CR_SSL_CONNECTION_ERROR = 2026
GRANT_CODES = frozenset(
    {
        ER_DBACCESS_DENIED,
        ER_TABLEACCESS_DENIED,
        ER_COLUMNACCESS_DENIED,
        ER_SPECIFIC_ACCESS_DENIED,
        ER_PROCACCESS_DENIED,
    }
)
# Errors after which the connection is gone; an in-flight COMMIT may or may not have applied.
CONNECTION_LOST_CODES = frozenset({CR_SERVER_GONE, CR_SERVER_LOST, 0})


def quote_ident(name: str) -> str:
    """Validate a configurable SQL identifier and return it back-quoted.

    Only `[A-Za-z_][A-Za-z0-9_]*` up to 64 characters: no quoting tricks are ever needed,
    so none are allowed.
    """
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ConfigError(
            f"invalid SQL identifier {name!r}: use letters, digits and _ (max 64, not starting "
            "with a digit)"
        )
    return f"`{name}`"


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect. The password is a `Secret` and never printed."""

    host: str
    port: int = DEFAULT_PORT
    user: str = "checker"
    password: Secret | None = field(default=None, compare=False)
    database: str | None = None
    name: str = ""
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    unix_socket: str | None = None
    tls: str = "preferred"  # disabled | preferred | required | verify-ca | verify-identity
    tls_ca: str | None = None  # the CA file the verify-* modes check the server's certificate with

    @property
    def address(self) -> str:
        return self.unix_socket or f"{self.host}:{self.port}"

    def label(self) -> str:
        """How the endpoint is named in messages: its name and address, never credentials."""
        return f"{self.name} ({self.address})" if self.name else self.address

    def with_(self, **changes: Any) -> Endpoint:
        return replace(self, **changes)


def parse_endpoint(
    text: str,
    *,
    name: str = "",
    user: str | None = None,
    password: Secret | None = None,
    database: str | None = None,
) -> Endpoint:
    """Parse `mysql://user@host:port/db`, `host:port` or `host` into an Endpoint.

    A password inside the URL is refused: it would end up in shell history and process lists.
    """
    raw = text.strip()
    if not raw:
        raise ConfigError(f"empty MySQL address for {name or 'endpoint'}")
    if "://" not in raw:
        raw = "mysql://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"malformed MySQL address {redact(text)!r}: {exc}; expected mysql://user@host:port/db"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql"):
        raise ConfigError(
            f"unsupported scheme {parts.scheme!r} in {redact(text)!r}; use mysql://user@host:port/db"
        )
    if parts.password is not None:
        raise ConfigError(
            f"password in the MySQL URL {redact(text)!r}: pass it through CHECKER_PASSWORD or "
            "--password-file instead"
        )
    if not parts.hostname:
        raise ConfigError(f"no host in MySQL address {redact(text)!r}")
    db = parts.path.lstrip("/") or database
    if db:
        quote_ident(db)
    query = parse_qs(parts.query)
    sock = query.get("unix_socket", [None])[0]
    return Endpoint(
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        user=unquote(parts.username) if parts.username else (user or "checker"),
        password=password,
        database=db or None,
        name=name,
        unix_socket=sock,
    )


def classify(exc: BaseException, endpoint: Endpoint) -> DatabaseError:
    """Turn a PyMySQL/SQLAlchemy error into a one-line `DatabaseError` naming the endpoint."""
    orig = getattr(exc, "orig", None) or exc
    code = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    text = str(orig.args[1]) if getattr(orig, "args", None) and len(orig.args) > 1 else str(orig)
    text = redact(text)
    where = endpoint.label()
    if code == ER_ACCESS_DENIED:
        return AuthError(
            f"MySQL at {where} refused user {endpoint.user!r}: wrong user or password "
            "(check CHECKER_PASSWORD / --password-file)"
        )
    if code in GRANT_CODES:
        return GrantError(
            f"user {endpoint.user!r} lacks a privilege at {where}: {text} "
            "(see docs/grants.md for the minimal grants)"
        )
    if code == ER_BAD_DB:
        return SchemaError(f"{text} at {where}: run `checker setup` first")
    if code == ER_NO_SUCH_TABLE:
        return SchemaError(f"{text} at {where}: run `checker setup` first")
    if code == CR_SSL_CONNECTION_ERROR:
        return UnreachableError(
            f"TLS to MySQL at {where} failed: {text} (--tls preferred falls back to plain "
            "connections; required, verify-ca and verify-identity need TLS on the server)"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "IP address mismatch" in text:
        return UnreachableError(
            f"TLS to MySQL at {where}: the server's certificate is not trusted "
            f"(--tls {endpoint.tls}): {text} (check --tls-ca and, for verify-identity, that the "
            "certificate names this host)"
        )
    if code in (CR_CONN_HOST_ERROR, CR_UNKNOWN_HOST):
        return UnreachableError(f"cannot connect to MySQL at {where}: {text}")
    if code == CR_HANDSHAKE or isinstance(orig, pymysql.err.InternalError):
        return UnreachableError(f"the server at {where} does not speak the MySQL protocol ({text})")
    if code in CONNECTION_LOST_CODES:
        return UnreachableError(f"lost the connection to MySQL at {where}: {text}")
    if isinstance(orig, (OSError, TimeoutError)):
        return UnreachableError(f"cannot connect to MySQL at {where}: {text}")
    return DatabaseError(f"MySQL error at {where}: {text}")


_tls_lock = threading.Lock()
_tls_contexts: dict[tuple[str | None, str], ssl.SSLContext] = {}
_no_tls: set[tuple[str, int]] = set()
# What each mode checks (docs/security.md says what each protects against):
#   preferred        TLS when the server offers it, else plain; no certificate check
#   required         TLS or no connection; no certificate check (encrypted, not authenticated)
#   verify-ca        TLS, the certificate must chain to the --tls-ca CA (any name)
#   verify-identity  as verify-ca, and the certificate must name the host connected to
TLS_MODES = ("disabled", "preferred", "required", "verify-ca", "verify-identity")
VERIFYING_TLS_MODES = ("verify-ca", "verify-identity")


def _tls_context(ca: str | None, mode: str) -> ssl.SSLContext:
    """One SSLContext per (CA, mode), built once: building one loads the CA store (~0.1 s)."""
    with _tls_lock:
        ctx = _tls_contexts.get((ca, mode))
        if ctx is None:
            ctx = ssl.create_default_context(cafile=ca)
            if mode not in VERIFYING_TLS_MODES:
                # Encrypt but do not verify, as MySQL clients' PREFERRED/REQUIRED modes do.
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif mode == "verify-ca":
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_REQUIRED
            _tls_contexts[(ca, mode)] = ctx
        return ctx


def _tls_args(endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.unix_socket or endpoint.tls == "disabled":
        return {"ssl_disabled": True}
    if endpoint.tls == "preferred" and (endpoint.host, endpoint.port) in _no_tls:
        return {"ssl_disabled": True}
    return {"ssl": _tls_context(endpoint.tls_ca, endpoint.tls)}


def connect(endpoint: Endpoint, *, autocommit: bool = True, **kwargs: Any) -> pymysql.Connection:
    """A raw PyMySQL connection; failures become `DatabaseError`s naming the endpoint.

    TLS `preferred` tries TLS first and remembers a server that has none, so later
    connections skip the attempt; `required` never falls back."""
    try:
        return _connect(endpoint, autocommit, _tls_args(endpoint), kwargs)
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] == CR_SERVER_LOST and "timed out" in str(exc):
            raise UnreachableError(
                f"no MySQL handshake from {endpoint.label()} within {endpoint.connect_timeout:g}s "
                "(not a MySQL server, or a hung one)"
            ) from None
        if exc.args and exc.args[0] == CR_SSL_CONNECTION_ERROR and endpoint.tls == "preferred":
            with _tls_lock:
                _no_tls.add((endpoint.host, endpoint.port))
            try:
                return _connect(endpoint, autocommit, {"ssl_disabled": True}, kwargs)
            except (pymysql.err.MySQLError, OSError) as again:
                raise classify(again, endpoint) from None
        raise classify(exc, endpoint) from None
    except (pymysql.err.MySQLError, OSError) as exc:
        raise classify(exc, endpoint) from None


def _connect(
    endpoint: Endpoint, autocommit: bool, tls: dict[str, Any], kwargs: dict[str, Any]
) -> pymysql.Connection:
    return pymysql.connect(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        password=endpoint.password.reveal() if endpoint.password else "",
        database=endpoint.database,
        unix_socket=endpoint.unix_socket,
        connect_timeout=endpoint.connect_timeout,
        read_timeout=endpoint.read_timeout,
        write_timeout=endpoint.read_timeout,
        autocommit=autocommit,
        charset="utf8mb4",
        **tls,
        **kwargs,
    )


def engine(endpoint: Endpoint, **kwargs: Any) -> Any:
    """A SQLAlchemy engine for the endpoint (PyMySQL driver, pre-ping, short timeouts)."""
    import sqlalchemy as sa  # only here: most commands never need SQLAlchemy's import time

    url = sa.URL.create(
        "mysql+pymysql",
        username=endpoint.user,
        password=endpoint.password.reveal() if endpoint.password else None,
        host=endpoint.host if not endpoint.unix_socket else None,
        port=endpoint.port if not endpoint.unix_socket else None,
        database=endpoint.database,
        query={"unix_socket": endpoint.unix_socket} if endpoint.unix_socket else {},
    )
    connect_args = {
        "connect_timeout": endpoint.connect_timeout,
        "read_timeout": endpoint.read_timeout,
        "write_timeout": endpoint.read_timeout,
        "charset": "utf8mb4",
    }
    connect_args.update(kwargs.pop("connect_args", {}))
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("hide_parameters", True)
    return sa.create_engine(url, connect_args=connect_args, **kwargs)


@dataclass(frozen=True)
class ServerInfo:
    """What a connection learns about its server once, right after connecting."""

    flavor: str  # "mariadb" or "mysql"
    version: str
    server_id: int
    hostname: str
    port: int
    server_uuid: str | None
    started_at: float  # unix seconds, from NOW() - Uptime
    read_only: bool

    @property
    def identity(self) -> str:
        """A stable name for this server *process*: uuid on MySQL, id@host:port+start on MariaDB."""
        if self.server_uuid:
            return f"{self.server_uuid}@{int(self.started_at)}"
        return f"{self.server_id}@{self.hostname}:{self.port}@{int(self.started_at)}"


def flavor_of(version: str) -> str:
    return "mariadb" if "mariadb" in version.lower() else "mysql"


# The one version switch for replication statements in checker/. MySQL added the REPLICA forms
# (SHOW REPLICA STATUS, START/STOP/RESET REPLICA) in 8.0.22 and removed the SLAVE forms in 8.4.0;
# MariaDB keeps SLAVE (its REPLICA aliases still return Slave_* columns). An unreadable MySQL
# version counts as new: 8.0.21 and older are long out of support.
REPLICA_KEYWORD_SINCE = (8, 0, 22)


def replica_keyword(flavor: str, version: str = "") -> str:
    """ "REPLICA" or "SLAVE": the word this server takes in SHOW/START/STOP/RESET ... ."""
    if flavor == "mariadb":
        return "SLAVE"
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", version.strip())
    if found is None:
        return "REPLICA"
    numbers = (int(found[1]), int(found[2]), int(found[3]))
    return "REPLICA" if numbers >= REPLICA_KEYWORD_SINCE else "SLAVE"


def replica_status_sql(flavor: str, version: str = "") -> str:
    """SHOW REPLICA STATUS or SHOW SLAVE STATUS, whichever this server has."""
    return f"SHOW {replica_keyword(flavor, version)} STATUS"


def server_info(conn: Any) -> ServerInfo:
    """Identify the server behind a PyMySQL connection (one round trip per statement, twice)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT @@version, @@server_id, @@hostname, @@port, @@read_only, UNIX_TIMESTAMP(NOW(6))"
        )
        version, server_id, hostname, port, read_only, now = cur.fetchone()
        started_at = _started_at(cur, flavor_of(version), float(now))
        uuid: str | None = None
        if flavor_of(version) == "mysql":
            cur.execute("SELECT @@server_uuid")
            uuid = cur.fetchone()[0]
    return ServerInfo(
        flavor=flavor_of(version),
        version=version,
        server_id=int(server_id),
        hostname=hostname,
        port=int(port),
        server_uuid=uuid,
        started_at=started_at,
        read_only=bool(int(read_only)),
    )


def _started_at(cur: Any, flavor: str, now: float) -> float:
    """When the server started, in one statement: the server computes Uptime from the
    statement's own start, so NOW() - Uptime is its start second exactly. Taken from two
    statements that straddle a second boundary, it came out a second early, and one server
    looked like two identities (a false split brain when writers reconnect)."""
    table = (
        "information_schema.GLOBAL_STATUS"
        if flavor == "mariadb"
        else "performance_schema.global_status"
    )
    try:
        cur.execute(
            f"SELECT UNIX_TIMESTAMP(NOW(6)) - VARIABLE_VALUE FROM {table} "
            "WHERE VARIABLE_NAME = 'Uptime'"
        )
        row = cur.fetchone()
        if row and row[0] is not None:
            return float(row[0])
    except pymysql.err.MySQLError:
        pass  # not readable here: the two-statement reading below
    cur.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
    return now - int(cur.fetchone()[1])


def gtid_executed(conn: Any, flavor: str) -> str:
    """The server's executed GTID set in its own syntax.

    MariaDB: `@@gtid_current_pos`, one position per domain: right for "has the replica caught
    up" (`gtid_contains`), wrong for errant-GTID checks, which need every (domain, server_id)
    pair of `@@gtid_binlog_state` (checker.verify reads that). MySQL: `@@gtid_executed`.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT @@gtid_current_pos" if flavor == "mariadb" else "SELECT @@gtid_executed"
        )
        row = cur.fetchone()
    return str(row[0] or "").replace("\n", "")


def wait_for_server(endpoint: Endpoint, timeout: float) -> None:
    """Block until the endpoint accepts a connection, or raise the last error after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connect(endpoint.with_(connect_timeout=1.0)).close()
            return
        except (UnreachableError, AuthError) as exc:
            if isinstance(exc, AuthError) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
