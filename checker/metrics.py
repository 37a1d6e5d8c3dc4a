"""Prometheus metrics of a running checker, collected from its state at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from checker.core.verdict import ANOMALY_TYPES

if TYPE_CHECKING:
    from checker.service import Service


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
                "Wall time of the last full verification.",
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


def render_metrics(service: Service) -> tuple[str, str]:
    """(text, content type) of the Prometheus exposition for `service`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceCollector(service))
    return generate_latest(registry).decode(), CONTENT_TYPE_LATEST
