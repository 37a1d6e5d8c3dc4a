"""A game-day plan: its YAML parsed and validated into `Plan` and its `Experiment`s (see the
package docstring for the format), the experiments' schedules and the deadline of a `--once` run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from apscheduler.triggers.cron import CronTrigger

from checker import secrets
from checker.errors import ConfigError
from checker.gameday.timeouts import (
    EXIT_ALLOWANCE_SECONDS,
    VERIFY_ALLOWANCE_SECONDS,
    Timeouts,
    derive_timeouts,
)


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    schedule: str | None
    vars: dict[str, str] = field(default_factory=dict)
    var_files: tuple[Path, ...] = ()
    timeout: float = 900.0
    # Seconds `chaos run` gets after SIGINT to play its rollbacks, before SIGKILL.
    grace: float = 300.0


@dataclass(frozen=True)
class Plan:
    experiments: tuple[Experiment, ...]
    checker_url: str | None
    checker_token: secrets.Secret | None
    start: dict[str, Any] | None
    results_dir: Path
    keep: int
    webhook_url: str | None
    webhook_token: secrets.Secret | None
    timezone: str = "UTC"


def _fail(path: Path, what: str) -> ConfigError:
    return ConfigError(f"game-day plan {path}: {what}")


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Parse and validate a plan file; every problem is one line naming the key."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"game-day plan {p} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _fail(p, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise _fail(p, "must be a mapping with `experiments`, `checker` and `results`")
    base = p.parent
    unknown = set(data) - {"experiments", "checker", "results", "webhook", "timezone"}
    if unknown:
        raise _fail(p, f"unknown key(s) {', '.join(sorted(unknown))}")
    experiments = tuple(
        _experiment(p, base, i, e) for i, e in enumerate(data.get("experiments") or [])
    )
    if not experiments:
        raise _fail(p, "`experiments` lists no experiment")
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        raise _fail(p, "experiment names must be unique")
    checker = data.get("checker") or {}
    if not isinstance(checker, dict) or not (checker.get("url") or checker.get("start")):
        raise _fail(
            p, "`checker` needs `url` (a running checker) or `start` (options to start one)"
        )
    if checker.get("start") is not None and not isinstance(checker["start"], dict):
        raise _fail(p, "`checker.start` must be a mapping of `checker run` options")
    results = data.get("results") or {}
    if not isinstance(results, dict):
        raise _fail(p, "`results` must be a mapping with `dir` and `keep`")
    keep = results.get("keep", 20)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise _fail(p, f"`results.keep` must be a whole number >= 1, not {keep!r}")
    webhook = data.get("webhook") or {}
    if not isinstance(webhook, dict):
        raise _fail(p, "`webhook` must be a mapping with `url`")
    tz = str(data.get("timezone") or "UTC")
    for e in experiments:
        if e.schedule:
            try:
                trigger(e.schedule, tz)
            except ValueError as exc:
                raise _fail(
                    p, f"experiment {e.name!r}: bad schedule {e.schedule!r} ({exc})"
                ) from None
    return Plan(
        experiments=experiments,
        checker_url=str(checker["url"]).rstrip("/") if checker.get("url") else None,
        checker_token=secrets.resolve(
            file=_path(base, checker.get("token_file")), env=None, what="checker token"
        ),
        start=dict(checker["start"]) if checker.get("start") else None,
        results_dir=_path(base, results.get("dir") or "gameday-results")
        or base / "gameday-results",
        keep=keep,
        webhook_url=str(webhook["url"]) if webhook.get("url") else None,
        webhook_token=secrets.resolve(
            file=_path(base, webhook.get("token_file")), env=None, what="webhook token"
        ),
        timezone=tz,
    )


def _path(base: Path, value: Any) -> Path | None:
    if not value:
        return None
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def _experiment(plan: Path, base: Path, i: int, e: Any) -> Experiment:
    if not isinstance(e, dict):
        raise _fail(plan, f"experiments[{i}] must be a mapping with name, path and schedule")
    name = e.get("name")
    if not name or not isinstance(name, str) or "/" in name:
        raise _fail(plan, f"experiments[{i}] needs a `name` (text, no '/')")
    path = _path(base, e.get("path"))
    if path is None or not path.is_file():
        raise _fail(plan, f"experiment {name!r}: `path` {e.get('path')!r} is not a file")
    vars_ = e.get("vars") or {}
    if not isinstance(vars_, dict):
        raise _fail(plan, f"experiment {name!r}: `vars` must be a mapping")
    for key in ("timeout", "grace"):
        value = e.get(key)
        if value is not None and (
            not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0
        ):
            raise _fail(plan, f"experiment {name!r}: `{key}` must be a positive number of seconds")
    files = tuple(p for p in (_path(base, f) for f in e.get("var_files") or []) if p is not None)
    variables = {str(k): str(v) for k, v in vars_.items()}
    derived = _derived_timeouts(plan, name, path, variables, files)
    return Experiment(
        name=name,
        path=path,
        schedule=str(e["schedule"]) if e.get("schedule") else None,
        vars=variables,
        var_files=files,
        timeout=float(e.get("timeout") or derived.timeout),
        grace=float(e.get("grace") or derived.grace),
    )


def _derived_timeouts(
    plan: Path, name: str, path: Path, variables: dict[str, str], files: tuple[Path, ...]
) -> Timeouts:
    try:
        experiment = yaml.safe_load(path.read_text())  # JSON is YAML
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _fail(
            plan, f"experiment {name!r}: {path} is not readable JSON/YAML ({exc})"
        ) from None
    if not isinstance(experiment, dict):
        raise _fail(plan, f"experiment {name!r}: {path} is not a chaostoolkit experiment")
    return derive_timeouts(experiment, variables, files)


def job_deadline(plan: Plan) -> float:
    """Seconds a `--once` run of `plan` may take: each experiment's timeout and grace plus the
    verification and report after it (the game-day Job's activeDeadlineSeconds must cover it)."""
    return sum(e.timeout + e.grace + VERIFY_ALLOWANCE_SECONDS for e in plan.experiments)


def termination_grace(plan: Plan) -> float:
    """Seconds `checker gameday` needs after SIGTERM: the interrupted chaos run's rollback
    grace (the largest of the plan) and its exit. The game-day pod's
    terminationGracePeriodSeconds must cover it: the kubelet SIGKILLs the container when that
    period ends, rollbacks or not. The verification after the run is not waited for: a pod
    being terminated should go once its faults are undone, and the run's `pending` summary is
    written before the verification starts (the checker keeps its own journal and verdict)."""
    return max(e.grace for e in plan.experiments) + EXIT_ALLOWANCE_SECONDS


def trigger(schedule: str, tz: str) -> CronTrigger:
    fields = schedule.split()
    if len(fields) == 6:  # seconds first, as in Quartz-style crons
        second, minute, hour, day, month, dow = fields
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=dow,
            timezone=tz,
        )
    if len(fields) == 5:
        return CronTrigger.from_crontab(schedule, timezone=tz)
    raise ValueError(
        "a cron needs 5 fields (minute hour day month weekday), or 6 with seconds first"
    )
