"""Timeline plots as inline SVG, in the manner of Jepsen's: one shared time axis, chaos
activities shaded behind every plot and labelled in a strip above them.

Colours come from CSS classes (`s-ok`, `span-action`, ...) defined once in the page's style
sheet, so an outcome has the same colour in a plot, a legend and a table. Series are already
bucketed (`checker.report.data.MAX_BUCKETS` points at most); `decimate` keeps any series
within a few points per pixel column, keeping each column's extremes so spikes survive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

from checker.core.history import Span
from checker.report.data import OUTCOMES, QUANTILES, Timeline

__all__ = [
    "XScale",
    "decimate",
    "lag_chart",
    "lane_strip",
    "latency_chart",
    "symbols",
    "writes_chart",
]

WIDTH = 1100
LEFT, RIGHT = 72, 20
TOP, BOTTOM = 12, 30
CHART_HEIGHT = 220
LANE_HEIGHT = 20
NODE_CLASSES = 6  # .node-0 .. .node-5 in the style sheet, reused cyclically
LAG_JOIN = 2.5  # seconds: lag is sampled every second; a longer silence is a gap
_CHAR_PX = 6.6  # label width estimate at the strip's font size
_NICE_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)

Point = tuple[float, float]


@dataclass(frozen=True)
class XScale:
    """Wall-clock seconds to pixels; labels are seconds since `origin`."""

    origin: float
    end: float

    def px(self, t: float) -> float:
        span = max(self.end - self.origin, 1e-9)
        t = min(max(t, self.origin), self.end)
        return LEFT + (t - self.origin) / span * (WIDTH - LEFT - RIGHT)

    def ticks(self, most: int = 12) -> list[tuple[float, str]]:
        duration = self.end - self.origin
        step = next((s for s in _NICE_STEPS if duration / s <= most), None)
        if step is None:
            step = 3600 * math.ceil(duration / most / 3600)
        count = int(duration / step + 1e-9)
        return [(self.px(self.origin + i * step), _clock(i * step, step)) for i in range(count + 1)]


def _clock(seconds: float, step: float) -> str:
    """Seconds since the start: `12 s` / `1.5 s` for short runs, `m:ss` or `h:mm:ss` beyond."""
    if step < 60 and seconds < 600:
        return f"{seconds:g} s"
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _num(x: float) -> str:
    return f"{x:.1f}"


# -- building blocks ------------------------------------------------------------------------------
def decimate(points: Sequence[Point], columns: int = WIDTH) -> list[Point]:
    """At most four points per pixel column (first, lowest, highest, last), in order."""
    if len(points) <= 4 * columns:
        return list(points)
    kept: list[Point] = []
    i = 0
    while i < len(points):
        col = int(points[i][0])
        j = i
        while j < len(points) and int(points[j][0]) == col:
            j += 1
        group = points[i:j]
        picks = {0, len(group) - 1}
        picks.add(min(range(len(group)), key=lambda k: group[k][1]))
        picks.add(max(range(len(group)), key=lambda k: group[k][1]))
        kept.extend(group[k] for k in sorted(picks))
        i = j
    return kept


def _path(runs: Iterable[Sequence[Point]]) -> tuple[str, int]:
    """An SVG path through each run of points; a lone point becomes a round dot (`h0`)."""
    parts: list[str] = []
    n = 0
    for run in runs:
        pts = decimate(run)
        n += len(pts)
        if not pts:
            continue
        head = f"M{_num(pts[0][0])} {_num(pts[0][1])}"
        tail = "".join(f"L{_num(x)} {_num(y)}" for x, y in pts[1:])
        parts.append(head + (tail or "h0"))
    return "".join(parts), n


def _runs(xs: Sequence[float], ys: Sequence[float | None]) -> list[list[Point]]:
    """Split a series at its gaps (None)."""
    runs: list[list[Point]] = [[]]
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


def _line(
    cls: str, label: str, xs: Sequence[float], values: Sequence[float | None], y: _YScale
) -> str:
    ys = [None if v is None else y.px(v) for v in values]
    d, n = _path(_runs(xs, ys))
    if not n:
        return ""
    return (
        f'<path class="series line {cls}" data-series="{escape(label)}" data-points="{n}" '
        f'd="{d}"><title>{escape(label)}</title></path>'
    )


def _markers(cls: str, shape: str, points: Sequence[tuple[float, float, str]]) -> str:
    """Individual marks, each with a tooltip: the rare events worth finding one by one."""
    if not points:
        return ""
    marks = "".join(
        f'<use href="#m-{shape}" x="{_num(x)}" y="{_num(y)}"><title>{escape(t)}</title></use>'
        for x, y, t in points
    )
    return f'<g class="series marks {cls}" data-points="{len(points)}">{marks}</g>'


def symbols() -> str:
    """The marks' shapes, defined once per page and drawn with `<use>`."""
    return (
        '<svg class="symbols" width="0" height="0" aria-hidden="true"><defs>'
        '<path id="m-circle" d="M-3.5 0a3.5 3.5 0 1 0 7 0a3.5 3.5 0 1 0 -7 0z"/>'
        '<path id="m-diamond" d="M0 -4.5L4.5 0L0 4.5L-4.5 0z"/>'
        '<path id="m-triangle" d="M-5 -6L5 -6L0 2z"/>'
        "</defs></svg>"
    )


