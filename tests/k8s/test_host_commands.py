"""The ssh and docker kubelet methods, run for real against the modelled hosts of hoststub.

`stop_kubelet`/`restore_kubelet` run their commands through the real subprocess path; `ssh`,
`sudo`, `docker`, `systemctl` and `systemd-run` are the recording programs of
tests/k8s/hoststub.py on PATH, and the node's Ready condition comes from the simulated
cluster, which follows each node's modelled kubelet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probes import kubernetes as k8s
from probes.k8s.memory import MEMORY
from probes.k8s.node import commands
from tests._wait import wait_for
from tests.k8s import hoststub
from tests.k8s.cluster import SimulatedCluster
from tests.k8s.conftest import kubeconfig, use_kubeconfig
from tests.k8s.fakeapi import FakeKubeAPI

UNITS = [f"{commands.RESTORE_UNIT}.timer", f"{commands.RESTORE_UNIT}.service"]


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SimulatedCluster]:
    """A simulated cluster whose nodes' hosts answer ssh and docker through the stubs."""
    hosts = tmp_path / "hosts"
    env = hoststub.install(tmp_path / "bin", hosts)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    api = FakeKubeAPI().start()
    cluster = SimulatedCluster(api, hosts, dict(os.environ)).build().start()
    use_kubeconfig(monkeypatch, kubeconfig(tmp_path / "kubeconfig", {"sim": api.url}, "sim"))
    monkeypatch.setenv("CHAOS_ALLOWED_NAMESPACES", "mysql,chaos")
    MEMORY.clear()
    try:
        yield cluster
    finally:
        cluster.stop()
        api.stop()
    assert not cluster.errors, cluster.errors


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "mysql_namespace": "mysql",
        "allowed_namespaces": "mysql,chaos",
        "poll_interval_seconds": 0.1,
        **extra,
    }


def _host(sim: SimulatedCluster) -> hoststub.Node:
    return hoststub.Node(sim.hosts, sim.node_of("mysql-0"))


def _internal_ip(sim: SimulatedCluster, node: str) -> str:
    addresses = json.loads((sim.hosts / "hosts.json").read_text())
    return next(ip for ip, name in addresses.items() if name == node and ip[0].isdigit())


def test_ssh_stop_runs_the_exact_commands_and_restore_disarms(sim: SimulatedCluster) -> None:
    """ssh: sudo'd clear, timer, stop on the node's InternalIP; restore disarms and starts."""
    node = sim.node_of("mysql-0")
    config = _config(ssh_user="core")
    result = k8s.stop_kubelet(pod="mysql-0", method="ssh", duration=300, configuration=config)
    assert (result["node"], result["method"], result["helper_pod"]) == (node, "ssh", "")
    host = _host(sim)
    calls = host.calls()
    script = commands.stop_script(300, ["sudo", "-n"])
    assert calls[0] == [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        f"core@{_internal_ip(sim, node)}", script,
    ]  # fmt: skip
    ran = [c for c in calls[1:] if c[0] != "sudo"]
    assert ran == [
        ["systemctl", "stop", *UNITS],
        ["systemctl", "reset-failed", *UNITS],
        commands.stop_steps(300)[0],
        ["systemctl", "stop", "kubelet"],
    ]
    assert all(c[:2] == ["sudo", "-n"] for c in calls[1:] if c[0] == "sudo")
    assert not host.kubelet_active
    assert host.units()[UNITS[0]]["state"] == "waiting"
    wait_for(lambda: k8s.wait_pod_status("mysql-0", "Unknown", timeout=0.1,
                                         configuration=config), timeout=10,
             what="mysql-0 lost with its node")  # fmt: skip

    restored = k8s.restore_kubelet(timeout=10, configuration=config)
    assert restored == {"node": node, "method": "ssh", "ready": True, "helper_pod_deleted": False}
    assert host.kubelet_active
    assert host.units() == {}, "the timer is disarmed: it will not fire later"
    assert host.calls()[-1] == ["systemctl", "start", "kubelet"]


def test_docker_stop_restores_itself_and_stops_again(sim: SimulatedCluster) -> None:
    """docker exec on the kind node: the timer restarts kubelet, and a second stop works."""
    config = _config()
    node = sim.node_of("mysql-0")
    k8s.stop_kubelet(node=node, method="docker", duration=1, configuration=config)
    host = _host(sim)
    assert host.calls()[0][:5] == ["docker", "exec", node, "sh", "-c"]
    wait_for(lambda: host.kubelet_active, timeout=10, what="kubelet restarted by the timer")
    assert k8s.wait_kubelet_restored(timeout=10, configuration=config) is True
    wait_for(lambda: host.units() == {}, timeout=10, what="the fired timer unloaded")

    MEMORY.clear()
    k8s.stop_kubelet(node=node, method="docker", duration=60, configuration=config)
    assert not host.kubelet_active
    restored = k8s.restore_kubelet(method="docker", timeout=10, configuration=config)
    assert restored["ready"] is True
    assert [state for _, state in host.kubelet_changes()] == [
        "inactive",
        "active",
        "inactive",
        "active",
    ]


def test_an_unreachable_host_fails_the_stop_with_its_message(sim: SimulatedCluster) -> None:
    """ssh that cannot reach the node fails the activity in one line; kubelet is untouched."""
    config = _config(ssh_host_template="{node}.unknown.invalid")
    with pytest.raises(Exception, match=r"cannot stop kubelet on .*exit 255: ssh: connect"):
        k8s.stop_kubelet(pod="mysql-0", method="ssh", configuration=config)
    assert _host(sim).kubelet_active
    assert MEMORY.last_stopped() is None
