"""What the report shows, read from a journal in bounded memory.

Attempts can number in the millions, so nothing here builds one object per attempt: SQLite
groups them into time buckets (and latency bins) in C, and Python only walks the groups, one
bucket at a time. The bucket width grows with the run so a plot never has more than
`MAX_BUCKETS` points; latency quantiles come from a fixed-bin log histogram per bucket
(`BINS_PER_DECADE` bins per factor of ten: about 6 % relative error, whatever the count).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from checker.core.history import Span
from checker.core.verdict import Verdict
from checker.journal import Journal, JournalReader
from checker.secrets import redact

__all__ = [
    "MAX_BUCKETS",
    "SERVER_CHECKS",
    "AnomalyRow",
    "Choice",
    "Identity",
    "Timeline",
    "bucket_width",
    "fault_windows",
    "journal_facts",
    "quantile",
    "spans_from_annotations",
]

SERVER_CHECKS = ("lost", "duplicated", "corrupted", "unexpected", "divergent", "errant")
"""Anomaly types that need the servers' final data: only a verification can find them."""

MAX_BUCKETS = 1500
BINS_PER_DECADE = 20
QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
OUTCOMES = ("ok", "failed", "indeterminate")
_MIN_LATENCY = 1e-6  # a clock step can make a wall-clock latency zero or negative
# Widths a reader can count with; past the last one, whole hours.
_NICE_WIDTHS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def bucket_width(duration: float, max_buckets: int = MAX_BUCKETS) -> float:
    """Seconds per bucket: per second for runs of minutes, finer for a short lab run (so a
    two-second outage is more than one point), coarser for long soaks."""
    wanted = max(duration / max_buckets, min(1.0, duration / 300))
    for width in _NICE_WIDTHS:
        if width >= wanted:
            return float(width)
    return float(3600 * math.ceil(wanted / 3600))


def quantile(histogram: Mapping[int, int], q: float, ceiling: float) -> float | None:
    """The `q` quantile of a log-binned histogram: the geometric middle of the bin it falls
    in, never above the largest sample seen (`ceiling`)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for b in sorted(histogram):
        seen += histogram[b]
        if seen >= rank:
            return min(10 ** ((b + 0.5) / BINS_PER_DECADE), ceiling)
    return ceiling  # pragma: no cover - rank <= total always stops the loop


@dataclass(frozen=True)
class Choice:
    """The verdict shown, where it came from, and the JSON written next to the page."""

    verdict: Verdict
    data: dict[str, Any]
    source: str  # "file" | "verification" | "analysis"
    description: str

    @property
    def server_checks_run(self) -> bool:
        return self.source != "analysis"


@dataclass(frozen=True)
class AnomalyRow:
    """One anomaly with what the journal adds to its evidence: which server, and when."""

    type: str
    node: str | None
    writer_id: str | None
    seq: int | None
    server: str | None
    when: float | None
    evidence: Mapping[str, Any]
    attempt: Mapping[str, Any] | None


@dataclass(frozen=True)
class Identity:
    """One server identity that acknowledged writes, so acted as primary, and when."""

    server: str
    node: str | None
    first: float
    last: float
    acks: int


@dataclass
class Timeline:
    """Per-bucket series, index i covering `origin + i*width .. origin + (i+1)*width`."""

    origin: float
    end: float
    width: float
    writes: dict[str, list[int]] = field(default_factory=dict)
    latency: dict[str, list[float | None]] = field(default_factory=dict)
    # Per bucket, the slowest failed / indeterminate attempt: (bucket, seconds)
    slow: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    # Per node, the buckets that have lag samples: (bucket, worst seconds, or None when every
    # sample of the bucket said "unknown"). Samples come once a second: buckets between them
    # are joined by the line, an unknown one breaks it.
    lag: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)
    lag_unknown: dict[str, int] = field(default_factory=dict)

    @property
    def buckets(self) -> int:
        return max(1, math.ceil((self.end - self.origin) / self.width))

    def bucket(self, t: float) -> int:
        return min(self.buckets - 1, max(0, int((t - self.origin) / self.width)))


@dataclass
class JournalFacts:
    """Everything the page needs from a journal except the verdict."""

    run_id: str
    incarnation: int
    target: str
    created_at: float
    outcomes: dict[str, int]
    unjournaled: int
    reads: int
    timeline: Timeline
    identities: list[Identity]
    node_outcomes: dict[str, dict[str, int]]
    annotations: list[dict[str, Any]]
    events: list[dict[str, Any]]
    events_total: int
    verifications: int
    flavor: str | None
    summarised: dict[str, Any] | None = None
    """What retention folded (`checker.journal.compact`): the span of summarised writes,
    their count, and the time before which samples are summarised; None if nothing was."""


@dataclass
class _Summary:
    """One grouped pass over the attempts: totals, who acknowledged what, and the time span."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    by_node: dict[str, dict[str, int]] = field(default_factory=dict)
    identities: list[Identity] = field(default_factory=list)
    first: float | None = None
    last: float | None = None


