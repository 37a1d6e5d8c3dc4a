"""The real-cluster experiments are valid for Chaos Toolkit and run against the fake API."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from chaoslib.experiment import ensure_experiment_is_valid, run_experiment
from chaoslib.provider.python import validate_python_activity

from probes import kubernetes as k8s
from tests.k8s import _agreed_activities
from tests.k8s.fakeapi import FakeKubeAPI, load_fixture

EXPERIMENTS = Path(__file__).parents[2] / "experiments"
NAMES = [
    "kubelet-stop",
    "force-delete-pod",
    "out-of-service-taint",
    "primary-pod-kill",
    "replica-partition",
]
STAND_IN = "tests.k8s._agreed_activities"
NODE = "/api/v1/nodes/chaos-worker"
POD = "/api/v1/namespaces/mysql/pods/mysql-0"
STS = "/apis/apps/v1/namespaces/mysql/statefulsets/mysql"
HELPERS = "/api/v1/namespaces/chaos/pods"


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXPERIMENTS / f"{name}.json").read_text())
    return document


def _activities(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *experiment["steady-state-hypothesis"]["probes"],
        *experiment["method"],
        *experiment["rollbacks"],
    ]


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _with_stand_ins(experiment: dict[str, Any], *, always: bool) -> dict[str, Any]:
    """A copy where modules other than probes.kubernetes point at the agreed stand-ins."""
    copied = copy.deepcopy(experiment)
    for activity in _activities(copied):
        provider = activity["provider"]
        if provider["module"] != "probes.kubernetes" and (
            always or not _importable(provider["module"])
        ):
            provider["module"] = STAND_IN
    return copied


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


@pytest.mark.parametrize("name", NAMES)
def test_chaoslib_accepts_the_experiment(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """chaoslib's own validation passes (real modules where importable, stand-ins elsewhere)."""
    monkeypatch.setenv("MYSQL_PASSWORD", "not-a-real-password")
    monkeypatch.setenv("CHECKER_API_TOKEN", "not-a-real-token")
    ensure_experiment_is_valid(_with_stand_ins(_load(name), always=False))


def _run(name: str, **configuration: Any) -> dict[str, Any]:
    """Run an experiment with chaoslib against the fake API, fast polling, stand-ins for MySQL."""
    experiment = _with_stand_ins(_load(name), always=True)
    experiment.pop("controls")  # probes.control is written elsewhere; not under test here
    experiment["configuration"].update(
        {
            "poll_interval_seconds": 0.01,
            "helper_start_timeout": 1,
            "pod_lost_timeout": 5,
            "recovery_timeout": 5,
            **configuration,
        }
    )
    config_vars: dict[str, Any] = {}  # the allow list is the environment's (conftest)
    secret_vars = {"mysql": {"password": "pw"}, "checker": {"token": "tok"}}
    journal: dict[str, Any] = run_experiment(experiment, experiment_vars=(config_vars, secret_vars))
    return journal


def _outputs(journal: dict[str, Any]) -> dict[str, Any]:
    """Each activity's output, once every one succeeded and met its declared tolerance.

    chaoslib enforces tolerances only in the steady-state hypothesis; the method's are checked here.
    """
    runs = [*journal["run"], *journal["rollbacks"]]
    assert [r["activity"]["name"] for r in runs if r["status"] != "succeeded"] == []
    missed = [
        r["activity"]["name"]
        for r in runs
        if "tolerance" in r["activity"] and r["output"] != r["activity"]["tolerance"]
    ]
    assert missed == []
    return {r["activity"]["name"]: r["output"] for r in runs}


def _helper_running_node_lost(server: FakeKubeAPI) -> None:
    helper = server.get("pods", "kubelet-stop-chaos-worker", "chaos")
    assert helper is not None
    helper["status"] = {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}
    server.put(helper)
    server.load("node-lost")


def _kubelet_back(
    server: FakeKubeAPI, kinds: tuple[str, ...] = ("Node", "Pod", "StatefulSet")
) -> None:
    """The timer restarted kubelet: node Ready again, the helper Succeeded; with "Pod", the
    evicted mysql-0 has been terminated and recreated on its node."""
    for obj in load_fixture("kubelet-restored"):
        if obj["kind"] in kinds:
            server.put(obj)
    helper = server.get("pods", "kubelet-stop-chaos-worker", "chaos")
    assert helper is not None
    helper["status"] = {"phase": "Succeeded"}
    server.put(helper)


