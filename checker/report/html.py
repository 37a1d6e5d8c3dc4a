"""The report page: sections in HTML around the SVG plots, filled into templates/report.html.

Everything user-supplied (names, errors, evidence) is escaped here, and the page names no
URL: its Content-Security-Policy allows its own stylesheet (by hash), `data:` images and
nothing else (no script, no 'unsafe-inline'), so the page can neither load nor send anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from importlib import resources
from string import Template
from typing import Any

from checker.core.history import Span
from checker.core.runs import describe
from checker.core.verdict import ANOMALY_TYPES, Validity, place_groups
from checker.report import svg
from checker.report.chaos import ChaosRun
from checker.report.data import (
    OUTCOMES,
    SERVER_CHECKS,
    AnomalyRow,
    Choice,
    JournalFacts,
    fault_windows,
    spans_from_annotations,
)

__all__ = ["CSP", "Page", "render", "utc"]


def _template_text() -> str:
    return (
        resources.files("checker.report")
        .joinpath("templates/report.html")
        .read_text(encoding="utf-8")
    )


def _style_hash(html: str) -> str:
    """CSP source for the page's one <style> element: its SHA-256, so no 'unsafe-inline'."""
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


# Nothing inline runs but the page's own stylesheet (by hash): no script at all, no
# 'unsafe-inline', no URL. The page has no style attributes, which a hash would not cover.
CSP = (
    f"default-src 'none'; style-src {_style_hash(_template_text())}; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

MEANING = {
    "lost": "acknowledged, but absent from the primary's final data",
    "duplicated": "one (writer, seq) present more than once",
    "corrupted": "row present, its payload does not match its hash",
    "unexpected": "row present that was never attempted",
    "divergent": "a caught-up replica differs from the primary",
    "errant": "a replica holds GTIDs the primary never had",
    "split_brain": "acknowledgements from two primaries at overlapping times",
    "stale": "a read missed an acknowledged write for longer than the lag bound",
    "non_monotonic": "a replica's view of a writer went back in time",
    "bank_total": "the bank workload's invariant total was broken",
}
_WORD = {Validity.VALID: "valid", Validity.INVALID: "invalid", Validity.UNKNOWN: "unknown"}
_EVIDENCE_INLINE = 6


@dataclass(frozen=True)
class Page:
    facts: JournalFacts
    choice: Choice
    anomalies: Sequence[AnomalyRow]
    chaos: ChaosRun | None
    journal_name: str
    generated: float
    verdict_json: str
    verdict_b64: str
    semi_sync: Sequence[Span] = ()


def utc(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _rel(t: float | None, origin: float) -> str:
    return "-" if t is None else f"+{t - origin:.3f} s"


def _when(t: float | None, origin: float) -> str:
    if t is None:
        return "-"
    return f'{escape(_rel(t, origin))}<br><span class="note">{escape(utc(t))}</span>'


def _code(text: object) -> str:
    return f"<code>{escape(str(text))}</code>" if text not in (None, "") else "-"


def _gtid(text: str | None) -> str:
    """A GTID set that wraps between its members only, never inside `0-1-4682`."""
    if not text:
        return "-"
    parts = (f"<span>{escape(p.strip())}</span>" for p in text.split(","))
    return f'<code class="gtid">{",<wbr>".join(parts)}</code>'


def _pill(cls: str, text: str) -> str:
    return f'<span class="pill {cls}">{escape(text)}</span>'


def render(page: Page) -> str:
    template = Template(_template_text())
    f = page.facts
    title = f"Integrity report: run {f.run_id} ({_WORD[page.choice.verdict.valid]})"
    spans = _spans(page)
    body = "\n".join(
        [
            svg.symbols(),
            _header(page, title),
            _verdict(page),
            _checks(page),
            _anomalies(page, spans),
            _timeline(page, spans),
            _nodes(page),
            _activities(page, spans),
            _events(page),
            _verdict_json(page),
            f"<footer>Generated {escape(utc(page.generated))} by <code>checker report</code> "
            f"from {_code(page.journal_name)}. This page loads nothing from the network.</footer>",
        ]
    )
    return template.substitute(csp=CSP, title=escape(title), body=body)


def _spans(page: Page) -> list[Span]:
    spans = spans_from_annotations(page.facts.annotations)
    if page.chaos is not None:
        spans.extend(page.chaos.spans)
    # Fault windows (an action until its rollback), drawn last: on top of probes and of the
    # experiment-wide band, which are drawn as outlines only; semi-sync-off windows likewise.
    spans.extend(fault_windows(spans))
    spans.extend(page.semi_sync)
    return sorted(spans, key=lambda s: (s.kind == "fault", s.start, s.name))


# -- sections -------------------------------------------------------------------------------------
def _header(page: Page, title: str) -> str:
    f = page.facts
    tl = f.timeline
    nav = "".join(
        f'<a href="#{anchor}">{label}</a>'
        for anchor, label in (
            ("verdict", "Verdict"),
            ("checks", "Checks"),
            ("anomalies", "Anomalies"),
            ("timeline", "Timeline"),
            ("nodes", "Nodes"),
            ("activities", "Chaos activities"),
            ("events", "Events"),
            ("verdict-json", "Verdict JSON"),
        )
    )
    flavor = f", {escape(f.flavor)}" if f.flavor else ""
    return (
        f"<header><h1>{escape(title.split(' (', maxsplit=1)[0])}</h1>"
        f'<p class="sub">Target {_code(f.target)}{flavor} · journal {_code(page.journal_name)} '
        f"(incarnation {f.incarnation})</p>"
        f'<p class="sub">{escape(utc(tl.origin))} → {escape(utc(tl.end))} '
        f"({tl.end - tl.origin:,.1f} s)</p><nav>{nav}</nav></header>"
    )


def _verdict(page: Page) -> str:
    v = page.choice.verdict
    word = _WORD[v.valid]
    c = v.counts
    counts = [
        ("attempted", c.attempted, ""),
        ("ok", c.ok, "c-ok"),
        ("failed", c.failed, "c-failed"),
        ("indeterminate", c.indeterminate, "c-indeterminate"),
        ("of them recovered", c.recovered, ""),
        ("anomalies", sum(v.anomaly_counts.values()), "c-failed" if v.anomaly_counts else ""),
    ]
    chips = "".join(
        f'<li><b class="{cls}">{n:,}</b> {escape(label)}</li>' for label, n, cls in counts
    )
    # Without a verification the warning below says what was not run; the rest are listed.
    shown = [
        fl for fl in v.failures if page.choice.server_checks_run or fl.detector != "verification"
    ]
    failures = "".join(f"<li><b>{escape(fl.detector)}</b>: {escape(fl.error)}</li>" for fl in shown)
    warn = ""
    if not page.choice.server_checks_run:
        warn = (
            '<p class="warn" id="not-verified"><b>Not verified against the servers.</b> This '
            "journal has no full verification, so lost, duplicated, corrupted, unexpected, "
            "divergent and errant rows were <b>not checked</b>: only the history-based "
            "detectors ran. Run <code>checker verify</code> (or pass <code>--verdict</code>) "
            "for a verdict that can be valid.</p>"
        )
    note = _summarised_note(page.facts.summarised)
    if page.facts.unjournaled:
        note += (
            f'<p class="note" id="unjournaled">{page.facts.unjournaled:,} writes were given a '
            "sequence number but their outcome is not in this journal: the checker stopped "
            "before it could record them, or this journal is a copy taken while they were "
            "still in flight. Whether they reached the database is not known, so they count "
            "as indeterminate (never as lost); they have no time, so the plots leave them "
            "out.</p>"
        )
    return (
        f'<section id="verdict"><div class="verdict {word}" data-valid="{word}">'
        f'<div><div class="word">{word.upper()}</div>'
        f'<div class="source">Verdict {escape(page.choice.description)}.</div></div>'
        f'<ul class="counts">{chips}</ul>'
        f'<a class="download" download="verdict.json" '
        f'href="data:application/json;base64,{page.verdict_b64}">Download verdict.json</a>'
        f"</div>{warn}"
        + (f'<h3>Could not check</h3><ul class="failures">{failures}</ul>' if failures else "")
        + f"{note}</section>"
    )


def _checks(page: Page) -> str:
    v = page.choice.verdict
    failed = {f.detector: f.error for f in v.failures}
    rows = []
    for name in ANOMALY_TYPES:
        n = v.anomaly_counts.get(name, 0)
        if n:
            status = _pill("invalid", f"{n:,} found")
        elif name in failed:
            status = _pill("unknown", "could not run")
        elif name in SERVER_CHECKS and not page.choice.server_checks_run:
            status = _pill("notrun", "not run")
        else:
            status = _pill("valid", "none")
        rows.append(
            f'<tr class="{"found" if n else ""}" data-check="{name}"><td><b>{name}</b></td>'
            f"<td>{escape(MEANING[name])}</td><td>{status}</td></tr>"
        )
    return (
        '<section id="checks"><h2>Checks</h2><table><thead><tr><th>Anomaly</th>'
        f"<th>Meaning</th><th>Result</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</section>"
    )


def _anomaly_runs(page: Page, spans: Sequence[Span]) -> str:
    """The verdict's anomaly groups in words, each placed in the fault window (or checker
    annotation) it arose in, timed from the timeline's origin."""
    groups = page.choice.verdict.groups
    if not groups:
        return ""
    windows = [(s.name, s.start, s.end) for s in spans if s.kind in ("fault", "annotation")]
    faults = [(s.name, s.start, s.end) for s in spans if s.kind == "fault"]
    # Fault windows win over the experiment-wide annotations around them.
    placed = place_groups(place_groups(groups, windows), faults)
    lines = describe(placed, page.facts.timeline.origin)
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<h3>In runs</h3><ul class="runs">{items}</ul>'


def _anomalies(page: Page, spans: Sequence[Span] = ()) -> str:
    v = page.choice.verdict
    total = sum(v.anomaly_counts.values())
    origin = page.facts.timeline.origin
    if not page.anomalies:
        text = "No anomaly found."
        if not page.choice.server_checks_run:
            text += " (Only the history-based detectors ran: see above.)"
        return f'<section id="anomalies"><h2>Anomalies</h2><p>{escape(text)}</p></section>'
    rows = "".join(
        f'<tr class="anomaly" data-type="{escape(a.type)}"><td><b>{escape(a.type)}</b></td>'
        f"<td>{_code(a.node)}</td><td>{_code(a.writer_id)}</td>"
        f'<td class="num">{"-" if a.seq is None else escape(str(a.seq))}</td>'
        f'<td class="wrap">{_code(a.server)}</td><td class="when">{_when(a.when, origin)}</td>'
        f'<td class="evidence">{_evidence(a.evidence, a.attempt)}</td></tr>'
        for a in page.anomalies
    )
    shown = len(page.anomalies)
    capped = (
        f'<p class="note">Showing {shown:,} of {total:,} anomalies: the verdict keeps at most '
        f"{escape(str(v.cap))} examples per type; the counts above are exact.</p>"
        if shown < total
        else ""
    )
    return (
        f'<section id="anomalies"><h2>Anomalies ({total:,})</h2>{_anomaly_runs(page, spans)}'
        f"{capped}"
        '<table class="anomalies"><thead><tr><th>Type</th><th>Node</th><th>Writer</th>'
        "<th>Seq</th><th>Server identity</th><th>When</th><th>Evidence</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _evidence(evidence: Mapping[str, Any], attempt: Mapping[str, Any] | None) -> str:
    inline = [
        f'<span class="k">{escape(str(k))}</span> {escape(_short(v))}'
        for k, v in list(evidence.items())[:_EVIDENCE_INLINE]
    ]
    full: dict[str, Any] = {"evidence": dict(evidence)}
    if attempt is not None:
        full["journal"] = dict(attempt)
    dump = escape(json.dumps(full, indent=2, default=str))
    return (
        f"{'<br>'.join(inline) or '-'}"
        f"<details><summary>all evidence</summary><pre>{dump}</pre></details>"
    )


def _short(v: Any, limit: int = 80) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _legend(title: str, items: Iterable[tuple[str, str, str]]) -> str:
    lis = "".join(
        f'<li><span class="sw {shape} {cls}"></span>{escape(label)}</li>'
        for cls, shape, label in items
    )
    return f'<ul class="legend"><li class="title">{escape(title)}</li>{lis}</ul>'


def _timeline(page: Page, spans: Sequence[Span]) -> str:
    f = page.facts
    tl = f.timeline
    x = svg.XScale(tl.origin, tl.end)
    marks = [(a.when, f"{a.type} {a.writer_id or ''}:{a.seq or ''}") for a in page.anomalies]
    anomaly_marks = [(t, label) for t, label in marks if t is not None]
    kinds = sorted({s.kind for s in spans})
    nodes = _node_names(page)
    outcome_items = [
        ("s-ok", "", "ok (acknowledged)"),
        ("s-failed", "dot", "failed"),
        ("s-indeterminate", "diamond", "indeterminate"),
    ]
    if anomaly_marks:
        outcome_items.append(("s-anomaly", "tri", "anomaly"))
    unknown_lag = ", ".join(f"{n} {c:,}" for n, c in sorted(tl.lag_unknown.items()))
    return (
        '<section id="timeline"><h2>Timeline</h2>'
        f'<p class="note">Time axis: seconds since {escape(utc(tl.origin))}; one point per '
        f"{tl.width:g} s. Shaded bands are chaos activities (hover for details).</p>"
        + _legend(
            "Chaos activities",
            [(f"span-{k}", "box", k) for k in kinds] or [("", "", "none recorded")],
        )
        + svg.lane_strip(x, spans)
        + _legend("Writes per second by outcome", outcome_items)
        + svg.writes_chart(x, tl, spans, anomaly_marks)
        + _legend(
            "Commit latency of acknowledged writes",
            [
                ("s-p50", "", "p50"),
                ("s-p95", "", "p95"),
                ("s-p99", "", "p99"),
                ("s-failed", "dot", "slowest failed"),
                ("s-indeterminate", "diamond", "slowest indeterminate"),
            ],
        )
        + svg.latency_chart(x, tl, spans)
        + _legend(
            "Replica lag (worst sample per point)",
            [(f"node-{i % svg.NODE_CLASSES}", "", n) for i, n in enumerate(nodes)],
        )
        + svg.lag_chart(x, tl, spans, nodes)
        + (
            f'<p class="note">Gaps: lag unknown (replica unreachable or not replicating); '
            f"unknown samples per node: {escape(unknown_lag)}.</p>"
            if unknown_lag
            else ""
        )
        + "</section>"
    )


def _node_names(page: Page) -> list[str]:
    f = page.facts
    names = set(page.choice.verdict.nodes) | set(f.timeline.lag)
    names |= {i.node for i in f.identities if i.node}
    names |= {n for n in f.node_outcomes if n != "?"}
    return sorted(names)


def _nodes(page: Page) -> str:
    f = page.facts
    origin = f.timeline.origin
    verdicts = page.choice.verdict.nodes
    raw_nodes = page.choice.data.get("nodes") if isinstance(page.choice.data, dict) else None
    raw_nodes = raw_nodes if isinstance(raw_nodes, dict) else {}
    rows = []
    for name in _node_names(page):
        nv = verdicts.get(name)
        state = _pill(_WORD[nv.valid], _WORD[nv.valid]) if nv else _pill("notrun", "not verified")
        outcomes = f.node_outcomes.get(name, {})
        writes = ", ".join(
            f'<span class="c-{o}">{outcomes[o]:,} {o}</span>' for o in OUTCOMES if outcomes.get(o)
        )
        spells = "<br>".join(
            f"{_rel(i.first, origin)} → {_rel(i.last, origin)}: {i.acks:,} acks as "
            f"{_code(i.server)}"
            for i in f.identities
            if i.node == name
        )
        lag = [v for _, v in f.timeline.lag.get(name, []) if v is not None]
        extra = raw_nodes.get(name) if isinstance(raw_nodes.get(name), dict) else {}
        server = extra.get("server") if extra else None
        rows.append(
            f'<tr data-node="{escape(name)}"><td class="name"><b>{escape(name)}</b></td>'
            f"<td>{escape((nv.role if nv else None) or '-')}</td><td>{state}</td>"
            f'<td class="num">{"-" if not nv or nv.rows is None else f"{nv.rows:,}"}</td>'
            f'<td class="wrap">{_gtid(nv.gtid if nv else None)}'
            f"{'<br>server ' + _code(server) if server else ''}</td>"
            f"<td>{writes or '-'}</td><td>{spells or '-'}</td>"
            f'<td class="num">{f"{max(lag):.3f} s" if lag else "-"}</td>'
            f"<td>{escape((nv.reason if nv else None) or '')}</td></tr>"
        )
    return (
        '<section id="nodes"><h2>Nodes</h2>'
        '<p class="note">Role, rows and GTID set are as the verdict found them at the end; '
        "writes are by the node the writer's connection was routed to; primary spells are "
        "when each server identity acknowledged writes (a restart is a new identity).</p>"
        '<table class="nodes"><thead><tr><th>Node</th><th>Role</th><th>Verdict</th>'
        "<th>Rows</th><th>GTID set</th><th>Writes via</th><th>Primary spells</th>"
        f"<th>Max lag</th><th>Reason</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + _role_changes(page)
        + "</section>"
    )


def _role_changes(page: Page) -> str:
    """Where the primary went: each new server identity acknowledging writes is a change."""
    f = page.facts
    origin = f.timeline.origin
    items = []
    previous = None
    for ident in f.identities:
        if previous is None:
            what = f"{ident.node or '?'} is primary"
        elif ident.node != previous.node:
            what = f"primary moves from {previous.node or '?'} to {ident.node or '?'}"
        else:
            what = f"{ident.node or '?'} restarted (new server identity), primary again"
        items.append(
            f"<li>{escape(_rel(ident.first, origin))}: {escape(what)} "
            f'<span class="note">({_code(ident.server)})</span></li>'
        )
        previous = ident
    if not items:
        return '<h3>Role changes</h3><p class="note">No write was acknowledged.</p>'
    return f'<h3>Role changes</h3><ul class="roles">{"".join(items)}</ul>'


def _yes_no(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "no")


def _activities(page: Page, spans: Sequence[Span]) -> str:
    origin = page.facts.timeline.origin
    head = ""
    c = page.chaos
    if c is not None:
        met = {True: "met", False: "NOT met", None: "-"}
        head = (
            f"<p>Experiment <b>{escape(c.title)}</b>: status {_code(c.status)}, "
            f"deviated: {_yes_no(c.deviated)}; steady state before: {met[c.steady_before]}, "
            f"after: {met[c.steady_after]}.</p>"
        )
    if not spans:
        return (
            f'<section id="activities"><h2>Chaos activities</h2>{head}<p class="note">None '
            "recorded: no annotation in the journal and no --chaos-journal.</p></section>"
        )
    rows = "".join(
        f'<tr class="activity-row" data-kind="{escape(s.kind)}">'
        f'<td><span class="sw box span-{escape(s.kind)}"></span> {escape(s.name)}</td>'
        f"<td>{escape(s.kind)}</td><td>{escape(s.source)}</td>"
        f'<td class="when">{_when(s.start, origin)}</td>'
        f'<td class="num">{"open" if s.end is None else f"{s.end - s.start:.3f} s"}</td>'
        f"<td>{escape(s.status or '')}</td><td>{escape(s.detail or '')}</td></tr>"
        for s in spans
    )
    return (
        f'<section id="activities"><h2>Chaos activities</h2>{head}'
        "<table><thead><tr><th>Activity</th><th>Kind</th><th>Source</th><th>Start</th>"
        f"<th>Duration</th><th>Status</th><th>Detail</th></tr></thead><tbody>{rows}</tbody>"
        "</table></section>"
    )


def _events(page: Page) -> str:
    f = page.facts
    origin = f.timeline.origin
    rows = "".join(
        f'<tr><td class="when">{_when(e["time"], origin)}</td><td><b>{escape(e["kind"])}</b>'
        f"</td><td>{_kv(e['detail'])}</td></tr>"
        for e in f.events
    )
    more = (
        f'<p class="note">First {len(f.events)} of {f.events_total:,} events.</p>'
        if f.events_total > len(f.events)
        else ""
    )
    return (
        '<section id="events"><h2>Checker events</h2>'
        f'<p class="note">{f.reads:,} reads journaled; {f.verifications} verification(s).</p>'
        f"{more}<table><thead><tr><th>When</th><th>Event</th><th>Detail</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _kv(detail: Mapping[str, Any]) -> str:
    return "<br>".join(
        f'<span class="note">{escape(str(k))}</span> {escape(_short(v, 120))}'
        for k, v in detail.items()
    )


def _verdict_json(page: Page) -> str:
    return (
        '<section id="verdict-json"><h2>Verdict JSON</h2>'
        "<p>The verdict as JSON (its contract: docs/verdict.md), also "
        'written next to this page as <code>verdict.json</code>. <a class="download" '
        'download="verdict.json" href="data:application/json;base64,'
        f'{page.verdict_b64}">Download verdict.json</a></p>'
        f'<details><summary>Show</summary><pre class="json">{escape(page.verdict_json)}</pre>'
        "</details></section>"
    )


def _summarised_note(summarised: dict[str, Any] | None) -> str:
    """Which span retention summarised (`checker.journal.compact`), or nothing."""
    if summarised is None:
        return ""
    span = " to ".join(_utc(t) for t in (summarised["first"], summarised["last"]) if t)
    return (
        f'<p class="note" id="summarised">Summarised history: {summarised["attempts"]:,} '
        f"writes ({span or 'no timed writes'}) were verified clean and then folded by "
        "retention into per-second and per-grain aggregates; reads, lag and bank samples "
        f"before {_utc(summarised['samples_before'])} likewise. Their counts and plots are "
        "here; their individual records are not.</p>"
    )


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