def _summary(db: JournalReader) -> _Summary:
    s = _Summary()
    for node, server, outcome, count, lo, hi, first_ack, last_ack in db.attempt_groups():
        s.outcomes[str(outcome)] = s.outcomes.get(str(outcome), 0) + int(count)
        per_node = s.by_node.setdefault(redact(str(node)), {})
        per_node[str(outcome)] = per_node.get(str(outcome), 0) + int(count)
        s.first = lo if s.first is None else min(s.first, lo)
        s.last = hi if s.last is None else max(s.last, hi)
        if (
            outcome == "ok"
            and server is not None
            and first_ack is not None
            and last_ack is not None
        ):
            who = None if node == "?" else redact(str(node))
            s.identities.append(
                Identity(redact(str(server)), who, float(first_ack), float(last_ack), int(count))
            )
    s.identities.sort(key=lambda i: (i.first, i.server))
    return s


def _bounds(db: JournalReader, summary: _Summary) -> tuple[float | None, float | None]:
    lo, hi = summary.first, summary.last
    for table in ("lag", "events", "annotations"):
        span = db.time_span(table)
        if span is not None:
            a, b = span
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    return lo, hi


def _fill_writes(db: JournalReader, tl: Timeline) -> None:
    """One grouped pass over every attempt: counts per outcome, latency histograms per bucket."""
    n = tl.buckets
    tl.writes = {o: [0] * n for o in OUTCOMES}
    tl.latency = {name: [None] * n for name, _ in QUANTILES}
    tl.slow = {"failed": [], "indeterminate": []}
    rows = db.write_buckets(tl.origin, tl.width, BINS_PER_DECADE, _MIN_LATENCY)
    current: int | None = None
    histogram: dict[int, int] = {}
    ceiling = 0.0
    slowest: dict[str, float] = {}
    for b, outcome, bin_, count, top in rows:
        i = min(n - 1, max(0, int(b)))
        if i != current:
            _close_bucket(tl, current, histogram, ceiling, slowest)
            current, histogram, ceiling, slowest = i, {}, 0.0, {}
        if outcome in tl.writes:
            tl.writes[outcome][i] += int(count)
        if top is None:
            continue
        if outcome == "ok" and bin_ is not None:
            histogram[int(bin_)] = histogram.get(int(bin_), 0) + int(count)
            ceiling = max(ceiling, float(top))
        elif outcome in tl.slow:
            slowest[outcome] = max(slowest.get(outcome, 0.0), float(top))
    _close_bucket(tl, current, histogram, ceiling, slowest)


def _close_bucket(
    tl: Timeline,
    i: int | None,
    histogram: dict[int, int],
    ceiling: float,
    slowest: dict[str, float],
) -> None:
    if i is None:
        return
    for name, q in QUANTILES:
        tl.latency[name][i] = quantile(histogram, q, ceiling)
    for outcome, seconds in slowest.items():
        tl.slow[outcome].append((i, seconds))


def _fill_lag(db: JournalReader, tl: Timeline) -> None:
    """Per node and bucket, the worst lag sampled; a None sample means lag unknown (replica
    unreachable or not replicating)."""
    n = tl.buckets
    for b, node, worst, unknown in db.lag_buckets(tl.origin, tl.width):
        i = min(n - 1, max(0, int(b)))
        name = redact(str(node))
        tl.lag.setdefault(name, []).append((i, None if worst is None else float(worst)))
        if unknown:
            tl.lag_unknown[name] = tl.lag_unknown.get(name, 0) + int(unknown)


def lookup_attempt(db: JournalReader, writer_id: str, seq: int) -> dict[str, Any] | None:
    """The journal's record of one write (the first, if journaled twice), for evidence."""
    a = db.first_attempt(writer_id, seq)
    if a is None:
        return None
    return {
        "outcome": a.outcome.value,
        "invoke_wall": a.invoke_wall,
        "complete_wall": a.complete_wall,
        "server": a.server,
        "node": a.node,
        "row_id": a.row_id,
        "error": redact(a.error) if a.error else a.error,
    }


# -- the whole journal ----------------------------------------------------------------------------
EVENTS_SHOWN = 200


