"""Settings of `checker run` / `verify` / `setup`: parsed once into a frozen object.

Precedence: command-line option > `CHECKER_*` environment variable > config file (YAML,
`--config` / `CHECKER_CONFIG`, keys = option names with underscores) > default.
The password never comes from the command line: `CHECKER_PASSWORD`, `CHECKER_PASSWORD_FILE`
or `--password-file`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from checker import secrets
from checker.errors import ConfigError
from checker.mysql import TLS_MODES, VERIFYING_TLS_MODES, Endpoint, parse_endpoint
from checker.schema import Names
from checker.secrets import Secret

F = TypeVar("F", bound=Callable[..., Any])
WORKLOADS = ("ledger", "bank")


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, validated. Endpoints carry the (hidden) password."""

    writer: Endpoint
    reader: Endpoint | None
    nodes: Mapping[str, Endpoint]
    names: Names = field(default_factory=Names)
    journal: Path = Path("checker-journal.sqlite")
    workloads: tuple[str, ...] = ("ledger",)
    concurrency: int = 4
    rate: float = 0.0
    duration: float | None = None
    http: tuple[str, int] | None = None
    api_token: Secret | None = None
    lag_bound: float = 5.0
    analysis_interval: float = 1.0
    verify_interval: float = 0.0
    verify_timeout: float = 60.0
    bank_accounts: int = 10
    bank_balance: int = 1000
    bank_concurrency: int = 2
    reconnect_every: float = 5.0
    read_interval: float = 0.2
    lab_dir: Path | None = None
    log_format: str = "auto"
    log_level: str = "info"

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


def _get(raw: Mapping[str, Any], key: str, default: Any) -> Any:
    """The raw value, or `default` when it was not given (None or empty) — but 0 stays 0."""
    value = raw.get(key)
    return default if value is None or value == "" else value


def _number(name: str, value: Any, kind: type, minimum: float | None = None) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a {kind.__name__}, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value!r}")
    return number


def build(raw: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> Settings:
    """Validate merged raw options (from click) into `Settings`."""
    environ = dict(os.environ if environ is None else environ)
    database = raw.get("database") or "integrity"
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
    connect_timeout = _number("--connect-timeout", _get(raw, "connect_timeout", 3.0), float, 0.1)
    read_timeout = _number("--statement-timeout", _get(raw, "statement_timeout", 5.0), float, 0.1)

    tls, tls_ca = parse_tls(raw.get("tls"), raw.get("tls_ca"), lab=bool(lab_dir))

    def timed(e: Endpoint) -> Endpoint:
        return e.with_(
            connect_timeout=connect_timeout, read_timeout=read_timeout, tls=tls, tls_ca=tls_ca
        )

    workloads = tuple(
        w.strip() for w in str(raw.get("workload") or "ledger").split(",") if w.strip()
    )
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
    duration = raw.get("duration")
    log_format = str(raw.get("log_format") or "auto")
    if log_format not in ("auto", "json", "console"):
        raise ConfigError(f"--log-format must be auto, json or console, not {log_format!r}")
    return Settings(
        writer=timed(writer),
        reader=timed(reader) if reader else None,
        nodes={k: timed(v) for k, v in nodes.items()},
        names=names,
        journal=Path(raw.get("journal") or "checker-journal.sqlite"),
        workloads=workloads,
        concurrency=_number("--concurrency", _get(raw, "concurrency", 4), int, 1),
        rate=_number("--rate", _get(raw, "rate", 0), float, 0),
        duration=_number("--duration", duration, float, 0.1)
        if duration not in (None, "")
        else None,
        http=http,
        api_token=token,
        lag_bound=_number("--lag-bound", _get(raw, "lag_bound", 5.0), float, 0.01),
        analysis_interval=_number(
            "--analysis-interval", _get(raw, "analysis_interval", 1.0), float, 0.05
        ),
        verify_interval=_number("--verify-interval", _get(raw, "verify_interval", 0), float, 0),
        verify_timeout=_number("--verify-timeout", _get(raw, "verify_timeout", 60.0), float, 0.1),
        bank_accounts=_number("--bank-accounts", _get(raw, "bank_accounts", 10), int, 2),
        bank_balance=_number("--bank-balance", _get(raw, "bank_balance", 1000), int, 1),
        bank_concurrency=_number("--bank-concurrency", _get(raw, "bank_concurrency", 2), int, 1),
        reconnect_every=_number(
            "--reconnect-every", raw.get("reconnect_every", 5.0) or 0, float, 0
        ),
        read_interval=_number("--read-interval", _get(raw, "read_interval", 0.2), float, 0.01),
        lab_dir=Path(lab_dir) if lab_dir else None,
        log_format=log_format,
        log_level=str(raw.get("log_level") or "info"),
    )


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


def connection_options(f: F) -> F:
    """Options naming the MySQL topology and credentials (run, verify, setup)."""
    options = [
        click.option(
            "--config",
            type=click.Path(dir_okay=False),
            envvar="CHECKER_CONFIG",
            callback=_load_config,
            is_eager=True,
            expose_value=False,
            help="YAML file of option: value (CHECKER_CONFIG).",
        ),
        click.option(
            "--lab",
            type=click.Path(file_okay=False),
            envvar="CHECKER_LAB",
            help="A running `checker lab` directory: endpoints and credentials from it.",
        ),
        click.option(
            "--writer", envvar="CHECKER_WRITER", help="Primary endpoint, mysql://user@host:port/db."
        ),
        click.option(
            "--reader", envvar="CHECKER_READER", help="Replica read endpoint (mysql-read)."
        ),
        click.option(
            "--node",
            multiple=True,
            envvar="CHECKER_NODES",
            help="NAME=URL of one node, repeatable (CHECKER_NODES: comma-separated).",
        ),
        click.option("--user", envvar="CHECKER_USER", help="MySQL user (default: checker)."),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False),
            envvar="CHECKER_PASSWORD_FILE",
            help="File holding the MySQL password (or set CHECKER_PASSWORD).",
        ),
        click.option(
            "--database", envvar="CHECKER_DATABASE", default="integrity", show_default=True
        ),
        click.option(
            "--connect-timeout",
            type=float,
            envvar="CHECKER_CONNECT_TIMEOUT",
            default=3.0,
            show_default=True,
        ),
        click.option(
            "--statement-timeout",
            type=float,
            envvar="CHECKER_STATEMENT_TIMEOUT",
            default=5.0,
            show_default=True,
            help="Seconds before an unanswered statement counts as indeterminate.",
        ),
        click.option(
            "--tls",
            envvar="CHECKER_TLS",
            type=click.Choice(TLS_MODES),
            default=None,
            help="TLS to MySQL (default: preferred; disabled for --lab). verify-ca and "
            "verify-identity check the server's certificate against --tls-ca.",
        ),
        click.option(
            "--tls-ca",
            envvar="CHECKER_TLS_CA",
            type=click.Path(dir_okay=False),
            help="CA file (PEM) for --tls verify-ca / verify-identity.",
        ),
        click.option(
            "--log-format",
            envvar="CHECKER_LOG_FORMAT",
            default="auto",
            show_default=True,
            type=click.Choice(["auto", "json", "console"]),
        ),
        click.option(
            "--log-level",
            envvar="CHECKER_LOG_LEVEL",
            default="info",
            show_default=True,
            type=click.Choice(["debug", "info", "warning", "error"]),
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f
