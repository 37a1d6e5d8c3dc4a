"""The fake API and its fixtures: built from the manifests, refusing what a real server refuses."""

from __future__ import annotations

import http.client
import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.k8s.cluster import KIND_CLUSTER
from tests.k8s.fakeapi import DELETED, FIXTURES, ApiError, FakeKubeAPI, load_fixture
from tests.k8s.fixtures import build
from tests.k8s.fixtures.build import NEW_UID0, UID0

POD = "/api/v1/namespaces/mysql/pods/mysql-0"


@pytest.fixture
def server() -> Iterator[FakeKubeAPI]:
    """A fake API of its own (these requests are not the module's, so no RBAC check)."""
    api = FakeKubeAPI().load("cluster-healthy").start()
    try:
        yield api
    finally:
        api.stop()
    assert not api.errors, api.errors


def _send(api: FakeKubeAPI, method: str, path: str, body: Any, kind: str) -> tuple[int, Any]:
    host, port = api.url.removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=json.dumps(body), headers={"Content-Type": kind})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _merge(api: FakeKubeAPI, path: str, body: Any) -> tuple[int, Any]:
    return _send(api, "PATCH", path, body, "application/merge-patch+json")


# -- the fixtures -------------------------------------------------------------------------------
def test_committed_fixtures_are_what_the_generator_builds() -> None:
    """Each JSON file is byte for byte what `python -m tests.k8s.fixtures.build` writes."""
    built = build.fixtures()
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(built)
    for name, document in built.items():
        assert (FIXTURES / f"{name}.json").read_text() == build.render(document), name


def test_fixtures_follow_the_manifests() -> None:
    """Kubelet version from kind-cluster.yaml, pod spec from the StatefulSet template."""
    image = yaml.safe_load(KIND_CLUSTER.read_text())["nodes"][0]["image"]
    statefulset = yaml.safe_load(build.STATEFULSET.read_text())
    for obj in load_fixture("cluster-healthy"):
        if obj["kind"] == "Node":
            assert obj["status"]["nodeInfo"]["kubeletVersion"] == image.rsplit(":", 1)[1]
        if obj["kind"] == "Pod":
            template = statefulset["spec"]["template"]["spec"]
            assert obj["spec"]["containers"] == template["containers"]
            assert obj["spec"]["securityContext"] == template["securityContext"]
            assert obj["metadata"]["ownerReferences"][0]["uid"] == build.UIDS["statefulset/mysql"]
            assert {t.get("tolerationSeconds") for t in obj["spec"]["tolerations"]} == {300}


def test_fixture_identities_are_distinct_and_pod_ips_loopback() -> None:
    """One UID per object, one containerID per container, every resourceVersion its own."""
    uids: dict[str, tuple[str, str]] = {}
    containers: dict[str, tuple[str, str]] = {}
    versions: dict[str, str] = {}
    for path in FIXTURES.glob("*.json"):
        for obj in load_fixture(path.stem):
            meta = obj["metadata"]
            who = (obj["kind"], meta["name"])
            assert uids.setdefault(meta["uid"], who) == who
            assert versions.setdefault(meta["resourceVersion"], meta["uid"]) == meta["uid"]
            status = obj.get("status", {})
            for ip in [status.get("podIP"), *(i["ip"] for i in status.get("podIPs", []))]:
                assert ip is None or ipaddress.ip_address(ip).is_loopback, ip
            for c in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
                mine = (meta["uid"], c["name"])
                assert containers.setdefault(c["containerID"], mine) == mine
    assert len(containers) >= 12


def test_fixture_timeline_is_possible() -> None:
    """Heartbeats follow the events they come after; a replacement runs on its volume's node."""

    def heartbeat(name: str) -> str:
        node = next(o for o in load_fixture(name) if o["metadata"]["name"] == "chaos-worker")
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        return str(ready["lastHeartbeatTime"])

    evicted = load_fixture("node-lost-evicted")[0]
    eviction = next(
        c["lastTransitionTime"]
        for c in evicted["status"]["conditions"]
        if c["type"] == "DisruptionTarget"
    )
    assert heartbeat("node-lost") < heartbeat("kubelet-restored") < eviction
    assert eviction < heartbeat("kubelet-back-out-of-service")
    replaced = next(o for o in load_fixture("mysql-0-replaced") if o["kind"] == "Pod")
    assert replaced["metadata"]["uid"] == NEW_UID0
    assert replaced["spec"]["nodeName"] == "chaos-worker"
    pending = load_fixture("mysql-0-rescheduled-pending")[0]
    assert "nodeName" not in pending["spec"]
    document = json.loads((FIXTURES / "mysql-0-rescheduled-pending.json").read_text())
    gone = json.loads(document["metadata"]["annotations"][DELETED])
    assert gone == [{"resource": "pods", "namespace": "mysql", "name": "mysql-0", "uid": UID0}]


def test_both_branches_load_in_order() -> None:
    """Every fixture sequence the timeline allows loads without a refusal."""
    FakeKubeAPI().load("cluster-healthy", "node-lost", "kubelet-restored")
    FakeKubeAPI().load(
        "cluster-healthy",
        "node-lost",
        "node-lost-evicted",
        "node-out-of-service",
        "mysql-0-rescheduled-pending",
        "kubelet-back-out-of-service",
        "mysql-0-replaced",
    )


