"""The analysis driver: run every detector, catch any that crashes, and build the Verdict.

`analyze` takes a whole history and every node's final state (small histories, the live
verdict, tests). Chunked verification at scale calls `check_chunk` per id range that differs
from the expected aggregate and `verdict_from_chunks` at the end (see docs/verdict.md).

Every detector runs under the registry's one guard (`checker.core.detectors`): one that raises
never takes the verdict with it; it is recorded by name, and the verdict is at best unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from checker.core import bank, chunks, gtid, ledger, primaries, replicas
from checker.core.detectors import Findings, combine, journal_checks
from checker.core.history import Attempt, History, Key, NodeState, Outcome, Role, Row, partition
from checker.core.verdict import (
    DEFAULT_CAP,
    Anomaly,
    Counts,
    Failure,
    NodeVerdict,
    Recovery,
    Validity,
    Verdict,
    build_verdict,
)

__all__ = ["ChunkCheck", "analyze", "check_chunk", "count_outcomes", "verdict_from_chunks"]


def count_outcomes(attempts: Iterable[Attempt]) -> Counts:
    """How many attempts, by outcome (`recovered` is left to the ledger detectors)."""
    acked, others = partition(attempts)
    return _counts(acked, others)


def _counts(acked: Sequence[Attempt], others: Sequence[Attempt]) -> Counts:
    failed = sum(1 for a in others if a.outcome is Outcome.FAILED)
    return Counts(
        attempted=len(acked) + len(others),
        ok=len(acked),
        failed=failed,
        indeterminate=len(others) - failed,
    )


def _node_verdict(state: NodeState, valid: Validity, reason: str | None = None) -> NodeVerdict:
    rows = len(state.rows) if state.rows is not None else None
    if rows is None and state.chunks is not None:
        rows = sum(c.count for c in state.chunks)
    return NodeVerdict(valid, state.role.value, state.gtid, rows, reason)


class _Analysis:
    """One run of `analyze`: the findings so far, and which nodes could not be judged."""

    def __init__(self, history: History, states: Sequence[NodeState], flavor: gtid.Flavor) -> None:
        self.history = history
        self.flavor = flavor
        self.found = Findings()
        self.recovered: list[Recovery] = []
        self.nodes = {
            s.node: _node_verdict(
                s, Validity.VALID if s.error is None else Validity.UNKNOWN, s.error
            )
            for s in states
        }
        self.states = {s.node: s for s in states}

    def unknown(self, node: str, reason: str) -> None:
        self.nodes[node] = _node_verdict(self.states[node], Validity.UNKNOWN, reason)

    def readable(self, state: NodeState) -> bool:
        return self.nodes[state.node].valid is Validity.VALID

    def ledger(self, primary: NodeState, acked: list[Attempt], others: list[Attempt]) -> None:
        if primary.rows is None:
            if self.history.attempts:
                self.unknown(primary.node, "the primary's rows were not read")
            return
        m = self.found.step("match_rows", ledger.match_rows, primary.node, primary.rows, acked)
        if m is None:
            return
        lookup = ledger.AttemptIndex(acked, others)
        self.found.run("lost", ledger.lost, [m])
        self.recovered.extend(_ledger_checks(m, lookup, self.found))

    def caught_up(self, primary: NodeState, replica: NodeState) -> bool | None:
        if replica.caught_up is not None:
            return replica.caught_up
        if primary.gtid is None or replica.gtid is None:
            return None
        return self.found.step(
            f"catch_up:{replica.node}",
            gtid.gtid_contains,
            primary.gtid,
            replica.gtid,
            self.flavor,
        )

    def replica(self, primary: NodeState | None, replica: NodeState) -> None:
        if primary is None or not self.readable(primary):
            self.unknown(replica.node, "no readable primary to compare it with")
            return
        if primary.gtid is not None and replica.gtid is not None:
            self.found.run(
                "errant",
                replicas.errant,
                primary.gtid,
                replica.gtid,
                node=replica.node,
                flavor=self.flavor,
            )
        elif (primary.gtid is None) != (replica.gtid is None):
            self.unknown(replica.node, "GTID set of the primary or the replica was not read")
            return
        caught = self.caught_up(primary, replica)
        if caught is not True:
            why = "unknown whether" if caught is None else "not"
            self.unknown(
                replica.node, f"{why} caught up to the primary's GTID set {primary.gtid!r}"
            )
            return
        if primary.rows is not None and replica.rows is not None:
            self.found.run(
                "divergent",
                replicas.divergent_rows,
                primary.rows,
                replica.rows,
                node=replica.node,
                reference=primary.node,
            )
        elif primary.chunks is not None and replica.chunks is not None:
            diffs = self.found.step(
                "divergent",
                chunks.diff_chunks,
                {primary.node: primary.chunks, replica.node: replica.chunks},
                reference=primary.node,
            )
            if diffs is not None:
                self.found.run("divergent", replicas.divergent_chunks, diffs)
        elif self.history.attempts:
            self.unknown(replica.node, "rows (or chunk aggregates) were not read on both nodes")

    def bank_totals(self) -> dict[str, int | None]:
        """The final bank total of every readable node; one not read makes its node unknown."""
        totals: dict[str, int | None] = {}
        for name, state in self.states.items():
            if not self.readable(state):
                continue
            if state.bank_total is None:
                self.unknown(name, "the bank total was not read")
            totals[name] = state.bank_total
        return totals


def _ledger_checks(
    m: ledger.Match, lookup: Mapping[Key, Attempt], into: Findings
) -> list[Recovery]:
    """The ledger detectors that judge one match alone (`lost` needs every range's match)."""
    combine(
        [
            ("duplicated", lambda: ledger.duplicated(m, lookup)),
            ("corrupted", lambda: ledger.corrupted(m, lookup)),
            ("unexpected", lambda: ledger.unexpected(m, lookup)),
        ],
        into,
    )
    return into.step("recovered", ledger.recovered, m, lookup) or []


def analyze(
    history: History,
    final_states: Iterable[NodeState],
    *,
    flavor: gtid.Flavor = "mysql",
    lag_bound: float = replicas.DEFAULT_LAG_BOUND,
    cap: int = DEFAULT_CAP,
) -> Verdict:
    """Run every detector on a whole history and the final state of every node.

    Exactly one state must be the primary: the ledger detectors judge it against the history,
    and each replica is judged against it (errant GTIDs; divergence once caught up). Reads are
    checked for staleness (`lag_bound` seconds) and monotonicity, acknowledgements for split
    brain, and bank totals against `history.bank_total` when the bank workload ran.
    """
    states = sorted(final_states, key=lambda s: s.node)
    a = _Analysis(history, states, flavor)
    acked, others = partition(history.attempts)
    counts = _counts(acked, others)

    primaries_ = [s for s in states if s.role is Role.PRIMARY]
    primary = primaries_[0] if len(primaries_) == 1 else None
    if not states:
        a.found.failures.append(Failure("final_state", "no node's final state was given"))
    elif primary is None:
        names = ", ".join(s.node for s in primaries_) or "none"
        a.found.failures.append(
            Failure("final_state", f"expected exactly one primary, got {names}")
        )
    elif a.readable(primary):
        a.ledger(primary, acked, others)
    for state in states:
        if state.role is Role.REPLICA and a.readable(state):
            a.replica(primary, state)

    expected = history.bank_total
    totals = a.bank_totals() if expected is not None else {}
    checks = journal_checks(
        split_brain=lambda: primaries.split_brain(acked),
        stale=lambda: replicas.stale(acked, history.reads, lag_bound=lag_bound),
        non_monotonic=lambda: replicas.non_monotonic(history.reads),
        bank_total=None
        if expected is None
        else lambda: bank.bank_total(history.bank, totals, expected=expected),
    )
    found = combine(checks, a.found)
    return build_verdict(
        found.anomalies,
        counts=counts,
        nodes=a.nodes,
        recovered=a.recovered,
        failures=found.failures,
        cap=cap,
    )


@dataclass(frozen=True, slots=True)
class ChunkCheck:
    """The per-range findings of one node; `match` is kept for `lost`, which needs every range."""

    node: str
    lo: int
    hi: int
    match: ledger.Match | None
    anomalies: tuple[Anomaly, ...]
    recovered: tuple[Recovery, ...]
    failures: tuple[Failure, ...]


def check_chunk(
    node: str,
    rows: Sequence[Row],
    expected: Sequence[Attempt],
    lookup: Mapping[Key, Attempt],
    *,
    lo: int,
    hi: int,
) -> ChunkCheck:
    """Judge the rows of one id range of the primary, fetched because its aggregate differed.

    `expected` are the acknowledged attempts with a row id in `lo..hi` (`chunks.in_range`);
    `lookup` finds any attempt by (writer, seq), e.g. from the journal. Duplicates spanning
    ranges are for `ledger.duplicated_groups`; `build_verdict` folds the two reports.
    """
    found = Findings()
    m = found.step("match_rows", ledger.match_rows, node, rows, expected, lo=lo, hi=hi)
    recovered = [] if m is None else _ledger_checks(m, lookup, found)
    return ChunkCheck(
        node, lo, hi, m, tuple(found.anomalies), tuple(recovered), tuple(found.failures)
    )


def verdict_from_chunks(
    checks: Iterable[ChunkCheck],
    *,
    counts: Counts,
    nodes: Mapping[str, NodeVerdict],
    anomalies: Iterable[Anomaly] = (),
    failures: Iterable[Failure] = (),
    cap: int = DEFAULT_CAP,
) -> Verdict:
    """The verdict of a chunked verification: every range's findings, `lost` over all ranges,
    plus whatever the caller found elsewhere (divergent chunks, GROUP BY duplicates, errant
    GTIDs, split brain, stale reads...)."""
    all_checks = list(checks)
    found = Findings(
        [x for c in all_checks for x in c.anomalies], [f for c in all_checks for f in c.failures]
    )
    found.anomalies.extend(anomalies)
    found.failures.extend(failures)
    by_node: dict[str, list[ledger.Match]] = {}
    for c in all_checks:
        if c.match is not None:
            by_node.setdefault(c.node, []).append(c.match)
    for matches in by_node.values():
        found.run("lost", ledger.lost, matches)
    return build_verdict(
        found.anomalies,
        counts=counts,
        nodes=nodes,
        recovered=[r for c in all_checks for r in c.recovered],
        failures=found.failures,
        cap=cap,
    )
