"""`checker` command line: `lab`, `setup`, `run`, `verify`, `report`, `gameday`, `demo`.

Each feature keeps its commands in its own module and registers them here. User errors
(`CheckerError`) print one line and exit non-zero, with no traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from checker import __version__
from checker.errors import CheckerError
from checker.secrets import redact


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="checker")
def cli() -> None:
    """Prove that a MySQL/MariaDB topology loses, duplicates and corrupts nothing under chaos."""


def _register() -> None:
    from checker.demo import demo
    from checker.lab.cli import lab
    from checker.report_cli import report
    from checker.run_cli import run, setup
    from checker.verify_cli import verify

    cli.add_command(lab)
    cli.add_command(setup)
    cli.add_command(run)
    cli.add_command(verify)
    cli.add_command(report)
    cli.add_command(demo)


_register()


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


if __name__ == "__main__":
    sys.exit(main())
