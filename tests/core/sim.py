"""A simulated correct store, and single faults to inject into it, for property tests.

A run is a sequence of writes against one primary (mysql-0, or mysql-1 after an optional clean
failover), replicas that apply everything at once, reads that see exactly what was applied by
their time, and a bank whose total never changes. Every fault changes one thing and says which
anomaly (type, node, writer, seq) it must produce and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from checker.core.history import (
    Attempt,
    BankObservation,
    History,
    NodeState,
    Outcome,
    Read,
    Role,
    Row,
)
from checker.core.notation import payload_hash

__all__ = ["FAULTS", "Expected", "Run", "runs"]

UUID_A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID_B = "4f22ab58-82db-22f2-8f44-d91bb0530673"
UUID_ERRANT = "5a33bc69-93ec-33a3-9a55-ea2cc1641784"
BANK_TOTAL = 1000


@dataclass(frozen=True)
class Run:
    """A simulated run: its history, the final states, and what the simulator knows."""

    history: History
    states: tuple[NodeState, ...]
    primary: str

    def state(self, node: str) -> NodeState:
        return next(s for s in self.states if s.node == node)

    @property
    def replicas(self) -> list[str]:
        return [s.node for s in self.states if s.role is Role.REPLICA]

    def with_state(self, node: str, **changes: Any) -> Run:
        states = tuple(replace(s, **changes) if s.node == node else s for s in self.states)
        return replace(self, states=states)

    def with_rows_everywhere(self, rows: list[Row]) -> Run:
        """Every node holds `rows` (a fault at the source, faithfully replicated)."""
        states = tuple(replace(s, rows=[Row(*r) for r in rows]) for s in self.states)
        return replace(self, states=states)


@dataclass(frozen=True)
class Expected:
    """The one anomaly a fault must produce."""

    type: str
    node: str | None
    writer_id: str | None
    seq: int | None


OUTCOMES = [Outcome.OK, Outcome.OK, Outcome.OK, Outcome.FAILED, Outcome.INDETERMINATE]


@st.composite
def runs(draw: st.DrawFn, *, with_reads: bool = True, max_attempts: int = 40) -> Run:
    """A correct run: whatever it draws, the analysis must find it valid."""
    n_writers = draw(st.integers(1, 3))
    n = draw(st.integers(0, max_attempts))
    failover = draw(st.none() | st.integers(0, n))
    n_replicas = draw(st.integers(0 if failover is None else 1, 2))
    writers = [f"w{i}" for i in range(n_writers)]
    seqs = dict.fromkeys(writers, 0)
    attempts: list[Attempt] = []
    rows: list[Row] = []
    applied_at: list[tuple[str, int, float]] = []
    gtid_counts = [0, 0]
    for i in range(n):
        writer = draw(st.sampled_from(writers))
        seqs[writer] += 1
        seq = seqs[writer]
        outcome = draw(st.sampled_from(OUTCOMES))
        after = failover is not None and i >= failover
        server = "mysql-1" if after else "mysql-0"
        t = 100.0 + i
        forgotten = outcome is Outcome.INDETERMINATE and draw(st.booleans())
        digest = None if forgotten else payload_hash(f"{writer}:{seq}")
        applies = outcome is Outcome.OK or (
            outcome is Outcome.INDETERMINATE and draw(st.booleans())
        )
        row_id = None
        if applies:
            row_id = len(rows) + 1
            actual = digest or payload_hash(f"{writer}:{seq}:forgotten")
            rows.append(Row(row_id, writer, seq, actual, actual))
            applied_at.append((writer, seq, t + 0.5))
            gtid_counts[1 if after else 0] += 1
        attempts.append(
            Attempt(
                writer_id=writer,
                seq=seq,
                payload_sha256=digest,
                outcome=outcome,
                invoke_wall=t,
                complete_wall=t + 0.5,
                invoke_mono=t,
                complete_mono=t + 0.5,
                server=None if outcome is Outcome.FAILED else f"{server}/1",
                node=server,
                row_id=row_id if outcome is Outcome.OK else None,
                error=None if outcome is Outcome.OK else "(2013, 'Lost connection')",
            )
        )
    primary = "mysql-1" if failover is not None else "mysql-0"
    others = [f"mysql-{k}" for k in range(n_replicas + 1) if f"mysql-{k}" != primary][:n_replicas]
    gtid = ",".join(
        f"{uuid}:1-{count}"
        for uuid, count in zip((UUID_A, UUID_B), gtid_counts, strict=True)
        if count
    )
    nodes = [primary, *others]

    reads: list[Read] = []
    bank: list[BankObservation] = []
    if with_reads and n:
        for _ in range(draw(st.integers(0, 8))):
            t = draw(st.floats(100.0, 100.0 + n + 10, allow_nan=False))
            writer = draw(st.sampled_from(writers))
            node = draw(st.sampled_from(nodes))
            visible = [s for w, s, at in applied_at if w == writer and at <= t]
            reads.append(Read(t, writer, max(visible, default=None), node, f"{node}/1"))
        for _ in range(draw(st.integers(0, 4))):
            t = draw(st.floats(100.0, 100.0 + n + 10, allow_nan=False))
            bank.append(BankObservation(draw(st.sampled_from(nodes)), t, BANK_TOTAL))
    states = tuple(
        NodeState(
            node=node,
            role=Role.PRIMARY if node == primary else Role.REPLICA,
            rows=[Row(*r) for r in rows],
            gtid=gtid,
            caught_up=None if node == primary else True,
            bank_total=BANK_TOTAL,
            server=f"{node}/1",
        )
        for node in nodes
    )
    history = History(attempts=attempts, reads=reads, bank=bank, bank_total=BANK_TOTAL)
    return Run(history, states, primary)


def _ok_rows(run: Run) -> list[tuple[int, Row]]:
    rows = list(run.state(run.primary).rows or ())
    acked = {a.key for a in run.history.attempts if a.outcome is Outcome.OK}
    return [(i, r) for i, r in enumerate(rows) if (r.writer_id, r.seq) in acked]


@st.composite
def drop_acked(draw: st.DrawFn, run: Run) -> tuple[Run, Expected]:
    """An acknowledged row vanishes from every node (reads are dropped: they would see it)."""
    index, row = draw(st.sampled_from(_ok_rows(run)))
    rows = list(run.state(run.primary).rows or ())
    del rows[index]
    faulty = replace(run.with_rows_everywhere(rows), history=replace(run.history, reads=()))
    return faulty, Expected("lost", run.primary, row.writer_id, row.seq)


@st.composite
def duplicate_row(draw: st.DrawFn, run: Run) -> tuple[Run, Expected]:
    """A row is applied twice, under a new id, and replicated."""
    rows = list(run.state(run.primary).rows or ())
    row = draw(st.sampled_from(rows))
    rows.append(row._replace(id=max(r.id for r in rows) + 1))
    return run.with_rows_everywhere(rows), Expected(
        "duplicated", run.primary, row.writer_id, row.seq
    )


@st.composite
def flip_payload(draw: st.DrawFn, run: Run) -> tuple[Run, Expected]:
    """One byte of a stored payload flips: its hash no longer matches the stored checksum."""
    rows = list(run.state(run.primary).rows or ())
    index = draw(st.integers(0, len(rows) - 1))
    row = rows[index]
    flipped = row.payload_sha256[:-1] + ("0" if row.payload_sha256[-1] != "0" else "1")
    rows[index] = row._replace(payload_sha256=flipped)
    return run.with_rows_everywhere(rows), Expected(
        "corrupted", run.primary, row.writer_id, row.seq
    )


@st.composite
def never_attempted(draw: st.DrawFn, run: Run) -> tuple[Run, Expected]:
    """A row nobody wrote appears (from a writer the checker never ran)."""
    rows = list(run.state(run.primary).rows or ())
    seq = draw(st.integers(1, 10))
    digest = payload_hash(f"ghost:{seq}")
    rows.append(Row(max((r.id for r in rows), default=0) + 1, "ghost", seq, digest, digest))
    return run.with_rows_everywhere(rows), Expected("unexpected", run.primary, "ghost", seq)


@st.composite
def replica_misses(draw: st.DrawFn, run: Run) -> tuple[Run, Expected]:
    """A caught-up replica silently lacks one row (reads dropped: they might see the gap)."""
    node = draw(st.sampled_from(run.replicas))
    rows = list(run.state(node).rows or ())
    index = draw(st.integers(0, len(rows) - 1))
    row = rows.pop(index)
    faulty = replace(run.with_state(node, rows=rows), history=replace(run.history, reads=()))
    return faulty, Expected("divergent", node, row.writer_id, row.seq)


def _identity_runs(run: Run) -> list[list[int]]:
    """Indices of OK attempts, per server identity, in time order."""
    by_server: dict[str, list[int]] = {}
    for i, a in enumerate(run.history.attempts):
        if a.outcome is Outcome.OK and a.server is not None:
            by_server.setdefault(a.server, []).append(i)
    return [ids for ids in by_server.values() if len(ids) >= 3]


@st.composite
def second_primary(draw: st.DrawFn, run: Run) -> tuple[Run, Expected]:
    """A zombie identity acks some writes while the real primary is still acking others."""
    acks = draw(st.sampled_from(_identity_runs(run)))
    start = draw(st.integers(1, len(acks) - 2))
    end = draw(st.integers(start, len(acks) - 2))
    chosen = set(acks[start : end + 1])
    attempts = [
        replace(a, server="mysql-2/zombie", node="mysql-2") if i in chosen else a
        for i, a in enumerate(run.history.attempts)
    ]
    first = run.history.attempts[acks[start]]
    faulty = replace(run, history=replace(run.history, attempts=attempts))
    return faulty, Expected("split_brain", "mysql-2", first.writer_id, first.seq)


@st.composite
def extra_gtid(draw: st.DrawFn, run: Run) -> tuple[Run, Expected]:
    """A replica executed a transaction of its own (an errant GTID)."""
    node = draw(st.sampled_from(run.replicas))
    gtid = run.state(node).gtid or ""
    extra = f"{UUID_ERRANT}:1-{draw(st.integers(1, 3))}"
    return run.with_state(node, gtid=f"{gtid},{extra}" if gtid else extra), Expected(
        "errant", node, None, None
    )


@st.composite
def half_transfer(draw: st.DrawFn, run: Run) -> tuple[Run, Expected]:
    """One side of a bank transfer is applied on one node and the other side is not."""
    node = draw(st.sampled_from([s.node for s in run.states]))
    amount = draw(st.integers(1, 50)) * draw(st.sampled_from([1, -1]))
    return run.with_state(node, bank_total=BANK_TOTAL + amount), Expected(
        "bank_total", node, None, None
    )


def has_ok_rows(run: Run) -> bool:
    return bool(_ok_rows(run))


def has_rows(run: Run) -> bool:
    return bool(run.state(run.primary).rows)


def has_replica_rows(run: Run) -> bool:
    return bool(run.replicas) and has_rows(run)


def has_identity_run(run: Run) -> bool:
    return bool(_identity_runs(run))


def has_replica(run: Run) -> bool:
    return bool(run.replicas)


def always(run: Run) -> bool:
    return True


FAULTS = {
    "lost": (drop_acked, has_ok_rows),
    "duplicated": (duplicate_row, has_rows),
    "corrupted": (flip_payload, has_rows),
    "unexpected": (never_attempted, always),
    "divergent": (replica_misses, has_replica_rows),
    "split_brain": (second_primary, has_identity_run),
    "errant": (extra_gtid, has_replica),
    "bank_total": (half_transfer, always),
}
"""Anomaly type -> (fault strategy given a run, whether the run can take that fault)."""
