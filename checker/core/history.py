"""Records of what happened: write attempts, reads, bank observations and each node's final state.

Everything here is a frozen value. Times are plain numbers handed in by the adapters: the core
never reads a clock. Wall-clock seconds (`*_wall`) order events across processes; monotonic
readings (`*_mono`) are kept for durations inside one process only.

Server identities (`server`) are opaque strings naming one server *process* (MySQL
`@@server_uuid`, or MariaDB server id, host, port and start time): a restarted node is a new
identity, which is what split-brain detection needs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "Attempt",
    "BankObservation",
    "ChunkAggregate",
    "History",
    "Key",
    "NodeState",
    "Outcome",
    "Read",
    "Role",
    "Row",
    "Span",
    "attempt_from_dict",
    "attempt_to_dict",
    "history_from_dict",
    "history_to_dict",
    "partition",
    "state_from_dict",
    "state_to_dict",
]

Key = tuple[str, int]
"""A write's identity: (writer id, sequence number)."""


class Outcome(enum.Enum):
    """What the client learned about a write: the only three answers a database can give."""

    OK = "ok"
    """The server acknowledged the COMMIT."""
    FAILED = "failed"
    """Certainly not applied (refused before the transaction began, or rolled back)."""
    INDETERMINATE = "indeterminate"
    """May or may not have applied: the connection was lost or timed out during COMMIT."""


class Role(enum.Enum):
    """The part a node played when its final state was read."""

    PRIMARY = "primary"
    REPLICA = "replica"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One write of `(writer_id, seq)` and what the client learned about it.

    `payload_sha256` is None only for an attempt the checker reserved and then forgot in its
    own crash; such an attempt can only be INDETERMINATE. `row_id` is the AUTO_INCREMENT id the
    server reported (known for OK writes). `server` is the identity of the connection's server
    (None if it never got one) and `node` the node name the connection was routed to, if known.
    An OK attempt always has `complete_wall`, the time its acknowledgement arrived.
    `(writer_id, seq)` identifies the attempt: a writer that retries takes a new seq.
    """

    writer_id: str
    seq: int
    payload_sha256: str | None
    outcome: Outcome
    invoke_wall: float
    complete_wall: float | None = None
    invoke_mono: float | None = None
    complete_mono: float | None = None
    server: str | None = None
    node: str | None = None
    row_id: int | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.payload_sha256 is None and self.outcome is not Outcome.INDETERMINATE:
            raise ValueError(
                f"attempt {self.writer_id}:{self.seq} has no payload hash, so it can only be "
                f"INDETERMINATE, not {self.outcome.name}"
            )
        if self.complete_wall is None and self.outcome is Outcome.OK:
            raise ValueError(
                f"attempt {self.writer_id}:{self.seq} is OK but has no completion time: "
                "an acknowledgement is received at some time"
            )

    @property
    def key(self) -> Key:
        return (self.writer_id, self.seq)


class Row(NamedTuple):
    """One ledger row as read from a node.

    A named tuple rather than a dataclass: millions of rows are compared and hashed as a whole,
    which tuples do in C. Plain 5-tuples in this field order are accepted wherever a Row is.
    `payload_sha256` is the SHA-256 of the payload actually stored; `checksum` is the hash the
    writer stored alongside it.
    """

    id: int
    writer_id: str
    seq: int
    payload_sha256: str
    checksum: str


@dataclass(frozen=True, slots=True)
class Read:
    """What one read saw: the highest `seq` of `writer_id` visible (None: no row at all).

    `time` is the wall-clock time the read was issued. `endpoint` is where it was sent (the
    `mysql-read` service or a node), `node`/`server` the backend that answered, if known.
    """

    time: float
    writer_id: str
    max_seq: int | None
    node: str | None = None
    server: str | None = None
    endpoint: str = "mysql-read"


@dataclass(frozen=True, slots=True)
class BankObservation:
    """The bank workload's total over all accounts, read in one transaction on `node`."""

    node: str
    time: float
    total: int
    server: str | None = None


