"""Anomaly groups (`Verdict.groups`) in words, for the CLI summary, the report and the game-day
summary: the groups of every writer on one node, seen by one server identity, in one
activity's window, taken together as one run. Pure text, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from checker.core.verdict import Group

__all__ = ["WORDS", "describe"]


def describe(groups: Iterable[Group], start: float | None = None) -> list[str]:
    """One readable line per anomaly run: its groups of every writer on one node, acknowledged
    by one server identity, in one activity's window, taken together."""
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for g in groups:
        key = (g.type, g.node, g.server, g.activity, g.table)
        m = merged.setdefault(key, [0, set(), None, None, None, None])
        m[0] += g.count
        if g.writer_id:
            m[1].add(g.writer_id)
        for i, (a, b) in enumerate(((g.seq_first, g.seq_last), (g.time_first, g.time_last))):
            lo, hi = 2 + 2 * i, 3 + 2 * i
            m[lo] = a if m[lo] is None or (a is not None and a < m[lo]) else m[lo]
            m[hi] = b if m[hi] is None or (b is not None and b > m[hi]) else m[hi]
    lines = []
    for (kind, node, server, activity, table), (n, writers, s0, s1, t0, t1) in merged.items():
        what = WORDS.get(kind, f"{kind} anomalies")
        text = f"{n} {what}"
        if table:
            text += f" in table {table}"
        text += f" on {node}" if node else ""
        if writers:
            text += f", {len(writers)} writer(s)" + (
                f", seq {s0}..{s1}" if len(writers) == 1 and s0 is not None else ""
            )
        if server:
            text += f", acknowledged by {server}" if kind == "lost" else f", server {server}"
        if t0 is not None:
            first, last = _at(t0, start), _at(t1, start)
            text += f" between {first} and {last}" if t1 != t0 else f" at {first}"
        if activity:
            text += f", during `{activity}`"
        lines.append(text)
    return lines


def _at(t: float, start: float | None) -> str:
    return f"t+{t - start:.2f} s" if start else f"{t:.2f}"


WORDS = {
    "lost": "acknowledged writes lost (absent from the primary)",
    "duplicated": "writes present more than once",
    "corrupted": "corrupted rows",
    "unexpected": "unexpected rows",
    "divergent": "rows differing from the primary",
    "errant": "errant GTID findings",
    "split_brain": "split-brain overlaps",
    "stale": "stale reads",
    "non_monotonic": "non-monotonic reads",
    "bank_total": "bank total mismatches",
}
