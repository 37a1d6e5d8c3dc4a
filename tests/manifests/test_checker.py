"""The checker Deployment, its setup Job and NetworkPolicy follow the checker's runtime contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.manifests._k8s import (
    RENDER_TARGETS,
    REPO,
    Obj,
    find,
    mounted_file,
    render,
)

PASSWORD_FILE = "/var/run/secrets/checker/mysql-password"
MYSQL_CA = "/var/run/secrets/mysql-tls/ca.crt"


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _deployment(target: Path) -> Obj:
    return find(render(target), "Deployment", "checker", "mysql")


def _env(container: Obj) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_one_checker_recreated_never_rolled(target: Path) -> None:
    """One replica with the Recreate strategy, so two checkers never share a journal."""
    spec = _deployment(target)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_checker_runs_the_contracted_command(target: Path) -> None:
    """`checker run` serves HTTP on 0.0.0.0:8080 and keeps its journal on the PVC."""
    pod = _deployment(target)["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert "command" not in c, "the image entrypoint (checker) must stay in charge"
    assert c["args"] == [
        "run",
        "--http",
        "0.0.0.0:8080",
        "--journal",
        "/var/lib/checker/journal.sqlite",
    ]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    journal = volumes[mounts["/var/lib/checker"]]
    assert journal["persistentVolumeClaim"]["claimName"] == "checker-journal"
    find(render(target), "PersistentVolumeClaim", "checker-journal", "mysql")


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_checker_settings_come_from_the_environment(target: Path) -> None:
    """Every CHECKER_* setting is provided, and the *_FILE paths are really mounted Secrets."""
    objs = render(target)
    pod = _deployment(target)["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    (source,) = c["envFrom"]
    settings = find(objs, "ConfigMap", source["configMapRef"]["name"], "mysql")["data"]
    env = {**settings, **_env(c)}
    for name in (
        "CHECKER_WRITER",
        "CHECKER_READER",
        "CHECKER_NODES",
        "CHECKER_PASSWORD_FILE",
        "CHECKER_API_TOKEN_FILE",
        "CHECKER_WORKLOAD",
        "CHECKER_CONCURRENCY",
        "CHECKER_RATE",
    ):
        assert env.get(name), name
    assert env["CHECKER_LOG_FORMAT"] == "json"
    assert env["CHECKER_WRITER"] == "mysql://checker@mysql-0.mysql.mysql.svc:3306/integrity"
    assert env["CHECKER_READER"] == "mysql://checker@mysql-read.mysql.svc:3306/integrity"
    assert set(env["CHECKER_WORKLOAD"].split(",")) == {"ledger", "bank"}
    assert ":" not in env["CHECKER_WRITER"].split("@")[0].removeprefix("mysql://")
    assert env["CHECKER_PASSWORD_FILE"] == PASSWORD_FILE
    assert mounted_file(pod, c, PASSWORD_FILE) == ("checker-mysql", "mysql-password")
    assert mounted_file(pod, c, env["CHECKER_API_TOKEN_FILE"]) == ("checker-api", "token")
    # TLS that nobody on the path can downgrade or impersonate: the server's certificate must
    # chain to the mysql-tls CA and name the host (docs/security.md).
    assert env["CHECKER_TLS"] == "verify-identity"
    assert env["CHECKER_TLS_CA"] == MYSQL_CA
    assert mounted_file(pod, c, MYSQL_CA) == ("mysql-tls", "ca.crt")


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_mysql_serves_tls_from_the_mysql_tls_secret(target: Path) -> None:
    """Every MySQL server presents the certificate whose CA the checker verifies against."""
    objs = render(target)
    config = find(objs, "ConfigMap", "mysql", "mysql")["data"]["common.cnf"]
    for line in (
        "ssl_ca = /etc/mysql/tls/ca.crt",
        "ssl_cert = /etc/mysql/tls/tls.crt",
        "ssl_key = /etc/mysql/tls/tls.key",
    ):
        assert line in config
    pod = find(objs, "StatefulSet", "mysql", "mysql")["spec"]["template"]["spec"]
    mysql = next(c for c in pod["containers"] if c["name"] == "mysql")
    for key in ("ca.crt", "tls.crt", "tls.key"):
        assert mounted_file(pod, mysql, f"/etc/mysql/tls/{key}") == ("mysql-tls", key)


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_checker_nodes_name_every_mysql_server(target: Path) -> None:
    """CHECKER_NODES lists exactly the StatefulSet's pods, each by its own DNS name."""
    objs = render(target)
    replicas = find(objs, "StatefulSet", "mysql", "mysql")["spec"]["replicas"]
    nodes = find(objs, "ConfigMap", "checker-settings", "mysql")["data"]["CHECKER_NODES"]
    pairs = dict(item.split("=", 1) for item in nodes.split(","))
    expected = {f"mysql-{i}" for i in range(replicas)}
    assert set(pairs) == expected
    for name, url in pairs.items():
        assert url == f"mysql://checker@{name}.mysql.mysql.svc:3306/integrity"


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_checker_probes_and_metrics(target: Path) -> None:
    """Liveness, readiness and startup probe /healthz on 8080; Prometheus scrapes /metrics there."""
    template = _deployment(target)["spec"]["template"]
    (c,) = template["spec"]["containers"]
    assert {"name": "http", "containerPort": 8080} in c["ports"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"
    service = find(render(target), "Service", "checker", "mysql")
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_setup_job_creates_the_least_privilege_user(target: Path) -> None:
    """The setup Job runs `checker setup` as root, reading both passwords from Secret files."""
    job = find(render(target), "Job", "checker-setup", "mysql")
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"] == [
        "setup",
        "--admin-user",
        "root",
        "--admin-password-file",
        "/var/run/secrets/admin/password",
        "--writer",
        "mysql://root@mysql-0.mysql.mysql.svc:3306",
        "--create-user",
        "checker",
        "--password-file",
        PASSWORD_FILE,
        "--tls",
        "verify-identity",
        "--tls-ca",
        MYSQL_CA,
    ]
    assert mounted_file(pod, c, MYSQL_CA) == ("mysql-tls", "ca.crt")
    assert mounted_file(pod, c, "/var/run/secrets/admin/password") == ("mysql-admin", "password")
    assert mounted_file(pod, c, PASSWORD_FILE) == ("checker-mysql", "mysql-password")
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1, "MySQL may still be starting: retry"


