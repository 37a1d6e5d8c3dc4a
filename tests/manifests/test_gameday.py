"""The game-day CronJob runs `checker gameday` safely; its example plan points at real things."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from checker.gameday import Plan, job_deadline, load_plan, termination_grace
from checker.gameday.timeouts import EXIT_ALLOWANCE_SECONDS
from tests.manifests._k8s import (
    KIND_CLUSTER_CONFIG,
    KIND_OVERLAY,
    RENDER_TARGETS,
    REPO,
    Obj,
    find,
    is_cron,
    load_yaml_documents,
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


def _shipped_plan(tmp_path: Path) -> Plan:
    """The shipped plan, loaded by checker.gameday with its image paths mapped to this checkout."""
    text = find(render(RENDER_TARGETS[0]), "ConfigMap", "gameday-plan", "chaos")["data"][
        "plan.yaml"
    ].replace("/app/experiments/", str(REPO / "experiments") + "/")
    token = tmp_path / "api-token"
    token.write_text("t0ken\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(text.replace("/var/run/secrets/checker/api-token", str(token)))
    return load_plan(plan)


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_job_deadline_leaves_room_for_every_experiment_and_its_rollbacks(
    target: Path, tmp_path: Path
) -> None:
    """activeDeadlineSeconds covers each planned experiment's derived timeout, its rollback grace
    and the verification after it, without being more than a tenth (+5 min) beyond that."""
    plan = _shipped_plan(tmp_path)
    needed = job_deadline(plan)
    for e in plan.experiments:
        assert e.grace > 0 and e.timeout > 0, e
    deadline = _cronjob(target)["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert needed <= deadline <= needed * 1.1 + 300, (
        f"activeDeadlineSeconds is {deadline}; the plan needs {needed:g} s "
        f"({', '.join(f'{e.name}: {e.timeout:g}+{e.grace:g}' for e in plan.experiments)} "
        "plus verification): set it to a little more than that"
    )


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_termination_grace_period_leaves_room_for_the_rollbacks_after_sigterm(
    target: Path, tmp_path: Path
) -> None:
    """terminationGracePeriodSeconds (after the kubelet's SIGTERM, before its SIGKILL) covers the
    largest rollback grace of the planned experiments and the exit, without being more than a
    tenth (+5 min) beyond that."""
    plan = _shipped_plan(tmp_path)
    largest = max(e.grace for e in plan.experiments)
    needed = largest + EXIT_ALLOWANCE_SECONDS
    assert termination_grace(plan) == needed
    pod = _cronjob(target)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    period = pod.get("terminationGracePeriodSeconds", 30)  # 30: the Pod API's default
    assert needed <= period <= needed * 1.1 + 300, (
        f"terminationGracePeriodSeconds is {period}; after SIGTERM the game day needs "
        f"{needed:g} s (the largest rollback grace, {largest:g} s, "
        f"{', '.join(f'{e.name}: {e.grace:g}' for e in plan.experiments)}; plus "
        f"{EXIT_ALLOWANCE_SECONDS:g} s to exit)"
    )


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_gameday_pod_never_shares_a_node_with_mysql(target: Path) -> None:
    """The runner's pod has required anti-affinity, per node, against the MySQL pods' labels in
    their namespace: it cannot be evicted by the faults it injects on MySQL's nodes."""
    objs = render(target)
    sts = find(objs, "StatefulSet", "mysql")
    mysql_labels = sts["spec"]["template"]["metadata"]["labels"]
    pod = _cronjob(target)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    terms = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    matching = [
        t
        for t in terms
        if t["topologyKey"] == "kubernetes.io/hostname"
        and sts["metadata"]["namespace"] in t.get("namespaces", [])
        and t["labelSelector"]["matchLabels"].items() <= mysql_labels.items()
    ]
    assert matching, terms


def test_kind_cluster_has_a_node_for_the_runner() -> None:
    """With one MySQL server per worker and the runner kept off them, the kind cluster needs a
    worker more than MySQL has servers (its control plane is tainted NoSchedule)."""
    (config,) = load_yaml_documents(KIND_CLUSTER_CONFIG)
    workers = [n for n in config["nodes"] if n["role"] == "worker"]
    replicas = find(render(KIND_OVERLAY), "StatefulSet", "mysql")["spec"]["replicas"]
    assert len(workers) >= replicas + 1


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_plan_passes_mysql_namespace_to_every_experiment(target: Path) -> None:
    """Each planned experiment gets --var mysql_namespace=<the StatefulSet's namespace>."""
    namespace = find(render(target), "StatefulSet", "mysql")["metadata"]["namespace"]
    for experiment in _plan(target)["experiments"]:
        assert experiment.get("vars", {}).get("mysql_namespace") == namespace, experiment
