"""Offline validation of custom resources against their operators' published CRD schemas.

kubernetes-validate knows Kubernetes' own kinds only. For the custom resources in manifests/
(Prometheus Operator, LitmusChaos, Chaos Mesh) the structural OpenAPI schema of each CRD is
stored in tests/data/crds/ (sources and versions in its README.md) and checked with jsonschema,
unknown fields refused as the API server's strict field validation would.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

CRDS = Path(__file__).resolve().parents[1] / "data" / "crds"

# (apiVersion, kind) -> stored schema
SCHEMAS = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheus-operator-prometheusrule-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator-servicemonitor-v1.json",
    ("litmuschaos.io/v1alpha1", "ChaosEngine"): "litmus-chaosengine-v1alpha1.json",
    ("chaos-mesh.org/v1alpha1", "Workflow"): "chaos-mesh-workflow-v1alpha1.json",
}
CUSTOM_API_GROUPS = tuple(sorted({v.split("/")[0] + "/" for v, _ in SCHEMAS}))


def strict(schema: Any) -> Any:
    """A structural schema with unknown fields refused (open maps and fields marked
    x-kubernetes-preserve-unknown-fields stay open)."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


@functools.cache
def validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    try:
        name = SCHEMAS[(api_version, kind)]
    except KeyError:
        raise AssertionError(f"no stored CRD schema for {api_version} {kind}") from None
    return jsonschema.Draft4Validator(strict(json.loads((CRDS / name).read_text())))


def is_custom(doc: dict[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).startswith(CUSTOM_API_GROUPS)


def validate_custom(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless `doc` matches its CRD's schema."""
    validator(str(doc["apiVersion"]), str(doc["kind"])).validate(doc)
