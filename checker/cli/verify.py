"""`checker verify`: judge a journal against the nodes, with or without a running checker."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any, TextIO

import click

from checker import _logging
from checker.core.semisync import WindowIndex, annotate
from checker.errors import AuthError, ConfigError, DatabaseError, GrantError, VerifyError
from checker.journal import Journal
from checker.semisync import journal_windows
from checker.settings import (
    JOURNAL,
    LAG_BOUND,
    VERIFY_OVERLAP,
    VERIFY_TIMEOUT,
    Settings,
    build,
    configure_logs,
    connection_options,
    options,
    parse_nodes,
)
from checker.verify import Options, Verification, target_from_settings, unfinished
from checker.verify import verify as run_verification
from checker.verify.incremental import Plan
from checker.verify.text import summary_lines

EXIT_FOR: dict[bool | str, int] = {True: 0, False: 1, "unknown": 2}


@click.command()
@connection_options
@options(
    JOURNAL.option(help="The run's journal (read only)."),
    click.option(
        "--json", "as_json", is_flag=True, help="Print the verdict JSON (docs/verdict.md)."
    ),
    # verify's own names and bounds for two run settings: a barrier of 0 s is allowed here.
    VERIFY_TIMEOUT.option(
        "--timeout",
        type=click.FloatRange(min=0.0),
        help="Seconds the GTID barrier waits for replicas; one that does not catch up is unknown.",
    ),
    LAG_BOUND.option(type=click.FloatRange(min=0.0, min_open=True)),
    click.option(
        "--incremental",
        is_flag=True,
        help="Check only the ledger ids written since the last complete pass the checker "
        "journaled, keeping that pass's findings (full when there is none).",
    ),
    VERIFY_OVERLAP.option(),
    click.option(
        "--chunk-seconds",
        type=click.FloatRange(min=0.01),
        default=0.5,
        show_default=True,
        help="Target duration of one server-side checksum query.",
    ),
)
def verify(
    as_json: bool,
    timeout: float,
    lag_bound: float,
    chunk_seconds: float,
    incremental: bool,
    **raw: Any,
) -> int:
    """Verify every node against a journal: VALID (exit 0), INVALID (1) or UNKNOWN (2).

    Give the nodes with --lab DIR, or with --node NAME=URL (repeatable; add --writer URL to
    say which is the primary, otherwise the only writable node is).
    """
    configure_logs(raw)
    settings, writer_given = _settings(raw)
    journal = Journal.open_readonly(settings.journal)
    try:
        _check_journal_target(journal, settings, writer_given)
        target = target_from_settings(settings)
        if not writer_given:
            target = replace(target, writer=None)
        progress = _Progress(sys.stderr)
        plan = Plan.of(journal, settings.verify_overlap) if incremental else Plan()
        options = Options(
            timeout=timeout,
            lag_bound=lag_bound,
            chunk_seconds=chunk_seconds,
            progress=progress if progress.enabled else None,
            since=plan.since,
        )
        try:
            result = plan.apply(run_verification(target, journal, options))
        except (AuthError, GrantError):
            raise
        except (VerifyError, DatabaseError) as exc:
            if not as_json:
                raise
            # --json always prints a verdict: what the journal still tells, every node
            # unknown with the reason; the error line goes to stderr as without --json.
            click.echo(f"checker: error: {exc}", err=True)
            result = unfinished(target, journal, str(exc), options)
        finally:
            progress.done()
        # Lost writes say which semi-sync window acknowledged them (docs/service.md).
        windows = WindowIndex(journal_windows(journal))
        result = replace(result, verdict=annotate(result.verdict, windows))
    finally:
        journal.close()
    _print(result, as_json)
    return EXIT_FOR.get(result.verdict.valid.json, 2)


def _settings(raw: dict[str, Any]) -> tuple[Settings, bool]:
    """Settings from the options; without --lab or --writer, the first node stands in for the
    writer (settings need one) and the primary is then found by asking every node."""
    if raw.get("lab") or raw.get("writer"):
        return build(raw), True
    nodes = parse_nodes(raw.get("node"))
    if not nodes:
        raise ConfigError("which nodes to verify: give --lab DIR, or --node NAME=URL (repeatable)")
    return build({**raw, "writer": next(iter(nodes.values()))}), False


def _check_journal_target(journal: Journal, settings: Settings, writer_given: bool) -> None:
    """Refuse a journal of another table; a journal of another address only gets a warning
    (the same primary may be reached under another name from here)."""
    recorded = journal.info.target
    table = f"{settings.names.database}.{settings.names.ledger}"
    if recorded and not recorded.endswith(f"/{table}"):
        raise ConfigError(
            f"journal {settings.journal} records writes to {recorded.rsplit('/', 1)[-1]}, "
            f"not {table}: pass --database (and the table names) of that run"
        )
    w = settings.writer
    if writer_given and recorded and not recorded.startswith(f"{w.host}:{w.port}/"):
        _logging.get(__name__).warning(
            "journal_target_differs", journal_target=recorded, writer=w.label()
        )


class _Progress:
    """One line on stderr, rewritten in place, and only when stderr is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.shown = False

    def __call__(self, text: str) -> None:
        self.stream.write(f"\r\033[Kverify: {text}")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _print(result: Verification, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo("\n".join(summary_lines(result)))
