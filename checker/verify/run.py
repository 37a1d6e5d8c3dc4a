"""One verification's work on the servers, once the primary is known: the GTID barrier, the
chunk pass and its drill-down, the whole-table checks, and the nodes' verdicts."""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from itertools import groupby
from typing import TypeVar

from checker.core import bank, ledger, replicas
from checker.core.analysis import ChunkCheck, check_chunk
from checker.core.history import Attempt, Key, Row
from checker.core.verdict import Anomaly, Failure, NodeVerdict, Validity
from checker.errors import DatabaseError, VerifyError
from checker.journal import Journal
from checker.journal.reader import LOOKUP_BATCH, JournalReader, is_folded
from checker.verify.expectations import GRAIN, Expectations
from checker.verify.model import LiveRun, NodeReport, Options, Target
from checker.verify.node import Aggregate, Node

T = TypeVar("T")

_MARKER = "id, marker, written_at"


class Run:
    """The state of one verification once the primary is known: findings so far, and what
    could not be judged. The caller owns the nodes and the pool; the run its journal reader."""

    def __init__(
        self,
        target: Target,
        journal: Journal,
        options: Options,
        nodes: Mapping[str, Node],
        primary: Node,
        pool: Executor,
    ) -> None:
        self.target = target
        self.journal = journal
        self.options = options
        self.run_id = journal.info.run_id
        self.prefix = f"{self.run_id}-"
        self.nodes = nodes
        self.primary = primary
        # One worker per node, and one for a range's aggregates submitted as a whole.
        self.pool = pool
        self.reports: dict[str, NodeReport] = {}
        self.caught_up: set[str] = set()
        self.gtids: dict[str, str] = {}
        self.rows: Counter[str] = Counter()
        self.foreign: dict[str, int] = {}
        self.filtered = True
        self.checks: list[ChunkCheck] = []
        self.anomalies: list[Anomaly] = []
        self.failures: list[Failure] = []
        self.target_gtid: str | None = None
        self.id_range: tuple[int, int] | None = None
        self.chunks = 0
        self.drilled = 0
        self.fetched = 0
        self.phases: dict[str, float] = {}
        self.db = JournalReader(journal)
        self.expect: Expectations | None = None
        self.suspects: dict[str, set[int]] = {}
        self.registry: str | None = None
        self.unregistered_rows: dict[str, int] = {}
        self.live = False
        self.resettled: set[str] = set()

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - started

    def progress(self, text: str) -> None:
        if self.options.progress is not None:
            self.options.progress(text)

    # -- parallel node work ---------------------------------------------------------------------
    def each(self, nodes: Iterable[Node], fn: Callable[[Node], T]) -> dict[str, T | DatabaseError]:
        """`fn` on every node at once; a node's DatabaseError is returned, not raised."""

        def call(node: Node) -> T | DatabaseError:
            try:
                return fn(node)
            except DatabaseError as exc:
                return exc

        futures = {node.name: self.pool.submit(call, node) for node in nodes}
        return {name: f.result() for name, f in futures.items()}

    def lose(self, node: Node, error: BaseException, when: str) -> None:
        """A node failed mid-way: unknown (a replica) or the whole verification (the primary)."""
        node.fail(f"{when}: {error}")
        if node is self.primary:
            raise VerifyError(f"the primary {node.name} failed {when}: {error}")

    # -- the steps, in order ------------------------------------------------------------------
    def servers_side(
        self, live: LiveRun | None, bank_expected: int | None
    ) -> dict[str, int] | None:
        """Barrier, chunks, drill-down, duplicates, bank: everything that asks the servers.
        Returns, for a live run, each writer's seq when the journal was settled."""
        horizon = self.primary.id_bounds()[1]
        live_since = time.time() if live is not None else None
        self.live = live is not None
        live_seqs = None
        if live is not None:
            # Read before settling: everything up to these seqs is on disk once `settle`
            # returns, and later seqs are in flight or queued, not a crash window.
            live_seqs = dict(live.writer_seqs())
            with self.phase("settle"):
                live.settle()
        self.target_gtid = self.primary.gtid_position()
        self.progress(f"barrier: waiting for replicas to reach {self.target_gtid or 'nothing'}")
        with self.phase("barrier"):
            self.barrier(self.target_gtid)
            self.read_gtid_states()
        with self.phase("chunks"):
            self.count_foreign()
            self.id_range = self.id_bounds(horizon, live=live is not None)
            if self.id_range is not None:
                self.chunk_pass(*self.id_range)
            if self.expect is not None:
                self.expect.save()
        with self.phase("unplaced_and_bank"):
            self.unplaced(live_since)
            if bank_expected is not None:
                self.bank_totals(bank_expected)
        with self.phase("duplicates"):
            self.duplicates()
        with self.phase("registry"):
            self.unregistered()
        if live is None:
            with self.phase("tables"):
                self.small_tables()
        return live_seqs

    # -- 2. the barrier -------------------------------------------------------------------------
    def barrier(self, target: str) -> None:
        """Wait, in parallel and within one deadline, until each replica executed `target`."""
        deadline = time.monotonic() + self.options.timeout

        def wait(node: Node) -> bool | None:
            if not target or node.executed(target):
                return True
            return node.wait_executed(target, max(0.001, deadline - time.monotonic()))

        replicas_ = [n for n in self.nodes.values() if n is not self.primary and n.ok]
        for name, result in self.each(replicas_, wait).items():
            node = self.nodes[name]
            if isinstance(result, DatabaseError):
                self.lose(node, result, "during the GTID barrier")
            elif result:
                self.caught_up.add(name)
            else:
                why = "timed out" if result is False else "the server could not wait for it"
                node.error = (
                    f"not caught up with the primary's GTID position {target!r} within "
                    f"{self.options.timeout:g}s ({why}; {node.replication_summary()})"
                )

    def read_gtid_states(self) -> None:
        """Replicas first, then the primary: whatever a replica got from the primary is then in
        the primary's set too, so a live run cannot look errant."""
        others = [n for n in self.nodes.values() if n is not self.primary and n.conn is not None]
        for name, state in self.each(others, Node.gtid_state).items():
            if isinstance(state, DatabaseError):
                self.lose(self.nodes[name], state, "reading its GTID set")
            else:
                self.gtids[name] = state
        self.gtids[self.primary.name] = self.primary.gtid_state()
        primary_state = self.gtids[self.primary.name]
        for name in sorted(self.gtids):
            if name != self.primary.name:
                self.anomalies.extend(
                    replicas.errant(
                        primary_state, self.gtids[name], node=name, flavor=self.primary.flavor
                    )
                )

    # -- 3. chunks ------------------------------------------------------------------------------
    def id_bounds(self, horizon: int | None, live: bool) -> tuple[int, int] | None:
        """The id range to check: up to the primary's highest id at the start (a live run's
        later rows are the next verification's), and offline also whatever the journal or a
        caught-up replica holds beyond it."""
        bounds = [self.primary.id_bounds()]
        bounds.append(self.db.row_ids())
        if not live:
            compared = [self.nodes[n] for n in sorted(self.caught_up)]
            for name, found in self.each(compared, Node.id_bounds).items():
                if isinstance(found, DatabaseError):
                    self.lose(self.nodes[name], found, "reading its id range")
                else:
                    bounds.append(found)
        los = [lo for lo, _ in bounds if lo is not None]
        his = [hi for _, hi in bounds if hi is not None]
        if not los or not his or (live and horizon is None):
            return None
        hi = horizon if live and horizon is not None else max(his)
        lo = min(los)
        if self.options.since is not None:
            # An incremental pass: the ids before `since` were judged by earlier passes.
            lo = max(lo, self.options.since)
        return (lo, hi) if lo <= hi else None

    def count_foreign(self) -> None:
        """Other runs' rows per node; without any on the compared nodes, chunk queries need
        no per-row filter."""
        reachable = [n for n in self.nodes.values() if n.conn is not None]
        for name, found in self.each(reachable, Node.foreign_rows).items():
            if isinstance(found, DatabaseError):
                self.lose(self.nodes[name], found, "counting other runs' rows")
            else:
                self.foreign[name] = found
        self.filtered = any(self.foreign.get(n.name, 1) for n in self.compared())

    def compared(self) -> list[Node]:
        return [self.primary, *(self.nodes[n] for n in sorted(self.caught_up) if self.nodes[n].ok)]

    def aggregates(
        self, lo: int, hi: int, nodes: Sequence[Node], *, journal: bool = True
    ) -> dict[str, Aggregate]:
        """Aggregates of `nodes` over lo..hi; the primary's with the row hash if `journal`."""
        primary, filtered = self.primary, self.filtered
        found = self.each(
            nodes,
            lambda n: n.aggregate(
                lo, hi, with_row_hash=journal and n is primary, filtered=filtered
            ),
        )
        out: dict[str, Aggregate] = {}
        for name, agg in found.items():
            if isinstance(agg, DatabaseError):
                self.lose(self.nodes[name], agg, f"checksumming ids {lo}..{hi}")
            else:
                out[name] = agg
        return out

    def chunk_pass(self, lo: int, hi: int) -> None:
        o = self.options
        size = _grains(max(o.min_chunk, min(o.first_chunk, o.max_chunk)))
        # Whole grains, so that the journal's cached expectations serve every range but the last
        # (ids below `lo` exist nowhere: it is the lowest id of every node and the journal).
        start = lo - lo % GRAIN
        while start <= hi:
            end = min(hi, start + size - 1)
            nodes = self.compared()
            pending = (
                self.pool.submit(self.aggregates, start, end, nodes) if len(nodes) > 1 else None
            )
            with self.phase("chunks_journal"):
                expected = self._expected(start, end)
            aggs = pending.result() if pending is not None else self.aggregates(start, end, nodes)
            self.account(aggs)
            self.judge(start, end, aggs, expected)
            self.chunks += 1
            slowest = max((a.seconds for a in aggs.values()), default=0.0)
            size = _grains(_next_size(size, slowest, o))
            self.progress(f"checked ids {lo}..{end} of {lo}..{hi} ({_percent(start, end, lo, hi)})")
            start = end + 1

    def _expected(self, lo: int, hi: int) -> tuple[int, int]:
        if self.expect is None:
            self.expect = Expectations(self.db, self.journal)
        return self.expect.get(lo, hi)

    def account(self, aggs: Mapping[str, Aggregate]) -> None:
        for name, agg in aggs.items():
            self.rows[name] += agg.mine

    def judge(
        self, lo: int, hi: int, aggs: Mapping[str, Aggregate], expected: tuple[int, int] | None
    ) -> None:
        """Compare one range; drill into it if the primary differs from the journal or a
        replica from the primary."""
        ref = aggs.get(self.primary.name)
        if ref is None:
            return
        journal_differs = expected is not None and (ref.mine, ref.row, ref.bad) != (*expected, 0)
        differing = tuple(
            name
            for name, agg in aggs.items()
            if name != self.primary.name and (agg.all, agg.copy) != (ref.all, ref.copy)
        )
        if not journal_differs and not differing:
            return
        sizes = [agg.all for agg in aggs.values()] + ([expected[0]] if expected else [])
        self.drill(lo, hi, journal_differs, differing, max(sizes))

    # -- 4. drill-down --------------------------------------------------------------------------
    def drill(
        self, lo: int, hi: int, journal_differs: bool, differing: tuple[str, ...], rows: int
    ) -> None:
        """Bisect a differing range server-side until it is small enough to fetch."""
        self.drilled += 1
        one_grain = lo // GRAIN == hi // GRAIN
        if rows <= self.options.fetch_rows or lo == hi or (one_grain and self._folded(lo, hi)):
            self.leaf(lo, hi, journal_differs, differing)
            return
        # Halves split at a grain boundary where the range spans several, so that a leaf holds
        # whole grains: a folded grain (retention) is judged only as a whole.
        mid = lo + (hi - lo) // 2
        if not one_grain:
            mid = max(lo + GRAIN - lo % GRAIN, mid - mid % GRAIN) - 1
        involved = [self.primary, *(self.nodes[n] for n in differing if self.nodes[n].ok)]
        for a, b in ((lo, mid), (mid + 1, hi)):
            aggs = self.aggregates(a, b, involved, journal=journal_differs)
            expected = self._expected(a, b) if journal_differs else None
            self.judge(a, b, aggs, expected)

    def leaf(self, lo: int, hi: int, journal_differs: bool, differing: tuple[str, ...]) -> None:
        """Fetch one small range and judge its rows with the core's detectors."""
        primary_all = self._fetch(self.primary, lo, hi)
        theirs_all = {n: self._fetch(self.nodes[n], lo, hi) for n in differing if self.nodes[n].ok}
        # The journal's detectors judge this run's rows; nodes are compared on every row.
        primary_rows = self._mine(primary_all)
        theirs = {n: self._mine(rows) for n, rows in theirs_all.items()}
        expected = self.db.acked_in(lo, hi)
        lookup = self.db.lookup(_odd_keys([primary_rows, *theirs.values()], expected))
        for writer, seq in _odd_keys([primary_rows], expected):
            self.suspects.setdefault(writer, set()).add(seq)
        if journal_differs:
            # Rows of writes retention folded are judged against their grains, not as
            # recovered indeterminate writes; every other row by the journal's attempts.
            folded = [r for r in primary_rows if _is_folded(lookup, r)]
            if folded or self._folded(lo, hi):
                primary_rows = [r for r in primary_rows if not _is_folded(lookup, r)]
                self.anomalies.extend(
                    ledger.folded(self.primary.name, folded, self.db.folded_grains(lo, hi))
                )
            self.checks.append(
                check_chunk(self.primary.name, primary_rows, expected, lookup, lo=lo, hi=hi)
            )
        for name, fetched in theirs_all.items():
            reference, rows = primary_all, fetched
            if self.live and rows != primary_all:
                reference, rows = self._settled_rows(name, lo, hi, (primary_all, fetched))
            if not self.nodes[name].ok:
                continue
            self.anomalies.extend(
                self._replica_findings(
                    name, reference, rows, self._mine(rows), expected, lookup, lo, hi
                )
            )

    def _folded(self, lo: int, hi: int) -> bool:
        """Whether retention folded any acknowledged row id in lo..hi."""
        f = self.db.folded
        return f.row_lo is not None and f.row_hi is not None and lo <= f.row_hi and f.row_lo <= hi

    def _settled_rows(
        self, name: str, lo: int, hi: int, first: tuple[list[Row], list[Row]]
    ) -> tuple[list[Row], list[Row]]:
        """During a live run another run's transaction may commit on the primary after the
        GTID target was taken, with an id below the horizon: let the replica reach the
        primary's position of now (once per node, a few seconds at most), then read both
        again. This run's own rows are settled already."""
        node = self.nodes[name]
        if name not in self.resettled:
            self.resettled.add(name)
            try:
                node.wait_executed(self.primary.gtid_position(), min(5.0, self.options.timeout))
            except DatabaseError as exc:
                self.lose(node, exc, "waiting for the primary's current position")
        if not node.ok:
            return first
        return self._fetch(self.primary, lo, hi), self._fetch(node, lo, hi)

    def _mine(self, rows: list[Row]) -> list[Row]:
        prefix = self.prefix
        if all(r[1].startswith(prefix) for r in rows):
            return rows
        return [r for r in rows if r[1].startswith(prefix)]

    def _fetch(self, node: Node, lo: int, hi: int) -> list[Row]:
        try:
            rows = node.fetch(lo, hi)
        except DatabaseError as exc:
            self.lose(node, exc, f"fetching ids {lo}..{hi}")
            return []
        self.fetched += len(rows)
        return rows

    def _replica_findings(
        self,
        name: str,
        reference: Sequence[Row],
        rows: Sequence[Row],
        mine: Sequence[Row],
        expected: Sequence[Attempt],
        lookup: Mapping[Key, Attempt],
        lo: int,
        hi: int,
    ) -> list[Anomaly]:
        """How a caught-up replica's rows (every writer's) differ from the primary's. A
        difference the ledger detectors explain on the replica's rows of this run (a corrupted
        payload, a duplicate, a row never attempted) is reported as that; any other difference,
        whoever wrote the row, is `divergent`."""
        divergent = replicas.divergent_rows(reference, rows, node=name, reference=self.primary.name)
        if not divergent:
            return []
        differing = {int(a.evidence["id"]) for a in divergent}
        own = check_chunk(name, mine, expected, lookup, lo=lo, hi=hi)
        self.failures.extend(own.failures)
        explained: list[Anomaly] = []
        covered: set[int] = set()
        for a in own.anomalies:
            ids = _anomaly_ids(a) & differing
            if ids:
                explained.append(a)
                covered |= ids
        return explained + [a for a in divergent if int(a.evidence["id"]) not in covered]

    # -- 5. whole-table checks ------------------------------------------------------------------
    def unplaced(self, live_since: float | None) -> None:
        """Acknowledged attempts without a row id: looked up on the primary by key."""
        for found in self.db.unplaced_acks():
            # A live run's acknowledgements after the start are the next verification's.
            batch = [a for a in found if live_since is None or a.invoke_wall < live_since]
            if not batch:
                continue
            rows: list[Row] = []
            for writer, group in groupby(batch, key=lambda a: a.writer_id):
                rows.extend(self.primary.fetch_keys(writer, [a.seq for a in group]))
            self.fetched += len(rows)
            lookup = {a.key: a for a in batch}
            lookup.update(self.db.lookup((r[1], r[2]) for r in rows if (r[1], r[2]) not in lookup))
            self.checks.append(check_chunk(self.primary.name, rows, batch, lookup, lo=0, hi=0))

    def duplicates(self) -> None:
        """Duplicates across ranges: the server's GROUP BY over the (writer_id, seq) index, for
        the keys of the primary's rows that were not where the journal expected them.

        Every extra copy of a write is such a row (the journal expects each write once, at its
        own row id), so its range was fetched, whichever copy is the extra one; grouping those
        keys finds every duplicate at a cost that follows the anomalies, not the table."""
        groups: list[tuple[str, int, list[int]]] = []
        for writer, seqs in sorted(self.suspects.items()):
            ordered = sorted(seqs)
            for i in range(0, len(ordered), LOOKUP_BATCH):
                try:
                    groups += self.primary.duplicate_groups(writer, ordered[i : i + LOOKUP_BATCH])
                except DatabaseError as exc:
                    self.lose(self.primary, exc, "grouping duplicates")
        self.anomalies.extend(ledger.duplicated_groups(self.primary.name, groups))

    def unregistered(self) -> None:
        """Rows on the primary whose writer belongs to no registered run: no checker wrote
        them (`unexpected`, reason `unregistered_writer`). A loose index scan lists the
        writers; only an unregistered writer's rows are read. The registry is read after the
        writers, so a run that starts meanwhile (it registers before its first write) is in it.
        Without the registry table (set up before it existed), this cannot be told."""
        if self.id_range is None:
            self.registry = "checked"
            return
        lo, hi = self.id_range
        try:
            writers = [w for w in self.primary.distinct_writers() if not w.startswith(self.prefix)]
            known = self.primary.registered_writers(self.target.names.q("registry"))
            if known is None:
                self.registry = (
                    f"no registry table {self.target.names.q('registry')}: rows of writers no "
                    "checker registered cannot be told from other runs' rows (run `checker setup`)"
                )
                return
            found: list[tuple[int, str, int]] = []
            for writer in writers:
                if writer not in known:
                    found += self.primary.writer_rows(writer, lo, hi)
        except DatabaseError as exc:
            self.lose(self.primary, exc, "reading the writer registry")
            return
        self.registry = "checked"
        if found:
            self.unregistered_rows[self.primary.name] = len(found)
        self.anomalies.extend(ledger.unregistered(self.primary.name, found))

    def small_tables(self) -> None:
        """The bank's accounts and the chaos markers, every row, each caught-up replica against
        the primary: one checksum per table and node; rows are read only where they differ.

        Not during a live run (both change all the time): at the end of a run and offline. A
        difference is read twice: the replica first waits (a few seconds at most) for the
        primary's position at that moment, so that a row written in between is not taken for a
        divergence."""
        primary = self.primary
        names = self.target.names
        for table, columns in ((names.q("accounts"), "id, balance"), (names.q("marker"), _MARKER)):
            others = [n for n in self.compared() if n is not primary]
            if not others:
                return
            sums = self.each([primary, *others], functools.partial(_table_sum, table, columns))
            ref = sums.get(primary.name)
            if isinstance(ref, DatabaseError):
                self.lose(primary, ref, f"checksumming {table}")
                return
            for node in others:
                mine = sums.get(node.name)
                if isinstance(mine, DatabaseError):
                    self.lose(node, mine, f"checksumming {table}")
                elif mine != ref:
                    self._table_rows(node, table, columns)

    def _table_rows(self, node: Node, table: str, columns: str) -> None:
        try:
            position = self.primary.gtid_position()
            node.wait_executed(position, min(5.0, self.options.timeout))
            theirs = node.table_rows(table, columns)
        except DatabaseError as exc:
            self.lose(node, exc, f"reading {table}")
            return
        try:
            reference = self.primary.table_rows(table, columns)
        except DatabaseError as exc:
            self.lose(self.primary, exc, f"reading {table}")
            return
        self.fetched += len(theirs) + len(reference)
        short = table.rsplit(".", 1)[-1].strip("`")
        self.anomalies.extend(
            replicas.divergent_table_rows(
                short, reference, theirs, node=node.name, reference=self.primary.name
            )
        )

    def bank_totals(self, expected: int) -> None:
        finals: dict[str, int | None] = {}
        reachable = [n for n in self.nodes.values() if n.conn is not None]
        for name, total in self.each(reachable, Node.bank_total).items():
            if isinstance(total, DatabaseError):
                self.lose(self.nodes[name], total, "reading the bank total")
            else:
                finals[name] = total
        self.anomalies.extend(bank.bank_total([], finals, expected=expected))

    # -- the verdict ----------------------------------------------------------------------------
    def node_verdicts(self) -> dict[str, NodeVerdict]:
        out: dict[str, NodeVerdict] = {}
        for name, node in self.nodes.items():
            role = "primary" if node is self.primary else "replica"
            judged = node is self.primary or name in self.caught_up
            rows = (
                self.rows[name] if judged and self.id_range is not None else (0 if judged else None)
            )
            reason = node.error
            if reason is None and not judged:
                reason = "not compared with the primary"
            valid = Validity.VALID if reason is None else Validity.UNKNOWN
            out[name] = NodeVerdict(valid, role, self.gtids.get(name), rows, reason)
            self.reports[name] = NodeReport(
                name=name,
                role=role,
                server=node.info.identity if node.info else None,
                gtid=self.gtids.get(name),
                caught_up=True if node is self.primary else (name in self.caught_up),
                rows=rows,
                foreign_rows=_registered_foreign(
                    self.foreign.get(name), self.unregistered_rows.get(name, 0)
                ),
                reason=reason,
            )
        return out


