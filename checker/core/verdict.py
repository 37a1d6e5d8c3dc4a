"""Anomalies, the three-valued verdict, merging partial verdicts, and the JSON contract.

The JSON form is read back by other tools (the HTTP API, the report, probes): its shape is
documented in docs/verdict.md and versioned by `VERSION`. Keys are emitted in a fixed order,
every anomaly type always appears in `anomaly_counts`, and examples are capped per type so a
run with a million lost rows still yields a small document; the counts stay exact.

Over 600 lines on purpose: every record of the JSON contract reads and writes itself here, next
to the rules that build it (`build_verdict`, `merge`), so the contract has one home to review.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "ANOMALY_TYPES",
    "DEFAULT_CAP",
    "VERSION",
    "Anomaly",
    "Counts",
    "Failure",
    "Group",
    "NodeVerdict",
    "Recovery",
    "Validity",
    "Verdict",
    "build_verdict",
    "group_anomalies",
    "merge",
    "place_groups",
]

VERSION = 1
"""Version of the JSON form; bumped only when a key changes meaning or disappears."""

DEFAULT_CAP = 100
"""Examples kept per anomaly type (and for recovered writes) in a verdict."""

ANOMALY_TYPES = (
    "lost",
    "duplicated",
    "corrupted",
    "unexpected",
    "divergent",
    "errant",
    "split_brain",
    "stale",
    "non_monotonic",
    "bank_total",
)
_TYPE_ORDER = {name: i for i, name in enumerate(ANOMALY_TYPES)}

_WHERE: dict[str, tuple[str, str | None]] = {
    "lost": ("acked_at", "acked_by"),
    "unexpected": ("failed_at", "server"),  # reported failed; never attempted: neither
    "split_brain": ("overlap", None),  # its start; two identities (evidence), none its own
    "stale": ("acked_at", "server"),  # the first write the read missed; the server read
    "non_monotonic": ("read_at", "server"),
    "bank_total": ("time", "server"),  # null for a final total
}
"""Per anomaly type, the evidence keys holding when it happened and the server identity it
concerns (docs/verdict.md, `groups`); other types have neither."""


class Validity(enum.Enum):
    """Jepsen's three answers. INVALID is proof of an anomaly; UNKNOWN means "could not check"."""

    VALID = True
    INVALID = False
    UNKNOWN = "unknown"

    @property
    def json(self) -> bool | str:
        value: bool | str = self.value
        return value

    @classmethod
    def from_json(cls, value: object) -> Validity:
        for member in cls:
            # `is` because True == 1 would otherwise match a stray integer.
            if member.value is value or (isinstance(value, str) and member.value == value):
                return member
        raise ValueError(f"not a verdict validity: {value!r} (expected true, false or 'unknown')")


