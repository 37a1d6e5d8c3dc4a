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
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from checker.core.verdict import Verdict
from checker.journal import Journal
from checker.secrets import redact

__all__ = [
    "MAX_BUCKETS",
    "SERVER_CHECKS",
    "AnomalyRow",
    "Choice",
    "Identity",
    "Span",
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
class Span:
    """A chaos activity (or a checker annotation) over `start..end`, wall-clock seconds.

    `end` None: it never ended within the record (an annotation without its end).
    `kind` is one of action, probe, rollback, steady-state, annotation.
    """

    name: str
    kind: str
    start: float
    end: float | None
    source: str
    status: str | None = None
    detail: str | None = None


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


# -- SQL helpers ----------------------------------------------------------------------------------
def _ensure_math(db: sqlite3.Connection) -> None:
    """LOG10 and FLOOR exist only in SQLite builds with math functions; supply them otherwise."""
    try:
        db.execute("SELECT LOG10(10), FLOOR(1.5)").fetchone()
    except sqlite3.OperationalError:
        db.create_function("LOG10", 1, _log10, deterministic=True)
        db.create_function("FLOOR", 1, _floor, deterministic=True)


def _log10(x: float | None) -> float | None:
    return None if x is None or x <= 0 else math.log10(x)


def _floor(x: float | None) -> float | None:
    return None if x is None else float(math.floor(x))


_LATENCY = "COALESCE(complete_mono - invoke_mono, complete_wall - invoke_wall)"
_WHEN = "COALESCE(complete_wall, invoke_wall)"


@dataclass
class _Summary:
    """One grouped pass over the attempts: totals, who acknowledged what, and the time span."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    by_node: dict[str, dict[str, int]] = field(default_factory=dict)
    identities: list[Identity] = field(default_factory=list)
    first: float | None = None
    last: float | None = None


def _summary(db: sqlite3.Connection) -> _Summary:
    s = _Summary()
    rows = db.execute(
        f"SELECT COALESCE(node, '?'), server, outcome, COUNT(*), MIN(invoke_wall), "
        f"MAX({_WHEN}), MIN(complete_wall), MAX(complete_wall) FROM attempts "
        "WHERE invoke_wall > 0 GROUP BY 1, 2, 3"
    )
    for node, server, outcome, count, lo, hi, first_ack, last_ack in rows:
        s.outcomes[str(outcome)] = s.outcomes.get(str(outcome), 0) + int(count)
        per_node = s.by_node.setdefault(redact(str(node)), {})
        per_node[str(outcome)] = per_node.get(str(outcome), 0) + int(count)
        s.first = lo if s.first is None else min(s.first, lo)
        s.last = hi if s.last is None else max(s.last, hi)
        if outcome == "ok" and server is not None and first_ack is not None:
            who = None if node == "?" else redact(str(node))
            s.identities.append(
                Identity(redact(str(server)), who, float(first_ack), float(last_ack), int(count))
            )
    s.identities.sort(key=lambda i: (i.first, i.server))
    return s


def _bounds(db: sqlite3.Connection, summary: _Summary) -> tuple[float | None, float | None]:
    lo, hi = summary.first, summary.last
    for table in ("lag", "events", "annotations"):
        a, b = db.execute(f"SELECT MIN(time), MAX(time) FROM {table}").fetchone()
        if a is not None:
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    return lo, hi


def _fill_writes(db: sqlite3.Connection, tl: Timeline) -> None:
    """One grouped pass over every attempt: counts per outcome, latency histograms per bucket."""
    n = tl.buckets
    tl.writes = {o: [0] * n for o in OUTCOMES}
    tl.latency = {name: [None] * n for name, _ in QUANTILES}
    tl.slow = {"failed": [], "indeterminate": []}
    rows = db.execute(
        f"SELECT CAST(({_WHEN} - ?) / ? AS INTEGER) AS b, outcome, "
        f"CAST(FLOOR(? * LOG10(MAX(lat, ?))) AS INTEGER) AS bin, COUNT(*), MAX(lat) "
        f"FROM (SELECT outcome, invoke_wall, complete_wall, {_LATENCY} AS lat FROM attempts "
        "WHERE invoke_wall > 0) "
        "GROUP BY b, outcome, bin ORDER BY b, outcome, bin",
        (tl.origin, tl.width, BINS_PER_DECADE, _MIN_LATENCY),
    )
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


def _fill_lag(db: sqlite3.Connection, tl: Timeline) -> None:
    """Per node and bucket, the worst lag sampled; a None sample means lag unknown (replica
    unreachable or not replicating)."""
    n = tl.buckets
    for b, node, worst, unknown in db.execute(
        "SELECT CAST((time - ?) / ? AS INTEGER) AS b, node, MAX(seconds), "
        "SUM(seconds IS NULL) FROM lag GROUP BY node, b ORDER BY node, b",
        (tl.origin, tl.width),
    ):
        i = min(n - 1, max(0, int(b)))
        name = redact(str(node))
        tl.lag.setdefault(name, []).append((i, None if worst is None else float(worst)))
        if unknown:
            tl.lag_unknown[name] = tl.lag_unknown.get(name, 0) + int(unknown)


def _unjournaled(db: sqlite3.Connection) -> int:
    """Reserved seqs with no journaled attempt: the checker's own crash window, which
    `Journal.attempts()` reports as INDETERMINATE writes with no time."""
    total = 0
    for upto, have in db.execute(
        "SELECT r.upto, (SELECT COUNT(DISTINCT a.seq) FROM attempts a "
        "WHERE a.writer_id = r.writer_id AND a.seq BETWEEN 1 AND r.upto) FROM reservations r"
    ):
        total += max(0, int(upto) - int(have))
    return total


def lookup_attempt(db: sqlite3.Connection, writer_id: str, seq: int) -> dict[str, Any] | None:
    """The journal's record of one write (the first, if journaled twice), for evidence."""
    row = db.execute(
        "SELECT outcome, invoke_wall, complete_wall, server, node, row_id, error FROM attempts "
        "WHERE writer_id = ? AND seq = ? ORDER BY id LIMIT 1",
        (writer_id, seq),
    ).fetchone()
    if row is None:
        return None
    keys = ("outcome", "invoke_wall", "complete_wall", "server", "node", "row_id", "error")
    found = dict(zip(keys, row, strict=True))
    if found["error"]:
        found["error"] = redact(str(found["error"]))
    return found


# -- the whole journal ----------------------------------------------------------------------------
EVENTS_SHOWN = 200


def journal_facts(journal: Journal, db: sqlite3.Connection, extra: list[float]) -> JournalFacts:
    """Read everything but the verdict. `extra` are further times (chaos activities) the
    timeline must cover."""
    _ensure_math(db)
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
    events_total = int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    return JournalFacts(
        run_id=journal.info.run_id,
        incarnation=journal.info.incarnation,
        target=redact(journal.info.target),
        created_at=journal.info.created_at,
        outcomes=summary.outcomes,
        unjournaled=_unjournaled(db),
        reads=int(db.execute("SELECT COUNT(*) FROM reads").fetchone()[0]),
        timeline=tl,
        identities=summary.identities,
        node_outcomes=summary.by_node,
        annotations=[_clean(r) for r in journal.rows("annotations")],
        events=list(_events(db)),
        events_total=events_total,
        verifications=int(db.execute("SELECT COUNT(*) FROM verifications").fetchone()[0]),
        flavor=_flavor(db),
    )


def _events(db: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """The first events (a run's story is told at its start) with their details redacted."""
    for t, kind, detail in db.execute(
        "SELECT time, kind, detail FROM events ORDER BY id LIMIT ?", (EVENTS_SHOWN,)
    ):
        yield {"time": float(t), "kind": str(kind), "detail": _detail(detail)}


def _detail(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        parsed = json.loads(redact(text))
    except ValueError:
        return {"text": redact(text)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _flavor(db: sqlite3.Connection) -> str | None:
    row = db.execute(
        "SELECT detail FROM events WHERE kind = 'preflight_ok' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    flavor = _detail(row[0]).get("flavor") if row else None
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
