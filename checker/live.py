"""The live verdict: the core's detectors re-run every `analysis_interval` on what is known.

Memory stays bounded however long the run: attempts live in the journal; here only
- `pending`: writes not yet confirmed on the primary (looked up by key, index range scans),
- a window of recent acknowledged writes and reads (for `stale`, `non_monotonic`, and to
  re-check recent writes when the primary changes: a failover that lost acknowledged writes
  shows up at the next cycle),
- the first and last ack of every server identity (for `split_brain`),
- the anomalies found so far (deduplicated).

What live analysis can see: lost (in the recent window), duplicated / corrupted / recovered
for recent keys, split_brain, stale, non_monotonic, bank_total. Divergence, errant GTIDs and
anything older than the window are for full verification (`checker.verify`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import partial

import pymysql

from checker import _logging, mysql
from checker.core import bank, primaries, replicas
from checker.core.analysis import analyze
from checker.core.detectors import JOURNAL_TYPES, Findings, combine, journal_checks
from checker.core.history import (
    Attempt,
    BankObservation,
    History,
    Key,
    NodeState,
    Outcome,
    Read,
    Role,
    Row,
)
from checker.core.verdict import (
    Anomaly,
    Counts,
    Failure,
    NodeVerdict,
    Recovery,
    Validity,
    Verdict,
    build_verdict,
    merge,
)
from checker.errors import DatabaseError
from checker.mysql import Endpoint
from checker.schema import Names
from checker.secrets import redact

log = _logging.get("checker.live")

_INDETERMINATE_GRACE = (
    60.0  # seconds an absent indeterminate write is re-checked (a paused server may commit it late)
)


@dataclass
class _Pending:
    attempt: Attempt
    first_checked: float | None = None


class LiveAnalysis:
    """Thread-safe sink for records, and the periodic analysis over them."""

    def __init__(
        self,
        *,
        names: Names,
        lag_bound: float,
        window: float = 60.0,
        flavor: str = "mysql",
        bank_total: int | None = None,
    ) -> None:
        self.names = names
        self.lag_bound = lag_bound
        self.window = max(window, lag_bound * 3)
        self.flavor = flavor
        self.bank_expected = bank_total
        self._lock = threading.Lock()
        self._cycle_lock = threading.Lock()
        self._new_attempts: list[Attempt] = []
        self._new_reads: list[Read] = []
        self._new_bank: list[BankObservation] = []
        self.pending: dict[Key, _Pending] = {}
        self.recent_acks: deque[Attempt] = deque()
        self.recent_reads: deque[Read] = deque()
        self.last_read: dict[tuple[str, str, str], Read] = {}
        self.spans: dict[str, tuple[Attempt, Attempt]] = {}
        self.anomalies: dict[tuple[str, str | None, str | None, int | None], Anomaly] = {}
        self.recovered: dict[Key, Recovery] = {}
        self.counts = {"ok": 0, "failed": 0, "indeterminate": 0}
        self.primary_server: str | None = None
        self.failures: list[Failure] = []
        self.verdict: Verdict = build_verdict(
            [], counts=Counts(), failures=[Failure("live", "no analysis yet")]
        )
        self.last_cycle: float | None = None
        self.cycles = 0
        self.first_flagged: dict[str, float] = {}
        self.flagged_at: dict[tuple[str, str | None, str | None, int | None], float] = {}

    # -- sinks (called from workload threads) ------------------------------------------------
    def add_attempt(self, a: Attempt) -> None:
        with self._lock:
            self._new_attempts.append(a)
            self.counts[a.outcome.value] += 1

    def add_reads(self, reads: list[Read]) -> None:
        with self._lock:
            self._new_reads.extend(reads)

    def add_bank(self, o: BankObservation) -> None:
        with self._lock:
            self._new_bank.append(o)

    def _drain(self) -> tuple[list[Attempt], list[Read], list[BankObservation]]:
        with self._lock:
            a, r, b = self._new_attempts, self._new_reads, self._new_bank
            self._new_attempts, self._new_reads, self._new_bank = [], [], []
        return a, r, b

    # -- one cycle ----------------------------------------------------------------------------
    def cycle(
        self, primary: Endpoint, primary_node: str | None, now: float | None = None
    ) -> Verdict:
        """Run one analysis: confirm pending writes on the primary, check reads and acks.

        Cycles never overlap (the scheduler's job and a final cycle at shutdown may race)."""
        with self._cycle_lock:
            return self._cycle(primary, primary_node, time.time() if now is None else now)

    def _cycle(self, primary: Endpoint, primary_node: str | None, now: float) -> Verdict:
        attempts, reads, observations = self._drain()
        for a in attempts:
            if a.outcome is Outcome.OK:
                self.recent_acks.append(a)
                if a.server is not None:
                    first, last = self.spans.get(a.server, (a, a))
                    self.spans[a.server] = (
                        first,
                        a if (a.complete_wall or 0) >= (last.complete_wall or 0) else last,
                    )
            self.pending[(a.writer_id, a.seq)] = _Pending(a)
        self._trim(now)
        found = Findings()
        server, rows = self._primary_rows(primary, found.failures)
        if server is not None and self.primary_server is not None and server != self.primary_server:
            # A new primary: recent acknowledged writes must all be there too.
            log.info("primary_changed", old=self.primary_server, new=server)
            for a in self.recent_acks:
                self.pending.setdefault((a.writer_id, a.seq), _Pending(a))
            server, rows = self._primary_rows(primary, found.failures)
        if server is not None:
            self.primary_server = server
        if rows is not None:
            self._judge_pending(primary_node or "primary", rows, now, found)

        acked = list(self.recent_acks)
        baseline = [
            self.last_read[k]
            for k in {(r.endpoint, r.node or r.server or "", r.writer_id) for r in reads}
            if k in self.last_read
        ]
        spans = [a for pair in self.spans.values() for a in pair]
        spans.extend(a for a in self.recent_acks if a.server is not None)
        spans = sorted(set(spans), key=lambda a: (a.complete_wall or 0, a.writer_id, a.seq))
        expected = self.bank_expected
        combine(
            journal_checks(
                split_brain=partial(primaries.split_brain, spans),
                stale=partial(replicas.stale, acked, reads, lag_bound=self.lag_bound),
                non_monotonic=partial(replicas.non_monotonic, [*baseline, *reads]),
                bank_total=partial(bank.bank_total, observations, {}, expected=expected)
                if expected is not None and observations
                else None,
            ),
            found,
        )
        for r in reads:
            self.last_read[(r.endpoint, r.node or r.server or "", r.writer_id)] = r
            self.recent_reads.append(r)
        for anomaly in found.anomalies:
            key = (anomaly.type, anomaly.node, anomaly.writer_id, anomaly.seq)
            if key not in self.anomalies:
                self.anomalies[key] = anomaly
                self.flagged_at[key] = now
                self.first_flagged.setdefault(anomaly.type, now)
                log.warning(
                    "anomaly_flagged",
                    type=anomaly.type,
                    node=anomaly.node,
                    writer_id=anomaly.writer_id,
                    seq=anomaly.seq,
                )
        self.failures = found.failures
        self.last_cycle = now
        self.cycles += 1
        self.verdict = self._verdict()
        return self.verdict

    def _trim(self, now: float) -> None:
        horizon = now - self.window
        while self.recent_acks and (self.recent_acks[0].complete_wall or 0) < horizon:
            self.recent_acks.popleft()
        while self.recent_reads and self.recent_reads[0].time < horizon:
            self.recent_reads.popleft()

    def _primary_rows(
        self, primary: Endpoint, failures: list[Failure]
    ) -> tuple[str | None, list[Row] | None]:
        """The rows of pending keys on the primary, and the primary's identity."""
        by_writer: dict[str, list[int]] = {}
        for writer, seq in self.pending:
            by_writer.setdefault(writer, []).append(seq)
        try:
            conn = mysql.connect(primary)
        except DatabaseError as exc:
            failures.append(Failure("primary", f"cannot read the primary: {exc}"))
            return None, None
        try:
            info = mysql.server_info(conn)
            rows: list[Row] = []
            with conn.cursor() as cur:
                for writer, seqs in by_writer.items():
                    seqs.sort()
                    for i in range(0, len(seqs), 1000):
                        part = seqs[i : i + 1000]
                        cur.execute(
                            "SELECT id, writer_id, seq, SHA2(payload, 256), checksum "
                            f"FROM {self.names.q('ledger')} "
                            f"WHERE writer_id = %s AND seq BETWEEN %s AND %s",
                            (writer, part[0], part[-1]),
                        )
                        wanted = set(part)
                        rows.extend(
                            Row(int(r[0]), r[1], int(r[2]), r[3], r[4])
                            for r in cur.fetchall()
                            if int(r[2]) in wanted
                        )
            return info.identity, rows
        except (pymysql.err.MySQLError, OSError) as exc:
            failures.append(Failure("primary", f"reading the primary failed: {redact(str(exc))}"))
            return None, None
        finally:
            conn.close()

    def _judge_pending(self, node: str, rows: list[Row], now: float, found: Findings) -> None:
        """The ledger's anomalies among the pending writes, into `found`; a write leaves
        `pending` once judged (an absent indeterminate one after a grace period)."""
        attempts = [p.attempt for p in self.pending.values()]
        verdict = found.step(
            "live_ledger",
            analyze,
            History(attempts=attempts),
            [NodeState(node=node, role=Role.PRIMARY, rows=rows)],
            flavor="mariadb" if self.flavor == "mariadb" else "mysql",
            cap=10**9,
        )
        if verdict is None:
            return
        found.failures.extend(verdict.failures)
        for r in verdict.recovered:
            self.recovered[(r.writer_id, r.seq)] = r
        present = {(r.writer_id, r.seq) for r in rows}
        for key, p in list(self.pending.items()):
            a = p.attempt
            if p.first_checked is None:
                p.first_checked = now
            if (
                a.outcome is Outcome.INDETERMINATE
                and key not in present
                and now - p.first_checked < _INDETERMINATE_GRACE
            ):
                continue  # may still be applied by a server that was paused
            del self.pending[key]
        found.anomalies.extend(
            a
            for a in verdict.anomalies
            if a.type in ("lost", "duplicated", "corrupted", "unexpected")
        )

    def _verdict(self) -> Verdict:
        counts = Counts(
            attempted=sum(self.counts.values()),
            ok=self.counts["ok"],
            failed=self.counts["failed"],
            indeterminate=self.counts["indeterminate"],
            recovered=len(self.recovered),
        )
        return build_verdict(
            self.anomalies.values(),
            counts=counts,
            recovered=self.recovered.values(),
            failures=self.failures,
        )

    def merge_full(self, full: Verdict, started: float) -> Verdict:
        """A full verification's verdict (begun at `started`), with what live analysis has
        found since, and the live analysis' current failures (e.g. the primary unreadable).

        Findings flagged before the verification began are in the journal it judged, so they
        are its findings already; adding them again would count them twice. `merge` keeps the
        full verdict's exact counts (its examples are capped).
        """
        since = [a for key, a in self.anomalies.items() if self.flagged_at.get(key, 0.0) >= started]
        if any(f.detector == "verify" for f in full.failures):
            # The verification could not finish (the primary unreachable...): it judged no
            # server, so everything the live analysis found stays, evidence and all (the
            # journal-only types it did judge, from the journal).
            since = [a for a in self.anomalies.values() if a.type not in JOURNAL_TYPES]
            if full.counts.attempted == 0:
                full = merge([full, build_verdict([], counts=self._verdict().counts)])
        if not since and not self.failures:
            return full
        return merge([full, build_verdict(since, failures=self.failures)])


def node_verdicts(nodes: Iterable[str]) -> dict[str, NodeVerdict]:
    return {n: NodeVerdict(Validity.VALID) for n in nodes}


__all__ = ["LiveAnalysis", "node_verdicts", "replace"]
