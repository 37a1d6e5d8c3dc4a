"""Incremental verification: which ledger ids a periodic pass checks, the passes' durable
record, and the findings an incremental pass carries over from the passes before it.

A *full* pass checks every ledger id (the verification of issue 15, unchanged). An
*incremental* pass checks only the ids from its lower bound `since` up to the primary's highest
id, and everything else as a full pass does (the GTID barrier, errant GTIDs, the journal's own
checks, duplicates of the keys it saw, unregistered writers in its range). Its lower bound,
`incremental_since`, starts from the last *complete* pass (one that judged every node on its
whole range: the watermark) and reaches back for rows that landed late:

- every row id of an attempt invoked since `--verify-overlap` seconds (default
  `LATE_COMMIT_MARGIN`) before the watermark pass began: an attempt in flight then, an
  INDETERMINATE one whose transaction committed later, ids reused below the watermark after a
  failover. All are this run's attempts and the journal has their row ids; an INDETERMINATE
  attempt has none, but its id was allocated among its neighbours', which are in;
- down to a whole grain of 1,000 ids (the expectations cache's unit), which also covers other
  clients' transactions allocated ids among this run's and committed a little later.

A row that lands later still, below the bound, is judged by the next full pass (on its own,
slower schedule, and always at the end of a run). The durable state is the `verification`
section of the verdict each pass journals (`verifications` table): the last pass of each kind
and the last complete one, so a restarted checker continues incrementally.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from checker.core.verdict import (
    Anomaly,
    NodeVerdict,
    Validity,
    Verdict,
    build_verdict,
    merge,
)
from checker.journal import Journal
from checker.journal.reader import JournalReader
from checker.verify.expectations import GRAIN
from checker.verify.model import Verification

FULL = "full"
INCREMENTAL = "incremental"
LATE_COMMIT_MARGIN = 120.0
"""Seconds before the watermark pass began whose attempts' rows an incremental pass re-checks
(`--verify-overlap`'s default). Longer than a transaction outlives its client's statement
timeout in practice (InnoDB's lock wait timeout is 50 s, the semi-sync ack timeout 10 s)."""

CARRIED_TYPES = frozenset({"lost", "duplicated", "corrupted", "unexpected", "divergent"})
"""Findings judged per id range: an incremental pass that did not look at a range keeps the
earlier passes' findings there. The others (errant GTIDs, the journal's own checks) are
judged afresh by every pass."""


@dataclass(frozen=True)
class Pass:
    """One verification pass: its kind, the ids it checked (None: no ledger row yet), when,
    its merged verdict's validity, and whether it judged every node on that range."""

    kind: str
    range: tuple[int, int] | None
    started: float
    finished: float
    valid: bool | str
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "range": list(self.range) if self.range is not None else None,
            "started": self.started,
            "finished": self.finished,
            "valid": self.valid,
            "complete": self.complete,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Pass | None:
        if not isinstance(data, dict) or data.get("kind") not in (FULL, INCREMENTAL):
            return None
        try:
            r = data.get("range")
            return cls(
                kind=str(data["kind"]),
                range=(int(r[0]), int(r[1])) if r else None,
                started=float(data["started"]),
                finished=float(data["finished"]),
                valid=data.get("valid", "unknown"),
                complete=bool(data.get("complete")),
            )
        except (KeyError, TypeError, ValueError, IndexError):
            return None


@dataclass(frozen=True)
class Passes:
    """The last pass of each kind, and the last complete one (the watermark)."""

    last_full: Pass | None = None
    last_incremental: Pass | None = None
    last_complete: Pass | None = None

    def after(self, p: Pass) -> Passes:
        """These passes once `p` finished. A complete incremental pass moves the watermark
        only if one existed (its range reached back to it); a complete full pass sets it."""
        if p.kind == FULL:
            return replace(self, last_full=p, last_complete=p if p.complete else self.last_complete)
        moves = p.complete and self.last_complete is not None
        return replace(self, last_incremental=p, last_complete=p if moves else self.last_complete)

    def section(self) -> dict[str, Any]:
        """The verdict's `verification` entries for them."""
        return {
            "last_full": _dict(self.last_full),
            "last_incremental": _dict(self.last_incremental),
            "last_complete": _dict(self.last_complete),
        }

    def verdict_section(self) -> dict[str, Any]:
        """A running checker's `verification` section: its last pass (kind, range, times,
        validity), and the last of each kind."""
        done = [p for p in (self.last_full, self.last_incremental) if p is not None]
        last = max(done, key=lambda p: p.finished) if done else None
        head = last.to_dict() if last is not None else {"kind": None, "range": None}
        return {**head, **self.section()}


def _dict(p: Pass | None) -> dict[str, Any] | None:
    return p.to_dict() if p is not None else None


def complete(verdict: Verdict) -> bool:
    """Whether a pass judged every node on its range: no node unknown, no check that failed."""
    return not verdict.failures and all(
        n.valid is not Validity.UNKNOWN for n in verdict.nodes.values()
    )


def recorded(journal: Journal) -> tuple[Passes, Verdict | None]:
    """The passes and the findings of the last verdict a checker journaled (one row read);
    nothing when there is none or it cannot be read (the next pass is then a full one)."""
    try:
        db = JournalReader(journal)
        try:
            last = db.last_verification()
        finally:
            db.close()
    except Exception:  # noqa: BLE001 - unreadable: start afresh, with a full pass
        return Passes(), None
    if last is None:
        return Passes(), None
    try:
        data = json.loads(last[2])
        verdict = Verdict.from_dict(data)
    except (ValueError, KeyError, TypeError):
        return Passes(), None
    section = data.get("verification") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return Passes(), verdict
    passes = Passes(
        last_full=Pass.from_dict(section.get("last_full")),
        last_incremental=Pass.from_dict(section.get("last_incremental")),
        last_complete=Pass.from_dict(section.get("last_complete")),
    )
    return passes, verdict


def incremental_since(
    journal: Journal, watermark: Pass, margin: float = LATE_COMMIT_MARGIN
) -> int | None:
    """The lowest id an incremental pass after `watermark` checks (module docstring); None:
    no lower bound (the watermark pass saw no ledger row: every id is new)."""
    if watermark.range is None:
        return None
    lows = [watermark.range[1] + 1]
    db = JournalReader(journal)
    try:
        first = db.first_attempt_since(watermark.started - margin)
        if first is not None:
            low = db.lowest_row_id_from(first)
            if low is not None:
                lows.append(low)
    finally:
        db.close()
    lo = min(lows)
    return max(0, lo - lo % GRAIN)


@dataclass(frozen=True)
class Plan:
    """`checker verify --incremental`: from the journaled watermark on (`since`), keeping the
    last journaled verdict's findings; with no watermark, a full pass."""

    since: int | None = None
    previous: Verdict | None = None
    passes: Passes = Passes()

    @classmethod
    def of(cls, journal: Journal, overlap: float = LATE_COMMIT_MARGIN) -> Plan:
        passes, previous = recorded(journal)
        if passes.last_complete is None:
            return cls(passes=passes)
        return cls(incremental_since(journal, passes.last_complete, overlap), previous, passes)

    def apply(self, result: Verification) -> Verification:
        """The verification with the findings carried over and the journaled passes."""
        if result.kind != INCREMENTAL:
            return result
        verdict = carry(self.previous, result.verdict)
        return replace(result, verdict=verdict, passes=self.passes.section())


def _key(a: Anomaly) -> tuple[Any, ...]:
    e = a.evidence
    return (a.type, a.node, a.writer_id, a.seq, e.get("id"), e.get("table"))


def carry(previous: Verdict | None, new: Verdict) -> Verdict:
    """An incremental pass's verdict with the earlier passes' range findings it did not find
    again (it may not have looked there): they stay until a full pass re-judges them.

    Counts are exact while a type has at most `cap` examples in each verdict; beyond that an
    anomaly found by both may be counted twice (never fewer than found)."""
    if previous is None:
        return new
    seen = {_key(a) for a in new.anomalies}
    kept = [a for a in previous.anomalies if a.type in CARRIED_TYPES]
    extra = [a for a in kept if _key(a) not in seen]
    unseen = {
        t: max(0, previous.anomaly_counts.get(t, 0) - sum(1 for a in kept if a.type == t))
        for t in CARRIED_TYPES
    }
    if not extra and not any(unseen.values()):
        return new
    nodes = {
        name: NodeVerdict(Validity.INVALID, role=nv.role)
        for name, nv in previous.nodes.items()
        if any(a.node == name for a in extra) or _named(previous, name, unseen)
    }
    out = merge([new, build_verdict(extra, nodes=nodes)], cap=new.cap)
    counts = {t: n + unseen.get(t, 0) for t, n in out.anomaly_counts.items()}
    return replace(out, anomaly_counts=counts, valid=_valid(out, counts))


def _named(previous: Verdict, node: str, unseen: dict[str, int]) -> bool:
    return any(
        g.node == node and unseen.get(g.type, 0) for g in previous.groups if g.type in unseen
    )


def _valid(v: Verdict, counts: dict[str, int]) -> Validity:
    return Validity.INVALID if any(counts.values()) else v.valid
