"""Every experiment, real-cluster and local, is valid for the real `chaos validate` and agrees with
the extension it calls: declared variables, the timeline control, probes typed as probes."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from probes import checker as checker_probes
from tests.chaos.conftest import CHAOS, EXPERIMENTS, LOCAL, ROOT, chaos_env

REAL = sorted(EXPERIMENTS.glob("*.json"))
LOCALS = sorted(LOCAL.glob("*.json"))
ALL = REAL + LOCALS
LOCAL_NAMES = {
    "kubelet-stop",
    "force-delete-pod",
    "out-of-service-taint",
    "primary-pod-kill",
    "replica-partition",
    "promote-lagging-replica",
    "semi-sync-fallback",
}
TIMELINE = {"name": "checker-timeline", "provider": {"type": "python", "module": "probes.control"}}
OUR_MODULES = ("probes.mysql", "probes.lab", "probes.checker", "probes.kubernetes")


def _id(path: Path) -> str:
    return str(path.relative_to(EXPERIMENTS))


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _activities(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *experiment["steady-state-hypothesis"]["probes"],
        *experiment["method"],
        *experiment["rollbacks"],
    ]


@pytest.fixture(scope="module")
def validations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, Any]]:
    """`chaos validate` on every experiment, all at once (each CLI start costs seconds)."""
    # The real-cluster experiments read their secrets from the environment at validation.
    env = chaos_env(MYSQL_PASSWORD="not-a-real-password", CHECKER_API_TOKEN="not-a-real-token")
    running: dict[Path, tuple[subprocess.Popen[str], Path]] = {}
    for path in ALL:
        cwd = tmp_path_factory.mktemp("validate")
        proc = subprocess.Popen(
            [
                str(CHAOS),
                "--no-version-check",
                "--settings",
                str(cwd / "settings.yaml"),
                "validate",
                str(path),
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running[path] = (proc, cwd)
    results = {}
    try:
        for path, (proc, _) in running.items():
            out, _ = proc.communicate(timeout=180)
            results[path] = (proc.returncode, out)
        yield results
    finally:
        for proc, _ in running.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_every_scenario_has_a_local_version() -> None:
    """experiments/local holds the real-cluster scenarios plus the lost-writes proofs."""
    assert {p.stem for p in LOCALS} == LOCAL_NAMES
    assert {p.stem for p in REAL} <= LOCAL_NAMES


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_chaos_validate_accepts_it(path: Path, validations: dict[Path, Any]) -> None:
    """The real CLI validates the experiment (modules imported, arguments bound) and exits 0."""
    code, output = validations[path]
    assert code == 0, output[-3000:]
    assert "experiment syntax and semantic look valid" in output
    assert "Could not find Python module" not in output  # the control module is importable


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_every_section_and_the_timeline_control(path: Path) -> None:
    """Each experiment has every section, rollbacks included, and the checker-timeline control."""
    experiment = _load(path)
    for key in ("version", "title", "description", "tags", "configuration", "secrets", "method"):
        assert experiment[key], key
    assert experiment["steady-state-hypothesis"]["probes"]
    assert experiment["rollbacks"]
    assert experiment["controls"] == [TIMELINE]
    assert "checker_url" in experiment["configuration"]
    assert "checker" in experiment["secrets"]


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_every_variable_is_declared(path: Path) -> None:
    """Each ${variable} is a configuration key: chaoslib would leave an unknown one as text, and
    `--var` only overrides declared keys."""
    experiment = _load(path)
    used = set(re.findall(r"\$\{(\w+)\}", json.dumps(experiment)))
    assert used, "every experiment is parameterised"
    assert used <= set(experiment["configuration"]), used - set(experiment["configuration"])


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_probes_are_probes_and_actions_actions(path: Path) -> None:
    """An activity's type matches what its module declares in PROBES, and it asks for the
    checker secret wherever it may POST."""
    for activity in _activities(_load(path)):
        provider = activity["provider"]
        if provider["module"] not in OUR_MODULES:
            continue
        module = importlib.import_module(provider["module"])
        assert provider["func"] in module.__all__, activity["name"]
        is_probe = provider["func"] in module.PROBES
        assert (activity["type"] == "probe") == is_probe, activity["name"]
        if provider["func"] == "verify":
            assert provider.get("secrets") == ["checker"], activity["name"]


@pytest.mark.parametrize("path", LOCALS, ids=_id)
def test_local_experiments_target_the_lab_and_heal_it(path: Path) -> None:
    """Local experiments use lab_dir and a loopback checker, need no environment secret, and
    roll back with heal_all."""
    experiment = _load(path)
    config = experiment["configuration"]
    assert config["lab_dir"] == ".lab"
    assert config["checker_url"] == "http://127.0.0.1:8080"
    assert experiment["secrets"] == {"checker": {"token": ""}}
    funcs = [(a["provider"]["module"], a["provider"]["func"]) for a in experiment["rollbacks"]]
    assert funcs == [("probes.lab", "heal_all")]
    modules = {a["provider"]["module"] for a in _activities(experiment)}
    assert "probes.kubernetes" not in modules
    steady = [a["provider"]["func"] for a in experiment["steady-state-hypothesis"]["probes"]]
    assert {"marker_write_read", "verdict_valid"} <= set(steady)


def test_real_experiments_default_to_the_checker_service() -> None:
    """The real-cluster default checker_url is the Service manifests/base/checker defines."""
    service = yaml.safe_load((ROOT / "manifests/base/checker/service.yaml").read_text())
    meta = service["metadata"]
    port = service["spec"]["ports"][0]["port"]
    expected = f"http://{meta['name']}.{meta['namespace']}.svc:{port}"
    assert expected == checker_probes.DEFAULT_CHECKER_URL
    for path in REAL:
        assert _load(path)["configuration"]["checker_url"] == expected, path.name


def test_the_lost_writes_experiment_checks_the_checker_first() -> None:
    """promote-lagging-replica asks the checker before anything else, so its deviation is the
    checker's finding and not a side effect of the failover on the other probes."""
    experiment = _load(LOCAL / "promote-lagging-replica.json")
    first, second = experiment["steady-state-hypothesis"]["probes"][:2]
    assert first["provider"]["func"] == "verdict_valid"
    assert first["tolerance"] is True
    assert second["provider"]["func"] == "anomaly_counts"
    assert second["tolerance"] == {"type": "range", "target": "lost", "range": [0, 0]}
    funcs = [a["provider"]["func"] for a in experiment["method"]]
    assert funcs.index("lag_replica") < funcs.index("kill_node") < funcs.index("promote")
