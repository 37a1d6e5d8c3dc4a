"""A simulated cluster behind the fake API: the controllers' documented behaviour, on a short clock.

The objects are built from this project's own manifests (the kind cluster of
manifests/overlays/kind/kind-cluster.yaml, the StatefulSet of manifests/base/mysql), not
recorded from a cluster: UIDs are fresh UUIDs, every write moves the resourceVersion, and each
transition is one a controller documents (docs/kubernetes.md cites the sources):

- kubelet (modelled per node by tests/k8s/hoststub.py) posts the node's Ready heartbeat while it
  runs; it starts pods bound to its node, runs the helper pod's command on the node's modelled
  host, and finishes the deletion of terminating pods (stopping their containers).
- node lifecycle controller: no heartbeat for `grace` seconds (node-monitor-grace-period) ->
  Ready=Unknown, taints `unreachable:NoSchedule` and `:NoExecute`, the node's pods NotReady; a
  fresh heartbeat -> Ready=True and those taints removed.
- taint manager: a NoExecute taint evicts (deletes gracefully) pods that do not tolerate it, once
  their tolerationSeconds run out (StatefulSet pods get 300 s from DefaultTolerationSeconds,
  scaled here to `eviction`).
- pod garbage collector (Kubernetes 1.28+): a terminating pod on a NotReady node tainted
  `node.kubernetes.io/out-of-service:NoExecute` is force-deleted.
- StatefulSet controller: creates a missing `<name>-<ordinal>` with a new UID, never while the
  old object exists (at most one pod per identity); local-path volumes pin each ordinal to its
  first node, so a replacement waits, Pending, until that node is schedulable again.

With a lab, what clients see follows the pods: a mysql-N pod that is not Ready loses its
endpoint (new connections refused, open ones kept), a stopped container kills the server, a
started one starts it, and a deny-all NetworkPolicy selecting the pod partitions it.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from checker.lab.state import ROOT_USER
from checker.lab.topology import Lab
from checker.mysql import connect
from tests.k8s import hoststub
from tests.k8s.fakeapi import FakeKubeAPI

ROOT = Path(__file__).parents[2]
KIND_CLUSTER = ROOT / "manifests" / "overlays" / "kind" / "kind-cluster.yaml"
STATEFULSET = ROOT / "manifests" / "base" / "mysql" / "statefulset.yaml"
MYSQL_NAMESPACE = "mysql"
CHAOS_NAMESPACE = "chaos"
HELPER_LABEL = ("app.kubernetes.io/name", "kubelet-stop")
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
UNREACHABLE = "node.kubernetes.io/unreachable"
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Clock:
    """The controllers' periods, shortened; real values in comments."""

    heartbeat: float = 0.5  # kubelet nodeStatusUpdateFrequency / lease renewal: 10 s
    grace: float = 1.0  # node-monitor-grace-period: 40 s (50 s from 1.32)
    eviction: float = 2.0  # tolerationSeconds of not-ready/unreachable: 300 s
    start: float = 0.3  # a container starting
    stop: float = 0.3  # a container stopping after its pod is deleted
    tick: float = 0.05


