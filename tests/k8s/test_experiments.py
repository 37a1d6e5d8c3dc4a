"""The real-cluster experiment files, run unchanged through `chaos run` with the real modules.

Only what cannot run here is replaced: the Kubernetes API server (the fake API with the
simulated controllers of tests/k8s/cluster.py) and the nodes' systemd (tests/k8s/hoststub.py).
probes.kubernetes, probes.mysql, probes.checker and probes.control are the real modules; MySQL
is the lab; the checker is a real checker service with its HTTP API. Everything an experiment
needs is given as a user gives it: `--var`, `--var-file` and the environment.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.hypothesis import within_tolerance
from chaoslib.provider.python import validate_python_activity

from checker.lab.state import APP_USER
from checker.lab.topology import Lab
from probes import _config as mysql_config
from probes import checker as checker_probes
from probes import kubernetes as k8s
from probes.k8s import config as k8s_config
from probes.k8s.memory import MEMORY
from tests.chaos.conftest import TOKEN, Checker, checker_on, run_experiment, steady_states
from tests.k8s import hoststub
from tests.k8s._rbac import uncovered
from tests.k8s.cluster import Clock, SimulatedCluster
from tests.k8s.conftest import kubeconfig
from tests.k8s.fakeapi import FakeKubeAPI

ROOT = Path(__file__).parents[2]
EXPERIMENTS = ROOT / "experiments"
NAMES = [
    "kubelet-stop",
    "force-delete-pod",
    "out-of-service-taint",
    "primary-pod-kill",
    "replica-partition",
]
PROBE_MODULES = ("probes/_config.py", "probes/k8s/config.py", "probes/checker.py")


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXPERIMENTS / f"{name}.json").read_text())
    return document


def _activities(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *experiment["steady-state-hypothesis"]["probes"],
        *experiment["method"],
        *experiment["rollbacks"],
    ]


# == the files as data ===========================================================================
@pytest.mark.parametrize("name", NAMES)
def test_experiment_has_every_section(name: str) -> None:
    """Each experiment has every section, rollbacks included, and the agreed secrets."""
    experiment = _load(name)
    for key in ("version", "title", "description", "tags", "configuration", "secrets", "method"):
        assert experiment[key], key
    assert experiment["steady-state-hypothesis"]["probes"]
    assert experiment["rollbacks"], "every experiment undoes its fault"
    assert experiment["controls"][0]["provider"] == {"type": "python", "module": "probes.control"}
    assert experiment["secrets"]["mysql"]["password"] == {"type": "env", "key": "MYSQL_PASSWORD"}
    assert experiment["secrets"]["checker"]["token"] == {"type": "env", "key": "CHECKER_API_TOKEN"}


@pytest.mark.parametrize("name", NAMES)
def test_kubernetes_activities_match_the_module(name: str) -> None:
    """Every probes.kubernetes call names an exported function that takes its arguments."""
    for activity in _activities(_load(name)):
        provider = activity["provider"]
        if provider["module"] != "probes.kubernetes":
            continue
        assert provider["func"] in k8s.__all__
        assert (activity["type"] == "probe") == (provider["func"] in k8s.PROBES), activity["name"]
        inspect.signature(getattr(k8s, provider["func"])).bind(**provider["arguments"])
        validate_python_activity(activity)


@pytest.mark.parametrize("name", NAMES)
def test_every_variable_is_declared(name: str) -> None:
    """Each ${variable} used is a configuration key (chaoslib leaves unknown ones as text)."""
    experiment = _load(name)
    used = set(re.findall(r"\$\{(\w+)\}", json.dumps(experiment)))
    assert used <= set(experiment["configuration"]), used - set(experiment["configuration"])


def _keys_read() -> dict[str, dict[str, Any]]:
    """Per module: the configuration keys it declares it reads, with their defaults."""
    return {
        "probes.mysql": mysql_config.CLUSTER_KEYS,
        "probes.kubernetes": k8s_config.K8S_KEYS,
        "probes.checker": checker_probes.CHECKER_KEYS,
        "probes.control": checker_probes.CHECKER_KEYS,
    }


def test_the_declared_keys_are_every_key_the_code_reads() -> None:
    """Every `config.get("key")`/`config["key"]` in the probes is in one of the key tables."""
    declared = {key for keys in _keys_read().values() for key in keys}
    declared |= set(mysql_config.LAB_KEYS) | {"namespace", "allowed_namespaces"}
    read: set[str] = set()
    for path in PROBE_MODULES:
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            key = None
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get" and node.args:
                key = node.args[0]
            elif isinstance(node, ast.Subscript):
                key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                read.add(key.value)
    config_like = {k for k in read if k.startswith(("mysql_", "checker_", "k8s_", "helper_"))}
    assert config_like <= declared, config_like - declared


@pytest.mark.parametrize("name", NAMES)
def test_every_key_an_activity_reads_is_declared_with_its_default(name: str) -> None:
    """chaoslib drops `--var` keys an experiment does not declare: each one read is declared,
    with the default the code uses (so the experiment works unchanged and every key is
    overridable)."""
    experiment = _load(name)
    configuration = experiment["configuration"]
    modules = {a["provider"]["module"] for a in _activities(experiment)}
    modules |= {c["provider"]["module"] for c in experiment.get("controls", [])}
    for module in sorted(modules):
        for key, default in _keys_read()[module].items():
            assert key in configuration, f"{name}: {module} reads {key}, not declared"
            assert configuration[key] == default, f"{name}: {key} default differs from {module}"


@pytest.mark.parametrize("name", NAMES)
def test_chaoslib_accepts_the_experiment(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """chaoslib's own validation passes with the real modules."""
    monkeypatch.setenv("MYSQL_PASSWORD", "not-a-real-password")
    monkeypatch.setenv("CHECKER_API_TOKEN", "not-a-real-token")
    ensure_experiment_is_valid(_load(name))


