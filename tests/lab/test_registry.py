"""The lab's state file and fault registry, checked without a server."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from checker.cli.lab import fault as fault_command
from checker.errors import LabError
from checker.lab import state as lab_state
from checker.lab.faults import FAULTS, REGISTRY
from checker.lab.state import LabState, load, save

# A state file as `checker lab up` writes it, after a few faults.
_STATE = {
    "version_format": 1,
    "flavor": "mariadb",
    "server": "/usr/sbin/mariadbd",
    "version": "10.11.6",
    "semi_sync": True,
    "buffer_pool_mb": 128,
    "writer_port": 20000,
    "reader_port": 20001,
    "primary": "mysql-0",
    "faults": {
        "mysql-0": {"semi_sync_fallback": ["mysql-1"]},
        "mysql-1": {"partitioned": "blackhole", "lagging": True},
    },
    "nodes": {
        f"mysql-{i}": {
            "index": i,
            "server_id": i + 1,
            "port": 20002 + 3 * i,
            "endpoint_port": 20003 + 3 * i,
            "repl_port": 20004 + 3 * i,
            "datadir": f"/labs/a/data/mysql-{i}",
            "socket": f"/labs/a/run/mysql-{i}.sock",
            "role": "primary" if i == 0 else "replica",
            "state": "running",
            "pid": 100 + i,
            "double_pid": None,
        }
        for i in range(2)
    },
    "proxy_pid": 99,
}


def test_state_file_round_trips_unchanged(tmp_path: Path) -> None:
    """A state file read as a LabState and saved again holds the same JSON."""
    (tmp_path / lab_state.STATE_FILE).write_text(json.dumps(_STATE))
    state = load(tmp_path)
    assert state.nodes["mysql-1"].socket == Path("/labs/a/run/mysql-1.sock")
    assert state.fault("mysql-0", "semi_sync_fallback") == ("mysql-1",)
    save(state)
    assert json.loads((tmp_path / lab_state.STATE_FILE).read_text()) == _STATE


def test_changes_make_a_new_state_and_clear_empty_faults(tmp_path: Path) -> None:
    """with_node/with_fault return a new state; a node's last cleared fault removes its entry."""
    state = LabState.from_json(tmp_path, _STATE)
    healed = state.with_fault("mysql-1", "partitioned", False).with_fault("mysql-1", "lagging", 0)
    assert "mysql-1" not in healed.faults
    assert state.fault("mysql-1", "partitioned") == "blackhole"  # the old state is untouched
    killed = state.with_node("mysql-1", state="killed", pid=None)
    assert (killed.nodes["mysql-1"].state, state.nodes["mysql-1"].state) == ("killed", "running")


def test_missing_and_unknown_are_one_line_lab_errors(tmp_path: Path) -> None:
    """No state file and an unknown node name are LabErrors saying what to do or what exists."""
    with pytest.raises(LabError, match=r"no lab at .*checker lab up"):
        load(tmp_path / "nowhere")
    with pytest.raises(LabError, match="unknown node 'mysql-9': this lab has mysql-0, mysql-1"):
        LabState.from_json(tmp_path, _STATE).endpoint("mysql-9", password=None)


def test_registry_declares_each_fault_once_with_its_real_options() -> None:
    """FAULTS and the CLI choices come from the registry; declared options are the function's."""
    assert tuple(REGISTRY) == FAULTS
    action = next(p for p in fault_command.params if p.name == "action")
    assert tuple(action.type.choices) == FAULTS
    for name, fault in REGISTRY.items():
        assert fault.name == name
        assert fault.undo is None or fault.undo in REGISTRY, name
        params = list(inspect.signature(fault.apply).parameters)
        assert params[:2] == ["state", "name"], name
        assert tuple(params[2:]) == fault.options, name
