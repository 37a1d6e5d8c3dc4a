"""Prometheus's own tools for the monitoring tests: `promtool` and the `prometheus` server.

Debian's `prometheus` package ships both; the tests install it when it is missing and they run
as root (as tests/report/_chromium.py does for Chromium), and fail with the command otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"
RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yaml")


def find_or_install(name: str) -> str:
    """Path of `promtool` or `prometheus`; apt-get installs Debian's `prometheus` if needed."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail(
            f"{name} is needed and not installed; as root run `apt-get update && apt-get "
            "install -y --no-install-recommends prometheus` (Debian), then rerun the tests"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q"]
    for cmd in (["apt-get", "update", "-q"], [*install, "--no-install-recommends", "prometheus"]):
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr[-1500:]}")
    found = shutil.which(name)
    if not found:
        pytest.fail(f"apt-get installed prometheus but no {name} is on PATH")
    return found


def rule_spec() -> dict[str, Any]:
    """The PrometheusRule's `spec`: exactly a Prometheus rule file's content (groups)."""
    docs = [d for d in yaml.safe_load_all(RULE.read_text()) if d]
    (rule,) = [d for d in docs if d.get("kind") == "PrometheusRule"]
    spec: dict[str, Any] = rule["spec"]
    return spec


def write_rule_file(directory: Path) -> Path:
    """The rule's spec as `rules.yaml` in `directory`, next to a copy of the alert tests."""
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_spec(), sort_keys=False))
    shutil.copy(ALERT_TESTS, directory / ALERT_TESTS.name)
    return path


def alert_names() -> list[str]:
    return [r["alert"] for g in rule_spec()["groups"] for r in g["rules"] if "alert" in r]