@dataclass(frozen=True, slots=True)
class ChunkAggregate:
    """Rows with `lo <= id <= hi` on one node: how many, and the fold of their hashes.

    The checksum is opaque: only equality with another aggregate of the same range means anything.
    """

    lo: int
    hi: int
    count: int
    checksum: int


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node's state at the end of a run.

    Either `rows` (the whole ledger, best ordered by id) or `chunks` (per id-range aggregates)
    may be known. `error` says why the state could not be read; such a node is judged unknown.
    `caught_up` says whether the replica had executed the primary's GTID set when it was read;
    None lets the analysis decide from the two GTID sets.
    """

    node: str
    role: Role
    rows: Sequence[Row] | None = None
    chunks: Sequence[ChunkAggregate] | None = None
    gtid: str | None = None
    caught_up: bool | None = None
    bank_total: int | None = None
    server: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Everything the checker recorded during a run.

    `bank_total` is the bank workload's invariant (None when the bank workload did not run).
    """

    attempts: Sequence[Attempt] = ()
    reads: Sequence[Read] = ()
    bank: Sequence[BankObservation] = ()
    bank_total: int | None = None


def partition(attempts: Iterable[Attempt]) -> tuple[list[Attempt], list[Attempt]]:
    """Split attempts into (acknowledged, the rest), keeping their order."""
    oks: list[Attempt] = []
    rest: list[Attempt] = []
    ok = Outcome.OK
    for attempt in attempts:
        (oks if attempt.outcome is ok else rest).append(attempt)
    return oks, rest


_ATTEMPT_FIELDS = (
    "writer_id",
    "seq",
    "payload_sha256",
    "outcome",
    "invoke_wall",
    "complete_wall",
    "invoke_mono",
    "complete_mono",
    "server",
    "node",
    "row_id",
    "error",
)


def attempt_to_dict(attempt: Attempt) -> dict[str, Any]:
    """The attempt as a JSON-ready dict (the outcome by its lower-case name)."""
    data = {name: getattr(attempt, name) for name in _ATTEMPT_FIELDS}
    data["outcome"] = attempt.outcome.value
    return data


def attempt_from_dict(data: Mapping[str, Any]) -> Attempt:
    """Inverse of `attempt_to_dict`; absent optional fields default to None."""
    fields = {name: data[name] for name in _ATTEMPT_FIELDS if name in data}
    fields["outcome"] = Outcome(data["outcome"])
    return Attempt(**fields)


def _read_to_dict(r: Read) -> dict[str, Any]:
    return {
        "time": r.time,
        "writer_id": r.writer_id,
        "max_seq": r.max_seq,
        "node": r.node,
        "server": r.server,
        "endpoint": r.endpoint,
    }


def _bank_to_dict(o: BankObservation) -> dict[str, Any]:
    return {"node": o.node, "time": o.time, "total": o.total, "server": o.server}


def history_to_dict(history: History) -> dict[str, Any]:
    """The history as JSON-ready data (see tests/data/histories for examples)."""
    return {
        "attempts": [attempt_to_dict(a) for a in history.attempts],
        "reads": [_read_to_dict(r) for r in history.reads],
        "bank": [_bank_to_dict(o) for o in history.bank],
        "bank_total": history.bank_total,
    }


def history_from_dict(data: Mapping[str, Any]) -> History:
    """Inverse of `history_to_dict`; absent parts are empty."""
    return History(
        attempts=[attempt_from_dict(a) for a in data.get("attempts") or ()],
        reads=[Read(**r) for r in data.get("reads") or ()],
        bank=[BankObservation(**o) for o in data.get("bank") or ()],
        bank_total=data.get("bank_total"),
    )


def state_to_dict(state: NodeState) -> dict[str, Any]:
    """A final state as JSON-ready data: rows and chunks as lists of their fields."""
    return {
        "node": state.node,
        "role": state.role.value,
        "gtid": state.gtid,
        "caught_up": state.caught_up,
        "bank_total": state.bank_total,
        "server": state.server,
        "error": state.error,
        "rows": None if state.rows is None else [list(r) for r in state.rows],
        "chunks": None
        if state.chunks is None
        else [[c.lo, c.hi, c.count, c.checksum] for c in state.chunks],
    }


def state_from_dict(data: Mapping[str, Any]) -> NodeState:
    """Inverse of `state_to_dict`."""
    rows = data.get("rows")
    chunks = data.get("chunks")
    return NodeState(
        node=data["node"],
        role=Role(data["role"]),
        rows=None if rows is None else [Row(*r) for r in rows],
        chunks=None if chunks is None else [ChunkAggregate(*c) for c in chunks],
        gtid=data.get("gtid"),
        caught_up=data.get("caught_up"),
        bank_total=data.get("bank_total"),
        server=data.get("server"),
        error=data.get("error"),
    )


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