def _ports(rule: Obj) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for p in rule.get("ports", [])}


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_network_policy_allows_only_mysql_dns_and_http(target: Path) -> None:
    """The checker may reach MySQL on 3306 and cluster DNS on 53, and be reached on 8080 only."""
    objs = render(target)
    policy = find(objs, "NetworkPolicy", "checker", "mysql")["spec"]
    checker_labels = _deployment(target)["spec"]["template"]["metadata"]["labels"]
    mysql_labels = find(objs, "StatefulSet", "mysql", "mysql")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert policy["podSelector"]["matchLabels"].items() <= checker_labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]

    (ingress,) = policy["ingress"]
    assert _ports(ingress) == {("TCP", 8080)}
    _admits_only_the_runner_and_monitoring(objs, ingress)

    egress = policy["egress"]
    assert len(egress) == 2
    to_mysql, to_dns = egress
    (peer,) = to_mysql["to"]
    assert set(peer) == {"podSelector"}, "MySQL in the checker's own namespace only"
    assert peer["podSelector"]["matchLabels"].items() <= mysql_labels.items()
    assert _ports(to_mysql) == {("TCP", 3306)}
    (dns,) = to_dns["to"]
    assert dns["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert dns["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert _ports(to_dns) == {("UDP", 53), ("TCP", 53)}


def _admits_only_the_runner_and_monitoring(objs: list[Obj], ingress: Obj) -> None:
    """The API's peers: the game-day pods in "chaos" and the monitoring namespace, no others."""
    peers = ingress.get("from")
    assert peers, "an ingress rule without `from` admits every source in the cluster"
    runner, monitoring = peers
    assert runner["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "chaos"}
    gameday = find(objs, "CronJob", "gameday", "chaos")["spec"]["jobTemplate"]["spec"]
    pod_labels = gameday["template"]["metadata"]["labels"]
    assert runner["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert monitoring == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert all("ipBlock" not in peer for peer in peers)
