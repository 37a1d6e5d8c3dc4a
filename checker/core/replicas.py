"""Detectors on replicas and reads: divergence, errant GTIDs, stale and non-monotonic reads.

A replica is judged against the primary, not against the history: what the primary holds was
judged by the ledger detectors, and a replica that faithfully copied it adds nothing. So
`divergent` is any difference from the primary once the replica has caught up to the
primary's GTID set (the caller decides that; see `gtid.gtid_contains`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import attrgetter, countOf
from typing import Any

from checker.core.chunks import ChunkDiff
from checker.core.gtid import Flavor, errant_gtids
from checker.core.history import Attempt, Outcome, Read, Row
from checker.core.verdict import Anomaly

DEFAULT_LAG_BOUND = 5.0
"""Seconds a replica may lag before a read that misses an acknowledged write is stale: the
default of every driver (the `--lag-bound` setting declares it from here)."""

__all__ = [
    "DEFAULT_LAG_BOUND",
    "divergent_chunks",
    "divergent_rows",
    "divergent_table_rows",
    "errant",
    "non_monotonic",
    "stale",
]

_FIELDS = Row._fields
_completed = attrgetter("complete_wall")
_time = attrgetter("time")
_outcome = attrgetter("outcome")


def divergent_rows(
    reference_rows: Sequence[Row], rows: Sequence[Row], *, node: str, reference: str
) -> list[Anomaly]:
    """One anomaly per row id where `node`'s rows differ from the reference node's.

    Evidence says whether the row is missing on the node, extra on it, or which fields differ.
    """
    # Both read in id order and equal is the common case, and a list comparison runs in C.
    if list(rows) == list(reference_rows):
        return []
    # Tuples hash and compare in C too: only the differing rows come back to Python.
    theirs = set(reference_rows)
    ours = set(rows)
    ref_by_id = {r[0]: r for r in theirs - ours}
    our_by_id = {r[0]: r for r in ours - theirs}
    found = []
    for row_id in sorted(ref_by_id.keys() | our_by_id.keys()):
        ref_row = ref_by_id.get(row_id)
        our_row = our_by_id.get(row_id)
        shown = ref_row if ref_row is not None else our_by_id[row_id]
        evidence: dict[str, Any] = {"id": row_id, "reference": reference}
        if our_row is None:
            evidence["kind"] = "missing"
        elif ref_row is None:
            evidence["kind"] = "extra"
        else:
            evidence["kind"] = "differs"
            evidence["fields"] = [
                f for f, a, b in zip(_FIELDS, ref_row, our_row, strict=True) if a != b
            ]
        evidence["reference_row"] = None if ref_row is None else list(ref_row)
        evidence["row"] = None if our_row is None else list(our_row)
        found.append(Anomaly("divergent", node, shown[1], shown[2], evidence))
    return found


def divergent_table_rows(
    table: str,
    reference_rows: Sequence[tuple[Any, ...]],
    rows: Sequence[tuple[Any, ...]],
    *,
    node: str,
    reference: str,
) -> list[Anomaly]:
    """One anomaly per id where a small table's rows (the bank's accounts, the chaos markers:
    tuples whose first value is the id) differ on `node` from the reference node's. No writer
    owns these rows: `writer_id` and `seq` are None, the evidence names the table."""
    if list(rows) == list(reference_rows):
        return []
    ref_by_id = {r[0]: r for r in set(reference_rows) - set(rows)}
    our_by_id = {r[0]: r for r in set(rows) - set(reference_rows)}
    found = []
    for row_id in sorted(ref_by_id.keys() | our_by_id.keys()):
        ref_row, our_row = ref_by_id.get(row_id), our_by_id.get(row_id)
        kind = "missing" if our_row is None else "extra" if ref_row is None else "differs"
        evidence: dict[str, Any] = {
            "table": table,
            "id": row_id,
            "reference": reference,
            "kind": kind,
            "reference_row": None if ref_row is None else list(ref_row),
            "row": None if our_row is None else list(our_row),
        }
        found.append(Anomaly("divergent", node, None, None, evidence))
    return found


def divergent_chunks(diffs: Iterable[ChunkDiff]) -> list[Anomaly]:
    """One anomaly per (range, node) that differs from the reference, when rows were not fetched."""
    found = []
    for diff in diffs:
        ref = diff.aggregates.get(diff.reference)
        for node in diff.nodes:
            value = diff.aggregates.get(node)
            found.append(
                Anomaly(
                    "divergent",
                    node,
                    None,
                    None,
                    {
                        "lo": diff.lo,
                        "hi": diff.hi,
                        "reference": diff.reference,
                        "kind": "chunk",
                        "count": None if value is None else value[0],
                        "checksum": None if value is None else value[1],
                        "reference_count": None if ref is None else ref[0],
                        "reference_checksum": None if ref is None else ref[1],
                    },
                )
            )
    return found


def errant(primary_gtid: str, replica_gtid: str, *, node: str, flavor: Flavor) -> list[Anomaly]:
    """The replica holds GTIDs the primary never had (raises ValueError on a malformed set)."""
    extra = errant_gtids(primary_gtid, replica_gtid, flavor)
    if not extra:
        return []
    return [
        Anomaly(
            "errant",
            node,
            None,
            None,
            {"errant": extra, "gtid": replica_gtid, "primary_gtid": primary_gtid, "flavor": flavor},
        )
    ]


def _read_order(r: Read) -> tuple[float, str, str, str, int, str]:
    return (
        r.time,
        r.writer_id,
        r.node or "",
        r.server or "",
        -1 if r.max_seq is None else r.max_seq,
        r.endpoint,
    )


def _acked(attempts: Sequence[Attempt]) -> Sequence[Attempt]:
    ok = Outcome.OK
    # The driver passes acknowledged attempts already: checking that runs in C, filtering not.
    if countOf(map(_outcome, attempts), ok) == len(attempts):
        return attempts
    return [a for a in attempts if a.outcome is ok]


def stale(
    attempts: Sequence[Attempt], reads: Iterable[Read], *, lag_bound: float = DEFAULT_LAG_BOUND
) -> list[Anomaly]:
    """Reads that miss a write acknowledged more than `lag_bound` seconds before they were issued.

    A read at time t showing max seq m of writer w is stale if an OK attempt (w, s > m) completed
    before t - lag_bound. Acknowledged attempts are swept once in completion order against the
    reads sorted by their deadline.
    """
    # Reads with equal deadlines are judged on the same acks, so their order among themselves
    # does not matter here; the findings are sorted at the end.
    ordered = sorted(reads, key=_time)
    if not ordered:
        return []
    acked = _acked(attempts)
    deadlines = [read.time - lag_bound for read in ordered]
    stale_reads = _sweep(acked, ordered, deadlines)
    if stale_reads is None:
        acked = sorted(acked, key=_completed)
        stale_reads = _sweep(acked, ordered, deadlines) or []
    stale_reads.sort(key=lambda found: _read_order(found[0]))
    return [_stale_anomaly(read, deadline, acked, lag_bound) for read, deadline in stale_reads]


def _sweep(
    acked: Sequence[Attempt], ordered: Sequence[Read], deadlines: Sequence[float]
) -> list[tuple[Read, float]] | None:
    """Judge every read in one forward sweep over acks in completion order (None: they are not).

    When an ack reaches the next read's deadline, that read is judged on the acks strictly
    before it. Reads are few compared with acks, so the per-ack work is kept to a few
    comparisons and one look-up, on the attempt objects themselves (building columns first
    costs more than it saves).
    """
    best: dict[str, int] = {}
    get = best.get
    out: list[tuple[Read, float]] = []
    r, n = 0, len(ordered)
    upcoming = deadlines[0] if n else math.inf
    previous = -math.inf
    for a in acked:
        t = a.complete_wall or 0.0  # never None: an OK attempt has its completion time
        if t < previous:
            return None
        previous = t
        if t >= upcoming:
            r = _judge(ordered, deadlines, r, t, best, out)
            upcoming = deadlines[r] if r < n else math.inf
        seq = a.seq
        writer = a.writer_id
        if seq > get(writer, -1):
            best[writer] = seq
    _judge(ordered, deadlines, r, math.inf, best, out)
    return out


def _judge(
    reads: Sequence[Read],
    deadlines: Sequence[float],
    r: int,
    upto: float,
    best: dict[str, int],
    out: list[tuple[Read, float]],
) -> int:
    """Judge reads from index `r` whose deadline is at most `upto`; return the next index."""
    while r < len(reads) and deadlines[r] <= upto:
        read = reads[r]
        top = best.get(read.writer_id)
        if top is not None and (read.max_seq is None or top > read.max_seq):
            out.append((read, deadlines[r]))
        r += 1
    return r


def _stale_anomaly(
    read: Read, deadline: float, acked: Sequence[Attempt], lag_bound: float
) -> Anomaly:
    visible = -1 if read.max_seq is None else read.max_seq
    missed = [
        a
        for a in acked
        if a.writer_id == read.writer_id
        and a.seq > visible
        and a.complete_wall is not None
        and a.complete_wall < deadline
    ]
    first = min(missed, key=attrgetter("seq"))
    return Anomaly(
        "stale",
        read.node,
        read.writer_id,
        first.seq,
        {
            "read_at": read.time,
            "endpoint": read.endpoint,
            "server": read.server,
            "max_seq_visible": read.max_seq,
            "acked_at": first.complete_wall,
            "missed_acked": len(missed),
            "lag_bound": lag_bound,
        },
    )


def _seen(read: Read) -> int:
    return -1 if read.max_seq is None else read.max_seq


def _ev(a: Anomaly) -> tuple[int, str, str]:
    seen = a.evidence["max_seq_visible"]
    return (-1 if seen is None else seen, a.evidence["server"] or "", a.evidence["backend"])


def non_monotonic(reads: Iterable[Read]) -> list[Anomaly]:
    """Reads of one backend node whose view of a writer went back in time.

    Reads are ordered by time, not by their order in the input; reads issued at the same time
    are not ordered with each other. Reads whose backend is unknown are skipped: through a load
    balancer, different backends may legitimately be at different points.

    Only reads of one endpoint are compared with each other: each endpoint is read by one
    client, one read at a time, so issue times order them in real time. Reads of the same node
    through two endpoints overlap, and an earlier-issued read may take its snapshot later.
    """
    groups: dict[tuple[str, str, str], list[Read]] = {}
    for read in reads:
        backend = read.node or read.server
        if backend is not None:
            groups.setdefault((read.endpoint, backend, read.writer_id), []).append(read)
    found: list[Anomaly] = []
    for (endpoint, backend, writer), group in sorted(groups.items()):
        # Sorting on time alone is enough: reads of one instant are judged as a batch.
        group.sort(key=_time)
        high: Read | None = None  # the first read, in time, that showed the highest seq so far
        for _, same_time in groupby(group, key=attrgetter("time")):
            batch = list(same_time)
            if high is not None:
                found.extend(
                    Anomaly(
                        "non_monotonic",
                        read.node,
                        writer,
                        high.max_seq,
                        {
                            "backend": backend,
                            "endpoint": endpoint,
                            "server": read.server,
                            "read_at": read.time,
                            "max_seq_visible": read.max_seq,
                            "earlier_read_at": high.time,
                            "earlier_max_seq": high.max_seq,
                        },
                    )
                    for read in batch
                    if _seen(read) < _seen(high)
                )
            top = max(batch, key=_seen)
            if high is None or _seen(top) > _seen(high):
                high = top
    found.sort(key=lambda a: (a.node or "", a.writer_id or "", a.evidence["read_at"], _ev(a)))
    return found