def stamp(at: float | None = None) -> str:
    """RFC 3339 at second precision, as metav1.Time is serialized."""
    return datetime.fromtimestamp(at or time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kind_nodes() -> list[tuple[str, str, str]]:
    """(name, role, kubelet version) of the kind cluster the e2e script creates."""
    config = yaml.safe_load(KIND_CLUSTER.read_text())
    nodes, workers = [], 0
    for entry in config["nodes"]:
        version = entry["image"].rsplit(":", 1)[1]
        if entry["role"] == "control-plane":
            nodes.append((f"{config['name']}-control-plane", "control-plane", version))
        else:
            workers += 1
            suffix = "" if workers == 1 else str(workers)
            nodes.append((f"{config['name']}-worker{suffix}", "worker", version))
    return nodes


@dataclass
class SimulatedCluster:
    """The fake API plus controllers on a background thread; `start()`, then `stop()`."""

    api: FakeKubeAPI
    hosts: Path  # hoststub root: one folder per node
    env: dict[str, str]  # PATH with the host stubs, for the helper pods' commands
    lab: Lab | None = None
    clock: Clock = field(default_factory=Clock)
    pod_ip: str = "127.0.0.1"  # loopback only: the force-delete guard connects to pod IPs
    home: dict[str, str] = field(default_factory=dict)  # ordinal pod -> node (local-path PV)
    events: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _heartbeats: dict[str, float] = field(default_factory=dict)
    _since: dict[str, float] = field(default_factory=dict)  # when a state was first seen
    _helpers: dict[str, threading.Thread] = field(default_factory=dict)
    _exits: dict[str, int] = field(default_factory=dict)
    _lab_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # -- set-up ----------------------------------------------------------------------------
    def build(self) -> SimulatedCluster:
        """Namespaces, the kind nodes, the StatefulSet and its pods, all Ready."""
        for ns in (MYSQL_NAMESPACE, CHAOS_NAMESPACE):
            self._create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        nodes = _kind_nodes()
        addresses = {}
        for i, (name, role, version) in enumerate(nodes):
            address = f"172.18.0.{i + 2}"  # the docker network kind uses; never contacted
            addresses[address] = name
            self._create(self._node(name, role, version, address))
            hoststub.Node(self.hosts, name)
        (self.hosts / "hosts.json").write_text(
            json.dumps({**addresses, **{n: n for n, _, _ in nodes}})
        )
        statefulset = yaml.safe_load(STATEFULSET.read_text())
        statefulset["metadata"]["uid"] = str(uuid.uuid4())
        statefulset["metadata"]["generation"] = 1
        statefulset["status"] = {"observedGeneration": 1, "replicas": 0}
        self._create(statefulset)
        workers = [n for n, role, _ in nodes if role == "worker"]
        for ordinal in range(statefulset["spec"]["replicas"]):
            self.home[f"mysql-{ordinal}"] = workers[ordinal % len(workers)]
        now = time.time()
        for name in self.home:
            pod = self._new_pod(name, bound=True)
            pod["status"] = self._running_status(pod, now, ready=True)
            self._create(pod)
        self._statefulset_status()
        return self

    def start(self) -> SimulatedCluster:
        self._thread = threading.Thread(target=self._run, name="simulated-cluster", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for thread in self._helpers.values():
            thread.join(timeout=10)

    def node_of(self, pod: str) -> str:
        return self.home[pod]

    # -- the loop --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.clock.tick):
            try:
                self.step(time.time())
            except Exception as exc:  # a broken simulation must fail the test (see errors)
                self.errors.append(repr(exc))

    def step(self, now: float) -> None:
        with self.api._lock:
            for node in self._objects("nodes"):
                self._kubelet(node, now)
                self._node_lifecycle(node, now)
            self._taint_manager(now)
            self._pod_gc()
            self._statefulset_controller(now)
            self._statefulset_status()
        self._follow_in_lab()

    # -- kubelet ---------------------------------------------------------------------------
    def _kubelet(self, node: Obj, now: float) -> None:
        name = node["metadata"]["name"]
        if not hoststub.Node(self.hosts, name).kubelet_active:
            return
        if now - self._heartbeats.get(name, 0.0) >= self.clock.heartbeat:
            self._heartbeats[name] = now
            self._post_ready(node, now)
        for pod in self._objects("pods"):
            if pod["spec"].get("nodeName") == name:
                self._kubelet_pod(pod, name, now)

    def _post_ready(self, node: Obj, now: float) -> None:
        node = self._fresh(node)
        ready = _condition(node, "Ready")
        if ready["status"] != "True":
            ready.update(status="True", reason="KubeletReady", lastTransitionTime=stamp(now))
            ready["message"] = "kubelet is posting ready status"
            self.events.append(f"{stamp(now)} node {node['metadata']['name']} Ready")
        ready["lastHeartbeatTime"] = stamp(now)
        self.api.put(node)

    def _kubelet_pod(self, pod: Obj, node: str, now: float) -> None:
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        uid = pod["metadata"]["uid"]
        if pod["metadata"].get("deletionTimestamp"):
            # Stop the containers, then finish the deletion (kubelet's final grace-0 delete).
            started = self._since.setdefault(f"stopping:{uid}", now)
            if now - started >= self.clock.stop:
                self._remove(pod)
                self.events.append(f"{stamp(now)} pod {namespace}/{name} deleted by kubelet")
            return
        if _labelled(pod, *HELPER_LABEL):
            self._kubelet_helper(pod, node, now)
            return
        phase = pod.get("status", {}).get("phase")
        if phase == "Pending":
            started = self._since.setdefault(f"starting:{uid}", now)
            if now - started >= self.clock.start:
                pod = self._fresh(pod)
                pod["status"] = self._running_status(pod, now, ready=True)
                self.api.put(pod)
                self.events.append(f"{stamp(now)} pod {namespace}/{name} Running on {node}")
        elif phase == "Running":
            # The readiness probe (ready.sh) fails on a replica cut off by a NetworkPolicy once
            # its IO thread gives up: `grace` seconds here (replica_net_timeout + probes there).
            ready = "True"
            if name in self._policy_targets():
                cut_at = self._since.setdefault(f"cut:{uid}", now)
                ready = "False" if now - cut_at >= self.clock.grace else "True"
            elif self._since.pop(f"cut:{uid}", None) is not None:
                self._since[f"healing:{uid}"] = now
            if f"healing:{uid}" in self._since:
                # ready.sh: back only once replicating again within its lag bound.
                ready = "True" if self._replicating(name) else "False"
                if ready == "True":
                    del self._since[f"healing:{uid}"]
            if _condition(pod, "Ready").get("status") != ready:
                pod = self._fresh(pod)
                _condition(pod, "Ready").update(status=ready, lastTransitionTime=stamp(now))
                self.api.put(pod)

    def _kubelet_helper(self, pod: Obj, node: str, now: float) -> None:
        uid = pod["metadata"]["uid"]
        phase = pod.get("status", {}).get("phase")
        if phase == "Pending" and uid not in self._helpers:
            command = pod["spec"]["containers"][0]["command"]
            pod = self._fresh(pod)
            pod["status"] = {
                "phase": "Running",
                "hostIP": self._node_address(node),
                "startTime": stamp(now),
                "containerStatuses": [
                    {
                        "name": "kubelet-stop",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": stamp(now)}},
                    }
                ],
            }
            self.api.put(pod)
            thread = threading.Thread(
                target=self._run_helper, args=(uid, node, command), daemon=True
            )
            self._helpers[uid] = thread
            thread.start()
        elif phase == "Running" and uid in self._exits:
            code = self._exits.pop(uid)
            pod = self._fresh(pod)
            pod["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
            pod["status"]["containerStatuses"][0]["state"] = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "finishedAt": stamp(now),
                }
            }
            self.api.put(pod)

    def _replicating(self, name: str, bound: float = 5.0) -> bool:
        """What ready.sh checks on a replica: both threads running, lag within the bound."""
        if self.lab is None:
            return True
        endpoint = self.lab.endpoint(f"direct:{name}", user=ROOT_USER)
        try:
            with connect(endpoint) as conn, conn.cursor() as cur:
                cur.execute("SHOW SLAVE STATUS")
                columns = [d[0] for d in cur.description or []]
                row = cur.fetchone()
        except Exception:  # not answering is "not ready", as the probe sees it
            return False
        if row is None:
            return True  # the primary: no replica status
        status = dict(zip(columns, row, strict=True))
        lag = status.get("Seconds_Behind_Master")
        return bool(
            status.get("Slave_IO_Running") == "Yes"
            and status.get("Slave_SQL_Running") == "Yes"
            and lag is not None
            and float(lag) <= bound
        )

    def _run_helper(self, uid: str, node: str, command: list[str]) -> None:
        code = hoststub.run_on_node(self.hosts, node, command, self.env)
        # Only a running kubelet can report the exit; _kubelet_helper picks it up then.
        self._exits[uid] = code

    # -- control plane ---------------------------------------------------------------------
    def _node_lifecycle(self, node: Obj, now: float) -> None:
        name = node["metadata"]["name"]
        ready = _condition(node, "Ready")
        last = self._heartbeats.get(name, now)
        if ready["status"] == "True" and now - last > self.clock.grace:
            node = self._fresh(node)
            ready = _condition(node, "Ready")
            ready.update(
                status="Unknown",
                reason="NodeStatusUnknown",
                message="Kubelet stopped posting node status.",
                lastTransitionTime=stamp(now),
            )
            taints = node["spec"].setdefault("taints", [])
            for effect in ("NoSchedule", "NoExecute"):
                taints.append({"key": UNREACHABLE, "effect": effect, "timeAdded": stamp(now)})
            self.api.put(node)
            self.events.append(f"{stamp(now)} node {name} Ready=Unknown, tainted unreachable")
            for listed in self._objects("pods"):
                if listed["spec"].get("nodeName") == name:
                    pod = self._fresh(listed)
                    _condition(pod, "Ready").update(status="False", lastTransitionTime=stamp(now))
                    self.api.put(pod)
        elif ready["status"] == "True" and any(
            t.get("key") == UNREACHABLE for t in node["spec"].get("taints") or []
        ):
            node = self._fresh(node)
            node["spec"]["taints"] = [
                t for t in node["spec"]["taints"] if t.get("key") != UNREACHABLE
            ]
            self.api.put(node)

    def _taint_manager(self, now: float) -> None:
        nodes = {n["metadata"]["name"]: n for n in self._objects("nodes")}
        present = {
            f"taint:{name}:{t['key']}"
            for name, node in nodes.items()
            for t in node["spec"].get("taints") or []
            if t.get("effect") == "NoExecute"
        }
        for key in [k for k in self._since if k.startswith("taint:") and k not in present]:
            del self._since[key]  # removed: a later taint starts its own clock
        for key in present:
            self._since.setdefault(key, now)
        for pod in self._objects("pods"):
            node = nodes.get(pod["spec"].get("nodeName", ""))
            if node is None or pod["metadata"].get("deletionTimestamp"):
                continue
            for taint in node["spec"].get("taints") or []:
                if taint.get("effect") != "NoExecute":
                    continue
                tolerated, seconds = _tolerates(pod, taint)
                added = self._since[f"taint:{node['metadata']['name']}:{taint['key']}"]
                # Toleration seconds on the simulated clock: 300 s real is `eviction` here.
                scaled = None if seconds is None else seconds * self.clock.eviction / 300.0
                if not tolerated or (scaled is not None and now - added >= scaled):
                    self._evict(pod, now, taint["key"])
                    break

    def _evict(self, pod: Obj, now: float, why: str) -> None:
        pod = self._fresh(pod)
        pod["metadata"]["deletionTimestamp"] = stamp(now)
        pod["metadata"]["deletionGracePeriodSeconds"] = pod["spec"].get(
            "terminationGracePeriodSeconds", 30
        )
        self.api.put(pod)
        self.events.append(f"{stamp(now)} pod {pod['metadata']['name']} evicted ({why})")

    def _pod_gc(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self._objects("nodes")}
        for pod in self._objects("pods"):
            node = nodes.get(pod["spec"].get("nodeName", ""))
            if node is None or not pod["metadata"].get("deletionTimestamp"):
                continue
            out = any(
                t.get("key") == OUT_OF_SERVICE and t.get("effect") == "NoExecute"
                for t in node["spec"].get("taints") or []
            )
            if out and _condition(node, "Ready").get("status") != "True":
                self._remove(pod)
                self.events.append(f"pod {pod['metadata']['name']} force-deleted by pod GC")

    def _statefulset_controller(self, now: float) -> None:
        existing = {p["metadata"]["name"] for p in self._objects("pods", MYSQL_NAMESPACE)}
        for name in self.home:
            if name not in existing:
                self.api.put(self._new_pod(name, bound=False))
                self.events.append(f"{stamp(now)} statefulset created pod {name}")
                existing.add(name)
        nodes = {n["metadata"]["name"]: n for n in self._objects("nodes")}
        for pending in self._objects("pods", MYSQL_NAMESPACE):
            if pending["spec"].get("nodeName"):
                continue
            home = self.home[pending["metadata"]["name"]]
            blocked = any(
                t.get("effect") == "NoSchedule" for t in nodes[home]["spec"].get("taints") or []
            )
            if not blocked:  # the scheduler binds it to the node its volume lives on
                pod = self._fresh(pending)
                pod["spec"]["nodeName"] = home
                _condition(pod, "PodScheduled").update(status="True")
                self.api.put(pod)

    def _statefulset_status(self) -> None:
        statefulset = self.api.objects[("statefulsets", MYSQL_NAMESPACE, "mysql")]
        pods = self._objects("pods", MYSQL_NAMESPACE)
        ready = sum(
            1
            for p in pods
            if _condition(p, "Ready").get("status") == "True"
            and not p["metadata"].get("deletionTimestamp")
        )
        status = {
            "observedGeneration": statefulset["metadata"]["generation"],
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": len(pods),
            "updatedReplicas": len(pods),
            "currentRevision": "mysql-5d8f7c9b6d",
            "updateRevision": "mysql-5d8f7c9b6d",
        }
        if statefulset.get("status") != status:
            updated = copy.deepcopy(statefulset)
            updated["status"] = status
            self.api.put(updated)

    # -- the lab follows the pods ----------------------------------------------------------
    def _policy_targets(self) -> set[str]:
        """Pods selected by name by a NetworkPolicy (the deny-all partitions)."""
        return {
            str(p["spec"]["podSelector"].get("matchLabels", {}).get(POD_NAME_LABEL))
            for p in self._objects("networkpolicies", MYSQL_NAMESPACE)
        }

    def _follow_in_lab(self) -> None:
        if self.lab is None:
            return
        with self.api._lock:
            policies = self._policy_targets()
        for name in self.home:
            pod = self.api.get("pods", name, MYSQL_NAMESPACE)
            running = pod is not None and pod.get("status", {}).get("phase") == "Running"
            ready = running and _condition(pod or {}, "Ready").get("status") == "True"
            wanted = {"running": running, "endpoint": bool(ready), "partitioned": name in policies}
            seen = self._lab_state.setdefault(
                name, {"running": True, "endpoint": True, "partitioned": False}
            )
            for what, fault, undo in (
                ("running", "kill", "start"),
                ("endpoint", "endpoint-loss", "endpoint-restore"),
                ("partitioned", "heal", "partition"),
            ):
                if wanted[what] != seen[what]:
                    action = undo if wanted[what] else fault
                    self.lab.fault(action, name)
                    seen[what] = wanted[what]
                    self.events.append(f"lab {action} {name}")

    # -- objects ---------------------------------------------------------------------------
    def _objects(self, resource: str, namespace: str | None = None) -> list[Obj]:
        return [
            copy.deepcopy(obj)
            for (kind, ns, _), obj in list(self.api.objects.items())
            if kind == resource and (namespace is None or ns == namespace)
        ]

    def _fresh(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        found = self.api.get(
            {"Node": "nodes", "Pod": "pods", "StatefulSet": "statefulsets"}[obj["kind"]],
            meta["name"],
            meta.get("namespace"),
        )
        assert found is not None, meta["name"]
        return found

    def _create(self, obj: Obj) -> None:
        obj.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
        obj["metadata"].setdefault("creationTimestamp", stamp())
        self.api.put(obj)

    def _remove(self, pod: Obj) -> None:
        self.api.remove("pods", pod["metadata"]["name"], pod["metadata"]["namespace"])

    def _node_address(self, node: str) -> str:
        found = self.api.get("nodes", node)
        assert found is not None
        return next(a["address"] for a in found["status"]["addresses"] if a["type"] == "InternalIP")

    def _node(self, name: str, role: str, version: str, address: str) -> Obj:
        labels = {
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
        }
        taints = []
        if role == "control-plane":
            labels["node-role.kubernetes.io/control-plane"] = ""
            taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
        now = stamp()
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"providerID": f"kind://docker/checker-e2e/{name}", "taints": taints},
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": address},
                    {"type": "Hostname", "address": name},
                ],
                "nodeInfo": {
                    "kubeletVersion": version,
                    "containerRuntimeVersion": "containerd://2.0.2",
                },
            },
        }

    def _new_pod(self, name: str, *, bound: bool) -> Obj:
        statefulset = self.api.objects[("statefulsets", MYSQL_NAMESPACE, "mysql")]
        template = copy.deepcopy(statefulset["spec"]["template"])
        ordinal = name.rsplit("-", 1)[1]
        spec = template["spec"]
        spec["hostname"], spec["subdomain"] = name, statefulset["spec"]["serviceName"]
        # DefaultTolerationSeconds admission: 300 s for not-ready and unreachable.
        spec.setdefault("tolerations", []).extend(
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            for key in ("node.kubernetes.io/not-ready", UNREACHABLE)
        )
        if bound:
            spec["nodeName"] = self.home[name]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": MYSQL_NAMESPACE,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": stamp(),
                "labels": {
                    **template["metadata"]["labels"],
                    POD_NAME_LABEL: name,
                    "apps.kubernetes.io/pod-index": ordinal,
                    "controller-revision-hash": "mysql-5d8f7c9b6d",
                },
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "StatefulSet",
                        "name": "mysql",
                        "uid": statefulset["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True" if bound else "False"}],
            },
        }

    def _running_status(self, pod: Obj, now: float, *, ready: bool) -> Obj:
        node = pod["spec"]["nodeName"]
        flag = "True" if ready else "False"
        return {
            "phase": "Running",
            "hostIP": self._node_address(node) if self.api.get("nodes", node) else "",
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": stamp(now),
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp(now)},
                {"type": "Ready", "status": flag, "lastTransitionTime": stamp(now)},
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "ready": ready,
                    "restartCount": 0,
                    "containerID": f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}",
                    "state": {"running": {"startedAt": stamp(now)}},
                }
                for c in pod["spec"]["containers"]
            ],
        }


def _condition(obj: Obj, kind: str) -> dict[str, Any]:
    """The live condition dict of `kind` (created empty if missing), for in-place updates."""
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == kind:
            found: dict[str, Any] = cond
            return found
    cond = {"type": kind, "status": "Unknown"}
    conditions.append(cond)
    return cond


def _labelled(obj: Obj, key: str, value: str) -> bool:
    return bool(obj["metadata"].get("labels", {}).get(key) == value)


def _tolerates(pod: Obj, taint: Obj) -> tuple[bool, float | None]:
    """(tolerated, for how long: None = forever) as the taint manager reads tolerations."""
    for tol in pod["spec"].get("tolerations") or []:
        key_ok = (tol.get("operator") == "Exists" and not tol.get("key")) or tol.get(
            "key"
        ) == taint["key"]
        effect_ok = not tol.get("effect") or tol.get("effect") == taint["effect"]
        if key_ok and effect_ok:
            seconds = tol.get("tolerationSeconds")
            return True, None if seconds is None else float(seconds)
    return False, None
