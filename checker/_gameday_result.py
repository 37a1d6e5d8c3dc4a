"""What a game-day run's outcome is, and how long its `chaos run` may take.

Two separate concerns of `checker.gameday`, kept here so the run loop stays small:

* **Timeouts** (`derive_timeouts`). A plan may give an experiment's `timeout` (seconds before the
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

* **The result** (`evaluate`). A run succeeds only when, read from the chaos journal: the steady
  state was met before the method; the method ran (every activity of it ran, none failed, the run
  was not interrupted or aborted); every method probe that declares a `tolerance` returned a value
  within it (chaostoolkit only enforces tolerances in the steady-state hypothesis, so they are
  evaluated here with chaoslib's own `within_tolerance`); every rollback that ran succeeded; the
  steady state was met after; and the checker's verdict is VALID. Each failed criterion is one
  reason in the result.

Exit codes (`Outcome.exit_code`, as `EXIT_FOR` in checker.gameday): 0 full success; 1 a failed
criterion or an INVALID verdict (a finding: something is wrong); 2 unknown (every criterion held
but the checker could not say VALID or INVALID). A failed criterion wins over an unknown verdict.
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
from chaoslib.hypothesis import within_tolerance

MARGIN_SECONDS = 60.0
MARGIN_FACTOR = 1.25
# After the chaos run: POST /verify, GET /journal and the report each may take up to the
# checker client's 600 s timeout; a game-day Job's deadline counts one such allowance per run.
VERIFY_ALLOWANCE_SECONDS = 1800.0
_DURATION_KEY = re.compile(r"^(timeout|duration|seconds)$|_(timeout|duration|seconds)$")

Json = dict[str, Any]


# -- timeouts ------------------------------------------------------------------------------------
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


# -- the result ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """A run's result: "success", "failed" or "unknown", and why it is not a success."""

    result: str
    reasons: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        return {"success": 0, "failed": 1}.get(self.result, 2)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _steady_state(journal: Json, when: str) -> str | None:
    state = (journal.get("steady_states") or {}).get(when)
    if state is None:
        return f"the steady state was not checked {when} the method"
    if state.get("steady_state_met"):
        return None
    failing = [
        str(p.get("activity", {}).get("name"))
        for p in state.get("probes") or []
        if p.get("status") != "succeeded" or p.get("tolerance_met") is False
    ]
    which = f" (probes: {', '.join(failing)})" if failing else ""
    return f"the steady state was not met {when} the method{which}"


def _method(journal: Json, experiment: Json, configuration: Mapping[str, Any]) -> list[str]:
    reasons: list[str] = []
    planned = experiment.get("method") or []
    runs = journal.get("run") or []
    status = journal.get("status")
    if planned and not runs:
        reasons.append("the method did not run")
    elif len(runs) < len(planned):
        reasons.append(f"the method did not run to its end ({len(runs)} of {len(planned)} ran)")
    if status in {"interrupted", "aborted"}:
        reasons.append(f"the chaos run was {status}")
    for run in runs:
        activity = run.get("activity") or {}
        name = activity.get("name")
        if run.get("status") != "succeeded":
            reasons.append(f"method {activity.get('type', 'activity')} {name!r} failed")
            continue
        if activity.get("type") != "probe" or "tolerance" not in activity:
            continue
        tolerance = activity["tolerance"]
        try:
            held = within_tolerance(tolerance, run.get("output"), dict(configuration), {})
        except Exception as exc:  # noqa: BLE001 - chaoslib raises what the tolerance raises
            reasons.append(f"method probe {name!r}: its tolerance could not be checked ({exc})")
            continue
        if not held:
            reasons.append(
                f"method probe {name!r} returned {_short(run.get('output'))}, "
                f"outside its tolerance {_short(tolerance)}"
            )
    return reasons


def _rollbacks(journal: Json) -> list[str]:
    return [
        f"rollback {str((r.get('activity') or {}).get('name'))!r} failed"
        for r in journal.get("rollbacks") or []
        if r.get("status") != "succeeded"
    ]


def evaluate(
    journal: Json | None,
    valid: Any,
    configuration: Mapping[str, Any] | None = None,
    stopped: str | None = None,
) -> Outcome:
    """Judge one run from its chaos journal, the checker's verdict (`valid`) and, when the run
    had to be stopped, how (`stopped`)."""
    reasons: list[str] = []
    if stopped:
        reasons.append(stopped)
    if journal is None:
        reasons.append("no chaos journal: the chaos run did not finish (see chaos.log)")
    else:
        experiment = journal.get("experiment") or {}
        config = configuration if configuration is not None else {}
        before = _steady_state(journal, "before")
        if before:
            reasons.append(before)
        reasons += _method(journal, experiment, config)
        reasons += _rollbacks(journal)
        if not before:
            after = _steady_state(journal, "after")
            if after:
                reasons.append(after)
    if valid is False:
        reasons.append("the checker's verdict is INVALID")
    if reasons:
        return Outcome("failed", tuple(reasons))
    if valid is not True:
        return Outcome("unknown", (f"the checker's verdict is unknown ({valid!r})",))
    return Outcome("success", ())