def _table_sum(table: str, columns: str, node: Node) -> tuple[int, int]:
    return node.table_checksum(table, columns)


def _registered_foreign(foreign: int | None, unregistered: int) -> int | None:
    """Other registered runs' rows: the unregistered writers' are reported `unexpected`."""
    return None if foreign is None else max(0, foreign - unregistered)


def _next_size(size: int, seconds: float, o: Options) -> int:
    """Grow or shrink the chunk toward `chunk_seconds`, at most twofold per step."""
    factor = 2.0 if seconds <= 0 else min(2.0, max(0.5, o.chunk_seconds / seconds))
    return max(o.min_chunk, min(o.max_chunk, int(size * factor)))


def _grains(size: int) -> int:
    return max(GRAIN, size - size % GRAIN)


def _percent(start: int, end: int, lo: int, hi: int) -> str:
    return f"{100.0 * (end - lo + 1) / max(1, hi - lo + 1):.0f}%"


def _odd_keys(row_sets: Iterable[Sequence[Row]], expected: Sequence[Attempt]) -> set[Key]:
    """Keys of rows that are not simply the acknowledged write expected at their id: the only
    rows the ledger detectors look up (a superset of the core's `Match.odd`)."""
    claims = Counter(a.row_id for a in expected)
    at = {a.row_id: a.key for a in expected}
    keys: set[Key] = set()
    for rows in row_sets:
        for r in rows:
            if claims.get(r[0], 0) != 1 or at.get(r[0]) != (r[1], r[2]):
                keys.add((r[1], r[2]))
    return keys


def _is_folded(lookup: Mapping[Key, Attempt], row: Row) -> bool:
    a = lookup.get((row[1], row[2]))
    return a is not None and is_folded(a)


def _anomaly_ids(a: Anomaly) -> set[int]:
    ids = a.evidence.get("ids")
    if isinstance(ids, list):
        return {i for i in ids if isinstance(i, int)}
    one = a.evidence.get("id")
    return {one} if isinstance(one, int) else set()
