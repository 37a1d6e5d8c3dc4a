"""The long-running checker: workload threads, APScheduler jobs, journal, live verdict, HTTP.

Start-up never requires MySQL to be up: an unreachable server makes the verdict `unknown`
and every loop retries with backoff. A wrong password or a missing grant, though, is a user
error: `run` refuses to start and says which.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from checker import _logging, mysql, schema, workload
from checker._memory import release_memory
from checker.core.history import Attempt
from checker.core.semisync import WindowIndex, annotate
from checker.core.verdict import Failure, Validity, Verdict, build_verdict, merge
from checker.errors import AuthError, CheckerError, DatabaseError, GrantError, SchemaError
from checker.journal import Journal, JournalReader
from checker.journal.compact import Compaction, compact
from checker.live import LiveAnalysis
from checker.metrics import COMMIT_BUCKETS, VERIFY_BUCKETS, Histogram, journal_disk
from checker.semisync import SemiSyncSampler
from checker.settings import Settings

log = _logging.get("checker.service")
# A skipped overlapping run is the intended behaviour (max_instances=1, coalesce), not news.
logging.getLogger("apscheduler").setLevel(logging.ERROR)

VerifyFn = Callable[["Service"], Verdict]


def target_of(settings: Settings) -> str:
    """What a journal belongs to: the writer's address, database and table (no credentials)."""
    w = settings.writer
    return f"{w.host}:{w.port}/{settings.names.database}.{settings.names.ledger}"


