"""Blast radius of the node-level faults: which nodes, which allow list, which helper image."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from probes.k8s import config as check
from tests.k8s.fakeapi import FakeKubeAPI

CONTROL_PLANE = "chaos-control-plane"


def _move_mysql_pods_off(server: FakeKubeAPI, node: str) -> None:
    """Bind every MySQL pod on `node` to another worker, as a reschedule would."""
    for name in ("mysql-0", "mysql-1", "mysql-2"):
        pod = server.get("pods", name, "mysql")
        assert pod is not None
        if pod["spec"]["nodeName"] == node:
            pod["spec"]["nodeName"] = "chaos-worker2"
            server.put(pod)


@pytest.mark.parametrize("action", ["stop", "taint"])
def test_control_plane_node_is_refused(
    api: FakeKubeAPI, config: dict[str, Any], action: str
) -> None:
    """A kubelet stop or out-of-service taint aimed at the control plane sends nothing mutating."""
    with pytest.raises(ActivityFailed, match="chaos-control-plane is a control-plane node"):
        if action == "stop":
            k8s.stop_kubelet(node=CONTROL_PLANE, configuration=config)
        else:
            k8s.taint_out_of_service(node=CONTROL_PLANE, configuration=config)
    assert api.mutating_requests() == []


@pytest.mark.parametrize("action", ["stop", "taint"])
def test_node_without_a_mysql_pod_is_refused(
    api: FakeKubeAPI, config: dict[str, Any], action: str
) -> None:
    """A worker that runs no pod of the target StatefulSet is out of bounds for node faults."""
    _move_mysql_pods_off(api, "chaos-worker3")
    with pytest.raises(ActivityFailed, match="node chaos-worker3 runs no pod of statefulset"):
        if action == "stop":
            k8s.stop_kubelet(node="chaos-worker3", configuration=config)
        else:
            k8s.taint_out_of_service(node="chaos-worker3", configuration=config)
    assert api.mutating_requests() == []


def test_the_node_this_run_stopped_stays_a_target_once_its_pod_is_gone(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """After pod GC or a force delete the stopped node runs no MySQL pod, yet its taint (the
    documented recovery) is allowed; any other node without one is still refused."""
    config["helper_start_timeout"] = 0.05
    k8s.stop_kubelet(pod="mysql-0", configuration=config)
    api.load("node-lost")
    api.remove("pods", "mysql-0", "mysql")
    assert k8s.taint_out_of_service(node="chaos-worker", configuration=config)["changed"]
    with pytest.raises(ActivityFailed, match="node chaos-worker4 runs no pod of statefulset"):
        k8s.taint_out_of_service(node="chaos-worker4", unsafe=True, configuration=config)


def test_pod_named_like_mysql_but_not_owned_is_not_enough(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """A pod that only borrows the StatefulSet's pod name does not make its node a target."""
    pod = api.get("pods", "mysql-2", "mysql")
    assert pod is not None
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "impostor"}]
    api.put(pod)
    with pytest.raises(ActivityFailed, match="runs no pod of statefulset mysql/mysql"):
        k8s.taint_out_of_service(node="chaos-worker3", configuration=config)
    assert api.mutating_requests() == []


def test_removing_the_taint_from_the_control_plane_is_refused(
    api: FakeKubeAPI, config: dict[str, Any]
) -> None:
    """Even the cleanup never patches a control-plane node."""
    with pytest.raises(ActivityFailed, match="is a control-plane node"):
        k8s.remove_out_of_service_taint(node=CONTROL_PLANE, configuration=config)
    assert api.mutating_requests() == []


def test_configured_allow_list_cannot_widen_the_environment_one(
    api: FakeKubeAPI,
    config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`--var allowed_namespaces=...` is ignored (and said so); only the runner's env counts."""
    monkeypatch.setenv("CHAOS_ALLOWED_NAMESPACES", "chaos")
    config["allowed_namespaces"] = "mysql,chaos"
    refused = r"namespace\(s\) mysql not in allowed_namespaces"
    with (
        caplog.at_level(logging.WARNING, logger="chaostoolkit"),
        pytest.raises(ActivityFailed, match=refused),
    ):
        k8s.delete_pod("mysql-1", configuration=config)
    assert "configuration allowed_namespaces is ignored" in caplog.text
    assert api.requests == []


def test_no_environment_allow_list_refuses_everything(
    api: FakeKubeAPI, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without CHAOS_ALLOWED_NAMESPACES a configured list does not switch faults on."""
    monkeypatch.delenv("CHAOS_ALLOWED_NAMESPACES")
    config["allowed_namespaces"] = ["mysql", "chaos"]
    with pytest.raises(ActivityFailed, match="CHAOS_ALLOWED_NAMESPACES is not set"):
        k8s.stop_kubelet(pod="mysql-0", configuration=config)
    assert api.requests == []


def test_default_helper_image_is_pinned_by_digest() -> None:
    """The default helper image names its bytes, not just a movable tag."""
    name, digest = check.DEFAULT_HELPER_IMAGE.split("@")
    assert name == "debian:12.9-slim"
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert check.settings({}).helper_image == check.DEFAULT_HELPER_IMAGE


@pytest.mark.parametrize(
    "image",
    [
        "debian:12.9-slim",
        "registry.local/debian:latest",
        "debian@sha256:1234",
        "debian@md5:" + "a" * 32,
    ],
)
def test_helper_image_without_digest_is_refused(
    api: FakeKubeAPI, config: dict[str, Any], image: str
) -> None:
    """A tag-only helper image is refused before anything is sent to the cluster."""
    config["helper_image"] = image
    with pytest.raises(ActivityFailed, match="is not pinned by digest"):
        k8s.stop_kubelet(pod="mysql-0", configuration=config)
    assert api.requests == []
