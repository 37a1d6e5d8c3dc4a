"""Prometheus metrics of a running checker, collected from its state at scrape time."""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from checker.core.semisync import STATES
from checker.core.verdict import ANOMALY_TYPES

if TYPE_CHECKING:
    from checker.service import Service


COMMIT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
VERIFY_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Histogram:
    """Observations per label value in fixed buckets: one bisect and three additions under an
    uncontended lock per observation, read at scrape time as a Prometheus histogram."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe(self, label: str, value: float) -> None:
        i = bisect.bisect_left(self.bounds, value)
        with self._lock:
            counts = self._counts.get(label)
            if counts is None:
                counts = self._counts[label] = [0] * (len(self.bounds) + 1)
                self._sums[label] = 0.0
            counts[i] += 1
            self._sums[label] += value

    def family(
        self, name: str, doc: str, label: str, values: Sequence[str]
    ) -> HistogramMetricFamily:
        """The histogram as a metric family; every label value in `values` is present."""
        family = HistogramMetricFamily(name, doc, labels=[label])
        with self._lock:
            snapshot = {k: (list(v), self._sums[k]) for k, v in self._counts.items()}
        for value in dict.fromkeys([*values, *sorted(snapshot)]):
            counts, total = snapshot.get(value, ([0] * (len(self.bounds) + 1), 0.0))
            cumulative, buckets = 0, []
            for bound, n in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
                cumulative += n
                buckets.append((bound, float(cumulative)))
            family.add_metric([value], buckets, total)
        return family


def journal_disk(path: Path) -> tuple[int, int | None, int | None]:
    """(journal bytes incl. WAL, free bytes, size of its filesystem) — None where unknown."""
    size = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            size += os.stat(f"{path}{suffix}").st_size
        except OSError:
            continue
    try:
        fs = os.statvfs(path.parent)
    except OSError:
        return size, None, None
    return size, fs.f_bavail * fs.f_frsize, fs.f_blocks * fs.f_frsize


class _ServiceCollector(Collector):
    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        s = self.service
        writes = CounterMetricFamily(
            "checker_writes", "Ledger writes by outcome.", labels=["outcome"]
        )
        for outcome in ("ok", "failed", "indeterminate"):
            writes.add_metric([outcome], s.live.counts.get(outcome, 0))
        yield writes
        verdict = s.verdict()
        anomalies = GaugeMetricFamily(
            "checker_anomalies", "Anomalies in the current verdict, by type.", labels=["type"]
        )
        for name in ANOMALY_TYPES:
            anomalies.add_metric([name], verdict.anomaly_counts.get(name, 0))
        yield anomalies
        valid = {"True": 1.0, "False": 0.0}.get(str(verdict.valid.json), -1.0)
        yield GaugeMetricFamily(
            "checker_verdict_valid", "1 valid, 0 invalid, -1 unknown.", value=valid
        )
        lag = GaugeMetricFamily(
            "checker_replica_lag_seconds", "Replication lag per node (heartbeat).", labels=["node"]
        )
        for node, seconds in sorted(s.lag.items()):
            if seconds is not None:
                lag.add_metric([node], seconds)
        yield lag
        duration = (s.last_verification or {}).get("duration")
        if duration is not None:
            yield GaugeMetricFamily(
                "checker_last_verification_duration_seconds",
                "Wall time of the last verification pass.",
                value=duration,
            )
        yield CounterMetricFamily(
            "checker_reads", "Reads of writers' progress through any endpoint.", value=s.reads
        )
        if "bank" in s.settings.workloads:
            bank = CounterMetricFamily(
                "checker_bank_transfers", "Bank transfers by outcome.", labels=["outcome"]
            )
            with s.bank_lock:
                for outcome in ("ok", "failed", "indeterminate"):
                    bank.add_metric([outcome], getattr(s.bank_counters, outcome))
            yield bank
        yield CounterMetricFamily(
            "checker_journal_records", "Records flushed to the journal.", value=s.journal.flushed
        )
        yield GaugeMetricFamily(
            "checker_uptime_seconds", "Seconds since the checker started.", value=s.uptime()
        )
        yield from _signals(s, verdict)


def _signals(s: Service, verdict: Any) -> Iterator[Any]:
    """Latency, verification, journal disk and semi-sync: what dashboards and alerts use."""
    yield s.commit_latency.family(
        "checker_commit_latency_seconds",
        "Ledger write latency (INSERT to COMMIT answer) by outcome.",
        "outcome",
        ("ok", "failed", "indeterminate"),
    )
    yield s.verification_seconds.family(
        "checker_verification_duration_seconds",
        "Wall time of verification passes (full or incremental), by result.",
        "result",
        ("valid", "invalid", "unknown"),
    )
    results = CounterMetricFamily(
        "checker_verifications",
        "Verification passes (full or incremental) by result.",
        labels=["result"],
    )
    for result, n in s.verification_results.items():
        results.add_metric([result], n)
    yield results
    if s.last_good_verification is not None:
        yield GaugeMetricFamily(
            "checker_last_successful_verification_timestamp_seconds",
            "Unix time the last verification pass with a definite (valid or invalid) answer ended.",
            value=s.last_good_verification,
        )
    if s.last_good_full is not None:
        yield GaugeMetricFamily(
            "checker_last_successful_full_verification_timestamp_seconds",
            "Unix time the last full pass with a definite (valid or invalid) answer ended.",
            value=s.last_good_full,
        )
    yield GaugeMetricFamily(
        "checker_lag_bound_seconds",
        "The configured replication lag bound.",
        value=s.settings.lag_bound,
    )
    size, free, total = journal_disk(s.journal.path)
    yield GaugeMetricFamily(
        "checker_journal_size_bytes", "Size of the journal (with its WAL).", value=size
    )
    if free is not None and total is not None:
        yield GaugeMetricFamily(
            "checker_journal_free_bytes",
            "Bytes available to the checker on the journal's filesystem.",
            value=free,
        )
        yield GaugeMetricFamily(
            "checker_journal_disk_low",
            "1 while the journal's filesystem has less free space than --disk-warn-bytes.",
            value=1.0 if free < s.settings.disk_warn_bytes else 0.0,
        )
        yield GaugeMetricFamily(
            "checker_journal_filesystem_size_bytes",
            "Size of the journal's filesystem.",
            value=total,
        )
    yield from _semi_sync(s, verdict)


def _semi_sync(s: Service, verdict: Any) -> Iterator[Any]:
    sampler = s.semi_sync
    current = sampler.current if sampler is not None else None
    enabled = -1.0 if current is None or current.enabled is None else float(current.enabled)
    active = -1.0 if current is None or current.active is None else float(current.active)
    yield GaugeMetricFamily(
        "checker_semi_sync_enabled",
        "Semi-sync enabled on the primary: 1 yes, 0 no, -1 unknown.",
        value=enabled,
    )
    yield GaugeMetricFamily(
        "checker_semi_sync_active",
        "The primary's semi-sync status (Rpl_semi_sync_*_status): 1 on, 0 off, -1 unknown.",
        value=active,
    )
    if current is not None and current.clients is not None:
        yield GaugeMetricFamily(
            "checker_semi_sync_clients",
            "Semi-sync replicas connected to the primary.",
            value=current.clients,
        )
    acked = CounterMetricFamily(
        "checker_semi_sync_acked_writes",
        "Acknowledged ledger writes by the semi-sync window they were acknowledged in.",
        labels=["state"],
    )
    counted = sampler.acked_by_state if sampler is not None else {}
    for state in STATES:
        acked.add_metric([state], counted.get(state, 0))
    yield acked
    lost = GaugeMetricFamily(
        "checker_lost_writes_by_semi_sync",
        "Lost writes among the verdict's examples, by the semi-sync window of their ack.",
        labels=["state"],
    )
    found = dict.fromkeys(STATES, 0)
    for a in verdict.anomalies:
        if a.type == "lost":
            state = a.evidence.get("semi_sync", "unknown")
            found[state if state in found else "unknown"] += 1
    for state in STATES:
        lost.add_metric([state], found[state])
    yield lost


def render_metrics(service: Service) -> tuple[str, str]:
    """(text, content type) of the Prometheus exposition for `service`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceCollector(service))
    return generate_latest(registry).decode(), CONTENT_TYPE_LATEST
