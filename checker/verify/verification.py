"""One verification from start to result (`verify`), and what can still be said when it
cannot finish (`unfinished`)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from checker import _logging
from checker.core.analysis import verdict_from_chunks
from checker.core.detectors import JOURNAL_TYPES
from checker.core.verdict import (
    Counts,
    Failure,
    NodeVerdict,
    Validity,
    Verdict,
    build_verdict,
    merge,
    place_groups,
)
from checker.journal import Journal
from checker.journal.reader import JournalReader
from checker.verify.journal_checks import History, check_history
from checker.verify.model import LiveRun, NodeReport, Options, Target, Verification
from checker.verify.node import Node, connect, find_primary
from checker.verify.run import Run

log = _logging.get("checker.verify")  # one logger name for the whole verification


def verify(
    target: Target,
    journal: Journal,
    options: Options | None = None,
    *,
    live: LiveRun | None = None,
    summary: bool = True,
) -> Verification:
    """Verify every node of `target` against `journal`; see `checker.verify`.

    `live` is given when the checker is still writing: the check then stops at the primary's
    highest id at the start, and `live.settle` runs before the GTID position is captured, so
    every row up to that id is final on the primary before the barrier aims at it. Raises
    `CheckerError` when nothing can be judged (no primary, wrong credentials); anything less
    makes nodes or the verdict unknown.
    """
    o = options or Options()
    started = time.monotonic()
    prefix = f"{journal.info.run_id}-"
    nodes = {
        name: Node(name, ep, target.names, prefix, o.timeout + 60.0)
        for name, ep in sorted(target.nodes.items())
    }
    # One worker per node, and one for a range's aggregates submitted as a whole.
    pool = ThreadPoolExecutor(max_workers=len(nodes) + 1, thread_name_prefix="verify")
    run: Run | None = None
    history = History()
    bank_meta = journal.meta("bank_total")
    bank_expected = int(bank_meta) if bank_meta is not None else None
    # The journal's own checks need no MySQL: they run while the servers work.
    history_thread = threading.Thread(
        target=check_history,
        args=(journal, o.lag_bound, bank_expected, history),
        name="verify-history",
        daemon=True,
    )
    try:
        connect(nodes, pool)
        run = Run(
            target, journal, o, nodes, find_primary(nodes, target.primary, target.writer), pool
        )
        history_thread.start()
        live_seqs = run.servers_side(live, bank_expected)
        with run.phase("journal_checks_wait"):
            history_thread.join()
        if not history.done:
            history.failures.append(Failure("history", "the journal checks did not finish"))
        outcomes = history.outcomes or run.db.outcomes()
        with run.phase("verdict"):
            verdict = verdict_from_chunks(
                run.checks,
                counts=run.db.counts(outcomes, live_seqs),
                nodes=run.node_verdicts(),
                anomalies=[*run.anomalies, *history.found],
                failures=[*run.failures, *history.failures],
                cap=o.cap,
            )
    finally:
        if history_thread.is_alive():
            history_thread.join()
        pool.shutdown(wait=True)
        for node in nodes.values():
            node.close()
        if run is not None:
            run.close()
    result = Verification(
        verdict=placed(verdict, journal),
        started_at=journal.info.created_at,
        run_id=run.run_id,
        primary=run.primary.name,
        nodes=dict(run.reports),
        gtid_target=run.target_gtid,
        id_range=run.id_range,
        chunks=run.chunks,
        drilled=run.drilled,
        fetched_rows=run.fetched,
        seconds=time.monotonic() - started,
        phases=dict(run.phases),
        registry=run.registry,
        kind="full" if o.since is None else "incremental",
    )
    _log_summary(result, summary)
    return result


def unfinished(
    target: Target,
    journal: Journal,
    reason: str,
    options: Options | None = None,
    *,
    recorded: bool = True,
) -> Verification:
    """What can still be said when a verification cannot finish (the primary unreachable or
    failing): the journal's counts, the journal's own checks (split brain, stale and
    non-monotonic reads, bank observations), and the findings of the last verification the
    checker journaled (the live analysis' lost writes among them; `recorded=False` leaves
    them to the caller, the running checker, which holds them itself), every node `unknown`
    with `reason`. INVALID if anything was found (INVALID dominates UNKNOWN), else UNKNOWN."""
    o = options or Options()
    started = time.monotonic()
    bank_meta = journal.meta("bank_total")
    history = History()
    check_history(journal, o.lag_bound, int(bank_meta) if bank_meta is not None else None, history)
    db = JournalReader(journal)
    try:
        counts = db.counts(history.outcomes or db.outcomes())
    finally:
        db.close()
    nodes = {
        name: NodeVerdict(Validity.UNKNOWN, None, None, None, reason)
        for name in sorted(target.nodes)
    }
    parts = [
        build_verdict(
            history.found,
            counts=counts,
            nodes=nodes,
            failures=[Failure("verify", reason), *history.failures],
            cap=o.cap,
        )
    ]
    last = _last_recorded(journal) if recorded else None
    if last is not None:
        parts.append(last)
    verdict = merge(parts, cap=o.cap)
    return Verification(
        verdict=placed(verdict, journal),
        started_at=journal.info.created_at,
        run_id=journal.info.run_id,
        primary=target.primary,
        nodes={name: NodeReport(name=name, role="unknown", reason=reason) for name in target.nodes},
        seconds=time.monotonic() - started,
    )


def activity_windows(journal: Journal) -> list[tuple[str, float, float | None]]:
    """The chaos activities' windows the journal's annotations record (`POST /annotations`:
    a start and an end per name; an end never sent leaves the window open)."""
    try:
        rows = sorted(journal.rows("annotations"), key=lambda r: float(r["time"]))
    except Exception:  # noqa: BLE001 - an older journal without annotations: no windows
        return []
    open_: dict[str, float] = {}
    windows: list[tuple[str, float, float | None]] = []
    for r in rows:
        name, phase, t = str(r["name"]), str(r["phase"]), float(r["time"])
        if phase == "start":
            open_[name] = t
        elif name in open_:
            windows.append((name, open_.pop(name), t))
    windows += [(name, t, None) for name, t in open_.items()]
    return windows


def placed(verdict: Verdict, journal: Journal) -> Verdict:
    """The verdict with each anomaly group placed on the chaos timeline (`Group.activity`)."""
    if not verdict.groups:
        return verdict
    return replace(verdict, groups=place_groups(verdict.groups, activity_windows(journal)))


def _last_recorded(journal: Journal) -> Verdict | None:
    """The findings of the last verdict the running checker journaled (without its counts
    and its journal-only findings, which `unfinished` computes afresh): what was observed
    while the servers could still be read."""
    try:
        rows = journal.rows("verifications")
    except Exception:  # noqa: BLE001 - an older journal without them: nothing recorded
        return None
    last = None
    for row in rows:
        last = row
    if last is None or not last.get("verdict"):
        return None
    try:
        v = Verdict.from_json(str(last["verdict"]))
    except (ValueError, KeyError, TypeError):
        return None
    kept = [a for a in v.anomalies if a.type not in JOURNAL_TYPES]
    groups = tuple(g for g in v.groups if g.type not in JOURNAL_TYPES)
    return replace(
        v,
        counts=Counts(),
        anomaly_counts={k: (0 if k in JOURNAL_TYPES else n) for k, n in v.anomaly_counts.items()},
        anomalies=tuple(kept),
        groups=groups,
        nodes={n: replace(nv, rows=None) for n, nv in v.nodes.items()},
    )


def _primary_rows(result: Verification) -> int | None:
    report = result.nodes.get(result.primary) if result.primary else None
    return report.rows if report else None


def _log_summary(result: Verification, summary: bool) -> None:
    v = result.verdict
    (log.info if summary else log.debug)(
        "verification_done" if summary else "verification_details",
        valid=v.valid.json,
        seconds=round(result.seconds, 3),
        primary=result.primary,
        rows=_primary_rows(result),
        foreign_rows=sum(r.foreign_rows or 0 for r in result.nodes.values()),
        chunks=result.chunks,
        drilled=result.drilled,
        fetched_rows=result.fetched_rows,
        unknown=sorted(n for n, nv in v.nodes.items() if nv.valid is Validity.UNKNOWN),
        **{k: n for k, n in v.anomaly_counts.items() if n},
    )
