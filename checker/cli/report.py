"""`checker report`: the HTML report of a journal (see checker.report and docs/report.md)."""

from __future__ import annotations

from pathlib import Path

import click

from checker.report import ANALYSIS_LIMIT
from checker.settings import LAG_BOUND


@click.command()
@click.option(
    "--journal",
    envvar="CHECKER_JOURNAL",
    required=True,
    type=click.Path(path_type=Path),
    help="The checker's journal (SQLite) of the run.",
)
@click.option(
    "--chaos-journal",
    type=click.Path(path_type=Path),
    default=None,
    help="chaostoolkit's journal.json of the experiment, drawn as spans on the timeline.",
)
@click.option(
    "--verdict",
    "verdict_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A verdict JSON (e.g. `checker verify --json`) to show instead of the journal's.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to write index.html and verdict.json into (created if missing).",
)
@LAG_BOUND.option(
    envvar=None,
    help="For a journal with no verification: seconds a read may miss an acknowledged write.",
)
@click.option(
    "--analysis-limit",
    type=int,
    default=ANALYSIS_LIMIT,
    show_default=True,
    help="For a journal with no verification: most acks plus reads analysed in memory.",
)
def report(
    journal: Path,
    chaos_journal: Path | None,
    verdict_file: Path | None,
    out: Path,
    lag_bound: float,
    analysis_limit: int,
) -> int:
    """Write a self-contained HTML report (DIR/index.html) and DIR/verdict.json."""
    from checker.report import write_report

    page = write_report(
        journal,
        out,
        chaos_journal=chaos_journal,
        verdict_file=verdict_file,
        lag_bound=lag_bound,
        analysis_limit=analysis_limit,
    )
    click.echo(str(page))
    return 0