# == the files run ===============================================================================
@dataclass
class World:
    """Everything one run talks to, and the `chaos run` arguments that point it there."""

    cluster: SimulatedCluster
    lab: Lab
    checker: Checker
    hosts: Path
    variables: dict[str, Any]
    env: dict[str, str]


@pytest.fixture(scope="module")
def k8s_checker(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checker]:
    """A checker writing to this module's lab through the whole module."""
    with checker_on(lab, tmp_path_factory.mktemp("k8s-checker")) as running:
        yield running


@pytest.fixture
def world(lab: Lab, k8s_checker: Checker, tmp_path: Path) -> Iterator[World]:
    """A simulated kind cluster over the lab: pods follow the lab's servers and vice versa."""
    hosts = tmp_path / "hosts"
    stub_env = hoststub.install(tmp_path / "bin", hosts)
    api = FakeKubeAPI().start()
    cluster = SimulatedCluster(api, hosts, {**os.environ, **stub_env}, lab=lab, clock=Clock())
    cluster.build().start()
    config = kubeconfig(tmp_path / "kubeconfig", {"kind-chaos": api.url}, "kind-chaos")
    info = lab.info()
    nodes = ",".join(
        f"{name}=127.0.0.1:{lab.endpoint(name).port}" for name in sorted(info["nodes"])
    )
    variables = {
        # As on a cluster, the writer is mysql-0's own address (mysql-0.mysql.<ns>.svc).
        "mysql_writer": f"127.0.0.1:{lab.endpoint('mysql-0').port}",
        "mysql_reader": f"127.0.0.1:{lab.endpoint('reader').port}",
        "mysql_nodes": nodes,
        # The pod IPs are 127.0.0.1: the force-delete guard reaches mysql-0 on its own port.
        "mysql_port": lab.endpoint("direct:mysql-0").port,
        "checker_url": k8s_checker.url,
        # The simulated clock: node lost after 1 s, evicted 2 s later (tests/k8s/cluster.py).
        "kubelet_down_seconds": 6,
        "pod_lost_timeout": 20,
        "recovery_timeout": 60,
        "partition_seconds": 3,
        "poll_interval_seconds": 0.2,
        "helper_start_timeout": 5,
    }
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CHAOSTOOLKIT_", "KUBERNETES_"))
        and key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env.update(
        KUBECONFIG=str(config),
        HOME=str(tmp_path),
        CHAOS_ALLOWED_NAMESPACES="mysql,chaos",
        MYSQL_PASSWORD=lab.secret(APP_USER).reveal(),
        CHECKER_API_TOKEN=TOKEN,
    )
    MEMORY.clear()
    try:
        yield World(cluster, lab, k8s_checker, hosts, variables, env)
    finally:
        cluster.stop()
        api.stop()
    assert not cluster.errors, cluster.errors
    assert not api.errors, api.errors
    assert not uncovered(api.requests, k8s.REQUIRED_RBAC)


