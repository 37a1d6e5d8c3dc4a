"""`checker` command line: `lab`, `setup`, `run`, `verify`, `report`, `gameday`, `demo`.

Each command lives in its own module of this package (`checker.cli.run` holds `run` and
`setup`; `demo` lives in `checker.demo`) and is registered here. User errors (`CheckerError`)
print one line and exit non-zero, with no traceback. `python -m checker.cli` runs `main`
(`__main__.py`), as the `checker` console script does.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import click

from checker import __version__
from checker.errors import CheckerError
from checker.secrets import redact

# Each command lives in its own module, imported only when that command runs: `checker lab`
# need not pay for FastAPI and SQLAlchemy. name -> (module, attribute, one-line help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "lab": ("checker.cli.lab", "lab", "Start, inspect, break and stop the local MySQL lab."),
    "setup": (
        "checker.cli.run",
        "setup",
        "Create the schema and the checker's least-privilege user.",
    ),
    "run": ("checker.cli.run", "run", "Write sequenced rows, read them back, keep a verdict."),
    "verify": ("checker.cli.verify", "verify", "Verify every node against a journal."),
    "report": ("checker.cli.report", "report", "Write the HTML report of a run."),
    "journal": ("checker.cli.journal", "journal", "Maintain a journal (compact it by hand)."),
    "gameday": ("checker.cli.gameday", "gameday", "Run chaos experiments on a schedule."),
    "demo": ("checker.demo", "demo", "The whole job on a fresh local lab, end to end."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, _, help_) in COMMANDS.items()])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="checker")
def cli() -> None:
    """Prove that a MySQL/MariaDB topology loses, duplicates and corrupts nothing under chaos."""


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except CheckerError as exc:
        click.echo(f"checker: error: {redact(str(exc))}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("checker: aborted", err=True)
        return 130
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"checker: error: {exc.format_message()}{hint}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"checker: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("checker: interrupted", err=True)
        return 130
    return int(result) if isinstance(result, int) else 0
