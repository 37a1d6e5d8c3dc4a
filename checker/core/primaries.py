"""Who acted as primary when: split brain from the acknowledgements themselves.

Only a primary accepts writes, so every OK attempt says "this server identity was a primary at
its completion time". Per identity, the interval from its first to its last acknowledgement is
when it acted as primary. Two identities whose intervals overlap (strictly, on completion
times) were both primaries at once. A restarted node is a new identity whose interval starts
after the old one's ends; after a clean failover the old primary is read-only or dead and acks
nothing after the new one's first ack: neither overlaps, so no tolerance is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter, countOf
from typing import Any

from checker.core.history import Attempt, Outcome
from checker.core.verdict import Anomaly

__all__ = ["PrimarySpan", "primary_spans", "split_brain"]

_server = attrgetter("server")
_completed = attrgetter("complete_wall")
_outcome = attrgetter("outcome")


@dataclass(frozen=True, slots=True)
class PrimarySpan:
    """The first and last acknowledgement completed by one server identity, and how many."""

    server: str
    first: float
    last: float
    acks: int


def _acked(attempts: Sequence[Attempt]) -> Sequence[Attempt]:
    ok = Outcome.OK
    # The driver passes acknowledged attempts already: checking that runs in C, filtering not.
    if countOf(map(_outcome, attempts), ok) == len(attempts):
        return attempts
    return [a for a in attempts if a.outcome is ok]


def primary_spans(attempts: Sequence[Attempt]) -> list[PrimarySpan]:
    """Per server identity, when it acknowledged writes; sorted by first ack, then identity.

    Attempts without a server identity cannot be attributed and are left out.
    """
    return _spans(_acked(attempts))


def _spans(acked: Sequence[Attempt]) -> list[PrimarySpan]:
    spans: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    # Acks come in long runs of one identity (one primary at a time, hopefully): grouping
    # them and taking min/max per run runs in C, instead of looking at every ack in Python.
    for server, group in groupby(acked, key=_server):
        if server is None:
            continue
        run = list(group)
        first, last = min(map(_completed, run)), max(map(_completed, run))
        span = spans.get(server)
        if span is None:
            spans[server] = [first, last]
        else:
            span[0] = min(span[0], first)
            span[1] = max(span[1], last)
        counts[server] = counts.get(server, 0) + len(run)
    return sorted(
        (
            PrimarySpan(server, first, last, counts[server])
            for server, (first, last) in spans.items()
        ),
        key=lambda s: (s.first, s.server),
    )


def _first_from(acked: Sequence[Attempt], server: str, start: float) -> Attempt:
    # Both identities of an overlapping pair ack at or after the overlap's start: the later
    # one starts it, and the earlier one's last ack comes after it.
    after = [a for a in acked if a.server == server and _completed(a) >= start]
    return min(after, key=lambda a: (_completed(a), a.writer_id, a.seq))


def _describe(span: PrimarySpan, example: Attempt) -> dict[str, Any]:
    return {
        "server": span.server,
        "node": example.node,
        "first_ack": span.first,
        "last_ack": span.last,
        "acks": span.acks,
        "example": {
            "writer_id": example.writer_id,
            "seq": example.seq,
            "acked_at": example.complete_wall,
        },
    }


def split_brain(attempts: Sequence[Attempt]) -> list[Anomaly]:
    """One anomaly per pair of identities that acknowledged writes in overlapping time.

    It is reported on the identity that started acking later, with its first ack as writer and
    seq; the evidence shows both identities, their intervals, the overlap, and for each the
    first write it acknowledged from the start of the overlap on.
    """
    acked = _acked(attempts)
    spans = _spans(acked)
    found = []
    for i, early in enumerate(spans):
        for late in spans[i + 1 :]:
            if not (late.first < early.last and early.first < late.last):
                continue
            start, end = late.first, min(early.last, late.last)
            late_example = _first_from(acked, late.server, start)
            early_example = _first_from(acked, early.server, start)
            found.append(
                Anomaly(
                    "split_brain",
                    late_example.node,
                    late_example.writer_id,
                    late_example.seq,
                    {
                        "overlap": [start, end],
                        "identities": [
                            _describe(early, early_example),
                            _describe(late, late_example),
                        ],
                    },
                )
            )
    return found
