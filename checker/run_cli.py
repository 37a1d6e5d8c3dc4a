"""`checker run` and `checker setup`."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import click

from checker import _logging, schema, secrets
from checker.errors import ConfigError
from checker.mysql import TLS_MODES, parse_endpoint
from checker.settings import build, connection_options, parse_tls

EXIT_FOR = {"True": 0, "False": 1, "unknown": 2}  # by str(verdict "valid")


def _configure_logs(raw: dict[str, Any]) -> None:
    fmt = raw.get("log_format") or "auto"
    _logging.configure(
        json=None if fmt == "auto" else fmt == "json", level=raw.get("log_level") or "info"
    )


@click.command()
@connection_options
@click.option(
    "--journal",
    envvar="CHECKER_JOURNAL",
    default="checker-journal.sqlite",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Durable local history (SQLite).",
)
@click.option(
    "--workload",
    envvar="CHECKER_WORKLOAD",
    default="ledger",
    show_default=True,
    help="Comma-separated: ledger, bank.",
)
@click.option(
    "--concurrency",
    envvar="CHECKER_CONCURRENCY",
    type=int,
    default=4,
    show_default=True,
    help="Ledger writers, each with its own connection.",
)
@click.option(
    "--rate",
    envvar="CHECKER_RATE",
    type=float,
    default=0.0,
    show_default=True,
    help="Total ledger writes per second (0: as fast as the server allows).",
)
@click.option(
    "--duration",
    envvar="CHECKER_DURATION",
    type=float,
    default=None,
    help="Seconds to run, then verify and exit (default: until SIGTERM/SIGINT).",
)
@click.option(
    "--http", envvar="CHECKER_HTTP", default=None, help="Serve the HTTP API on HOST:PORT."
)
@click.option(
    "--api-token-file",
    envvar="CHECKER_API_TOKEN_FILE",
    type=click.Path(dir_okay=False),
    help="Bearer token required by POST routes (or CHECKER_API_TOKEN).",
)
@click.option(
    "--lag-bound",
    envvar="CHECKER_LAG_BOUND",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds a replica may lag before a read that misses an acknowledged write is stale.",
)
@click.option(
    "--analysis-interval",
    envvar="CHECKER_ANALYSIS_INTERVAL",
    type=float,
    default=1.0,
    show_default=True,
)
@click.option(
    "--verify-interval",
    envvar="CHECKER_VERIFY_INTERVAL",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds between full verifications during the run (0: only at the end).",
)
@click.option(
    "--verify-timeout",
    envvar="CHECKER_VERIFY_TIMEOUT",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds the GTID barrier waits for replicas during a verification.",
)
@click.option(
    "--read-interval",
    envvar="CHECKER_READ_INTERVAL",
    type=float,
    default=0.2,
    show_default=True,
    help="Seconds between reads through mysql-read (each node is read every second).",
)
@click.option(
    "--reconnect-every",
    envvar="CHECKER_RECONNECT_EVERY",
    type=float,
    default=5.0,
    show_default=True,
    help="Mean seconds a writer keeps a connection (0: until it fails), like a pool's max "
    "lifetime: exposes a zombie primary still serving old connections.",
)
@click.option(
    "--bank-accounts", envvar="CHECKER_BANK_ACCOUNTS", type=int, default=10, show_default=True
)
@click.option(
    "--bank-balance", envvar="CHECKER_BANK_BALANCE", type=int, default=1000, show_default=True
)
@click.option(
    "--bank-concurrency", envvar="CHECKER_BANK_CONCURRENCY", type=int, default=2, show_default=True
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False),
    help="Write {url, pid, journal} here once the checker runs (for scripts).",
)
@click.option(
    "--final-verify/--no-final-verify",
    default=True,
    show_default=True,
    help="Run a full verification when the run ends.",
)
def run(ready_file: str | None, final_verify: bool, **raw: Any) -> int:
    """Write sequenced rows to mysql-0, read them back, and keep a verdict until stopped."""
    from checker.api import ApiServer
    from checker.service import Service, limit_malloc_arenas

    limit_malloc_arenas()
    _configure_logs(raw)
    log = _logging.get("checker.run")
    settings = build(raw)
    service = Service(settings, verify=_verify_fn())
    api = None
    url = None
    try:
        if settings.http:
            api = ApiServer(service, *settings.http)
            port = api.start()
            url = f"http://{settings.http[0]}:{port}"
            log.info("http_listening", url=url)
        service.start()
        if ready_file:
            _write_json(
                Path(ready_file),
                {
                    "url": url,
                    "pid": os.getpid(),
                    "journal": str(settings.journal),
                    "run_id": service.journal.info.run_id,
                },
            )
        _stop_on_signals(service)
        service.wait(settings.duration)
        service.stop_workload()
        service.analyse()
        verdict = service.verdict()
        if final_verify and service.verify_fn is not None and not service.fatal:
            try:
                verdict = service.verify()
            except Exception as exc:  # noqa: BLE001 - report, keep the live verdict
                log.error("final_verification_failed", error=str(exc))
    finally:
        service.stop()
        if api is not None:
            api.stop()
    if service.fatal:
        raise ConfigError(service.fatal)
    click.echo(
        json.dumps(
            {
                "valid": verdict.valid.json,
                "counts": verdict.counts.to_dict(),
                "anomaly_counts": {k: v for k, v in verdict.anomaly_counts.items() if v},
                "journal": str(settings.journal),
                "errors": [f"{f.detector}: {f.error}" for f in verdict.failures],
            },
            sort_keys=True,
        )
    )
    return EXIT_FOR[str(verdict.valid.json)]


def _verify_fn() -> Any:
    try:
        from checker.service_verify import verify_service
    except ImportError:  # pragma: no cover - verification ships with the package
        return None
    return verify_service


def _stop_on_signals(service: Any) -> None:
    def handler(signum: int, _frame: Any) -> None:
        _logging.get("checker.run").info("signal_received", signal=signal.Signals(signum).name)
        service.stop_event.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


@click.command()
@click.option(
    "--lab",
    type=click.Path(file_okay=False),
    envvar="CHECKER_LAB",
    help="Set up a running lab's schema as its root user.",
)
@click.option("--writer", envvar="CHECKER_WRITER", help="The primary, mysql://admin@host:port.")
@click.option("--admin-user", default="root", show_default=True, envvar="CHECKER_ADMIN_USER")
@click.option(
    "--admin-password-file",
    type=click.Path(dir_okay=False),
    envvar="CHECKER_ADMIN_PASSWORD_FILE",
    help="The admin's password file (or CHECKER_ADMIN_PASSWORD).",
)
@click.option(
    "--create-user", default=None, help="Also create this least-privilege user for the checker."
)
@click.option(
    "--user-host", default="%", show_default=True, help="Host part of the created account."
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    envvar="CHECKER_PASSWORD_FILE",
    help="The created user's password file (or CHECKER_PASSWORD).",
)
@click.option("--database", default="integrity", show_default=True, envvar="CHECKER_DATABASE")
@click.option(
    "--tls",
    envvar="CHECKER_TLS",
    type=click.Choice(TLS_MODES),
    default=None,
    help="TLS to MySQL, as for `checker run` (default: preferred; disabled for --lab).",
)
@click.option(
    "--tls-ca",
    envvar="CHECKER_TLS_CA",
    type=click.Path(dir_okay=False),
    help="CA file (PEM) for --tls verify-ca / verify-identity.",
)
@click.option("--print-grants", is_flag=True, help="Only print the SQL (DDL and grants) and exit.")
@click.option(
    "--flavor",
    type=click.Choice(["mariadb", "mysql"]),
    default="mariadb",
    show_default=True,
    help="With --print-grants: which server's grant names to print.",
)
def setup(
    lab: str | None,
    writer: str | None,
    admin_user: str,
    admin_password_file: str | None,
    create_user: str | None,
    user_host: str,
    password_file: str | None,
    database: str,
    tls: str | None,
    tls_ca: str | None,
    print_grants: bool,
    flavor: str,
) -> int:
    """Create the checker's database, tables and (optionally) its least-privilege user."""
    _logging.configure()
    names = schema.Names(database=database)
    if print_grants:
        for stmt in [
            *schema.ddl(names),
            *schema.grants(names, create_user or "checker", user_host, flavor),
        ]:
            click.echo(" ".join(stmt.split()) + ";")
        return 0
    if lab:
        from checker.lab.topology import Lab

        admin = Lab(lab).endpoint("writer", user="root", database=None)
    elif writer:
        password = secrets.resolve(
            file=admin_password_file, env="CHECKER_ADMIN_PASSWORD", what="admin password"
        )
        admin = parse_endpoint(writer, name="mysql-0", user=admin_user, password=password)
        if admin.password is None:
            raise ConfigError(
                "no admin password given; pass --admin-password-file or set CHECKER_ADMIN_PASSWORD"
            )
    else:
        raise ConfigError("where to set up: --lab DIR or --writer mysql://admin@host:port")
    tls_mode, ca = parse_tls(tls, tls_ca, lab=bool(lab))
    admin = admin.with_(tls=tls_mode, tls_ca=ca)
    user_password = None
    if create_user:
        pw = secrets.resolve(file=password_file, env="CHECKER_PASSWORD", what="password")
        user_password = pw.reveal() if pw else None
    result = schema.setup(
        admin, names, create_user=create_user, user_host=user_host, user_password=user_password
    )
    click.echo(
        f"schema ready in {result['database']!r} ({result['flavor']})"
        + (
            f"; user {result['user']} has the minimal grants (docs/grants.md)"
            if result["user"]
            else ""
        )
    )
    return 0
