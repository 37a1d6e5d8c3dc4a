"""Fixtures and helpers for the Chaos Toolkit tests: real labs, real checkers, the real CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from checker.lab.topology import Lab
from checker.service import Service
from tests._wait import wait_for
from tests.conftest import start_lab
from tests.lab._sql import query
from tests.service._run import running, wait_writes

CHAOS = Path(sys.executable).with_name("chaos")
ROOT = Path(__file__).parents[2]
EXPERIMENTS = ROOT / "experiments"
LOCAL = EXPERIMENTS / "local"
TOKEN = "chaos-api-token-for-tests-5b2e"


@dataclass(frozen=True)
class Checker:
    """A running checker: its service (the ground truth) and its API's URL."""

    service: Service
    url: str


@contextmanager
def checker_on(lab: Lab, directory: Path, **options: Any) -> Iterator[Checker]:
    """An in-process checker with bearer token TOKEN, writing to `lab` and already verdict VALID;
    `options` are further `checker run` settings."""
    token_file = directory / "token"
    token_file.write_text(TOKEN + "\n")
    # The checker's default lag bound (5 s), as on a cluster: the experiments promise that
    # replicas serve no read missing an acknowledged write for longer than that.
    with running(lab, directory / "journal.sqlite", api_token_file=str(token_file), **options) as (
        service,
        url,
    ):
        assert url is not None
        wait_writes(service, 50)
        wait_for(
            lambda: service.verdict().valid.json is True,
            timeout=30,
            what="a VALID verdict from the new checker",
        )
        yield Checker(service, url)


@pytest.fixture(scope="package")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A 3-node lab for the modules that only read it or undo what they do (idle in between)."""
    lab = start_lab(tmp_path_factory.mktemp("chaos-lab"), replicas=2)
    try:
        yield lab
    finally:
        lab.down(purge=True)


@pytest.fixture(scope="module")
def shared_checker(shared_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checker]:
    """A checker on `shared_lab`, with a bearer token; per module, so that its writers (threads
    of this process) stop before the modules that run chaos against checkers of their own."""
    with checker_on(shared_lab, tmp_path_factory.mktemp("chaos-checker")) as checker:
        yield checker


@pytest.fixture(scope="module")
def checker(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checker]:
    """A checker on the module's own `lab`, for modules whose chaos changes the lab for good
    (a promotion) or must not share it."""
    with checker_on(lab, tmp_path_factory.mktemp("checker")) as running:
        yield running


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def chaos_env(**extra: str) -> dict[str, str]:
    """The environment for the chaos CLI: ours, minus anything that could point it elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSTOOLKIT_")}
    env.update(extra)
    return env


def chaos(
    args: list[str], cwd: Path, *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real `chaos` CLI, in `cwd` (it writes chaostoolkit.log there), never checking for a
    newer version (no network) and with its own empty settings file."""
    return subprocess.run(
        [
            str(CHAOS),
            "--no-version-check",
            "--settings",
            str(cwd / "settings.yaml"),
            *args,
        ],
        cwd=cwd,
        env=env or chaos_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class ChaosRun:
    """What a `chaos run` left behind."""

    proc: subprocess.CompletedProcess[str]
    journal: dict[str, Any]
    log: str
    seconds: float


def run_experiment(
    experiment: Path,
    workdir: Path,
    configuration: dict[str, Any],
    secrets: dict[str, Any] | None = None,
    *,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> ChaosRun:
    """`chaos run` with `--var`s for the configuration and a `--var-file` for the secrets,
    rollbacks always played; returns its journal and log."""
    args = ["run", "--rollback-strategy", "always", "--journal-path", str(workdir / "journal.json")]
    for key, value in configuration.items():
        args += ["--var", f"{key}={value}"]
    if secrets:
        var_file = workdir / "vars.json"
        var_file.write_text(json.dumps({"secrets": secrets}))
        args += ["--var-file", str(var_file)]
    started = time.monotonic()
    proc = chaos([*args, str(experiment)], workdir, timeout=timeout, env=env)
    seconds = time.monotonic() - started
    journal_path = workdir / "journal.json"
    assert journal_path.exists(), f"no journal (exit {proc.returncode}): {proc.stderr[-3000:]}"
    log_path = workdir / "chaostoolkit.log"
    log = log_path.read_text() if log_path.exists() else ""
    return ChaosRun(proc, json.loads(journal_path.read_text()), log, seconds)


def outputs(journal: dict[str, Any]) -> dict[str, Any]:
    """Each method and rollback activity's output by name."""
    return {r["activity"]["name"]: r["output"] for r in [*journal["run"], *journal["rollbacks"]]}


def steady_states(run: ChaosRun) -> dict[str, list[tuple[str, Any]]]:
    """(probe name, output) of each hypothesis run: what a failure message needs."""
    states = run.journal.get("steady_states") or {}
    return {
        when: [
            (p["activity"]["name"], p["output"]) for p in (states.get(when) or {}).get("probes", [])
        ]
        for when in ("before", "after")
    }


def log_lines(run: ChaosRun, level: str, needle: str) -> list[str]:
    """The run's log lines at `level` (e.g. WARNING) that contain `needle`."""
    return [line for line in run.log.splitlines() if f" {level}]" in line and needle in line]


def steady_output(run: ChaosRun, when: str, name: str) -> Any:
    """The output of hypothesis probe `name` in the `before` or `after` steady-state check."""
    probes = run.journal["steady_states"][when]["probes"]
    (output,) = [p["output"] for p in probes if p["activity"]["name"] == name]
    return output


def writable_servers(lab: Lab) -> list[str]:
    """The ground truth behind `writable_primaries`: every node asked over its own port as root
    (past the proxy and any endpoint fault), those with read_only off."""
    return [
        name
        for name in sorted(lab.status()["nodes"])
        if not int(query(lab, f"direct:{name}", "SELECT @@read_only", user="root")[0][0])
    ]


def failed_activities(journal: dict[str, Any]) -> list[str]:
    return [
        r["activity"]["name"]
        for r in [*journal["run"], *journal["rollbacks"]]
        if r["status"] != "succeeded"
    ]
