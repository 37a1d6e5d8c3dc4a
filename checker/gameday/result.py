"""What a game-day run's outcome is.

`evaluate`: a run succeeds only when, read from the chaos journal: the steady
state was met before the method; the method ran (every activity of it ran, none failed, the run
was not interrupted or aborted); every method probe that declares a `tolerance` returned a value
within it (chaostoolkit only enforces tolerances in the steady-state hypothesis, so they are
evaluated here with chaoslib's own `within_tolerance`); every rollback that ran succeeded; the
steady state was met after; and the checker's verdict is VALID. Each failed criterion is one
reason in the result.

Exit codes (`Outcome.exit_code`, as `EXIT_FOR` in checker.gameday.run): 0 full success; 1 a failed
criterion or an INVALID verdict (a finding: something is wrong); 2 unknown (every criterion held
but the checker could not say VALID or INVALID). A failed criterion wins over an unknown verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaoslib.hypothesis import within_tolerance

Json = dict[str, Any]


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
