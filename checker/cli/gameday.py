"""`checker gameday --plan plan.yaml [--once]`."""

from __future__ import annotations

import click

from checker import _logging
from checker.gameday import GameDay, load_plan
from checker.gameday.stop import stop_on_signals


@click.command()
@click.option(
    "--plan",
    "plan_path",
    required=True,
    type=click.Path(dir_okay=False),
    envvar="CHECKER_GAMEDAY_PLAN",
    help="The game-day plan (YAML; see docs/gameday.md).",
)
@click.option(
    "--once",
    is_flag=True,
    help="Run every experiment now, one after the other, and exit with the worst verdict's status.",
)
def gameday(plan_path: str, once: bool) -> int:
    """Run chaos experiments on a schedule against a checked MySQL; keep verdicts and reports.

    SIGTERM or SIGINT stops it, in both modes: a running `chaos run` is interrupted as at its
    timeout (SIGINT, then its `grace` for the rollbacks); `--once` starts no further experiment
    and exits non-zero."""
    _logging.configure()
    day = GameDay(load_plan(plan_path))
    with stop_on_signals(day.stop):
        return day.once() if once else day.serve()
