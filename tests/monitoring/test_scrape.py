"""A real Prometheus scrapes a running `checker run` on a semi-sync lab, and answers queries."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml

from checker.lab.topology import Lab
from tests._wait import wait_for
from tests.conftest import module_lab
from tests.monitoring._tools import find_or_install, write_rule_file
from tests.monitoring.test_rules import dashboard_metrics, rule_metrics
from tests.service._run import start_subprocess


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# A primary and one semi-sync replica.
lab = module_lab("semi-lab", replicas=1, semi_sync=True)


@pytest.fixture(scope="module")
def checker_url(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`checker run` as its own process, verifying every 5 s. After the fallback test the
    replica's IO thread stays stopped, so the final verification at stop waits out its GTID
    barrier: 5 s instead of the default 60."""
    d = tmp_path_factory.mktemp("checker")
    proc, url = start_subprocess(
        lab,
        d / "journal.sqlite",
        d / "ready.json",
        *("--verify-interval", "5", "--verify-timeout", "5"),
    )
    try:
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


@pytest.fixture(scope="module")
def prometheus(checker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus on a free loopback port, its own config and data dir, scraping the checker
    every second and evaluating the PrometheusRule's alerts."""
    d = tmp_path_factory.mktemp("prometheus")
    write_rule_file(d)
    target = checker_url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(d / "rules.yaml")],
        "scrape_configs": [{"job_name": "checker", "static_configs": [{"targets": [target]}]}],
    }
    (d / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (d / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            find_or_install("prometheus"),
            f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: proc.poll() is None and requests.get(url + "/-/ready", timeout=2).ok,
            timeout=60,
            what="Prometheus to be ready",
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    r = requests.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def value(prometheus: str, expr: str) -> float | None:
    found = query(prometheus, expr)
    return float(found[0]["value"][1]) if found else None


def test_prometheus_scrapes_the_checkers_signals(prometheus: str) -> None:
    """Prometheus scrapes the target, and its queries see writes, commit latency per outcome,
    semi-sync on, a successful verification and the journal's disk."""
    wait_for(
        lambda: value(prometheus, 'up{job="checker"}') == 1.0,
        timeout=60,
        what="the checker target to be up",
    )
    wait_for(
        lambda: (value(prometheus, 'rate(checker_writes_total{outcome="ok"}[10s])') or 0) > 0,
        timeout=60,
        what="acknowledged writes in Prometheus",
    )
    assert (value(prometheus, 'checker_commit_latency_seconds_count{outcome="ok"}') or 0) > 0
    p99 = value(
        prometheus,
        'histogram_quantile(0.99, rate(checker_commit_latency_seconds_bucket{outcome="ok"}[10s]))',
    )
    assert p99 is not None and 0 < p99 < 30
    wait_for(
        lambda: value(prometheus, "checker_semi_sync_active") == 1.0,
        timeout=60,
        what="semi-sync on, as scraped",
    )
    assert value(prometheus, "checker_semi_sync_enabled") == 1.0
    assert value(prometheus, "checker_semi_sync_clients") == 1.0
    wait_for(
        lambda: (value(prometheus, 'checker_semi_sync_acked_writes_total{state="on"}') or 0) > 0,
        timeout=60,
        what="writes attributed to the semi-sync window",
    )
    wait_for(
        lambda: (
            value(prometheus, "time() - checker_last_successful_verification_timestamp_seconds")
            is not None
        ),
        timeout=90,
        what="a successful verification, as scraped",
    )
    assert (value(prometheus, 'checker_verifications_total{result="valid"}') or 0) >= 1
    assert value(prometheus, "checker_verdict_valid") == 1.0
    assert (value(prometheus, "checker_journal_size_bytes") or 0) > 0
    free = value(prometheus, "checker_journal_free_bytes / checker_journal_filesystem_size_bytes")
    assert free is not None and 0 < free <= 1


def test_every_metric_the_alerts_and_dashboard_use_is_exported(prometheus: str) -> None:
    """Each checker_* name in the rules and the dashboard is one Prometheus has scraped."""
    wait_for(
        lambda: value(prometheus, "checker_last_successful_verification_timestamp_seconds"),
        timeout=90,
        what="a successful verification, as scraped",
    )
    r = requests.get(prometheus + "/api/v1/label/__name__/values", timeout=10)
    names = set(r.json()["data"])
    wanted = rule_metrics() | dashboard_metrics()
    assert wanted, "no checker metric found in the rules and dashboard"
    assert not sorted(wanted - names), f"used but never exported: {sorted(wanted - names)}"


def test_the_rules_load_and_stay_quiet_on_a_healthy_run(prometheus: str) -> None:
    """Prometheus loaded the PrometheusRule's alerts, and none fires on a healthy run."""
    wait_for(
        lambda: value(prometheus, "checker_semi_sync_active") == 1.0,
        timeout=60,
        what="semi-sync on, as scraped",
    )
    groups = requests.get(prometheus + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"] for g in groups for r in g["rules"]}
    assert "CheckerSemiSyncOff" in loaded and "CheckerVerdictInvalid" in loaded
    alerts = requests.get(prometheus + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    assert [a for a in alerts if a["state"] == "firing"] == []


def test_semi_sync_fallback_reaches_prometheus_and_fires_the_alert(
    lab: Lab, prometheus: str
) -> None:
    """The lab's semi-sync fallback shows as checker_semi_sync_active 0 and the
    CheckerSemiSyncOff alert fires; after the undo semi-sync is on again."""
    lab.fault("semi-sync-fallback", "mysql-0")
    try:
        wait_for(
            lambda: value(prometheus, "checker_semi_sync_active") == 0.0,
            timeout=60,
            what="semi-sync off, as scraped",
        )
        wait_for(
            lambda: any(
                a["labels"]["alertname"] == "CheckerSemiSyncOff" and a["state"] == "firing"
                for a in requests.get(prometheus + "/api/v1/alerts", timeout=10).json()["data"][
                    "alerts"
                ]
            ),
            timeout=90,
            what="CheckerSemiSyncOff to fire",
        )
        wait_for(
            lambda: (
                (value(prometheus, 'checker_semi_sync_acked_writes_total{state="off"}') or 0) > 0
            ),
            timeout=60,
            what="writes attributed to the async window",
        )
    finally:
        lab.fault("semi-sync-restore", "mysql-0")
    wait_for(
        lambda: value(prometheus, "checker_semi_sync_active") == 1.0,
        timeout=60,
        what="semi-sync on again, as scraped",
    )