# -- refusals -----------------------------------------------------------------------------------
def test_an_evicted_pod_never_comes_back_to_life() -> None:
    """The kubelet coming back does not undelete an evicted pod: that fixture order is refused."""
    api = FakeKubeAPI().load("cluster-healthy", "node-lost", "node-lost-evicted")
    with pytest.raises(ApiError, match="can never remove or change a deletion timestamp"):
        api.load("kubelet-restored")
    pod = api.get("pods", "mysql-0", "mysql")
    assert pod is not None
    del pod["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiError) as refused:
        api.put(pod)
    assert refused.value.code == 422


def test_a_request_cannot_clear_a_deletion_timestamp(server: FakeKubeAPI) -> None:
    """Merge patch or PUT without it: the server keeps the deletionTimestamp (BeforeUpdate)."""
    server.load("node-lost", "node-lost-evicted")
    stamp = server.get("pods", "mysql-0", "mysql")["metadata"]["deletionTimestamp"]  # type: ignore[index]
    code, answer = _merge(
        server, POD, {"metadata": {"deletionTimestamp": None, "labels": {"x": "y"}}}
    )
    assert code == 200
    assert answer["metadata"]["deletionTimestamp"] == stamp
    assert answer["metadata"]["labels"]["x"] == "y"
    pod = server.get("pods", "mysql-0", "mysql")
    assert pod is not None
    del pod["metadata"]["deletionTimestamp"]
    code, answer = _send(server, "PUT", POD, pod, "application/json")
    assert code == 200
    assert server.get("pods", "mysql-0", "mysql")["metadata"]["deletionTimestamp"] == stamp  # type: ignore[index]


def test_a_request_cannot_set_a_deletion_timestamp(server: FakeKubeAPI) -> None:
    """Only a DELETE starts a deletion: a patch setting the field is 422 Invalid."""
    code, answer = _merge(server, POD, {"metadata": {"deletionTimestamp": "2025-03-04T10:00:00Z"}})
    assert (code, answer["reason"]) == (422, "Invalid")
    assert "deletionTimestamp" not in server.get("pods", "mysql-0", "mysql")["metadata"]  # type: ignore[index]


def test_a_uid_is_never_reused(server: FakeKubeAPI) -> None:
    """A deleted pod's UID cannot come back, neither by put nor by a create naming it."""
    old = server.get("pods", "mysql-0", "mysql")
    assert old is not None and old["metadata"]["uid"] == UID0
    server.remove("pods", "mysql-0", "mysql")
    old["metadata"].pop("resourceVersion")
    with pytest.raises(ApiError, match=f"uid {UID0} already belonged to pods/mysql/mysql-0"):
        server.put(old)
    code, created = _send(server, "POST", "/api/v1/namespaces/mysql/pods", old, "application/json")
    assert code == 201
    assert created["metadata"]["uid"] not in (UID0, "")


def test_a_uid_never_changes(server: FakeKubeAPI) -> None:
    """A new incarnation under the same name needs a delete first: changing the UID is refused."""
    pod = server.get("pods", "mysql-0", "mysql")
    assert pod is not None
    pod["metadata"]["uid"] = NEW_UID0
    with pytest.raises(ApiError, match="field is immutable"):
        server.put(pod)
    code, answer = _merge(server, POD, {"metadata": {"uid": NEW_UID0}})
    assert (code, answer["reason"]) == (422, "Invalid")
    code, answer = _send(server, "PUT", POD, pod, "application/json")
    assert (code, answer["reason"]) == (409, "Conflict")
    assert server.get("pods", "mysql-0", "mysql")["metadata"]["uid"] == UID0  # type: ignore[index]


def test_every_write_moves_the_resource_version(server: FakeKubeAPI) -> None:
    """Each write answers a new resourceVersion; a write carrying a stale one is 409 Conflict."""
    before = server.get("nodes", "chaos-worker")
    assert before is not None
    stale = before["metadata"]["resourceVersion"]
    code, answer = _merge(
        server, "/api/v1/nodes/chaos-worker", {"metadata": {"labels": {"a": "b"}}}
    )
    assert code == 200
    assert int(answer["metadata"]["resourceVersion"]) > int(stale)
    code, answer = _merge(
        server,
        "/api/v1/nodes/chaos-worker",
        {"metadata": {"resourceVersion": stale, "labels": {"a": "c"}}},
    )
    assert (code, answer["reason"]) == (409, "Conflict")
    code, answer = _send(server, "PUT", "/api/v1/nodes/chaos-worker", before, "application/json")
    assert (code, answer["reason"]) == (409, "Conflict")
    with pytest.raises(ApiError, match="the object has been modified"):
        server.put(before)
    now = server.get("nodes", "chaos-worker")
    assert now is not None and now["metadata"]["labels"]["a"] == "b"
    server.put(now)
    assert int(server.get("nodes", "chaos-worker")["metadata"]["resourceVersion"]) > int(  # type: ignore[index]
        now["metadata"]["resourceVersion"]
    )
