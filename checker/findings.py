"""What a person reads about a run's findings: anomaly runs on the chaos timeline, and whether
an experiment's steady state held.

`gameday_fields` is what the game-day summary adds to each experiment's entry (a few keys next
to `valid` and `anomaly_counts`); `checker verify` and the report show the same runs
(`checker.core.runs.describe`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from checker.core.runs import describe
from checker.core.verdict import Verdict

__all__ = ["chaos_outcome", "gameday_fields"]


def chaos_outcome(status: str | None, chaos_journal: Path) -> str | None:
    """Chaos Toolkit's status, but never a plain `completed` for a run whose steady state
    deviated: chaostoolkit reports such a run `completed` with `deviated: true`."""
    try:
        data = json.loads(chaos_journal.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return status
    if isinstance(data, dict) and data.get("deviated") is True:
        return "deviated" if status in (None, "completed") else f"{status}, deviated"
    return status


def _start(chaos_journal: Path) -> float | None:
    from checker.errors import ConfigError
    from checker.report.chaos import load_chaos_journal

    try:
        return load_chaos_journal(chaos_journal).start
    except ConfigError:
        return None


def gameday_fields(
    verdict: dict[str, Any], chaos_journal: Path, status: str | None
) -> dict[str, Any]:
    """`chaos_status` (deviated said as such), `steady_state_deviated`, and `anomaly_runs`:
    the verdict's anomaly groups in words, times relative to the experiment's start."""
    groups = Verdict.from_dict(verdict).groups if verdict.get("valid") is not None else ()
    outcome = chaos_outcome(status, chaos_journal)
    fields: dict[str, Any] = {
        "chaos_status": outcome,
        "steady_state_deviated": outcome is not None and "deviated" in outcome,
    }
    if groups:
        fields["anomaly_runs"] = describe(groups, _start(chaos_journal))
    return fields
