"""Kustomize renders every kustomization, and every manifest validates against pinned schemas."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest

from tests.manifests._crds import is_custom, validate_custom
from tests.manifests._k8s import (
    CLUSTER_SCOPED_KINDS,
    KIND_CLUSTER_CONFIG,
    KIND_OVERLAY,
    KUBERNETES_VERSION,
    MANIFESTS,
    RENDER_TARGETS,
    REPO,
    Obj,
    containers,
    find,
    is_kubernetes_object,
    kustomization_files,
    kustomization_references,
    label,
    load_yaml_documents,
    render,
    resource_files,
    workloads,
)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _validate(doc: Obj) -> None:
    if is_custom(doc):
        # Custom resources (monitoring, other chaos tools): their CRDs' published schemas.
        validate_custom(doc)
        return
    # strict: unknown fields (a misspelt key is silently ignored by the API server) are errors.
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kustomization", kustomization_files(), ids=_rel)
def test_every_kustomization_renders(kustomization: Path) -> None:
    """`kubectl kustomize` renders each kustomization directory into Kubernetes objects."""
    objs = render(kustomization.parent)
    assert objs, f"{_rel(kustomization)} rendered nothing"
    assert all(is_kubernetes_object(o) for o in objs)


@pytest.mark.parametrize("kustomization", kustomization_files(), ids=_rel)
def test_kustomizations_use_only_local_files(kustomization: Path) -> None:
    """Every resource and patch a kustomization names is a file or directory in this repository."""
    doc = load_yaml_documents(kustomization)[0]
    here = kustomization.parent
    named = [*doc.get("resources", []), *(p["path"] for p in doc.get("patches", []) if "path" in p)]
    for ref in named:
        assert "://" not in ref and not ref.startswith("github.com"), f"remote reference {ref}"
        target = (here / ref).resolve()
        assert target.exists(), f"{_rel(kustomization)} names {ref}, which does not exist"
        assert target.is_relative_to(MANIFESTS), f"{ref} lies outside manifests/"


def test_every_yaml_file_is_accounted_for() -> None:
    """Each YAML file in manifests/ is a kustomization, its resource or patch, or kind config."""
    referenced: set[Path] = {KIND_CLUSTER_CONFIG.resolve()}
    for k in kustomization_files():
        resources, patches = kustomization_references(k)
        referenced |= resources | patches | {k.resolve()}
    orphans = [_rel(p) for p in sorted(MANIFESTS.rglob("*.y*ml")) if p.resolve() not in referenced]
    assert not orphans, f"YAML files no kustomization uses (never applied nor validated): {orphans}"


@pytest.mark.parametrize("path", resource_files(), ids=_rel)
def test_every_manifest_file_validates(path: Path) -> None:
    """Each manifest file validates offline against the Kubernetes schemas of the pinned version."""
    docs = load_yaml_documents(path)
    assert docs, f"{_rel(path)} is empty"
    for doc in docs:
        assert is_kubernetes_object(doc), f"{_rel(path)} holds a non-Kubernetes document"
        _validate(doc)


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_every_rendered_tree_validates(target: Path) -> None:
    """Everything the base and each overlay render validates against the pinned schemas."""
    objs = render(target)
    for obj in objs:
        _validate(obj)


def test_validator_rejects_a_broken_object() -> None:
    """The offline validator is not a no-op: a wrong type and an unknown field are both rejected."""
    deployment = find(render(RENDER_TARGETS[0]), "Deployment", "checker", "mysql")
    _validate(deployment)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(wrong_type)
    unknown_field = copy.deepcopy(deployment)
    unknown_field["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(unknown_field)


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_objects_name_their_namespace(target: Path) -> None:
    """Namespaced objects sit in "mysql" or "chaos" explicitly; cluster-scoped ones have none."""
    for obj in render(target):
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in CLUSTER_SCOPED_KINDS:
            assert namespace is None, label(obj)
        else:
            assert namespace in {"mysql", "chaos"}, label(obj)


@pytest.mark.parametrize("target", RENDER_TARGETS, ids=_rel)
def test_objects_are_unique(target: Path) -> None:
    """No two rendered objects share kind, namespace and name (one would overwrite the other)."""
    labels = [label(o) for o in render(target)]
    assert len(labels) == len(set(labels))


def test_kind_overlay_uses_the_locally_built_image() -> None:
    """The kind overlay runs the image e2e-kind.sh builds and loads (mysql-chaos-checker:dev)."""
    images = {
        c["image"]
        for _, spec in workloads(render(KIND_OVERLAY))
        for c in containers(spec)
        if "checker" in c["image"]
    }
    assert images == {"mysql-chaos-checker:dev"}
    assert "mysql-chaos-checker:dev" in (REPO / "scripts" / "e2e-kind.sh").read_text()
