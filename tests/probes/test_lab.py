"""probes.lab: every lab fault as a Chaos Toolkit action, with its undo, on a real lab."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from checker.errors import DatabaseError
from checker.lab.topology import Lab
from probes import lab as lab_probes
from probes import mysql as mysql_probes
from tests._proc import processes_mentioning
from tests._wait import wait_for
from tests.conftest import start_lab
from tests.lab._sql import query, server_id
from tests.probes.conftest import lab_config, run_python


def faults(lab: Lab, node: str) -> list[str]:
    return list(lab.status()["nodes"][node]["faults"])


def test_endpoint_loss_and_restore_through_the_python_provider(healthy_lab: Lab) -> None:
    """endpoint_loss run by chaoslib refuses new connections to the node; restore re-admits."""
    config = lab_config(healthy_lab)
    result = run_python("action", "probes.lab", "endpoint_loss", {"node": "mysql-1"}, config)
    assert result == {"action": "endpoint-loss", "node": "mysql-1", "endpoint_lost": True}
    with pytest.raises(DatabaseError):
        query(healthy_lab, "mysql-1", "SELECT 1", timeout=1.0)
    result = run_python("action", "probes.lab", "endpoint_restore", {"node": "mysql-1"}, config)
    assert result["endpoint_lost"] is False
    assert server_id(healthy_lab, "mysql-1") == 2


def test_kill_and_start_node(healthy_lab: Lab) -> None:
    """kill_node leaves the node killed (and refuses a second kill); start_node brings it back."""
    config = lab_config(healthy_lab)
    result = lab_probes.kill_node("mysql-2", configuration=config)
    assert result["signal"] == "SIGKILL"
    assert lab_probes.node_state("mysql-2", configuration=config) == "killed"
    with pytest.raises(ActivityFailed, match="mysql-2 is not running"):
        lab_probes.kill_node("mysql-2", configuration=config)
    result = run_python("action", "probes.lab", "start_node", {"node": "mysql-2"}, config)
    assert result["role"] == "replica"
    assert lab_probes.node_state("mysql-2", configuration=config) == "running"
    assert server_id(healthy_lab, "mysql-2") == 3


def test_pause_and_resume_node(healthy_lab: Lab) -> None:
    """pause_node hangs the node's clients; resume_node makes it answer again."""
    config = lab_config(healthy_lab)
    assert lab_probes.pause_node("mysql-1", configuration=config)["signal"] == "SIGSTOP"
    assert lab_probes.node_state("mysql-1", configuration=config) == "paused"
    with pytest.raises(DatabaseError):
        query(healthy_lab, "mysql-1", "SELECT 1", timeout=1.0)
    assert lab_probes.resume_node("mysql-1", configuration=config)["signal"] == "SIGCONT"
    assert lab_probes.node_state("mysql-1", configuration=config) == "running"
    assert server_id(healthy_lab, "mysql-1") == 2


def test_partition_and_heal_node_with_a_mode_from_var(healthy_lab: Lab) -> None:
    """partition_node (mode passed as an experiment argument) cuts the node; heal_node ends it."""
    config = lab_config(healthy_lab)
    result = run_python(
        "action", "probes.lab", "partition_node", {"node": "mysql-2", "mode": "reset"}, config
    )
    assert result["partitioned"] == "reset"
    assert faults(healthy_lab, "mysql-2") == ["partitioned"]
    with pytest.raises(DatabaseError):
        query(healthy_lab, "mysql-2", "SELECT 1", timeout=1.0)
    assert lab_probes.heal_node("mysql-2", configuration=config)["partitioned"] is False
    assert faults(healthy_lab, "mysql-2") == []
    assert server_id(healthy_lab, "mysql-2") == 3


def test_lag_and_unlag_replica(healthy_lab: Lab) -> None:
    """lag_replica stops the SQL thread (only on a replica); unlag_replica restarts it."""
    config = lab_config(healthy_lab)
    assert lab_probes.lag_replica("mysql-1", configuration=config)["sql_thread"] == "stopped"
    assert healthy_lab.status()["nodes"]["mysql-1"]["replication"]["sql_running"] == "No"
    with pytest.raises(ActivityFailed, match="mysql-0 is the primary, not a replica"):
        lab_probes.lag_replica("mysql-0", configuration=config)
    assert lab_probes.unlag_replica("mysql-1", configuration=config)["sql_thread"] == "running"
    assert healthy_lab.status()["nodes"]["mysql-1"]["replication"]["sql_running"] == "Yes"


