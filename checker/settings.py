"""Settings of `checker run` / `verify` / `setup`: declared once, parsed once into a frozen object.

Each setting is one `Field`: its key (the option's parameter name and the config-file key),
default, `CHECKER_*` environment variable, click type, lower bound and help. The click options
of the commands are generated from the fields (`connection_options`, `options(*RUN)`, and
`Field.option(...)` where a command says something differently), `Settings` takes its defaults
from them, and `build` validates each against its declared type and minimum.

Precedence: command-line option > `CHECKER_*` environment variable > config file (YAML,
`--config` / `CHECKER_CONFIG`, keys = option names with underscores) > default.
The password never comes from the command line: `CHECKER_PASSWORD`, `CHECKER_PASSWORD_FILE`
or `--password-file`.

Longer than the usual ~600 lines on purpose: every setting's declaration stays in this one
module (the point of declaring them once), next to the parsing that validates them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import click
import yaml

from checker import _logging, secrets
from checker.core.replicas import DEFAULT_LAG_BOUND
from checker.errors import ConfigError
from checker.mysql import TLS_MODES, VERIFYING_TLS_MODES, Endpoint, parse_endpoint
from checker.schema import Names
from checker.secrets import Secret

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
WORKLOADS = ("ledger", "bank")


@dataclass(frozen=True)
class Field(Generic[T]):
    """One setting, declared once: its key (the parameter and config-file name), default,
    environment variable, click type, lower bound and help. `option()` makes its click option;
    `value()` reads it from the merged options, validated against `minimum`."""

    key: str
    default: T
    env: str | None = None
    help: str | None = None
    type: Any = None
    minimum: float | None = None
    multiple: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def option(self, *decls: str, **overrides: Any) -> Callable[[F], F]:
        """The click option of this field; a command passes what it says differently (another
        flag and parameter name, help, type)."""
        kwargs: dict[str, Any] = {
            "envvar": self.env,
            "default": self.default,
            "show_default": self.default is not None,
            "type": self.type,
            "help": self.help,
            "multiple": self.multiple,
        }
        return click.option(*(decls or (self.flag, self.key)), **{**kwargs, **overrides})

    def given(self, raw: Mapping[str, Any]) -> Any:
        """The raw value, or the default when it was not given (None or empty) — 0 stays 0."""
        value = raw.get(self.key)
        return self.default if value is None or value == "" else value

    def value(self, raw: Mapping[str, Any]) -> T:
        """The given (or default) number, of the field's type and at least its minimum."""
        given = self.given(raw)
        if given is None:
            return self.default
        try:
            number = self.type(given)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{self.flag} must be a {self.type.__name__}, not {given!r}"
            ) from None
        if self.minimum is not None and number < self.minimum:
            raise ConfigError(f"{self.flag} must be at least {self.minimum}, not {given!r}")
        result: T = number
        return result


# -- where the MySQL is and how to reach it (run, verify; setup takes a few) ---------------------
LAB = Field[str | None](
    "lab",
    None,
    env="CHECKER_LAB",
    type=click.Path(file_okay=False),
    help="A running `checker lab` directory: endpoints and credentials from it.",
)
WRITER = Field[str | None](
    "writer", None, env="CHECKER_WRITER", help="Primary endpoint, mysql://user@host:port/db."
)
READER = Field[str | None](
    "reader", None, env="CHECKER_READER", help="Replica read endpoint (mysql-read)."
)
NODE = Field[tuple[str, ...] | None](
    "node",
    None,
    env="CHECKER_NODES",
    multiple=True,
    help="NAME=URL of one node, repeatable (CHECKER_NODES: comma-separated).",
)
USER = Field[str | None]("user", None, env="CHECKER_USER", help="MySQL user (default: checker).")
PASSWORD_FILE = Field[str | None](
    "password_file",
    None,
    env="CHECKER_PASSWORD_FILE",
    type=click.Path(dir_okay=False),
    help="File holding the MySQL password (or set CHECKER_PASSWORD).",
)
DATABASE = Field("database", Names.database, env="CHECKER_DATABASE")
CONNECT_TIMEOUT = Field(
    "connect_timeout", 3.0, env="CHECKER_CONNECT_TIMEOUT", type=float, minimum=0.1
)
STATEMENT_TIMEOUT = Field(
    "statement_timeout",
    5.0,
    env="CHECKER_STATEMENT_TIMEOUT",
    type=float,
    minimum=0.1,
    help="Seconds before an unanswered statement counts as indeterminate.",
)
TLS = Field[str | None](
    "tls",
    None,
    env="CHECKER_TLS",
    type=click.Choice(TLS_MODES),
    help="TLS to MySQL (default: preferred; disabled for --lab). verify-ca and "
    "verify-identity check the server's certificate against --tls-ca.",
)
TLS_CA = Field[str | None](
    "tls_ca",
    None,
    env="CHECKER_TLS_CA",
    type=click.Path(dir_okay=False),
    help="CA file (PEM) for --tls verify-ca / verify-identity.",
)
LOG_FORMAT = Field(
    "log_format", "auto", env="CHECKER_LOG_FORMAT", type=click.Choice(["auto", "json", "console"])
)
LOG_LEVEL = Field(
    "log_level",
    "info",
    env="CHECKER_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
)

