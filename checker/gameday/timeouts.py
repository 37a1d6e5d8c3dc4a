"""How long a game-day `chaos run` may take.

`derive_timeouts`: a plan may give an experiment's `timeout` (seconds before the
`chaos run` is interrupted) and `grace` (seconds it then gets to play its rollbacks before it is
killed). When it does not, both come from the experiment's own durations, after `${var}`
substitution with the experiment's configuration overridden by the plan's `vars`/`var_files`:

- every activity counts the numeric values of its provider arguments whose name is `timeout`,
  `duration`, `seconds` or ends in `_timeout`, `_duration`, `_seconds`; its provider's own
  `timeout`; and its `pauses` (`before` + `after`). Running totals are an upper bound: a fault
  duration that overlaps the waits after it is counted as if it did not.
- `timeout` = steady-state hypothesis (twice: before and after) + method, plus the margin;
- `grace` = the rollbacks, plus the margin;
- margin: 25 % of the total plus `MARGIN_SECONDS` (chaostoolkit's own start-up, imports, the
  controls, activities with no declared duration).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoslib import merge_vars, substitute
from chaoslib.configuration import load_configuration
from chaoslib.exceptions import ChaosException

MARGIN_SECONDS = 60.0
MARGIN_FACTOR = 1.25
# After the chaos run: POST /verify, GET /journal and the report each may take up to the
# checker client's 600 s timeout; a game-day Job's deadline counts one such allowance per run.
VERIFY_ALLOWANCE_SECONDS = 1800.0
# After a stop request, beyond the interrupted run's grace and its verification: the poll of the
# stop (checker.gameday.chaos.STOP_POLL_SECONDS), the webhook (30 s timeout), the summary and the
# process's exit. The game-day pod's terminationGracePeriodSeconds covers the largest grace of its
# plan and this (checker.gameday.plan.termination_grace).
EXIT_ALLOWANCE_SECONDS = 60.0
_DURATION_KEY = re.compile(r"^(timeout|duration|seconds)$|_(timeout|duration|seconds)$")


@dataclass(frozen=True)
class Timeouts:
    """Seconds before a `chaos run` is interrupted, and then to finish its rollbacks."""

    timeout: float
    grace: float

    @property
    def total(self) -> float:
        return self.timeout + self.grace


def experiment_configuration(
    experiment: Mapping[str, Any], variables: Mapping[str, str], var_files: Iterable[Path] = ()
) -> dict[str, Any]:
    """The configuration `chaos run --var ... --var-file ...` would run `experiment` with."""
    files = [str(f) for f in var_files if f.suffix in {".json", ".yaml", ".yml"}]
    config_vars, _ = merge_vars(dict(variables), files)
    try:
        loaded: dict[str, Any] = load_configuration(
            dict(experiment.get("configuration") or {}), dict(config_vars)
        )
    except ChaosException:  # an env-typed key with no default, unset here: keep the raw values
        loaded = {**dict(experiment.get("configuration") or {}), **config_vars}
    return loaded


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, (int, float)):
        return max(float(value), 0.0)
    if isinstance(value, str):
        try:
            return max(float(value), 0.0)
        except ValueError:
            return 0.0
    return 0.0


def activity_seconds(activity: Mapping[str, Any], configuration: Mapping[str, Any]) -> float:
    """The seconds one activity declares (arguments, provider timeout, pauses), substituted."""
    resolved = substitute(dict(activity), dict(configuration), {})
    provider = resolved.get("provider") or {}
    arguments = provider.get("arguments")
    total = _number(provider.get("timeout"))
    if isinstance(arguments, Mapping):
        total += sum(_number(v) for k, v in arguments.items() if _DURATION_KEY.search(str(k)))
    pauses = resolved.get("pauses") or {}
    total += _number(pauses.get("before")) + _number(pauses.get("after"))
    return total


def _with_margin(seconds: float) -> float:
    return float(math.ceil(seconds * MARGIN_FACTOR + MARGIN_SECONDS))


def derive_timeouts(
    experiment: Mapping[str, Any], variables: Mapping[str, str], var_files: Iterable[Path] = ()
) -> Timeouts:
    """The default timeout and rollback grace of `experiment` (rule: see the module docstring)."""
    config = experiment_configuration(experiment, variables, var_files)
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    probes = sum(activity_seconds(p, config) for p in hypothesis.get("probes") or [])
    method = sum(activity_seconds(a, config) for a in experiment.get("method") or [])
    rollbacks = sum(activity_seconds(a, config) for a in experiment.get("rollbacks") or [])
    return Timeouts(timeout=_with_margin(2 * probes + method), grace=_with_margin(rollbacks))
