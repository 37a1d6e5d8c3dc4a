"""Fixtures: a fake Kubernetes API on 127.0.0.1 that the real client reaches through KUBECONFIG.

Its objects are reconstructions from the documented API built from this project's manifests
(tests/k8s/fixtures/build.py), not recordings of a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.config import kube_config

from probes.k8s.memory import MEMORY
from probes.kubernetes import REQUIRED_RBAC
from tests.k8s._rbac import uncovered
from tests.k8s.fakeapi import FakeKubeAPI

# Anything that could send the client somewhere else than the fake server.
_ENVIRONMENT = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "KUBERNETES_CONTEXT",
    "KUBERNETES_HOST",
    "KUBERNETES_SERVICE_HOST",
    "CHAOSTOOLKIT_IN_POD",
)


def use_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Point KUBECONFIG at `path` the way a user does, for this test only.

    chaosk8s checks $KUBECONFIG when called, but the kubernetes package reads it once, at
    import, as its default location; a process that starts with KUBECONFIG set sees both agree,
    so the test makes them agree too.
    """
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def kubeconfig(path: Path, contexts: dict[str, str], current: str) -> Path:
    """A kubeconfig with one cluster+user+context per entry of `contexts` (name -> server URL)."""
    for server in contexts.values():
        assert server.startswith("http://127.0.0.1:"), server
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in contexts.items()],
        "users": [{"name": n, "user": {"token": f"token-for-{n}"}} for n in contexts],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in contexts],
        "current-context": current,
    }
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No proxy or cluster settings leak in, no kubeconfig unless a test writes one; no notes."""
    for name in _ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    use_kubeconfig(monkeypatch, tmp_path / "no-kubeconfig")
    monkeypatch.setenv("HOME", str(tmp_path))
    # The allow list is the runner's environment, as the game-day CronJob sets it.
    monkeypatch.setenv("CHAOS_ALLOWED_NAMESPACES", "mysql,chaos")
    MEMORY.clear()
    yield
    MEMORY.clear()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKubeAPI]:
    """The fake API with the healthy (reconstructed) kind cluster loaded, KUBECONFIG at it.

    On teardown every request the module sent must be covered by REQUIRED_RBAC.
    """
    server = FakeKubeAPI().load("cluster-healthy").start()
    path = kubeconfig(tmp_path / "kubeconfig", {"kind-chaos": server.url}, "kind-chaos")
    use_kubeconfig(monkeypatch, path)
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, server.errors
    assert not uncovered(server.requests, REQUIRED_RBAC)


@pytest.fixture
def config() -> dict[str, Any]:
    """The experiments' configuration, with fast polling for tests."""
    return {
        "namespace": "mysql",
        "statefulset": "mysql",
        "chaos_namespace": "chaos",
        "poll_interval_seconds": 0.01,
        "helper_start_timeout": 2,
    }
