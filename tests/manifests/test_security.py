"""Security settings of every rendered workload: Pod Security, least privilege, pinned images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.manifests._k8s import (
    DOCS,
    E2E_SCRIPT,
    EXTERNAL_SECRETS,
    RENDER_TARGETS,
    REPO,
    Obj,
    containers,
    label,
    render,
    workloads,
)

# Pod Security Standards, `restricted` profile (Kubernetes v1.32): the volume types it allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _all_workloads() -> list[tuple[str, Obj, Obj]]:
    return [
        (f"{_rel(t)}:{label(o)}", o, spec)
        for t in RENDER_TARGETS
        for o, spec in workloads(render(t))
    ]


WORKLOADS = _all_workloads()
WORKLOAD_IDS = [w[0] for w in WORKLOADS]


def _effective(pod_spec: Obj, container: Obj, field: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    value = container.get("securityContext", {}).get(field)
    return pod_spec.get("securityContext", {}).get(field) if value is None else value


def restricted_violations(pod_spec: Obj) -> list[str]:
    """Why a pod spec would be refused by Pod Security `restricted` (empty when admitted)."""
    problems: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"{field} is set")
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} is of type {kinds}")
    for c in containers(pod_spec):
        name = c["name"]
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        if _effective(pod_spec, c, "runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if _effective(pod_spec, c, "runAsUser") == 0:
            problems.append(f"{name}: runs as uid 0")
        seccomp = _effective(pod_spec, c, "seccompProfile") or {}
        if seccomp.get("type") not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{name}: no RuntimeDefault/Localhost seccomp profile")
        if any("hostPort" in p for p in c.get("ports", [])):
            problems.append(f"{name}: uses a hostPort")
    return problems


def test_restricted_checker_catches_a_privileged_pod() -> None:
    """The Pod Security check used below flags a privileged, root, host-network pod."""
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [{"name": "helper", "securityContext": {"privileged": True}}],
    }
    problems = " ".join(restricted_violations(bad))
    for expected in ("hostNetwork", "hostPath", "privileged", "runAsNonRoot", "ALL", "seccomp"):
        assert expected in problems


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_namespaces_carry_pod_security_levels(target: Path) -> None:
    """Namespace mysql enforces `restricted`; chaos enforces `privileged`, warns at `restricted`."""
    labels = {
        o["metadata"]["name"]: o["metadata"].get("labels", {})
        for o in render(target)
        if o["kind"] == "Namespace"
    }
    assert labels["mysql"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["chaos"]["pod-security.kubernetes.io/enforce"] == "privileged"
    for ns in ("mysql", "chaos"):
        assert labels[ns]["pod-security.kubernetes.io/warn"] == "restricted"
        assert labels[ns]["pod-security.kubernetes.io/audit"] == "restricted"
        assert labels[ns]["pod-security.kubernetes.io/enforce-version"] != "latest"


@pytest.mark.parametrize(("where", "obj", "spec"), WORKLOADS, ids=WORKLOAD_IDS)
def test_every_pod_meets_restricted(where: str, obj: Obj, spec: Obj) -> None:
    """Every pod in the manifests, in either namespace, is admissible under `restricted`."""
    assert restricted_violations(spec) == [], where


def _find_key(node: Any, key: str) -> list[Any]:
    if isinstance(node, dict):
        found = [node[key]] if key in node else []
        return found + [v for child in node.values() for v in _find_key(child, key)]
    if isinstance(node, list):
        return [v for child in node for v in _find_key(child, key)]
    return []


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_no_manifest_is_privileged(target: Path) -> None:
    """Nothing rendered is privileged or uses the host (the runtime kubelet helper is not here)."""
    for obj in render(target):
        assert True not in _find_key(obj, "privileged"), label(obj)
        for field in ("hostNetwork", "hostPID", "hostIPC", "hostPath"):
            assert not [v for v in _find_key(obj, field) if v], f"{label(obj)}: {field}"


@pytest.mark.parametrize(("where", "obj", "spec"), WORKLOADS, ids=WORKLOAD_IDS)
def test_containers_are_hardened(where: str, obj: Obj, spec: Obj) -> None:
    """Each container has a read-only root, no escalation, no capabilities, requests and limits."""
    for c in containers(spec):
        sc = c.get("securityContext", {})
        assert sc.get("readOnlyRootFilesystem") is True, f"{where} {c['name']}"
        assert sc.get("allowPrivilegeEscalation") is False, f"{where} {c['name']}"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where} {c['name']}"
        resources = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where} {c['name']} {kind}"


@pytest.mark.parametrize(("where", "obj", "spec"), WORKLOADS, ids=WORKLOAD_IDS)
def test_images_are_pinned(where: str, obj: Obj, spec: Obj) -> None:
    """Every image names an explicit tag (or digest), never `latest`."""
    for c in containers(spec):
        image = c["image"]
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{where}: {image} has no tag"
        assert tag != "latest", f"{where}: {image}"


@pytest.mark.parametrize(("where", "obj", "spec"), WORKLOADS, ids=WORKLOAD_IDS)
def test_secret_files_are_readable_by_the_pod_user(where: str, obj: Obj, spec: Obj) -> None:
    """Secret volumes that are not world-readable are group-readable through the pod's fsGroup."""
    for volume in spec.get("volumes", []):
        source = volume.get("secret") or volume.get("projected")
        if source is None:
            continue
        mode = source.get("defaultMode", 0o644)
        if mode & 0o004:
            continue
        assert mode & 0o040, f"{where}: volume {volume['name']} mode {oct(mode)}"
        assert spec.get("securityContext", {}).get("fsGroup"), (
            f"{where}: volume {volume['name']} is mode {oct(mode)} but the pod sets no fsGroup"
        )


