"""The game-day CronJob runs `checker gameday` safely; its example plan points at real things."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.manifests._k8s import (
    RENDER_TARGETS,
    REPO,
    Obj,
    find,
    is_cron,
    render,
)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _cronjob(target: Path) -> Obj:
    return find(render(target), "CronJob", "gameday", "chaos")


def _plan(target: Path) -> Obj:
    data = find(render(target), "ConfigMap", "gameday-plan", "chaos")["data"]
    plan: Obj = yaml.safe_load(data["plan.yaml"])
    return plan


def test_cron_parser_rejects_nonsense() -> None:
    """The schedule check accepts five numeric cron fields and nothing else."""
    assert is_cron("0 10 * * 2")
    assert is_cron("*/15 0-6 1,15 * *")
    assert not is_cron("@weekly")
    assert not is_cron("0 10 * *")
    assert not is_cron("0 10 * * tue")


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_gameday_cronjob_is_suspended_serial_and_never_retried(target: Path) -> None:
    """Shipped suspended, never two runs at once, and a failed run is not re-injected."""
    spec = _cronjob(target)["spec"]
    assert spec["suspend"] is True
    assert spec["concurrencyPolicy"] == "Forbid"
    assert is_cron(spec["schedule"])
    assert spec["timeZone"]
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] > 0
    assert job["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_gameday_runs_the_plan_from_its_configmap(target: Path) -> None:
    """The CronJob runs `checker gameday --plan /etc/gameday/plan.yaml --once` on its plan."""
    pod = _cronjob(target)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert "command" not in c, "the image entrypoint (checker) runs it"
    assert c["args"] == ["gameday", "--plan", "/etc/gameday/plan.yaml", "--once"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/gameday"]]["configMap"]["name"] == "gameday-plan"
    assert c["workingDir"] in mounts, "chaostoolkit writes its log to the working directory"


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_plan_follows_the_gameday_format(target: Path) -> None:
    """The example plan has experiments (name, path, cron schedule), checker.url and results."""
    plan = _plan(target)
    assert plan["experiments"]
    for experiment in plan["experiments"]:
        assert {"name", "path", "schedule"} <= set(experiment), experiment
        assert is_cron(experiment["schedule"]), experiment
        assert experiment["path"].startswith("/app/experiments/"), experiment
    assert isinstance(plan["results"]["keep"], int)
    assert plan["results"]["keep"] > 0


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_plan_points_at_the_checker_service_and_a_writable_volume(target: Path) -> None:
    """checker.url is the checker Service's DNS name and port; results.dir is on the results PVC."""
    objs = render(target)
    service = find(objs, "Service", "checker", "mysql")
    port = service["spec"]["ports"][0]["port"]
    plan = _plan(target)
    assert plan["checker"]["url"] == f"http://checker.mysql.svc.cluster.local:{port}"
    pod = _cronjob(target)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    results_dir = plan["results"]["dir"]
    (mount,) = [m for m in c["volumeMounts"] if results_dir.startswith(m["mountPath"] + "/")]
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    find(objs, "PersistentVolumeClaim", claim, "chaos")
    assert not mount.get("readOnly")


def test_plan_experiments_exist_in_the_repository() -> None:
    """Each planned experiment is a file under experiments/, which the Dockerfile copies to /app."""
    plan = _plan(RENDER_TARGETS[0])
    missing = [
        e["path"]
        for e in plan["experiments"]
        if not (REPO / e["path"].removeprefix("/app/")).is_file()
    ]
    assert not missing, f"planned experiments not in the repository: {missing}"
