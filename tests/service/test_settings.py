"""Settings are declared once (checker.settings fields): the options of `checker run` and
`checker verify` and the defaults of `Settings` come from those declarations."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest

from checker import settings
from checker.cli.run import run
from checker.cli.verify import verify
from checker.errors import ConfigError

MINIMAL = {"writer": "mysql://checker@127.0.0.1:1/integrity"}
ENVIRON = {"CHECKER_PASSWORD": "not-used"}


def _option(command: click.Command, name: str) -> click.Option:
    found = [p for p in command.params if isinstance(p, click.Option) and p.name == name]
    assert len(found) == 1, name
    return found[0]


def test_run_has_one_option_per_field_with_its_flag_env_and_default() -> None:
    """Every connection and run field is an option of `checker run` under its own flag,
    environment variable and default."""
    for f in (*settings.CONNECTION, *settings.RUN):
        option = _option(run, f.key)
        assert option.opts == [f.flag]
        assert option.envvar == f.env
        assert option.default == f.default or (f.multiple and option.default is None)


def test_verify_names_the_same_environment_and_defaults() -> None:
    """`checker verify` reads the same variables with the same defaults, also for its --timeout."""
    assert _option(verify, "timeout").envvar == settings.VERIFY_TIMEOUT.env
    assert _option(verify, "timeout").default == settings.VERIFY_TIMEOUT.default
    assert _option(verify, "lag_bound").envvar == settings.LAG_BOUND.env
    assert _option(verify, "lag_bound").default == settings.LAG_BOUND.default
    assert _option(verify, "journal").default == settings.JOURNAL.default


def test_built_defaults_are_the_declared_ones() -> None:
    """A minimal build gives the declared default of every number, as `Settings` itself does."""
    built = settings.build(MINIMAL, environ=ENVIRON)
    defaults = {f.name: f.default for f in dataclasses.fields(settings.Settings)}
    for f in settings.RUN:
        if f.minimum is not None:
            assert getattr(built, f.key) == f.default == defaults[f.key], f.key
    assert built.journal == Path(settings.JOURNAL.default) == defaults["journal"]
    assert built.workloads == (settings.WORKLOAD.default,) == defaults["workloads"]
    assert built.writer.connect_timeout == settings.CONNECT_TIMEOUT.default
    assert built.writer.read_timeout == settings.STATEMENT_TIMEOUT.default
    assert built.names.database == settings.DATABASE.default


def test_precedence_is_option_then_environment_then_file_then_default(tmp_path: Path) -> None:
    """A value on the command line beats the environment, which beats the config file, which
    beats the declared default."""
    config = tmp_path / "c.yaml"
    config.write_text("lag_bound: 7\nconcurrency: 3\n")

    def params(args: list[str], env: dict[str, str]) -> dict[str, object]:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            return dict(run.make_context("run", args).params)

    assert params([], {})["lag_bound"] == settings.LAG_BOUND.default
    assert params(["--config", str(config)], {})["lag_bound"] == 7.0
    on_file_and_env = params(["--config", str(config)], {"CHECKER_LAG_BOUND": "3"})
    assert on_file_and_env["lag_bound"] == 3.0
    assert on_file_and_env["concurrency"] == 3
    everywhere = ["--config", str(config), "--lag-bound", "2"]
    assert params(everywhere, {"CHECKER_LAG_BOUND": "3"})["lag_bound"] == 2.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"concurrency": 0}, "--concurrency must be at least 1, not 0"),
        ({"lag_bound": 0.001}, "--lag-bound must be at least 0.01, not 0.001"),
        ({"duration": "soon"}, "--duration must be a float, not 'soon'"),
    ],
)
def test_a_value_below_its_declared_bound_is_one_line(raw: dict[str, object], message: str) -> None:
    """Each field is checked against its declared type and minimum, naming its option."""
    with pytest.raises(ConfigError, match=f"^{message}$"):
        settings.build({**MINIMAL, **raw}, environ=ENVIRON)