class Service:
    """One checker run. `start()` returns at once; `stop()` ends it cleanly."""

    def __init__(self, settings: Settings, *, verify: VerifyFn | None = None) -> None:
        self.settings = settings
        self.journal = Journal(settings.journal, target=target_of(settings))
        self.started_at = time.time()
        self.stop_event = threading.Event()
        self.nodes = workload.NodeMap()
        self.flavor = "mysql"
        self.bank_total: int | None = None
        self.live = LiveAnalysis(names=settings.names, lag_bound=settings.lag_bound)
        self.limiter = workload.RateLimiter(settings.rate)
        self.threads: list[workload.Loop] = []
        self.writers: list[workload.LedgerWriter] = []
        self.lag: dict[str, float | None] = {}
        self.bank_counters = workload.BankCounters()
        self.bank_lock = threading.Lock()
        self.reads = 0
        self.scheduler = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True})
        self.verify_fn = verify
        self.verify_lock = threading.Lock()
        # Retention deletes raw attempts: never while a verification or the cache warmer reads.
        self.journal_lock = threading.Lock()
        self.disk_low = False
        self.last_verification: dict[str, Any] | None = None
        self.full_verdict: Verdict | None = None
        self.full_started = 0.0
        # Incremental verification (checker.verify.incremental): the passes so far and the
        # findings the next incremental pass carries over, continued from the journal.
        from checker.verify.incremental import recorded

        self.passes, self.carried = recorded(self.journal)
        self.verify_kind = "full"
        self.pass_info: tuple[str, tuple[int, int] | None] | None = None
        self.fatal: str | None = None
        self.annotations: list[dict[str, Any]] = []
        self.ready = False
        self.primary_node: str | None = None
        # Signals for dashboards and alerts (checker.metrics); cheap to update.
        self.commit_latency = Histogram(COMMIT_BUCKETS)
        self.verification_seconds = Histogram(VERIFY_BUCKETS)
        self.verification_results = {"valid": 0, "invalid": 0, "unknown": 0, "error": 0}
        self.last_good_verification: float | None = None
        self.last_good_full: float | None = None
        self.semi_sync: SemiSyncSampler | None = None
        self._semi_sync_index: tuple[tuple[int, float], WindowIndex] | None = None
        self._node_infos: dict[str, Any] = {}
        info = self.journal.info
        self.writer_ids = [
            f"{info.run_id}-{info.incarnation}-{i}" for i in range(settings.concurrency)
        ]

    # -- start-up ---------------------------------------------------------------------------
    def preflight(self) -> bool:
        """Check credentials, schema and grants once MySQL answers. False: not reachable yet."""
        s = self.settings
        try:
            conn = mysql.connect(s.writer)
        except (AuthError, GrantError, SchemaError):
            raise
        except DatabaseError as exc:
            log.warning("mysql_unreachable", endpoint=s.writer.label(), error=str(exc))
            return False
        try:
            info = mysql.server_info(conn)
            self.flavor = info.flavor
            self.live.flavor = info.flavor
            schema.check_access(conn, s.writer, s.names)
            schema.check_monitor(conn, s.writer, info.flavor, info.version)
            registered = schema.register_writers(
                conn, s.writer, s.names, self.journal.info.run_id, self.writer_ids
            )
            if not registered:
                log.warning("writer_registry_missing", table=s.names.q("registry"))
        finally:
            conn.close()
        if "bank" in s.workloads:
            self.bank_total = self._bank_total()
            self.live.bank_expected = self.bank_total
        self._node_infos = workload.learn_nodes(s.nodes, self.nodes)
        if not s.nodes:
            # Without node endpoints, name the primary after the writer endpoint.
            self.nodes.learn(info.server_id, s.writer.name or "mysql-0")
        self.primary_node = self.nodes.name(info.server_id)
        self.journal.record_event(
            "preflight_ok",
            flavor=info.flavor,
            version=info.version,
            primary=self.primary_node,
            server=info.identity,
        )
        self.ready = True
        return True

    def _bank_total(self) -> int:
        stored = self.journal.meta("bank_total")
        total = workload.ensure_bank(
            self.settings.writer,
            self.settings.names,
            self.settings.bank_accounts,
            self.settings.bank_balance,
        )
        if stored is not None:
            return int(stored)
        self.journal.set_meta("bank_total", str(total))
        return total

    def start(self) -> None:
        s = self.settings
        self.journal.start()
        self.journal.record_event(
            "checker_started",
            incarnation=self.journal.info.incarnation,
            writers=self.writer_ids,
            workloads=list(s.workloads),
        )
        reachable = self.preflight()
        if not reachable:
            self.scheduler.add_job(self._retry_preflight, "interval", seconds=1.0, id="preflight")
        self._start_threads()
        self.scheduler.add_job(
            self.analyse,
            "interval",
            seconds=s.analysis_interval,
            id="live",
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(self._record_lag, "interval", seconds=1.0, id="lag")
        if self.verify_fn is not None:
            # Keep the verifier's expectations current, so the verification at the end is warm.
            self.scheduler.add_job(self._warm_verify_cache, "interval", seconds=30.0, id="warm")
        if s.verify_interval > 0 and self.verify_fn is not None:
            self.scheduler.add_job(
                self.periodic_verify, "interval", seconds=s.verify_interval, id="verify"
            )
        if s.retention > 0:
            self.scheduler.add_job(
                self.compact, "interval", seconds=s.compact_interval, id="compact"
            )
        self.scheduler.add_job(self.check_disk, "interval", seconds=10.0, id="disk")
        self.check_disk()  # a disk already short of space is said at once, not 10 s later
        self.scheduler.start()
        log.info(
            "checker_started",
            writers=len(self.writers),
            workloads=list(s.workloads),
            journal=str(s.journal),
            incarnation=self.journal.info.incarnation,
        )

    def _retry_preflight(self) -> None:
        try:
            if self.preflight():
                self.scheduler.remove_job("preflight")
                for t in self.threads:
                    t.paused.clear()
        except CheckerError as exc:
            self.fatal = str(exc)
            log.error("preflight_failed", error=str(exc))
            self.scheduler.remove_job("preflight")
            self.stop_event.set()

    def _start_threads(self) -> None:
        s = self.settings
        if "ledger" in s.workloads:
            for wid in self.writer_ids:
                w = workload.LedgerWriter(
                    wid,
                    s.writer,
                    s.names,
                    self.journal,
                    self._sink_attempt,
                    self.stop_event,
                    self.limiter,
                    self.nodes,
                )
                # Staggered, so that writers never all reconnect at the same moment.
                w.lifetime = s.reconnect_every * (0.5 + random.random())
                self.writers.append(w)
                self.threads.append(w)
            if s.reader is not None:
                self.threads.append(
                    workload.Reader(
                        "mysql-read",
                        s.reader,
                        s.names,
                        self._writer_ids,
                        self._sink_reads,
                        self.stop_event,
                        self.nodes,
                        interval=s.read_interval,
                        reconnect_each_read=True,
                    )
                )
            for name, ep in s.nodes.items():
                self.threads.append(
                    workload.Reader(
                        name,
                        ep,
                        s.names,
                        self._writer_ids,
                        self._sink_reads,
                        self.stop_event,
                        self.nodes,
                        interval=max(1.0, s.read_interval),
                    )
                )
        self.threads.append(workload.Heartbeat(s.writer, s.names, self.stop_event))
        self.semi_sync = SemiSyncSampler(s.writer, self.journal, self.stop_event, self._acked)
        self.threads.append(self.semi_sync)
        for name, ep in s.nodes.items():
            self.threads.append(
                workload.LagSampler(
                    name, ep, s.names, self._sink_lag, self.stop_event, interval=1.0
                )
            )
        if "bank" in s.workloads:
            bank_limiter = workload.RateLimiter(0)
            for i in range(s.bank_concurrency):
                self.threads.append(
                    workload.BankTransfers(
                        f"bank-{i}",
                        s.writer,
                        s.names,
                        s.bank_accounts,
                        self.stop_event,
                        self.bank_counters,
                        self.bank_lock,
                        bank_limiter,
                    )
                )
            for name, ep in (s.nodes or {"mysql-0": s.writer}).items():
                self.threads.append(
                    workload.BankObserver(name, ep, s.names, self._sink_bank, self.stop_event)
                )
        for t in self.threads:
            if not self.ready:
                t.paused.set()
            t.start()

    def _sink_attempt(self, a: Attempt) -> None:
        if a.complete_mono is not None and a.invoke_mono is not None:
            self.commit_latency.observe(a.outcome.value, a.complete_mono - a.invoke_mono)
        self.live.add_attempt(a)

    def _acked(self) -> int:
        return self.live.counts["ok"]

    def semi_sync_index(self) -> WindowIndex:
        """Semi-sync windows sampled so far (rebuilt only when a sample was added)."""
        sampler = self.semi_sync
        if sampler is None:
            return WindowIndex([])
        last = sampler.current
        key = (len(sampler.samples), last.time if last else 0.0)
        cached = self._semi_sync_index
        if cached is None or cached[0] != key:
            cached = (key, sampler.index())
            self._semi_sync_index = cached
        return cached[1]

    def _writer_ids(self) -> list[str]:
        return self.writer_ids

    def _sink_reads(self, reads: list[Any]) -> None:
        self.reads += len(reads)
        self.live.add_reads(reads)
        for r in reads:
            self.journal.record_read(r)

    def _sink_bank(self, obs: Any) -> None:
        if self.bank_total is not None:
            self.live.add_bank(obs)
        self.journal.record_bank(obs)

    def _sink_lag(self, node: str, seconds: float | None) -> None:
        self.lag[node] = seconds

    def _warm_verify_cache(self) -> None:
        from checker.verify import warm_cache

        try:
            with self.journal_lock:
                warm_cache(self.journal)
        except Exception as exc:  # noqa: BLE001 - a cold cache is only slower
            log.debug("verify_cache_warm_failed", error=str(exc))

    def _record_lag(self) -> None:
        now = time.time()
        for node, seconds in list(self.lag.items()):
            self.journal.record("lag", {"time": now, "node": node, "seconds": seconds})

    # -- analysis ---------------------------------------------------------------------------
    def analyse(self) -> Verdict:
        """One live analysis cycle (the APScheduler job)."""
        if not self.ready:
            return self.verdict()
        verdict = self.live.cycle(self.settings.writer, self.primary_node)
        if self.live.primary_server is not None:
            for w in self.writers:
                if w.server == self.live.primary_server and w.node:
                    self.primary_node = w.node
                    break
        return verdict

    def verdict(self) -> Verdict:
        """The current verdict: the last full verification merged with live findings, or the
        live one; `unknown` whenever the checker cannot currently vouch for the data."""
        problems: list[Failure] = []
        if self.fatal:
            problems.append(Failure("checker", self.fatal))
        if self.journal.error:
            problems.append(Failure("journal", self.journal.error))
        if not self.ready:
            problems.append(Failure("mysql", "MySQL has not been reachable yet"))
        base = (
            self.live.merge_full(self.full_verdict, self.full_started)
            if self.full_verdict is not None
            else self.live.verdict
        )
        if problems:
            # merge, not build_verdict(base.anomalies...): capped examples, counts are not.
            base = merge([base, build_verdict([], failures=problems)])
        if any(a.type == "lost" for a in base.anomalies):
            base = annotate(base, self.semi_sync_index())
        return base

    def periodic_verify(self) -> Verdict:
        """The periodic job: an incremental pass, or a full one when it is due
        (`--full-verify-interval`; 0: always full)."""
        return self.verify(self.next_kind())

    def next_kind(self) -> str:
        """The kind of the next periodic pass: full when none completed yet (nothing to
        continue from), when the last full pass began `--full-verify-interval` ago or more."""
        every = self.settings.full_verify_interval
        last = self.passes.last_full
        if every <= 0 or self.passes.last_complete is None or last is None:
            return "full"
        return "full" if time.time() - last.started >= every else "incremental"

    def verify(self, kind: str = "full") -> Verdict:
        """A verification now: full (POST /verify, the end of a run, the periodic job when a
        full pass is due) or incremental (the periodic job otherwise)."""
        if self.verify_fn is None:
            raise CheckerError("full verification is not available in this build")
        if not self.verify_lock.acquire(blocking=False):
            raise CheckerError("a verification is already running")
        started = time.time()
        try:
            with self.journal_lock:
                self.journal.flush()
                with JournalReader(self.journal) as db:
                    # Journaled before the verification began: its chunk pass covers their rows
                    # (an incremental pass the new ones; the older ones an earlier clean pass).
                    vouched = db.last_attempt_id()
                self.verify_kind, self.pass_info = kind, None
                verdict = self.verify_fn(self)
        except BaseException:
            self.verification_results["error"] += 1
            raise
        finally:
            self.verify_lock.release()
        finished = time.time()
        release_memory()
        self.full_started = started
        self.full_verdict = verdict
        merged = self.verdict()
        result = {Validity.VALID: "valid", Validity.INVALID: "invalid"}.get(merged.valid, "unknown")
        self.verification_results[result] += 1
        self.verification_seconds.observe(result, finished - started)
        if result != "unknown":
            self.last_good_verification = finished
        section = self._record_pass(verdict, merged, started, finished)
        if result != "unknown" and section["kind"] == "full":
            self.last_good_full = finished
        self.last_verification = {
            "started": started,
            "finished": finished,
            "duration": finished - started,
            "valid": merged.valid.json,
            "kind": section["kind"],
            "range": section["range"],
        }
        self.journal.record(
            "verifications",
            {
                "started": started,
                "finished": finished,
                "valid": json.dumps(merged.valid.json),
                "verdict": json.dumps({**merged.to_dict(), "verification": section}),
            },
        )
        if merged.valid is not Validity.UNKNOWN:
            # What retention may fold (checker.journal.compact): every node was judged; the
            # attempts this verdict's anomalies name are pinned raw before any folding.
            self.journal.record("watermarks", {"started": started, "attempt_id": vouched})
        log.info(
            "verification_done",
            valid=merged.valid.json,
            seconds=round(finished - started, 3),
            kind=section["kind"],
            range=section["range"],
            **{k: v for k, v in merged.anomaly_counts.items() if v},
        )
        return merged

    def _record_pass(
        self, verdict: Verdict, merged: Verdict, started: float, finished: float
    ) -> dict[str, Any]:
        """Note the pass that just ended (its kind and range, as the verify function said);
        the verdict's `verification` section for it."""
        from checker.verify.incremental import Pass, complete

        kind, id_range = self.pass_info or ("full", None)
        done = Pass(kind, id_range, started, finished, merged.valid.json, complete(verdict))
        self.passes = self.passes.after(done)
        self.carried = verdict
        return self.verification_section()

    def verification_section(self) -> dict[str, Any]:
        """The verdict's `verification` section: the last pass, and the last of each kind."""
        return self.passes.verdict_section()

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        v = self.verdict()
        with self.bank_lock:
            bank = {
                "ok": self.bank_counters.ok,
                "failed": self.bank_counters.failed,
                "indeterminate": self.bank_counters.indeterminate,
            }
        return {
            "valid": v.valid.json,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "mysql_reachable": self.ready and self.live.failures == [],
            "writes": dict(self.live.counts),
            "bank_transfers": bank if "bank" in self.settings.workloads else None,
            "reads": self.reads,
            "primary": {"node": self.primary_node, "server": self.live.primary_server},
            "lag_seconds": {
                k: (round(x, 3) if x is not None else None) for k, x in sorted(self.lag.items())
            },
            "anomaly_counts": {k: n for k, n in v.anomaly_counts.items() if n},
            "analysis": {
                "cycles": self.live.cycles,
                "last": self.live.last_cycle,
                "interval": self.settings.analysis_interval,
            },
            "journal": {
                "path": str(self.settings.journal),
                "run_id": self.journal.info.run_id,
                "incarnation": self.journal.info.incarnation,
                "error": self.journal.error,
                "flushed": self.journal.flushed,
            },
            "last_verification": self.last_verification,
            "semi_sync": self._semi_sync_status(),
            "writers": {
                w.writer_id: {"seq": w.seq, "node": w.node, "last_error": w.last_error}
                for w in self.writers
            },
            "errors": [f.to_dict() for f in v.failures],
        }

    def _semi_sync_status(self) -> dict[str, Any] | None:
        sampler = self.semi_sync
        current = sampler.current if sampler is not None else None
        if sampler is None or current is None:
            return None
        return {
            "state": current.state,
            "enabled": current.enabled,
            "clients": current.clients,
            "sampled_at": current.time,
            "acked_writes": dict(sampler.acked_by_state),
        }

    # -- shutdown ---------------------------------------------------------------------------
    def compact(self) -> Compaction | None:
        """Fold what the last watermark vouched for (the retention job); skipped
        while a verification runs."""
        if not self.journal_lock.acquire(blocking=False):
            return None
        try:
            self.journal.flush()
            keep = max(self.settings.retention, self.live.window)
            return compact(self.journal, keep=keep)
        except Exception as exc:  # noqa: BLE001 - a failed compaction only keeps more
            log.warning("journal_compaction_failed", error=str(exc))
            return None
        finally:
            self.journal_lock.release()

    def check_disk(self) -> None:
        """Warn once (log) while the journal's file system has less than `disk_warn_bytes`
        free; `checker_journal_disk_low` says so too."""
        size, free, _total = journal_disk(self.journal.path)
        low = free is not None and free < self.settings.disk_warn_bytes
        if low and not self.disk_low:
            log.warning(
                "journal_disk_low",
                free_bytes=free,
                journal_bytes=size,
                threshold_bytes=self.settings.disk_warn_bytes,
            )
        elif self.disk_low and not low:
            log.info("journal_disk_ok", free_bytes=free, journal_bytes=size)
        self.disk_low = low

    def stop_workload(self, timeout: float = 30.0) -> None:
        """Stop every workload thread and flush the journal; analysis can still run after."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        try:
            self.journal.flush()
        except CheckerError as exc:
            log.error("journal_flush_failed", error=str(exc))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop everything: workload, scheduler, journal."""
        self.stop_workload(timeout)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.journal.record_event("checker_stopped")
        try:
            self.journal.flush()
        except CheckerError as exc:
            log.error("journal_flush_failed", error=str(exc))
        self.journal.close()
        log.info("checker_stopped", writes=dict(self.live.counts))

    def wait(self, duration: float | None) -> None:
        """Block until `duration` passes, a fatal error happens, or `stop_event` is set."""
        self.stop_event.wait(duration)

    def uptime(self) -> float:
        return time.time() - self.started_at

    @property
    def valid(self) -> Validity:
        return self.verdict().valid
