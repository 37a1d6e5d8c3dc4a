"""The PrometheusRule's alerts: valid Prometheus rules, each one unit-tested with promtool."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.manifests._crds import CRDS, strict
from tests.manifests._k8s import KUBERNETES_VERSION, render
from tests.monitoring._tools import (
    ALERT_TESTS,
    DASHBOARD,
    MONITORING,
    alert_names,
    find_or_install,
    write_rule_file,
)

EXPECTED_ALERTS = {
    "CheckerVerdictInvalid",
    "CheckerWritesStalled",
    "CheckerNoSuccessfulVerification",
    "CheckerJournalDiskNearlyFull",
    "CheckerReplicaLagAboveBound",
    "CheckerSemiSyncOff",
}


def crd_validator(name: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(strict(json.loads((CRDS / name).read_text())))


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    """`promtool check rules` accepts the PrometheusRule's spec as a rule file."""
    rules = write_rule_file(tmp_path)
    done = subprocess.run(
        [find_or_install("promtool"), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in done.stdout


def test_every_alert_fires_and_stays_quiet_as_unit_tested(tmp_path: Path) -> None:
    """`promtool test rules` passes, and it tests every alert of the rule, each with a case
    where it must fire and one where it must not."""
    assert set(alert_names()) == EXPECTED_ALERTS
    write_rule_file(tmp_path)
    done = subprocess.run(
        [find_or_install("promtool"), "test", "rules", ALERT_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    for alert in EXPECTED_ALERTS:
        evals = [e for c in cases for e in c["alert_rule_test"] if e["alertname"] == alert]
        assert any(e["exp_alerts"] for e in evals), f"{alert} is never expected to fire"
        assert any(not e["exp_alerts"] for e in evals), f"{alert} is never expected quiet"


def test_a_broken_alert_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: with the semi-sync alert's condition inverted they do."""
    rules = write_rule_file(tmp_path)
    text = rules.read_text().replace(
        "checker_semi_sync_active == 0", "checker_semi_sync_active == 1"
    )
    assert text != rules.read_text()
    rules.write_text(text)
    done = subprocess.run(
        [find_or_install("promtool"), "test", "rules", ALERT_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "CheckerSemiSyncOff" in done.stdout + done.stderr


def _monitoring_objects() -> list[dict[str, Any]]:
    return render(MONITORING)


def test_the_monitoring_kustomization_matches_the_operator_crds() -> None:
    """The rendered PrometheusRule and ServiceMonitor validate against the Prometheus
    Operator's published CRD schemas (unknown fields refused), the ConfigMap against
    Kubernetes' own; and a typo in a field would be caught."""
    objects = _monitoring_objects()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
    validators = {
        "PrometheusRule": crd_validator("prometheus-operator-prometheusrule-v1.json"),
        "ServiceMonitor": crd_validator("prometheus-operator-servicemonitor-v1.json"),
    }
    for obj in objects:
        assert obj["metadata"]["namespace"] == "mysql"
        if obj["kind"] in validators:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            validators[obj["kind"]].validate(obj)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    typo = copy.deepcopy(rule)
    typo["spec"]["groups"][0]["rules"][0]["expresion"] = "1"
    with pytest.raises(jsonschema.ValidationError):
        validators["PrometheusRule"].validate(typo)


def test_the_service_monitor_selects_the_checker_service_port() -> None:
    """The ServiceMonitor's selector matches the base's checker Service and names its port."""
    monitor = next(o for o in _monitoring_objects() if o["kind"] == "ServiceMonitor")
    services = [
        o
        for o in render(MONITORING.parent / "base")
        if o["kind"] == "Service" and o["metadata"]["name"] == "checker"
    ]
    (service,) = services
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def dashboard_metrics() -> set[str]:
    """Every checker metric name the dashboard's queries use."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return {m for e in exprs for m in re.findall(r"\bchecker_[a-z_]+", e)}


def rule_metrics() -> set[str]:
    from tests.monitoring._tools import rule_spec

    exprs = [r["expr"] for g in rule_spec()["groups"] for r in g["rules"]]
    return {m for e in exprs for m in re.findall(r"\bchecker_[a-z_]+", e)}


def test_the_dashboard_is_grafana_json_shipped_in_a_configmap() -> None:
    """The dashboard parses, has unique panel ids on a templated Prometheus data source, and
    the ConfigMap carries it byte for byte under the sidecar's label."""
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"])
    assert {"checker_verdict_valid", "checker_semi_sync_active"} <= dashboard_metrics()
    cm = next(o for o in _monitoring_objects() if o["kind"] == "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"]["checker-dashboard.json"] == DASHBOARD.read_text()