def test_kubelet_stop_runs_end_to_end(api: FakeKubeAPI) -> None:
    """kubelet-stop on the fake cluster: lost, evicted, not replaced, restored, helper cleaned."""

    def evicted(server: FakeKubeAPI) -> None:
        server.load("node-lost-evicted")
        server.after(2, "GET", NODE, _kubelet_back)

    def stopped(server: FakeKubeAPI) -> None:
        _helper_running_node_lost(server)
        server.after(2, "GET", POD, evicted)

    api.after(1, "POST", HELPERS, stopped)
    journal = _run("kubelet-stop")
    assert journal["status"] == "completed"
    assert journal["deviated"] is False
    outputs = _outputs(journal)
    assert outputs["pod-is-lost-with-its-node"] is True
    assert outputs["pod-evicted-after-the-unreachable-toleration"] is True
    assert outputs["statefulset-started-no-second-pod"] is True
    assert outputs["kubelet-back-and-node-ready"] is True
    assert outputs["restore-kubelet"]["helper_pod_deleted"] is True
    (create,) = api.requests_for("POST")
    assert "--on-active=480s" in create.body["spec"]["containers"][0]["command"][2]


def test_force_delete_runs_end_to_end(api: FakeKubeAPI) -> None:
    """force-delete-pod on the fake cluster: taint, guarded delete, new pod, untaint, restore."""

    def deleted(server: FakeKubeAPI) -> None:
        server.load("mysql-0-rescheduled-pending")
        server.after(2, "GET", STS, lambda s: s.load("mysql-0-replaced"))
        server.after(3, "GET", NODE, lambda s: _kubelet_back(s, kinds=("Node",)))

    api.after(1, "POST", HELPERS, _helper_running_node_lost)
    api.after(1, "DELETE", POD, deleted)
    journal = _run("force-delete-pod")
    assert journal["status"] == "completed"
    assert journal["deviated"] is False
    outputs = _outputs(journal)
    assert outputs["force-delete-the-lost-pod"]["deleted"] is True
    (delete,) = api.requests_for("DELETE", POD)
    assert delete.body["gracePeriodSeconds"] == 0
    patches = api.requests_for("PATCH", NODE)
    assert len(patches) == 2, "taint, then untaint"
    node = api.get("nodes", "chaos-worker")
    assert node is not None
    assert "out-of-service" not in json.dumps(node["spec"])


def test_replica_partition_runs_end_to_end(api: FakeKubeAPI) -> None:
    """replica-partition creates the policy, heals it, and the rollback finds nothing left."""
    journal = _run("replica-partition", partition_seconds=0)
    outputs = _outputs(journal)
    assert outputs["partition-the-replica"]["created"] is True
    assert outputs["heal-the-partition"]["deleted"] is True
    assert outputs["rollback-heal-the-partition"]["deleted"] is False
    assert _agreed_activities.CALLS


def test_out_of_service_taint_runs_end_to_end(api: FakeKubeAPI) -> None:
    """out-of-service-taint: Kubernetes deletes the pod itself; taint added, then removed."""

    def pod_gc_deletes(server: FakeKubeAPI) -> None:
        server.remove("pods", "mysql-0", "mysql")
        server.after(2, "GET", STS, lambda s: s.load("mysql-0-replaced"))
        server.after(3, "GET", NODE, lambda s: _kubelet_back(s, kinds=("Node",)))

    api.after(1, "POST", HELPERS, _helper_running_node_lost)
    api.after(1, "PATCH", NODE, pod_gc_deletes)
    journal = _run("out-of-service-taint")
    assert journal["status"] == "completed"
    _outputs(journal)
    assert [r.method for r in api.mutating_requests()] == ["POST", "PATCH", "PATCH", "DELETE"]


def test_primary_pod_kill_runs_end_to_end(api: FakeKubeAPI) -> None:
    """primary-pod-kill: an ordinary delete, then the StatefulSet is ready with a new pod."""
    api.after(1, "DELETE", POD, lambda s: s.load("mysql-0-replaced"))
    journal = _run("primary-pod-kill")
    assert journal["status"] == "completed"
    outputs = _outputs(journal)
    assert outputs["delete-the-primary-pod"]["deleted"] is True
    (delete,) = api.requests_for("DELETE", POD)
    assert "gracePeriodSeconds" not in delete.body
