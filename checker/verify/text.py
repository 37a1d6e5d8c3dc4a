"""A verification in words, for a terminal (`checker verify`)."""

from __future__ import annotations

from checker.core import runs
from checker.core.verdict import Anomaly, Validity, Verdict
from checker.verify.model import Verification


def group_lines(verdict: Verdict, start: float | None = None) -> list[str]:
    """The verdict's anomaly groups in words (`checker.core.runs.describe`)."""
    return runs.describe(verdict.groups, start)


def summary_lines(result: Verification) -> list[str]:
    """A readable summary of a verification, for a terminal."""
    v = result.verdict
    word = {Validity.VALID: "VALID", Validity.INVALID: "INVALID", Validity.UNKNOWN: "UNKNOWN"}
    c = v.counts
    lines = [
        f"{word[v.valid]}: run {result.run_id}, primary {result.primary}, "
        f"{len(result.nodes)} node(s), {result.seconds:.1f} s",
        f"  writes: {c.attempted} attempted, {c.ok} ok, {c.failed} failed, "
        f"{c.indeterminate} indeterminate ({c.recovered} of them recovered)",
    ]
    for name, node in sorted(v.nodes.items()):
        report = result.nodes.get(name)
        state = {True: "valid", False: "INVALID", "unknown": "unknown"}[node.valid.json]
        rows = "-" if node.rows is None else str(node.rows)
        foreign = report.foreign_rows if report and report.foreign_rows else 0
        extra = f", {foreign} foreign" if foreign else ""
        why = f": {node.reason}" if node.reason else ""
        lines.append(f"  {name:10} {node.role or '-':8} {state:8} rows {rows}{extra}{why}")
    if result.registry not in (None, "checked"):
        lines.append(f"  cannot tell: {result.registry}")
    counted = {k: n for k, n in v.anomaly_counts.items() if n}
    if counted:
        lines.append("  anomalies: " + ", ".join(f"{k} {n}" for k, n in counted.items()))
        runs = group_lines(v, result.started_at)
        if runs:
            lines.append("  in runs:")
            lines.extend(f"    {line}" for line in runs[:20])
        lines.extend(f"    {_describe(a)}" for a in v.anomalies[:20])
        if len(v.anomalies) > 20:
            lines.append(
                f"    ... {sum(counted.values()) - 20} more (--json shows up to {v.cap} per type)"
            )
    for f in v.failures:
        lines.append(f"  could not check {f.detector}: {f.error}")
    return lines


def _describe(a: Anomaly) -> str:
    where = " ".join(
        x for x in (a.node, a.writer_id, None if a.seq is None else f"seq {a.seq}") if x
    )
    detail = ", ".join(
        f"{k}={v}"
        for k, v in a.evidence.items()
        if isinstance(v, (int, float, str)) and k != "flavor"
    )
    return f"{a.type:13} {where}" + (f" ({detail})" if detail else "")