# -- what `checker run` does (verify takes the journal and the lag bound) ------------------------
JOURNAL = Field(
    "journal",
    "checker-journal.sqlite",
    env="CHECKER_JOURNAL",
    type=click.Path(dir_okay=False),
    help="Durable local history (SQLite).",
)
WORKLOAD = Field(
    "workload", "ledger", env="CHECKER_WORKLOAD", help="Comma-separated: ledger, bank."
)
CONCURRENCY = Field(
    "concurrency",
    4,
    env="CHECKER_CONCURRENCY",
    type=int,
    minimum=1,
    help="Ledger writers, each with its own connection.",
)
RATE = Field(
    "rate",
    0.0,
    env="CHECKER_RATE",
    type=float,
    minimum=0,
    help="Total ledger writes per second (0: as fast as the server allows).",
)
DURATION = Field[float | None](
    "duration",
    None,
    env="CHECKER_DURATION",
    type=float,
    minimum=0.1,
    help="Seconds to run, then verify and exit (default: until SIGTERM/SIGINT).",
)
HTTP = Field[str | None]("http", None, env="CHECKER_HTTP", help="Serve the HTTP API on HOST:PORT.")
API_TOKEN_FILE = Field[str | None](
    "api_token_file",
    None,
    env="CHECKER_API_TOKEN_FILE",
    type=click.Path(dir_okay=False),
    help="Bearer token required by POST routes (or CHECKER_API_TOKEN).",
)
LAG_BOUND = Field(
    "lag_bound",
    DEFAULT_LAG_BOUND,
    env="CHECKER_LAG_BOUND",
    type=float,
    minimum=0.01,
    help="Seconds a replica may lag before a read that misses an acknowledged write is stale.",
)
ANALYSIS_INTERVAL = Field(
    "analysis_interval", 1.0, env="CHECKER_ANALYSIS_INTERVAL", type=float, minimum=0.05
)
VERIFY_INTERVAL = Field(
    "verify_interval",
    0.0,
    env="CHECKER_VERIFY_INTERVAL",
    type=float,
    minimum=0,
    help="Seconds between full verifications during the run (0: only at the end).",
)
FULL_VERIFY_INTERVAL = Field(
    "full_verify_interval",
    3600.0,
    env="CHECKER_FULL_VERIFY_INTERVAL",
    type=float,
    minimum=0,
    help="Seconds between full passes of the periodic verification; the cycles between check "
    "only the ledger ids written since the last pass (0: every cycle is full).",
)
VERIFY_OVERLAP = Field(
    "verify_overlap",
    120.0,
    env="CHECKER_VERIFY_OVERLAP",
    type=float,
    minimum=0,
    help="Seconds an incremental pass reaches back before the last pass began: the row ids "
    "of the attempts since then are checked again (rows that committed late).",
)
RETENTION = Field(
    "retention",
    3600.0,
    env="CHECKER_RETENTION",
    type=float,
    minimum=0,
    help="Seconds of raw history the journal keeps; older history a verification "
    "vouched for is folded into aggregates (0: keep everything).",
)
COMPACT_INTERVAL = Field(
    "compact_interval",
    300.0,
    env="CHECKER_COMPACT_INTERVAL",
    type=float,
    minimum=1,
    help="Seconds between journal compactions (with --retention above 0).",
)
DISK_WARN_BYTES = Field(
    "disk_warn_bytes",
    256 * 2**20,
    env="CHECKER_DISK_WARN_BYTES",
    type=int,
    minimum=0,
    help="Warn (log and metric) when the journal's file system has less free space than this.",
)
VERIFY_TIMEOUT = Field(
    "verify_timeout",
    60.0,
    env="CHECKER_VERIFY_TIMEOUT",
    type=float,
    minimum=0.1,
    help="Seconds the GTID barrier waits for replicas during a verification.",
)
READ_INTERVAL = Field(
    "read_interval",
    0.2,
    env="CHECKER_READ_INTERVAL",
    type=float,
    minimum=0.01,
    help="Seconds between reads through mysql-read (each node is read every second).",
)
RECONNECT_EVERY = Field(
    "reconnect_every",
    5.0,
    env="CHECKER_RECONNECT_EVERY",
    type=float,
    minimum=0,
    help="Mean seconds a writer keeps a connection (0: until it fails), like a pool's max "
    "lifetime: exposes a zombie primary still serving old connections.",
)
BANK_ACCOUNTS = Field("bank_accounts", 10, env="CHECKER_BANK_ACCOUNTS", type=int, minimum=2)
BANK_BALANCE = Field("bank_balance", 1000, env="CHECKER_BANK_BALANCE", type=int, minimum=1)
BANK_CONCURRENCY = Field("bank_concurrency", 2, env="CHECKER_BANK_CONCURRENCY", type=int, minimum=1)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, validated. Endpoints carry the (hidden) password."""

    writer: Endpoint
    reader: Endpoint | None
    nodes: Mapping[str, Endpoint]
    names: Names = field(default_factory=Names)
    journal: Path = Path(JOURNAL.default)
    workloads: tuple[str, ...] = (WORKLOAD.default,)
    concurrency: int = CONCURRENCY.default
    rate: float = RATE.default
    duration: float | None = DURATION.default
    http: tuple[str, int] | None = None
    api_token: Secret | None = None
    lag_bound: float = LAG_BOUND.default
    analysis_interval: float = ANALYSIS_INTERVAL.default
    verify_interval: float = VERIFY_INTERVAL.default
    full_verify_interval: float = FULL_VERIFY_INTERVAL.default
    verify_overlap: float = VERIFY_OVERLAP.default
    retention: float = RETENTION.default
    compact_interval: float = COMPACT_INTERVAL.default
    disk_warn_bytes: int = DISK_WARN_BYTES.default
    verify_timeout: float = VERIFY_TIMEOUT.default
    bank_accounts: int = BANK_ACCOUNTS.default
    bank_balance: int = BANK_BALANCE.default
    bank_concurrency: int = BANK_CONCURRENCY.default
    reconnect_every: float = RECONNECT_EVERY.default
    read_interval: float = READ_INTERVAL.default
    lab_dir: Path | None = None
    log_format: str = LOG_FORMAT.default
    log_level: str = LOG_LEVEL.default

    @property
    def user(self) -> str:
        return self.writer.user


def parse_http(value: str | None) -> tuple[str, int] | None:
    """`HOST:PORT` (or `:PORT`, meaning 127.0.0.1) for the HTTP API."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--http expects HOST:PORT (e.g. 127.0.0.1:8080), not {value!r}")
    return (host or "127.0.0.1", int(port))