def test_double_start_is_refused(healthy_lab: Lab) -> None:
    """double_start reports the second server refused by the datadir lock, the first serving:
    the refusal is a line of the second server's own log, and that server is gone."""
    original_pid = healthy_lab.status()["nodes"]["mysql-0"]["pid"]
    arguments = {"node": "mysql-0", "wait": "10"}  # as `chaos run --var wait=10` hands it
    result = run_python("action", "probes.lab", "double_start", arguments, lab_config(healthy_lab))
    assert result["refused"] is True
    assert result["original_serving"] is True
    assert re.search(r"Unable to lock|Can't lock|error: 11", result["evidence"]), result
    assert result["evidence"] in Path(result["second_log"]).read_text(errors="replace")
    assert result["second_pid"] != original_pid
    assert not processes_mentioning(result["second_log"])  # its command line names its log
    assert healthy_lab.status()["nodes"]["mysql-0"]["pid"] == original_pid
    assert faults(healthy_lab, "mysql-0") == []


def test_heal_all_undoes_every_fault_in_force(healthy_lab: Lab) -> None:
    """heal_all resumes, starts, heals, restores and unlags, leaving no fault and no dead node."""
    config = lab_config(healthy_lab)
    lab_probes.pause_node("mysql-1", configuration=config)
    lab_probes.kill_node("mysql-2", configuration=config)
    lab_probes.endpoint_loss("mysql-0", configuration=config)
    lab_probes.partition_node("mysql-0", mode="blackhole", configuration=config)
    result = run_python("action", "probes.lab", "heal_all", {}, config)
    assert result == {
        "undone": ["resume mysql-1", "start mysql-2", "heal mysql-0", "endpoint-restore mysql-0"],
        "count": 4,
    }
    status = healthy_lab.status()
    assert status["faults"] == {}
    assert {n["state"] for n in status["nodes"].values()} == {"running"}
    assert lab_probes.heal_all(configuration=config) == {"undone": [], "count": 0}
    wait_for(
        lambda: mysql_probes.replication_healthy(configuration=config),
        timeout=30,
        what="replication healthy after heal_all",
    )


def test_heal_all_unlags_and_starts_a_killed_lagging_replica(healthy_lab: Lab) -> None:
    """A replica lagged then killed is started (which resumes it) and nothing is left lagging."""
    config = lab_config(healthy_lab)
    lab_probes.lag_replica("mysql-1", configuration=config)
    lab_probes.lag_replica("mysql-2", configuration=config)
    lab_probes.kill_node("mysql-2", configuration=config)
    result = lab_probes.heal_all(configuration=config)
    assert result["undone"] == ["start mysql-2", "unlag mysql-1"]
    assert healthy_lab.status()["faults"] == {}


def test_lab_probes(healthy_lab: Lab) -> None:
    """primary_node, node_state and lab_running describe the lab; unknown nodes are refused."""
    config = lab_config(healthy_lab)
    assert run_python("probe", "probes.lab", "primary_node", {}, config) == "mysql-0"
    assert run_python("probe", "probes.lab", "lab_running", {}, config) is True
    assert lab_probes.node_state("mysql-1", configuration=config) == "running"
    for call in (lab_probes.node_state, lab_probes.kill_node, lab_probes.promote):
        with pytest.raises(ActivityFailed) as info:
            call("mysql-9", configuration=config)
        assert str(info.value) == "unknown node 'mysql-9': this lab has mysql-0, mysql-1, mysql-2"


def test_unknown_node_through_the_python_provider(healthy_lab: Lab) -> None:
    """chaoslib reports the lab's one-line message for an unknown node, with no traceback."""
    with pytest.raises(ActivityFailed) as info:
        run_python(
            "action", "probes.lab", "kill_node", {"node": "mysql-9"}, lab_config(healthy_lab)
        )
    assert str(info.value) == (
        "chaoslib.exceptions.ActivityFailed: unknown node 'mysql-9': this lab has "
        "mysql-0, mysql-1, mysql-2"
    )


def test_a_stopped_lab(tmp_path: Path) -> None:
    """On a lab whose processes are down, actions are refused with a hint and lab_running is
    False."""
    stopped = start_lab(tmp_path / "stopped", replicas=0)
    stopped.down()
    try:
        config = lab_config(stopped)
        assert lab_probes.lab_running(configuration=config) is False
        assert lab_probes.primary_node(configuration=config) == "mysql-0"
        with pytest.raises(ActivityFailed) as info:
            lab_probes.kill_node("mysql-0", configuration=config)
        assert str(info.value) == (
            f"the lab at {stopped.dir} is not running: `checker lab up --dir {stopped.dir}`"
        )
        # Nothing is in force on a stopped lab, so the rollback has nothing to undo.
        assert lab_probes.heal_all(configuration=config) == {"undone": [], "count": 0}
    finally:
        stopped.down(purge=True)