@pytest.mark.parametrize(("where", "obj", "spec"), WORKLOADS, ids=WORKLOAD_IDS)
def test_only_the_chaos_runner_gets_an_api_token(where: str, obj: Obj, spec: Obj) -> None:
    """Only the game-day runner mounts a service-account token; nothing else calls the API."""
    automount = spec.get("automountServiceAccountToken")
    if spec.get("serviceAccountName") == "chaos-runner":
        assert automount is True, where
    else:
        assert automount is False, where


def _referenced_secrets(objs: list[Obj]) -> dict[tuple[str, str], set[str]]:
    refs: dict[tuple[str, str], set[str]] = {}
    for obj, spec in workloads(objs):
        ns = obj["metadata"]["namespace"]
        for volume in spec.get("volumes", []):
            sources = []
            if "secret" in volume:
                sources = [{"name": volume["secret"]["secretName"], **volume["secret"]}]
            elif "projected" in volume:
                sources = [s["secret"] for s in volume["projected"]["sources"] if "secret" in s]
            for s in sources:
                keys = {i["key"] for i in s.get("items", [])} or {"*"}
                refs.setdefault((ns, s["name"]), set()).update(keys)
        for c in containers(spec):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.setdefault((ns, ref["name"]), set()).add(ref["key"])
    return refs


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_no_secret_values_are_committed(target: Path) -> None:
    """The manifests contain no Secret objects; every Secret they use is created out of band."""
    objs = render(target)
    assert not [label(o) for o in objs if o["kind"] == "Secret"]
    refs = _referenced_secrets(objs)
    assert set(refs) == set(EXTERNAL_SECRETS)
    for ref, keys in refs.items():
        assert "*" not in keys, f"{ref} is mounted whole; name the keys (items) it needs"
        assert keys <= EXTERNAL_SECRETS[ref], ref


def test_external_secrets_are_documented_and_created_by_the_e2e_script() -> None:
    """docs/kubernetes.md and scripts/e2e-kind.sh create every out-of-band Secret and its keys."""
    docs = DOCS.read_text(encoding="utf-8")
    script = E2E_SCRIPT.read_text(encoding="utf-8")
    for (ns, name), keys in EXTERNAL_SECRETS.items():
        create = f"kubectl -n {ns} create secret generic {name}"
        assert create in docs, f"docs/kubernetes.md does not show: {create}"
        assert create in script, f"scripts/e2e-kind.sh does not run: {create}"
        for key in keys:
            given = (f"--from-literal={key}=", f"--from-file={key}=")
            assert any(g in script for g in given), f"e2e script never sets {name}/{key}"
            assert f"{key}=" in docs, f"docs never set {name}/{key}"
