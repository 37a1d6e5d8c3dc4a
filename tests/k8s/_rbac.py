"""Map recorded API requests to the RBAC grants they need, and check them against REQUIRED_RBAC."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.k8s.fakeapi import Request, parse_path, rbac_verb

Grant = tuple[str, str, str, str]  # (apiGroup, resource, verb, scope)


def needed(request: Request) -> Grant:
    """The grant the API server would check for this request."""
    route = parse_path(request.path)
    assert route is not None, f"not an API path: {request.path}"
    resource = f"{route.resource}/{route.subresource}" if route.subresource else route.resource
    scope = "namespace" if route.namespace is not None else "cluster"
    return route.group, resource, rbac_verb(request.method, route, request.query), scope


def granted(required: Iterable[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb, rule["scope"])
        for rule in required
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def uncovered(requests: Iterable[Request], required: Iterable[dict[str, Any]]) -> list[str]:
    """Requests that REQUIRED_RBAC would not allow, as readable lines."""
    allowed = granted(required)
    return [f"{r.method} {r.path} needs {needed(r)}" for r in requests if needed(r) not in allowed]
