"""Fixtures and helpers for the Chaos Toolkit extension's tests (real lab servers only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chaoslib.activity import ensure_activity_is_valid, run_activity

from checker.lab.topology import Lab
from probes import lab as lab_probes
from probes import mysql as mysql_probes
from tests._wait import wait_for


def lab_config(lab: Lab) -> dict[str, Any]:
    return {"lab_dir": str(lab.dir)}


def run_python(
    kind: str,
    module: str,
    func: str,
    arguments: dict[str, Any],
    configuration: dict[str, Any],
    secrets: dict[str, Any] | None = None,
) -> Any:
    """Run one activity the way `chaos run` does: validated, then through the python provider
    (configuration and the provider's secret scopes injected by chaoslib, not by us)."""
    provider: dict[str, Any] = {
        "type": "python",
        "module": module,
        "func": func,
        "arguments": arguments,
    }
    if secrets:
        provider["secrets"] = sorted(secrets)
    activity = {"type": kind, "name": f"{func}-under-test", "provider": provider}
    ensure_activity_is_valid(activity)
    return run_activity(activity, configuration, secrets or {})


def restore(lab: Lab) -> None:
    """Undo every fault and wait until replication is healthy again."""
    config = lab_config(lab)
    lab_probes.heal_all(configuration=config)
    wait_for(
        lambda: mysql_probes.replication_healthy(timeout=2.0, configuration=config),
        timeout=30,
        what="replication to be healthy again",
    )


@pytest.fixture
def healthy_lab(lab: Lab) -> Iterator[Lab]:
    """The module's lab (healthy when the test starts), made healthy again after the test."""
    yield lab
    restore(lab)
