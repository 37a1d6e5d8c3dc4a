"""Chaos Toolkit's `journal.json` as spans on the report's timeline.

Only names, types, statuses and times are taken: an experiment's providers, arguments,
configuration and secrets never reach the page. Failed activities keep a short, redacted
reason. chaostoolkit writes ISO 8601 times, with an offset in recent versions and as naive
UTC in older ones; both are read as UTC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checker.core.history import Span
from checker.errors import ConfigError
from checker.secrets import redact

__all__ = ["ChaosRun", "load_chaos_journal"]

_REASON_CHARS = 300


@dataclass(frozen=True)
class ChaosRun:
    """An experiment's outcome and its activities in the order they ran."""

    title: str
    status: str | None
    deviated: bool | None
    start: float | None
    end: float | None
    spans: tuple[Span, ...]
    steady_before: bool | None
    steady_after: bool | None


def load_chaos_journal(path: str | Path) -> ChaosRun:
    """Parse a chaostoolkit journal; a file that is not one raises ConfigError, one line."""
    p = Path(path)
    what = f"chaos journal {p}"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a directory; give chaostoolkit's journal.json") from None
    except PermissionError:
        raise ConfigError(f"{what} is not readable by this user") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("run"), list):
        raise ConfigError(
            f'{what} is not a chaostoolkit journal (no "run" list): pass the journal.json '
            "that `chaos run` writes"
        )
    try:
        return _parse(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{what} has an unexpected shape: {redact(str(exc))}") from None


def _parse(data: dict[str, Any]) -> ChaosRun:
    steady = data.get("steady_states") or {}
    before, after = steady.get("before") or {}, steady.get("after") or {}
    spans = [
        *_spans(before.get("probes"), "steady-state", "before: "),
        *_spans(data["run"], None, ""),
        *(
            s
            for during in steady.get("during") or ()
            for s in _spans(
                during.get("probes") if isinstance(during, dict) else during,
                "steady-state",
                "during: ",
            )
        ),
        *_spans(after.get("probes"), "steady-state", "after: "),
        *_spans(data.get("rollbacks"), "rollback", "rollback: "),
    ]
    experiment = data.get("experiment") or {}
    return ChaosRun(
        title=redact(str(experiment.get("title") or "chaos experiment")),
        status=_text(data.get("status")),
        deviated=data.get("deviated") if isinstance(data.get("deviated"), bool) else None,
        start=_time(data.get("start")),
        end=_time(data.get("end")),
        spans=tuple(sorted(spans, key=lambda s: s.start)),
        steady_before=_met(before),
        steady_after=_met(after),
    )


def _spans(runs: Any, kind: str | None, prefix: str) -> list[Span]:
    found: list[Span] = []
    for run in runs or ():
        activity = run.get("activity") or {}
        start = _time(run.get("start"))
        if start is None:
            continue  # never started (skipped by a failed steady state): nothing to draw
        found.append(
            Span(
                name=prefix + redact(str(activity.get("name") or "unnamed activity")),
                kind=kind or ("probe" if activity.get("type") == "probe" else "action"),
                start=start,
                end=_time(run.get("end")),
                source="chaostoolkit",
                status=_status(run),
                detail=_reason(run),
            )
        )
    return found


def _status(run: dict[str, Any]) -> str | None:
    status = _text(run.get("status"))
    if run.get("tolerance_met") is False:
        return f"{status or 'ran'}, tolerance not met"
    return status


def _reason(run: dict[str, Any]) -> str | None:
    """The last line of a failed activity's exception: what went wrong, without a traceback."""
    exc = run.get("exception")
    if not exc:
        return None
    lines = exc if isinstance(exc, list) else [str(exc)]
    last = next((str(x).strip() for x in reversed(lines) if str(x).strip()), "")
    return redact(last)[:_REASON_CHARS] or None


def _met(section: dict[str, Any]) -> bool | None:
    met = section.get("steady_state_met")
    return met if isinstance(met, bool) else None


def _text(value: Any) -> str | None:
    return redact(str(value)) if value is not None else None


def _time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
