"""`checker gameday --plan plan.yaml [--once]`."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from checker import _logging
from checker.gameday import GameDay, load_plan


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
    """Run chaos experiments on a schedule against a checked MySQL; keep verdicts and reports."""
    _logging.configure()
    day = GameDay(load_plan(plan_path))
    if once:
        return day.once()
    stop = threading.Event()

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return day.serve(stop)