def parse_tls(mode: Any, ca: Any, *, lab: bool = False) -> tuple[str, str | None]:
    """--tls and --tls-ca: a verifying mode needs a CA file, and a CA file a verifying mode."""
    tls = str(mode or ("disabled" if lab else "preferred"))
    if tls not in TLS_MODES:
        raise ConfigError(f"--tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
    tls_ca = str(ca) if ca else None
    if tls in VERIFYING_TLS_MODES and tls_ca is None:
        raise ConfigError(
            f"--tls {tls} needs --tls-ca FILE (CHECKER_TLS_CA): the CA that signed the "
            "server's certificate"
        )
    if tls_ca is not None and tls not in VERIFYING_TLS_MODES:
        raise ConfigError(
            f"--tls-ca is only used by --tls verify-ca or verify-identity, not {tls}: "
            "choose one of those to have the certificate checked"
        )
    if tls_ca is not None and not os.path.isfile(tls_ca):
        raise ConfigError(f"--tls-ca {tls_ca} is not a file: give the CA certificate (PEM)")
    return tls, tls_ca


def _check_api_access(http: tuple[str, int] | None, token: Secret | None) -> None:
    """An empty token would switch authentication off; no token at all is for loopback only."""
    if token is not None and not token.reveal().strip():
        raise ConfigError(
            "the API token is empty or whitespace (CHECKER_API_TOKEN or --api-token-file): "
            "put a random token in it, or unset it"
        )
    if http is not None and token is None and not _loopback(http[0]):
        raise ConfigError(
            f"--http {http[0]}:{http[1]} is not a loopback address and no API token is set: "
            "set CHECKER_API_TOKEN(_FILE) or --api-token-file, or bind 127.0.0.1"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_nodes(
    value: str | Mapping[str, str] | list[str] | tuple[str, ...] | None,
) -> dict[str, str]:
    """`mysql-0=host:port,mysql-1=...` (or a mapping, or repeated NAME=URL) into a dict."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    items = value.split(",") if isinstance(value, str) else [p for v in value for p in v.split(",")]
    nodes: dict[str, str] = {}
    for item in filter(None, (i.strip() for i in items)):
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise ConfigError(
                f"--node expects NAME=URL (e.g. mysql-1=mysql://checker@host:3306), not {item!r}"
            )
        if name in nodes:
            raise ConfigError(f"node {name!r} is given twice")
        nodes[name] = url
    return nodes


def build(raw: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> Settings:
    """Validate merged raw options (from click) into `Settings`."""
    environ = dict(os.environ if environ is None else environ)
    database = DATABASE.given(raw)
    names = Names(
        database=database,
        ledger=raw.get("ledger_table") or "ledger",
        accounts=raw.get("accounts_table") or "accounts",
        heartbeat=raw.get("heartbeat_table") or "heartbeat",
    )
    lab_dir = raw.get("lab")
    password = secrets.resolve(
        file=raw.get("password_file"), env="CHECKER_PASSWORD", environ=environ
    )
    user = raw.get("user") or None
    if lab_dir:
        from checker.lab import state

        lab = state.load(lab_dir)  # "no lab at DIR" before anything else
        lab_user = user or state.APP_USER
        # The lab's generated password for its own users, unless one was given explicitly.
        pw = password if password is not None else lab.secret(lab_user)
        writer = lab.endpoint("writer", user=lab_user, database=database, password=pw)
        reader: Endpoint | None = lab.endpoint(
            "reader", user=lab_user, database=database, password=pw
        )
        nodes = {
            name: lab.endpoint(name, user=lab_user, database=database, password=pw)
            for name in lab.nodes
        }
    else:
        if not raw.get("writer"):
            raise ConfigError(
                "no MySQL to check: give --lab DIR, or --writer URL "
                "(and --reader URL, --node NAME=URL)"
            )

        def ep(text: str, name: str) -> Endpoint:
            return parse_endpoint(text, name=name, user=user, password=password, database=database)

        writer = ep(raw["writer"], "mysql-0")
        reader = ep(raw["reader"], "mysql-read") if raw.get("reader") else None
        nodes = {name: ep(url, name) for name, url in parse_nodes(raw.get("node")).items()}
        if writer.password is None:
            raise ConfigError(
                "no MySQL password given; set CHECKER_PASSWORD or CHECKER_PASSWORD_FILE, "
                "or pass --password-file"
            )
    connect_timeout = CONNECT_TIMEOUT.value(raw)
    read_timeout = STATEMENT_TIMEOUT.value(raw)

    tls, tls_ca = parse_tls(raw.get("tls"), raw.get("tls_ca"), lab=bool(lab_dir))

    def timed(e: Endpoint) -> Endpoint:
        return e.with_(
            connect_timeout=connect_timeout, read_timeout=read_timeout, tls=tls, tls_ca=tls_ca
        )

    workloads = tuple(w.strip() for w in str(WORKLOAD.given(raw)).split(",") if w.strip())
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown or not workloads:
        raise ConfigError(
            f"--workload takes a comma-separated list of {', '.join(WORKLOADS)}, "
            f"not {raw.get('workload')!r}"
        )
    token = secrets.resolve(
        file=raw.get("api_token_file"), env="CHECKER_API_TOKEN", environ=environ, what="API token"
    )
    http = parse_http(raw.get("http"))
    _check_api_access(http, token)
    log_format = str(LOG_FORMAT.given(raw))
    if log_format not in ("auto", "json", "console"):
        raise ConfigError(f"--log-format must be auto, json or console, not {log_format!r}")
    return Settings(
        writer=timed(writer),
        reader=timed(reader) if reader else None,
        nodes={k: timed(v) for k, v in nodes.items()},
        names=names,
        journal=Path(JOURNAL.given(raw)),
        workloads=workloads,
        concurrency=CONCURRENCY.value(raw),
        rate=RATE.value(raw),
        duration=DURATION.value(raw),
        http=http,
        api_token=token,
        lag_bound=LAG_BOUND.value(raw),
        analysis_interval=ANALYSIS_INTERVAL.value(raw),
        verify_interval=VERIFY_INTERVAL.value(raw),
        full_verify_interval=FULL_VERIFY_INTERVAL.value(raw),
        verify_overlap=VERIFY_OVERLAP.value(raw),
        retention=RETENTION.value(raw),
        compact_interval=COMPACT_INTERVAL.value(raw),
        disk_warn_bytes=DISK_WARN_BYTES.value(raw),
        verify_timeout=VERIFY_TIMEOUT.value(raw),
        bank_accounts=BANK_ACCOUNTS.value(raw),
        bank_balance=BANK_BALANCE.value(raw),
        bank_concurrency=BANK_CONCURRENCY.value(raw),
        reconnect_every=RECONNECT_EVERY.value(raw),
        read_interval=READ_INTERVAL.value(raw),
        lab_dir=Path(lab_dir) if lab_dir else None,
        log_format=log_format,
        log_level=str(LOG_LEVEL.given(raw)),
    )


def configure_logs(raw: Mapping[str, Any]) -> None:
    """Logging as --log-format and --log-level say, before the rest is validated."""
    fmt = LOG_FORMAT.given(raw)
    _logging.configure(json=None if fmt == "auto" else fmt == "json", level=LOG_LEVEL.given(raw))


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Eager callback of --config: the file's keys become click's defaults."""
    if not value:
        return value
    path = Path(value)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file {path} is not valid YAML: {first}") from None
    if data is None:
        return value
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    if "password" in data:
        raise ConfigError(
            f"config file {path} holds a password; use password_file or CHECKER_PASSWORD instead"
        )
    known = {p.name for p in ctx.command.params if p.name}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(unknown)}")
    ctx.default_map = {**(ctx.default_map or {}), **data}
    return value


CONFIG = click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="CHECKER_CONFIG",
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    help="YAML file of option: value (CHECKER_CONFIG).",
)
# The options of `connection_options`, in the order `--help` lists them.
CONNECTION = (
    LAB,
    WRITER,
    READER,
    NODE,
    USER,
    PASSWORD_FILE,
    DATABASE,
    CONNECT_TIMEOUT,
    STATEMENT_TIMEOUT,
    TLS,
    TLS_CA,
    LOG_FORMAT,
    LOG_LEVEL,
)

# The options of `checker run` after `connection_options`, in the order `--help` lists them.
RUN = (
    JOURNAL,
    WORKLOAD,
    CONCURRENCY,
    RATE,
    DURATION,
    HTTP,
    API_TOKEN_FILE,
    LAG_BOUND,
    ANALYSIS_INTERVAL,
    VERIFY_INTERVAL,
    FULL_VERIFY_INTERVAL,
    VERIFY_OVERLAP,
    VERIFY_TIMEOUT,
    RETENTION,
    COMPACT_INTERVAL,
    DISK_WARN_BYTES,
    READ_INTERVAL,
    RECONNECT_EVERY,
    BANK_ACCOUNTS,
    BANK_BALANCE,
    BANK_CONCURRENCY,
)


def options(*decorators: Field[Any] | Callable[[Any], Any]) -> Callable[[F], F]:
    """Apply click options (fields or ready option decorators) in the order `--help` lists them."""

    def apply(f: F) -> F:
        for decorator in reversed(decorators):
            f = decorator.option()(f) if isinstance(decorator, Field) else decorator(f)
        return f

    return apply


def connection_options(f: F) -> F:
    """Options naming the MySQL topology and credentials (run, verify), and --config."""
    return options(CONFIG, *CONNECTION)(f)
