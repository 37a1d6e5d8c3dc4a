"""Stand-ins with the agreed signatures of probes.mysql/probes.checker activities.

The experiments call these; the real modules are written in parallel. Experiments are validated
against the real module when it can be imported and against these otherwise, and they run on the
fake cluster with these (they touch no MySQL and no checker) so only probes.kubernetes is real.
"""

from __future__ import annotations

from typing import Any

CALLS: list[tuple[str, dict[str, Any]]] = []

Configuration = dict[str, Any] | None
Secrets = dict[str, Any] | None


def _called(name: str, **arguments: Any) -> None:
    CALLS.append((name, arguments))


def marker_write_read(
    timeout: float = 10.0, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    _called("marker_write_read", timeout=timeout, secrets=secrets)
    return True


def replication_healthy(
    max_lag_seconds: float = 10.0, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    _called("replication_healthy", max_lag_seconds=max_lag_seconds, secrets=secrets)
    return True


def writable_primaries(configuration: Configuration = None, secrets: Secrets = None) -> int:
    _called("writable_primaries", secrets=secrets)
    return 1


def verdict_valid(configuration: Configuration = None, secrets: Secrets = None) -> bool:
    _called("verdict_valid", secrets=secrets)
    return True


def anomaly_counts(configuration: Configuration = None) -> dict[str, int]:
    _called("anomaly_counts")
    return {"lost": 0, "duplicated": 0, "corrupted": 0, "split_brain": 0}


def wait_for_new_writes(
    count: int = 50, timeout: float = 60.0, configuration: Configuration = None
) -> bool:
    _called("wait_for_new_writes", count=count, timeout=timeout)
    return True
