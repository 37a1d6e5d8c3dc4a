"""Litmus and Chaos Mesh examples that ask GET /probe/verdict: valid against their CRDs."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from checker.api import openapi_spec
from tests.manifests._crds import validate_custom
from tests.manifests._k8s import BASE, DOCS, MANIFESTS, find, load_yaml_documents, render

EXAMPLES = MANIFESTS / "examples"
LITMUS = EXAMPLES / "litmus-chaosengine.yaml"
CHAOS_MESH = EXAMPLES / "chaos-mesh-workflow.yaml"


def _one(path: Path) -> dict[str, Any]:
    (doc,) = load_yaml_documents(path)
    return doc


def _litmus_probes(engine: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for e in engine["spec"]["experiments"] for p in e["spec"]["probe"]]


def _litmus_get(engine: dict[str, Any]) -> dict[str, Any]:
    get: dict[str, Any] = _litmus_probes(engine)[0]["httpProbe/inputs"]["method"]["get"]
    return get


def _status_checks(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [t["statusCheck"] for t in workflow["spec"]["templates"] if "statusCheck" in t]


@pytest.mark.parametrize("path", [LITMUS, CHAOS_MESH], ids=lambda p: p.name)
def test_the_examples_validate_against_their_crds(path: Path) -> None:
    """Each example is a valid custom resource of its operator's published schema."""
    validate_custom(_one(path))


@pytest.mark.parametrize(
    ("path", "breakage"),
    [
        (LITMUS, lambda d: _litmus_get(d).pop("criteria")),
        (LITMUS, lambda d: _litmus_probes(d)[0].update(mode="Always")),
        (LITMUS, lambda d: _litmus_probes(d)[0]["runProperties"].update(probeTimout="5s")),
        (CHAOS_MESH, lambda d: _status_checks(d)[0].update(type="TCP")),
        (CHAOS_MESH, lambda d: _status_checks(d)[0]["http"]["criteria"].update(statuscode="200")),
        (CHAOS_MESH, lambda d: _status_checks(d)[0].update(failureThreshold=0)),
    ],
    ids=["no-criteria", "bad-mode", "typo-run-property", "tcp-check", "typo-criteria", "zero-fail"],
)
def test_the_schemas_catch_a_broken_probe(path: Path, breakage: Any) -> None:
    """The validation is not a no-op: a missing field, a wrong enum or a misspelt key fails."""
    doc = copy.deepcopy(_one(path))
    breakage(doc)
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(doc)


def _urls() -> list[str]:
    urls = [p["httpProbe/inputs"]["url"] for p in _litmus_probes(_one(LITMUS))]
    urls += [c["http"]["url"] for c in _status_checks(_one(CHAOS_MESH))]
    return urls


def test_the_probes_ask_the_checker_service_for_the_verdict_probe() -> None:
    """Every probe URL is the checker Service's HTTP port and the API's /probe/verdict route,
    and passes only on HTTP 200."""
    service = find(render(BASE), "Service", "checker", "mysql")
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    routes = openapi_spec()["paths"]
    assert _urls()
    for url in _urls():
        parts = urlsplit(url)
        assert parts.hostname == "checker.mysql.svc.cluster.local"
        assert parts.port == port
        assert parts.path == "/probe/verdict"
        assert "get" in routes[parts.path]
    (probe,) = _litmus_probes(_one(LITMUS))
    assert probe["httpProbe/inputs"]["method"]["get"] == {"criteria": "==", "responseCode": "200"}
    assert {c["http"]["criteria"]["statusCode"] for c in _status_checks(_one(CHAOS_MESH))} == {
        "200"
    }


def test_the_docs_show_the_same_examples() -> None:
    """docs/kubernetes.md carries both examples verbatim, so what people copy is validated."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)
    shown = [yaml.safe_load(b) for b in blocks]
    for path in (LITMUS, CHAOS_MESH):
        assert _one(path) in shown, f"{path.name} is not shown verbatim in {DOCS.name}"