def journal_facts(journal: Journal, db: JournalReader, extra: list[float]) -> JournalFacts:
    """Read everything but the verdict. `extra` are further times (chaos activities) the
    timeline must cover."""
    summary = _summary(db)
    lo, hi = _bounds(db, summary)
    times = [t for t in (lo, hi, *extra) if t is not None]
    origin = min(times) if times else journal.info.created_at
    end = max(times) if times else origin + 1.0
    end = max(end, origin + 1.0)
    tl = Timeline(origin=origin, end=end, width=bucket_width(end - origin))
    # The end must fall inside the last bucket, not open a new one.
    tl.end = origin + tl.buckets * tl.width
    _fill_writes(db, tl)
    _fill_lag(db, tl)
    events_total = db.count("events")
    return JournalFacts(
        run_id=journal.info.run_id,
        incarnation=journal.info.incarnation,
        target=redact(journal.info.target),
        created_at=journal.info.created_at,
        outcomes=summary.outcomes,
        unjournaled=db.unjournaled(),
        reads=db.count("reads"),
        timeline=tl,
        identities=summary.identities,
        node_outcomes=summary.by_node,
        annotations=[_clean(r) for r in journal.rows("annotations")],
        events=list(_events(db)),
        events_total=events_total,
        verifications=db.count("verifications"),
        flavor=_flavor(db),
        summarised=_summarised(db),
    )


def _summarised(db: JournalReader) -> dict[str, Any] | None:
    f = db.folded
    if not f.compactions:
        return None
    return {"first": f.first, "last": f.last, "attempts": f.total, "samples_before": f.before}


def _events(db: JournalReader) -> Iterator[dict[str, Any]]:
    """The first events (a run's story is told at its start) with their details redacted."""
    for t, kind, detail in db.events(EVENTS_SHOWN):
        yield {"time": t, "kind": kind, "detail": _detail(detail)}


def _detail(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        parsed = json.loads(redact(text))
    except ValueError:
        return {"text": redact(text)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _flavor(db: JournalReader) -> str | None:
    detail = db.last_event_detail("preflight_ok")
    flavor = _detail(detail).get("flavor") if detail is not None else None
    return str(flavor) if flavor else None


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": redact(str(row["name"])),
        "phase": str(row["phase"]),
        "time": float(row["time"]),
        "detail": redact(str(row["detail"])) if row.get("detail") else None,
    }


def spans_from_annotations(annotations: list[dict[str, Any]]) -> list[Span]:
    """Pair each `start` with the next `end` of the same name; a start never ended is an open
    span, an end never started is a zero-length one at its time (still worth seeing)."""
    open_: dict[str, list[dict[str, Any]]] = {}
    spans: list[Span] = []
    for a in sorted(annotations, key=lambda a: a["time"]):
        if a["phase"] == "start":
            open_.setdefault(a["name"], []).append(a)
            continue
        starts = open_.get(a["name"])
        begin = starts.pop(0) if starts else None
        spans.append(
            Span(
                name=a["name"],
                kind="annotation",
                start=begin["time"] if begin else a["time"],
                end=a["time"],
                source="checker",
                status=None if begin else "end without start",
                detail=(begin or a).get("detail"),
            )
        )
    for starts in open_.values():
        spans.extend(
            Span(s["name"], "annotation", s["time"], None, "checker", "never ended", s["detail"])
            for s in starts
        )
    return sorted(spans, key=lambda s: (s.start, s.name))


def fault_windows(spans: list[Span]) -> list[Span]:
    """The windows in which a fault was in force: each method action (the experiment's
    `action`s, steady-state probes and plain probes excluded) from its start until the end of
    its rollback, paired in order with the rollbacks that started after it; an action without
    one is in force until its own end (or the record's, if it never ended)."""
    actions = sorted((s for s in spans if s.kind == "action"), key=lambda s: s.start)
    rollbacks = sorted((s for s in spans if s.kind == "rollback"), key=lambda s: s.start)
    used: set[int] = set()
    found: list[Span] = []
    for a in actions:
        after = a.end if a.end is not None else a.start
        pick = next(
            (i for i, r in enumerate(rollbacks) if i not in used and r.start >= after), None
        )
        end = a.end
        detail = "until the action ended (no rollback recorded)"
        if pick is not None:
            used.add(pick)
            r = rollbacks[pick]
            end = r.end
            detail = f"until its rollback {r.name!r} ended"
        found.append(Span(f"fault: {a.name}", "fault", a.start, end, a.source, a.status, detail))
    return found