def _chaos_run(world: World, name: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """`chaos run experiments/<name>.json` exactly as a user runs it, rollbacks always."""
    workdir = tmp_path / name
    workdir.mkdir(parents=True)
    run = run_experiment(
        EXPERIMENTS / f"{name}.json",
        workdir,
        {**world.variables, **overrides},
        timeout=240,
        env=world.env,
    )
    journal = run.journal
    failed = [
        r["activity"]["name"]
        for r in [*journal["run"], *journal["rollbacks"]]
        if r["status"] != "succeeded"
    ]
    context = (
        f"status={journal['status']} failed={failed} steady={steady_states(run)}\n"
        f"events={world.cluster.events}\nlog tail:\n{run.log[-4000:]}"
    )
    assert journal["steady_states"]["before"]["steady_state_met"] is True, context
    method = [a["name"] for a in _load(name)["method"]]
    ran = [r["activity"]["name"] for r in journal["run"]]
    assert ran == method, context
    assert failed == [], context
    missed = [
        r["activity"]["name"]
        for r in journal["run"]
        if "tolerance" in r["activity"]
        and not within_tolerance(r["activity"]["tolerance"], r["output"])
    ]
    assert missed == [], context
    assert journal["steady_states"]["after"]["steady_state_met"] is True, context
    assert journal["status"] == "completed", context
    outputs: dict[str, Any] = {
        r["activity"]["name"]: r["output"] for r in [*journal["run"], *journal["rollbacks"]]
    }
    return outputs


def test_kubelet_stop_runs_on_a_cluster_twice(world: World, tmp_path: Path) -> None:
    """kubelet-stop: lost, evicted, never replaced while lost; kubelet back by its own timer
    within ~1 s of the duration, nothing left loaded; and a second run on the same node works."""
    outputs = _chaos_run(world, "kubelet-stop", tmp_path / "first")
    node = world.cluster.node_of("mysql-0")
    assert outputs["record-the-pods-node"] == node
    stop = outputs["stop-kubelet-on-the-pods-node"]
    assert (stop["node"], stop["method"], stop["restore_after_seconds"]) == (node, "pod", 6)
    assert outputs["statefulset-started-no-second-pod"] is True
    host = hoststub.Node(world.hosts, node)
    changes = host.kubelet_changes()
    assert [state for _, state in changes] == ["inactive", "active"]
    (stopped, _), (started, _) = changes
    assert 6.0 <= started - stopped <= 6.0 + 1.5, "the restore timer fires within ~1 s"
    assert host.units() == {}, "the transient timer and its service unloaded after firing"
    assert outputs["restore-kubelet"]["helper_pod_deleted"] is True
    assert any("evicted" in event for event in world.cluster.events)

    MEMORY.clear()
    _chaos_run(world, "kubelet-stop", tmp_path / "second")
    states = [state for _, state in host.kubelet_changes()]
    assert states == ["inactive", "active", "inactive", "active"]


def test_force_delete_is_refused_while_mysqld_runs(world: World, tmp_path: Path) -> None:
    """force-delete-pod: the guard sees mysql-0 still answering and refuses; nothing deleted."""
    outputs = _chaos_run(world, "force-delete-pod", tmp_path)
    result = outputs["force-delete-the-lost-pod"]
    assert result["deleted"] is False
    assert "a second mysql-0 would start" in result["refused"]
    deletes = [r for r in world.cluster.api.requests if r.method == "DELETE"]
    assert [r.path for r in deletes] == [
        f"/api/v1/namespaces/chaos/pods/kubelet-stop-{world.cluster.node_of('mysql-0')}"
    ]


def test_out_of_service_taint_lets_kubernetes_replace_the_pod(world: World, tmp_path: Path) -> None:
    """out-of-service-taint: pod GC deletes the lost pod, the taint goes, a new mysql-0 runs."""
    outputs = _chaos_run(world, "out-of-service-taint", tmp_path)
    assert outputs["old-pod-deleted-by-kubernetes"] is True
    assert any("force-deleted by pod GC" in event for event in world.cluster.events)
    node = world.cluster.api.get("nodes", world.cluster.node_of("mysql-0"))
    assert node is not None
    assert "out-of-service" not in json.dumps(node["spec"])


def test_primary_pod_kill_runs_on_a_cluster(world: World, tmp_path: Path) -> None:
    """primary-pod-kill: an ordinary delete; the server restarts with the new pod."""
    outputs = _chaos_run(world, "primary-pod-kill", tmp_path)
    assert outputs["delete-the-primary-pod"]["deleted"] is True
    assert "lab kill mysql-0" in world.cluster.events
    assert "lab start mysql-0" in world.cluster.events


def test_replica_partition_runs_on_a_cluster(world: World, tmp_path: Path) -> None:
    """replica-partition: the NetworkPolicy cuts the replica off, the heal lets it catch up."""
    outputs = _chaos_run(world, "replica-partition", tmp_path)
    assert outputs["partition-the-replica"]["created"] is True
    assert outputs["heal-the-partition"]["deleted"] is True
    assert outputs["rollback-heal-the-partition"]["deleted"] is False
    assert "lab partition mysql-2" in world.cluster.events
    assert "lab heal mysql-2" in world.cluster.events
