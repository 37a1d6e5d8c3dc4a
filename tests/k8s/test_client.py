"""The real kubernetes client reaches the cluster the way chaostoolkit-kubernetes users expect."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from tests.k8s.conftest import kubeconfig, use_kubeconfig
from tests.k8s.fakeapi import FakeKubeAPI


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_kubeconfig_from_environment_is_used(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """KUBECONFIG's current context decides the server and the credentials sent."""
    assert k8s.node_of_pod("mysql-0", configuration=config) == "chaos-worker"
    (request,) = api.requests
    assert (request.method, request.path) == ("GET", "/api/v1/namespaces/mysql/pods/mysql-0")
    assert request.headers["authorization"] == "Bearer token-for-kind-chaos"


def test_context_from_kubernetes_secrets(
    api: FakeKubeAPI, config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBERNETES_CONTEXT in the `kubernetes` secrets picks the context, as in chaosk8s."""
    dead = f"http://127.0.0.1:{_closed_port()}"
    path = kubeconfig(tmp_path / "two", {"dead": dead, "kind-chaos": api.url}, "dead")
    use_kubeconfig(monkeypatch, path)
    with pytest.raises(ActivityFailed, match="cannot reach the Kubernetes API"):
        k8s.node_of_pod("mysql-0", configuration=config)
    secrets = {"KUBERNETES_CONTEXT": "kind-chaos"}
    assert k8s.node_of_pod("mysql-0", configuration=config, secrets=secrets) == "chaos-worker"


def test_unknown_context_is_a_clear_failure(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A context missing from the kubeconfig fails as one ActivityFailed line, sending nothing."""
    with pytest.raises(ActivityFailed, match="cannot load the Kubernetes client configuration"):
        k8s.node_of_pod("mysql-0", configuration=config, secrets={"KUBERNETES_CONTEXT": "nope"})
    assert api.requests == []


def test_forbidden_request_names_required_rbac(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A 403 says which call failed and where the needed permissions are listed."""
    api.deny("GET", "/api/v1/namespaces/mysql/pods/mysql-0")
    with pytest.raises(ActivityFailed) as failure:
        k8s.pod_uid("mysql-0", configuration=config)
    message = str(failure.value)
    assert "get pod mysql/mysql-0 failed: HTTP 403 Forbidden" in message
    assert "REQUIRED_RBAC" in message
    assert "\n" not in message


def test_server_gone_is_activity_failed(
    config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API server that does not answer becomes ActivityFailed naming the address."""
    dead = f"http://127.0.0.1:{_closed_port()}"
    use_kubeconfig(monkeypatch, kubeconfig(tmp_path / "k", {"dead": dead}, "dead"))
    with pytest.raises(ActivityFailed, match=f"cannot reach the Kubernetes API at {dead}"):
        k8s.pod_uid("mysql-0", configuration=config)
