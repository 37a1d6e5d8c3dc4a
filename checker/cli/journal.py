"""`checker journal compact`: retention by hand (what `checker run --retention` does on its
schedule; checker.journal.compact)."""

from __future__ import annotations

from pathlib import Path

import click

from checker.errors import ConfigError
from checker.journal import Journal
from checker.journal.compact import compact as run_compaction


@click.group()
def journal() -> None:
    """Maintain a checker journal."""


@journal.command()
@click.option(
    "--journal",
    "path",
    envvar="CHECKER_JOURNAL",
    required=True,
    type=click.Path(path_type=Path),
    help="The checker's journal (SQLite).",
)
@click.option(
    "--keep",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds of the newest raw history kept whatever the watermark says.",
)
def compact(path: Path, keep: float) -> None:
    """Fold what the last watermark vouched for into aggregates; delete raw rows."""
    if keep < 0:
        raise ConfigError(f"--keep must be 0 or more seconds, not {keep:g}")
    Journal.open_readonly(path).close()  # a one-line error if it is no journal
    done = run_compaction(path, keep=keep)
    click.echo(
        f"folded {done.attempts:,} attempts (ids up to {done.folded_id}) and deleted "
        f"{done.samples:,} samples in {done.seconds:.1f}s"
    )
