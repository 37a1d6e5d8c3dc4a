"""The journal's own history judged in bounded memory: acknowledgements (split brain), reads
(stale, non-monotonic) and bank observations, each streamed in windows and checked by the
core's detectors. They need no server: they run while the servers work, and still speak when
no server can be read (`unfinished`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby, islice
from operator import attrgetter
from typing import TypeVar

from checker.core import bank, primaries, replicas
from checker.core.detectors import combine, journal_checks
from checker.core.history import Attempt, Outcome, Read
from checker.core.verdict import Anomaly, Failure
from checker.journal import Journal
from checker.journal.reader import FETCH_BATCH, JournalReader, Outcomes
from checker.verify.expectations import cached_outcomes

T = TypeVar("T")

READ_WINDOW = 20_000
"""Reads judged at once (per writer, or per backend and writer)."""
ACK_WINDOW = 200_000
"""Acknowledgements held at once for one window of reads."""


def split_brain(db: JournalReader, servers: int) -> list[Anomaly]:
    """`primaries.split_brain` over every acknowledgement, without holding them in memory.

    The detector needs, per server identity, its first and last acknowledgement, and for an
    overlapping pair each one's first acknowledgement from the overlap's start on. The journal
    finds exactly those; the evidence's `acks` is then set to the identity's real count. With
    one identity (`servers`) there is nothing to look for.
    """
    if servers < 2:
        return []
    acks: dict[str, int] = {}
    acked: list[Attempt] = []
    for server in db.ack_servers():
        count, first, last = db.ack_span(server)
        acks[str(server)] = count
        acked += [first, last]
    spans = primaries.primary_spans(acked)
    for i, early in enumerate(spans):
        for late in spans[i + 1 :]:
            if late.first < early.last and early.first < late.last:
                for server in (early.server, late.server):
                    acked.extend(db.first_ack_since(server, late.first))
    acked.sort(key=lambda a: (a.complete_wall or 0.0, a.writer_id, a.seq))
    return [_with_ack_counts(a, acks) for a in primaries.split_brain(acked)]


def _with_ack_counts(anomaly: Anomaly, acks: Mapping[str, int]) -> Anomaly:
    identities = [
        {**ident, "acks": acks.get(ident.get("server", ""), ident.get("acks"))}
        for ident in anomaly.evidence.get("identities", [])
    ]
    return replace(anomaly, evidence={**anomaly.evidence, "identities": identities})


def stale(db: JournalReader, lag_bound: float) -> list[Anomaly]:
    """`replicas.stale` per writer and window of reads, with only the acknowledgements those
    reads could have missed: every one newer than the oldest seq the window shows, up to its
    last deadline. That is exact (a writer's seqs grow with time) and bounded by the window and
    by how stale its reads are, not by the run's length."""
    found: list[Anomaly] = []
    for writer, reads in groupby(db.reads_by_writer(), key=attrgetter("writer_id")):
        for window in _batched(reads, READ_WINDOW):
            found.extend(_stale_window(db, str(writer), window, lag_bound))
    return found


def _missable(
    db: JournalReader, writer: str, seen: int, deadline: float, limit: int
) -> list[tuple[int, float]]:
    """(seq, completion) of `writer`'s acks after seq `seen` completed before `deadline`: what
    one read could have missed. Index seeks in seq order, stopping at the first ack completed
    at or after the deadline: one writer's acks complete in seq order."""
    found: list[tuple[int, float]] = []
    page = 16
    while len(found) <= limit:
        rows = db.acks_after(writer, seen, page)
        for seq, t in rows:
            if t is None or t >= deadline:
                return found
            found.append((seq, t))
        if len(rows) < page:
            return found
        seen, page = rows[-1][0], min(page * 4, 4096)
    return found


def _stale_window(
    db: JournalReader, writer: str, reads: list[Read], lag_bound: float
) -> list[Anomaly]:
    # Each read needs the acks it could have missed; the union of those is all the detector
    # needs to judge every read of the window exactly as it would with every ack.
    acks: dict[int, float] = {}
    for r in reads:
        seen = -1 if r.max_seq is None else r.max_seq
        acks.update(_missable(db, writer, seen, r.time - lag_bound, ACK_WINDOW))
        if len(acks) > ACK_WINDOW and len(reads) > 1:
            half = len(reads) // 2
            return _stale_window(db, writer, reads[:half], lag_bound) + _stale_window(
                db, writer, reads[half:], lag_bound
            )
    attempts = [
        Attempt(writer, int(seq), "", Outcome.OK, float(t), complete_wall=float(t))
        for seq, t in sorted(acks.items())
    ]
    found = replicas.stale(attempts, reads, lag_bound=lag_bound)
    if len(acks) > ACK_WINDOW:
        # One read missed more acknowledgements than are held at once: the first ones decide
        # (and name) it, and the journal counts the rest.
        found = [_exact_missed(db, a, lag_bound) for a in found]
    return found


def _exact_missed(db: JournalReader, anomaly: Anomaly, lag_bound: float) -> Anomaly:
    ev = anomaly.evidence
    visible = -1 if ev.get("max_seq_visible") is None else int(ev["max_seq_visible"])
    missed = db.acks_missed(str(anomaly.writer_id), visible, float(ev["read_at"]) - lag_bound)
    return replace(anomaly, evidence={**ev, "missed_acked": missed})


def non_monotonic(db: JournalReader) -> list[Anomaly]:
    """`replicas.non_monotonic` per backend and writer, in windows of reads. A window starts
    with the read that set the highest seq so far, which is all the detector carries over."""
    found: list[Anomaly] = []
    for _, rows in groupby(db.reads_by_backend(), key=lambda p: (p[0], p[1].writer_id)):
        high: Read | None = None
        for reads in _time_windows((r for _, r in rows), READ_WINDOW):
            found.extend(replicas.non_monotonic([high, *reads] if high else reads))
            high = _highest(high, reads)
    return found


def _time_windows(reads: Iterable[Read], size: int) -> Iterator[list[Read]]:
    """Batches of about `size` reads (ordered by time), never splitting reads of one time."""
    batch: list[Read] = []
    for r in reads:
        if len(batch) >= size and r.time != batch[-1].time:
            yield batch
            batch = []
        batch.append(r)
    if batch:
        yield batch


def _seen(r: Read) -> int:
    return -1 if r.max_seq is None else r.max_seq


def _highest(high: Read | None, reads: Sequence[Read]) -> Read | None:
    """The earliest read showing the highest seq so far (ties: the detector's read order)."""
    candidates = [*([high] if high else []), *reads]
    if not candidates:
        return None
    top = max(map(_seen, candidates))
    return min(
        (r for r in candidates if _seen(r) == top),
        key=lambda r: (r.time, r.writer_id, r.node or "", r.server or "", _seen(r), r.endpoint),
    )


def bank_observations(db: JournalReader, expected: int) -> list[Anomaly]:
    """`bank.bank_total` over the bank observations, in batches."""
    found: list[Anomaly] = []
    for observations in _batched(db.bank(), FETCH_BATCH):
        found.extend(bank.bank_total(observations, {}, expected=expected))
    return found


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


@dataclass
class History:
    """The journal's own checks, run in a thread of their own while the servers work."""

    found: list[Anomaly] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    outcomes: Outcomes | None = None
    done: bool = False


def check_history(
    journal: Journal, lag_bound: float, bank_expected: int | None, out: History
) -> None:
    """Count outcomes, then run the journal's detectors through the registry (one guard: a
    crash of one makes the verdict unknown, never valid)."""
    db = JournalReader(journal)
    try:
        out.outcomes = cached_outcomes(db, journal)
        servers = out.outcomes.servers
        found = combine(
            journal_checks(
                split_brain=lambda: split_brain(db, servers),
                stale=lambda: stale(db, lag_bound),
                non_monotonic=lambda: non_monotonic(db),
                bank_total=None
                if bank_expected is None
                else lambda: bank_observations(db, bank_expected),
            )
        )
        out.found.extend(found.anomalies)
        out.failures.extend(found.failures)
        out.done = True
    finally:
        db.close()
