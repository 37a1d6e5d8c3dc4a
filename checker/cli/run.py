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
from checker.mysql import parse_endpoint
from checker.settings import (
    DATABASE,
    LAB,
    PASSWORD_FILE,
    RUN,
    TLS,
    TLS_CA,
    WRITER,
    build,
    configure_logs,
    connection_options,
    options,
    parse_tls,
)

EXIT_FOR = {"True": 0, "False": 1, "unknown": 2}  # by str(verdict "valid")


@click.command()
@connection_options
@options(*RUN)
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
    from checker._memory import limit_malloc_arenas
    from checker.api import ApiServer
    from checker.service import Service

    limit_malloc_arenas()
    configure_logs(raw)
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
@options(
    LAB.option(help="Set up a running lab's schema as its root user."),
    WRITER.option(help="The primary, mysql://admin@host:port."),
    click.option("--admin-user", default="root", show_default=True, envvar="CHECKER_ADMIN_USER"),
    click.option(
        "--admin-password-file",
        type=click.Path(dir_okay=False),
        envvar="CHECKER_ADMIN_PASSWORD_FILE",
        help="The admin's password file (or CHECKER_ADMIN_PASSWORD).",
    ),
    click.option(
        "--create-user", default=None, help="Also create this least-privilege user for the checker."
    ),
    click.option(
        "--user-host", default="%", show_default=True, help="Host part of the created account."
    ),
    PASSWORD_FILE.option(help="The created user's password file (or CHECKER_PASSWORD)."),
    DATABASE,
    TLS.option(help="TLS to MySQL, as for `checker run` (default: preferred; disabled for --lab)."),
    TLS_CA,
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
        from checker.lab import state

        admin = state.load(lab).endpoint("writer", user=state.ROOT_USER, database=None)
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