def _worst(a: Validity, b: Validity) -> Validity:
    # An anomaly is proof whatever else failed; "unknown" beats "valid".
    if Validity.INVALID in (a, b):
        return Validity.INVALID
    if Validity.UNKNOWN in (a, b):
        return Validity.UNKNOWN
    return Validity.VALID


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One finding. `node`, `writer_id` and `seq` are None where they do not apply.

    `evidence` is JSON-ready data (lists, not tuples) explaining the finding. Its detector puts
    when it happened and the server identity it concerns in the keys its type names (`_WHERE`):
    `when` and `server` read those, so they come back with the evidence from the JSON form.
    """

    type: str
    node: str | None = None
    writer_id: str | None = None
    seq: int | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in _TYPE_ORDER:
            raise ValueError(
                f"unknown anomaly type {self.type!r}; known: {', '.join(ANOMALY_TYPES)}"
            )

    @property
    def when(self) -> float | None:
        """Wall-clock seconds the anomaly happened at (None: its type or case has no time)."""
        t = self.evidence.get(_WHERE[self.type][0]) if self.type in _WHERE else None
        if isinstance(t, list):  # a split brain's overlap: its start
            t = t[0] if t else None
        return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else None

    @property
    def server(self) -> str | None:
        """The server identity that acknowledged, failed or served it (None: none applies)."""
        key = _WHERE[self.type][1] if self.type in _WHERE else None
        value = None if key is None else self.evidence.get(key)
        return str(value) if value else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "node": self.node,
            "writer_id": self.writer_id,
            "seq": self.seq,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Anomaly:
        return cls(
            type=data["type"],
            node=data.get("node"),
            writer_id=data.get("writer_id"),
            seq=data.get("seq"),
            evidence=dict(data.get("evidence") or {}),
        )


@dataclass(frozen=True, slots=True)
class Recovery:
    """An INDETERMINATE write found present: reported, not an anomaly."""

    node: str
    writer_id: str
    seq: int
    row_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "writer_id": self.writer_id,
            "seq": self.seq,
            "row_id": self.row_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recovery:
        return cls(data["node"], data["writer_id"], data["seq"], data.get("row_id"))


@dataclass(frozen=True, slots=True)
class Group:
    """Anomalies of one type, on one node, of one writer, acknowledged (or seen) by one server
    identity: how many, their seq, row id and time ranges, and the chaos activity whose window
    the first of them arose in (`place_groups`). Exact: built from every anomaly, not from the
    capped examples. `table` names the small table of a divergence outside the ledger."""

    type: str
    node: str | None
    writer_id: str | None
    server: str | None
    count: int
    seq_first: int | None = None
    seq_last: int | None = None
    id_first: int | None = None
    id_last: int | None = None
    time_first: float | None = None
    time_last: float | None = None
    activity: str | None = None
    table: str | None = None

    def key(self) -> tuple[str, str, str, str, str]:
        return (
            self.type,
            self.node or "",
            self.writer_id or "",
            self.server or "",
            self.table or "",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "node": self.node,
            "writer_id": self.writer_id,
            "server": self.server,
            "count": self.count,
            "seq": [self.seq_first, self.seq_last],
            "ids": [self.id_first, self.id_last],
            "time": [self.time_first, self.time_last],
            "activity": self.activity,
            "table": self.table,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Group:
        seq = list(data.get("seq") or (None, None))
        ids = list(data.get("ids") or (None, None))
        t = list(data.get("time") or (None, None))
        return cls(
            data["type"],
            data.get("node"),
            data.get("writer_id"),
            data.get("server"),
            int(data.get("count", 0)),
            seq[0],
            seq[1],
            ids[0],
            ids[1],
            t[0],
            t[1],
            data.get("activity"),
            data.get("table"),
        )


def _lo(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _hi(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def _join(a: Group, b: Group) -> Group:
    return replace(
        a,
        count=a.count + b.count,
        seq_first=_lo(a.seq_first, b.seq_first),
        seq_last=_hi(a.seq_last, b.seq_last),
        id_first=_lo(a.id_first, b.id_first),
        id_last=_hi(a.id_last, b.id_last),
        time_first=_lo(a.time_first, b.time_first),
        time_last=_hi(a.time_last, b.time_last),
        activity=a.activity if a.activity is not None else b.activity,
    )


def _one(a: Anomaly) -> Group:
    ev = a.evidence
    t = a.when
    ids = [i for i in (ev.get("row_id"), ev.get("id")) if isinstance(i, int)]
    if isinstance(ev.get("ids"), list):
        ids += [i for i in ev["ids"] if isinstance(i, int)]
    table = ev.get("table") if isinstance(ev.get("table"), str) else None
    return Group(
        a.type,
        a.node,
        a.writer_id,
        a.server,
        1,
        a.seq,
        a.seq,
        min(ids) if ids else None,
        max(ids) if ids else None,
        t,
        t,
        None,
        table,
    )


def _fold(groups: Iterable[Group]) -> tuple[Group, ...]:
    found: dict[tuple[str, str, str, str, str], Group] = {}
    for g in groups:
        k = g.key()
        found[k] = _join(found[k], g) if k in found else g
    return tuple(sorted(found.values(), key=lambda g: (_TYPE_ORDER.get(g.type, 99), *g.key()[1:])))


def group_anomalies(anomalies: Iterable[Anomaly]) -> tuple[Group, ...]:
    """Anomalies as runs: one group per (type, node, writer, server identity, table)."""
    return _fold(_one(a) for a in anomalies)


def place_groups(
    groups: Iterable[Group], windows: Iterable[tuple[str, float, float | None]]
) -> tuple[Group, ...]:
    """Name, for each group with a time, the activity whose window `(name, start, end)` (end
    None: still open) held its first anomaly; the latest-starting one if several (the most
    specific: a fault inside the experiment-wide window)."""
    spans = sorted(windows, key=lambda w: w[1])
    out = []
    for g in groups:
        t = g.time_first
        hit = None
        if t is not None:
            for name, start, end in spans:
                if start <= t and (end is None or t <= end):
                    hit = name
        out.append(replace(g, activity=hit) if hit is not None else g)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Failure:
    """A detector (or a step it needs) that could not run, and why: the verdict is then unknown."""

    detector: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Failure:
        return cls(data["detector"], data["error"])


@dataclass(frozen=True, slots=True)
class Counts:
    """How many writes were attempted, by outcome, and how many indeterminate ones were found."""

    attempted: int = 0
    ok: int = 0
    failed: int = 0
    indeterminate: int = 0
    recovered: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "attempted": self.attempted,
            "ok": self.ok,
            "failed": self.failed,
            "indeterminate": self.indeterminate,
            "recovered": self.recovered,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        return cls(**{k: int(data.get(k, 0)) for k in cls.__dataclass_fields__})

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.attempted + other.attempted,
            self.ok + other.ok,
            self.failed + other.failed,
            self.indeterminate + other.indeterminate,
            self.recovered + other.recovered,
        )


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    """One node's part of the verdict; `reason` explains an unknown."""

    valid: Validity
    role: str | None = None
    gtid: str | None = None
    rows: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid.json,
            "role": self.role,
            "gtid": self.gtid,
            "rows": self.rows,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeVerdict:
        return cls(
            Validity.from_json(data["valid"]),
            data.get("role"),
            data.get("gtid"),
            data.get("rows"),
            data.get("reason"),
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer of an analysis; see docs/verdict.md for its JSON form."""

    valid: Validity
    counts: Counts
    anomaly_counts: Mapping[str, int]
    anomalies: tuple[Anomaly, ...]
    nodes: Mapping[str, NodeVerdict]
    recovered: tuple[Recovery, ...] = ()
    failures: tuple[Failure, ...] = ()
    cap: int = DEFAULT_CAP
    groups: tuple[Group, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "valid": self.valid.json,
            "counts": self.counts.to_dict(),
            "anomaly_counts": {name: self.anomaly_counts.get(name, 0) for name in ANOMALY_TYPES},
            "anomalies": [a.to_dict() for a in self.anomalies],
            "nodes": {name: self.nodes[name].to_dict() for name in sorted(self.nodes)},
            "recovered": [r.to_dict() for r in self.recovered],
            "failures": [f.to_dict() for f in self.failures],
            "cap": self.cap,
            "groups": [g.to_dict() for g in self.groups],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Parse the JSON form; keys added by later versions are ignored."""
        counts = data.get("anomaly_counts") or {}
        return cls(
            valid=Validity.from_json(data["valid"]),
            counts=Counts.from_dict(data.get("counts") or {}),
            anomaly_counts={name: int(counts.get(name, 0)) for name in ANOMALY_TYPES},
            anomalies=tuple(Anomaly.from_dict(a) for a in data.get("anomalies") or ()),
            nodes={
                name: NodeVerdict.from_dict(node)
                for name, node in sorted((data.get("nodes") or {}).items())
            },
            recovered=tuple(Recovery.from_dict(r) for r in data.get("recovered") or ()),
            failures=tuple(Failure.from_dict(f) for f in data.get("failures") or ()),
            cap=int(data.get("cap", DEFAULT_CAP)),
            groups=tuple(Group.from_dict(g) for g in data.get("groups") or ()),
        )

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        return cls.from_dict(json.loads(text))


def _cheap_key(a: Anomaly) -> tuple[int, str, str, int]:
    return (_TYPE_ORDER[a.type], a.node or "", a.writer_id or "", -1 if a.seq is None else a.seq)


def _full_key(a: Anomaly) -> tuple[tuple[int, str, str, int], str]:
    return (_cheap_key(a), json.dumps(a.evidence, sort_keys=True, default=str))


def _examples(anomalies: list[Anomaly], cap: int) -> list[Anomaly]:
    """The first `cap` anomalies in canonical order, whatever order they arrived in.

    Sorting on the cheap key first keeps a million-anomaly run fast; the evidence only breaks
    ties, and only at the cut-off and within the kept examples.
    """
    anomalies.sort(key=_cheap_key)
    end = min(cap, len(anomalies))
    if 0 < end < len(anomalies):
        boundary = _cheap_key(anomalies[end - 1])
        while end < len(anomalies) and _cheap_key(anomalies[end]) == boundary:
            end += 1
    kept = sorted(anomalies[:end], key=_full_key)
    return kept[:cap]


def _ids(a: Anomaly) -> set[int]:
    ids = a.evidence.get("ids")
    return {i for i in ids if isinstance(i, int)} if isinstance(ids, list) else set()


def _merge_duplicates(anomalies: Iterable[Anomaly]) -> list[Anomaly]:
    """Fold the `duplicated` findings of one (node, writer, seq) into one, ids united.

    The same duplicate can be found inside a chunk and again by the GROUP BY query.
    """
    out: list[Anomaly] = []
    dups: dict[tuple[str | None, str | None, int | None], Anomaly] = {}
    for a in anomalies:
        if a.type != "duplicated":
            out.append(a)
            continue
        key = (a.node, a.writer_id, a.seq)
        seen = dups.get(key)
        if seen is None:
            dups[key] = a
            continue
        ids = sorted(_ids(seen) | _ids(a))
        dups[key] = replace(seen, evidence={**seen.evidence, "ids": ids, "copies": len(ids)})
    out.extend(dups.values())
    return out


def _overall(
    anomaly_counts: Mapping[str, int],
    failures: tuple[Failure, ...],
    nodes: Mapping[str, NodeVerdict],
) -> Validity:
    if any(anomaly_counts.values()):
        return Validity.INVALID
    if failures or any(n.valid is not Validity.VALID for n in nodes.values()):
        return Validity.UNKNOWN
    return Validity.VALID


def _capped_recoveries(recovered: Iterable[Recovery], cap: int) -> tuple[int, tuple[Recovery, ...]]:
    unique: dict[tuple[str, str, int], Recovery] = {}
    for r in recovered:
        key = (r.node, r.writer_id, r.seq)
        seen = unique.get(key)
        # A write applied twice (also a duplicate) is shown by its lowest row id, whatever
        # order the ranges were checked in.
        if seen is None or (
            r.row_id is not None and (seen.row_id is None or r.row_id < seen.row_id)
        ):
            unique[key] = r
    ordered = [unique[k] for k in sorted(unique)]
    return len(unique), tuple(ordered[:cap])


def build_verdict(
    anomalies: Iterable[Anomaly],
    *,
    counts: Counts | None = None,
    nodes: Mapping[str, NodeVerdict] | None = None,
    recovered: Iterable[Recovery] = (),
    failures: Iterable[Failure] = (),
    cap: int = DEFAULT_CAP,
) -> Verdict:
    """Turn every finding of one analysis into a Verdict.

    Feed all anomalies of the analysis at once (they are counted exactly and deduplicated,
    then capped). A node named by an anomaly is invalid; `counts.recovered` is replaced by the
    number of distinct recovered writes.
    """
    everything = _merge_duplicates(anomalies)
    by_type: dict[str, list[Anomaly]] = {name: [] for name in ANOMALY_TYPES}
    for a in everything:
        by_type[a.type].append(a)
    anomaly_counts = {name: len(found) for name, found in by_type.items()}
    examples = tuple(a for name in ANOMALY_TYPES for a in _examples(by_type[name], cap))

    node_verdicts = dict(nodes or {})
    for name in sorted({a.node for a in everything if a.node is not None}):
        node = node_verdicts.get(name, NodeVerdict(Validity.INVALID))
        node_verdicts[name] = replace(node, valid=Validity.INVALID)

    n_recovered, recovered_examples = _capped_recoveries(recovered, cap)
    failure_list = tuple(failures)
    return Verdict(
        valid=_overall(anomaly_counts, failure_list, node_verdicts),
        counts=replace(counts or Counts(), recovered=n_recovered),
        anomaly_counts=anomaly_counts,
        anomalies=examples,
        nodes=dict(sorted(node_verdicts.items())),
        recovered=recovered_examples,
        failures=failure_list,
        cap=cap,
        groups=group_anomalies(everything),
    )


def _merge_nodes(a: NodeVerdict, b: NodeVerdict) -> NodeVerdict:
    rows = None if a.rows is None and b.rows is None else (a.rows or 0) + (b.rows or 0)
    reasons = [r for r in (a.reason, b.reason) if r]
    return NodeVerdict(
        valid=_worst(a.valid, b.valid),
        role=a.role or b.role,
        gtid=a.gtid or b.gtid,
        rows=rows,
        reason="; ".join(dict.fromkeys(reasons)) or None,
    )


def merge(verdicts: Iterable[Verdict], *, cap: int | None = None) -> Verdict:
    """Combine verdicts of independent parts (per chunk range, ledger and bank, ...).

    Counts and anomaly counts add up; examples are re-capped; a node's validity is the worst of
    its parts and its row counts add up. Duplicates found in two parts are not folded here:
    pass all anomalies of one check to `build_verdict` instead.
    """
    parts = list(verdicts)
    limit = cap if cap is not None else max((v.cap for v in parts), default=DEFAULT_CAP)
    counts = Counts()
    anomaly_counts = dict.fromkeys(ANOMALY_TYPES, 0)
    examples: dict[str, list[Anomaly]] = {name: [] for name in ANOMALY_TYPES}
    nodes: dict[str, NodeVerdict] = {}
    recovered: list[Recovery] = []
    failures: list[Failure] = []
    for v in parts:
        counts = counts + v.counts
        for name in ANOMALY_TYPES:
            anomaly_counts[name] += v.anomaly_counts.get(name, 0)
        for a in v.anomalies:
            examples[a.type].append(a)
        for name, node in v.nodes.items():
            nodes[name] = _merge_nodes(nodes[name], node) if name in nodes else node
        recovered.extend(v.recovered)
        failures.extend(v.failures)
    _, recovered_examples = _capped_recoveries(recovered, limit)
    failure_list = tuple(failures)
    return Verdict(
        valid=_overall(anomaly_counts, failure_list, nodes),
        counts=counts,
        anomaly_counts=anomaly_counts,
        anomalies=tuple(a for name in ANOMALY_TYPES for a in _examples(examples[name], limit)),
        nodes=dict(sorted(nodes.items())),
        recovered=recovered_examples,
        failures=failure_list,
        cap=limit,
        groups=_fold(g for v in parts for g in v.groups),
    )