def _span_rects(x: XScale, spans: Sequence[Span], top: float, bottom: float) -> str:
    rects = []
    for s in spans:
        x0 = x.px(s.start)
        x1 = x.px(s.end if s.end is not None else x.end)
        rects.append(
            f'<rect class="span span-{escape(s.kind)}{" open" if s.end is None else ""}" '
            f'x="{_num(x0)}" y="{_num(top)}" width="{_num(max(x1 - x0, 1.5))}" '
            f'height="{_num(bottom - top)}"><title>{escape(_span_title(s))}</title></rect>'
        )
    return f'<g class="spans">{"".join(rects)}</g>'


def _span_title(s: Span) -> str:
    length = "still running at the end" if s.end is None else f"{s.end - s.start:.2f} s"
    extra = f", {s.status}" if s.status else ""
    why = f": {s.detail}" if s.detail else ""
    return f"{s.name} ({s.kind}, {s.source}, {length}{extra}){why}"


def _x_axis(x: XScale, top: float, bottom: float) -> str:
    out = [f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>']
    for px, label in x.ticks():
        out.append(f'<line class="grid" x1="{_num(px)}" y1="{top}" x2="{_num(px)}" y2="{bottom}"/>')
        out.append(
            f'<text class="tick" x="{_num(px)}" y="{bottom + 16}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    return "".join(out)


@dataclass(frozen=True)
class _YScale:
    lo: float
    hi: float
    log: bool
    top: float
    bottom: float
    step: float = 0.0  # between linear ticks

    def px(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            frac = (math.log10(v) - math.log10(self.lo)) / (
                math.log10(self.hi) - math.log10(self.lo)
            )
        else:
            frac = (v - self.lo) / max(self.hi - self.lo, 1e-12)
        return self.bottom - min(max(frac, 0.0), 1.0) * (self.bottom - self.top)


def _nice_step(v: float) -> float:
    """The smallest of 1, 2 or 5 times a power of ten that is at least `v`."""
    if v <= 0:
        return 0.25
    exp = 10.0 ** math.floor(math.log10(v))
    return next((m * exp for m in (1.0, 2.0, 5.0) if v <= m * exp * 1.000001), 10.0 * exp)


def _linear(values: Iterable[float | None], top: float, bottom: float) -> _YScale:
    """From zero to a little above the peak, in four or five round steps."""
    peak = max((v for v in values if v is not None), default=0.0) * 1.05
    step = _nice_step(peak / 4)
    return _YScale(0.0, max(1, math.ceil(peak / step)) * step, False, top, bottom, step)


def _y_ticks(y: _YScale, fmt: str) -> list[tuple[float, str]]:
    if y.log:
        lo, hi = round(math.log10(y.lo)), round(math.log10(y.hi))
        return [(y.px(10.0**e), _duration(10.0**e)) for e in range(lo, hi + 1)]
    count = round(y.hi / y.step)
    return [(y.px(i * y.step), _value(i * y.step, fmt)) for i in range(count + 1)]


def _value(v: float, fmt: str) -> str:
    if fmt == "seconds":
        return _duration(v) if v else "0"
    return f"{v:,.0f}" if v >= 10 or v == 0 else f"{v:.2g}"


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:g} ms"
    return f"{seconds * 1e6:g} µs"


def _frame(
    name: str,
    x: XScale,
    y: _YScale,
    spans: Sequence[Span],
    body: str,
    y_label: str,
    fmt: str,
    height: int,
) -> str:
    grid = []
    for py, label in _y_ticks(y, fmt):
        grid.append(
            f'<line class="grid" x1="{LEFT}" y1="{_num(py)}" x2="{WIDTH - RIGHT}" '
            f'y2="{_num(py)}"/><text class="tick" x="{LEFT - 6}" y="{_num(py + 4)}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    mid = (y.top + y.bottom) / 2
    return (
        f'<svg class="plot" data-plot="{name}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{escape(y_label)} over time">'
        f"{_span_rects(x, spans, y.top, y.bottom)}{''.join(grid)}"
        f"{_x_axis(x, y.top, y.bottom)}"
        f'<text class="ylabel" transform="translate(14 {_num(mid)}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
        f'<g class="data">{body}</g></svg>'
    )


def _centres(x: XScale, tl: Timeline) -> list[float]:
    return [x.px(tl.origin + (i + 0.5) * tl.width) for i in range(tl.buckets)]


# -- the plots ------------------------------------------------------------------------------------
def writes_chart(
    x: XScale, tl: Timeline, spans: Sequence[Span], anomalies: Sequence[tuple[float, str]]
) -> str:
    """Writes per second by outcome: acknowledged as a line, failed and indeterminate as
    marks wherever they happened (they are rare and must not hide under the axis)."""
    top, bottom = TOP + 10, CHART_HEIGHT - BOTTOM
    rates = {o: [c / tl.width for c in tl.writes[o]] for o in OUTCOMES}
    y = _linear([v for o in OUTCOMES for v in rates[o]], top, bottom)
    xs = _centres(x, tl)
    body = [_line("s-ok", "ok writes/s", xs, rates["ok"], y)]
    for outcome, shape in (("failed", "circle"), ("indeterminate", "diamond")):
        pts = [
            (xs[i], y.px(r), f"{r:,.1f} {outcome} writes/s at +{(i + 0.5) * tl.width:g} s")
            for i, r in enumerate(rates[outcome])
            if r > 0
        ]
        body.append(_markers(f"s-{outcome}", shape, pts))
    marks = [(x.px(t), top, label) for t, label in anomalies]
    body.append(_markers("s-anomaly", "triangle", marks))
    return _frame("writes", x, y, spans, "".join(body), "writes / s", "count", CHART_HEIGHT)


def latency_chart(x: XScale, tl: Timeline, spans: Sequence[Span]) -> str:
    """Commit latency of acknowledged writes (p50/p95/p99 per bucket, log scale), and the
    slowest failed / indeterminate attempt of each bucket as marks."""
    top, bottom = TOP, CHART_HEIGHT - BOTTOM
    values = [v for name, _ in QUANTILES for v in tl.latency[name] if v]
    values += [s for outcome in tl.slow.values() for _, s in outcome]
    # Whole decades with room on both sides: a value never sits on the frame.
    lo = 10.0 ** (math.ceil(math.log10(min(values))) - 1) if values else 1e-4
    hi = 10.0 ** (math.floor(math.log10(max(values))) + 1) if values else 1.0
    y = _YScale(lo, hi, True, top, bottom)
    xs = _centres(x, tl)
    body = [_line(f"s-{name}", f"{name} latency", xs, tl.latency[name], y) for name, _ in QUANTILES]
    for outcome, shape in (("failed", "circle"), ("indeterminate", "diamond")):
        pts = [
            (xs[i], y.px(s), f"slowest {outcome}: {_duration(s)} at +{(i + 0.5) * tl.width:g} s")
            for i, s in tl.slow[outcome]
        ]
        body.append(_markers(f"s-{outcome}", shape, pts))
    return _frame("latency", x, y, spans, "".join(body), "latency", "seconds", CHART_HEIGHT)


def lag_chart(x: XScale, tl: Timeline, spans: Sequence[Span], nodes: Sequence[str]) -> str:
    """Replica lag per node (the worst sample of each bucket); gaps where it was unknown."""
    top, bottom = TOP, CHART_HEIGHT - BOTTOM
    y = _linear([v for s in tl.lag.values() for _, v in s], top, bottom)
    centres = _centres(x, tl)
    body = []
    for i, node in enumerate(nodes):
        xs: list[float] = []
        values: list[float | None] = []
        previous: int | None = None
        for b, v in tl.lag.get(node, []):
            if previous is not None and (b - previous) * tl.width > LAG_JOIN:
                xs.append(centres[b])  # missing samples: a gap, never a made-up slope
                values.append(None)
            xs.append(centres[b])
            values.append(v)
            previous = b
        body.append(_line(f"node-{i % NODE_CLASSES}", f"{node} lag", xs, values, y))
    return _frame("lag", x, y, spans, "".join(body), "lag", "seconds", CHART_HEIGHT)


def lane_strip(x: XScale, spans: Sequence[Span]) -> str:
    """Every chaos activity as a labelled bar, on as few lanes as keep labels apart."""
    lanes: list[float] = []  # right-most pixel used on each lane
    bars = []
    for s in spans:
        x0 = x.px(s.start)
        x1 = max(x.px(s.end if s.end is not None else x.end), x0 + 2)
        label_end = x1 + 4 + _CHAR_PX * len(s.name)
        inside = x1 - x0 > _CHAR_PX * len(s.name) + 8
        lane = next((i for i, right in enumerate(lanes) if right + 6 < x0), len(lanes))
        used = x1 if inside else label_end
        if lane == len(lanes):
            lanes.append(used)
        else:
            lanes[lane] = used
        y0 = TOP + lane * LANE_HEIGHT
        tx = x0 + 4 if inside else x1 + 4
        failed = " failed" if s.status and "fail" in s.status else ""
        bars.append(
            f'<g class="activity span-{s.kind}{failed}"><title>{escape(_span_title(s))}</title>'
            f'<rect class="bar" x="{_num(x0)}" y="{y0 + 2}" width="{_num(x1 - x0)}" '
            f'height="{LANE_HEIGHT - 5}" rx="2"/>'
            f'<text class="label" x="{_num(tx)}" y="{y0 + 14}">{escape(s.name)}</text></g>'
        )
    height = TOP + max(len(lanes), 1) * LANE_HEIGHT + BOTTOM
    bottom = height - BOTTOM + 4
    empty = (
        ""
        if spans
        else f'<text class="tick" x="{LEFT + 8}" y="{TOP + 14}">no chaos activity recorded</text>'
    )
    return (
        f'<svg class="plot lanes" data-plot="activities" data-spans="{len(spans)}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="chaos activities over time">'
        f"{_x_axis(x, TOP, bottom)}{''.join(bars)}{empty}</svg>"
    )
