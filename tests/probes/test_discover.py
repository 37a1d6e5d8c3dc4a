"""`chaos discover mysql-chaos-checker` lists the extension's probes and actions."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from chaoslib.discovery.package import get_discover_function, get_importname_from_package

import probes
from checker.lab.topology import Lab

CHAOS = Path(sys.executable).with_name("chaos")
MYSQL_PROBES = {
    "marker_write_read",
    "replication_healthy",
    "replication_lag_seconds",
    "writable_primaries",
}
LAB_PROBES = {"lab_running", "node_state", "primary_node"}
LAB_ACTIONS = {
    "double_start",
    "endpoint_loss",
    "endpoint_restore",
    "heal_all",
    "heal_node",
    "kill_node",
    "lag_replica",
    "partition_node",
    "pause_node",
    "promote",
    "resume_node",
    "semi_sync_fallback",
    "semi_sync_restore",
    "start_node",
    "unlag_replica",
}


def by_module(discovery: dict[str, Any], module: str) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in discovery["activities"] if a["mod"] == module}


def assert_lists_our_activities(discovery: dict[str, Any]) -> None:
    mysql = by_module(discovery, "probes.mysql")
    lab = by_module(discovery, "probes.lab")
    assert set(mysql) == MYSQL_PROBES
    assert {a["type"] for a in mysql.values()} == {"probe"}
    assert set(lab) == LAB_PROBES | LAB_ACTIONS
    assert {n for n, a in lab.items() if a["type"] == "probe"} == LAB_PROBES
    marker = mysql["marker_write_read"]
    assert marker["return_type"] == "boolean"
    assert marker["arguments"][0] == {"name": "timeout", "default": 10.0, "type": "number"}
    assert "reader endpoint" in marker["doc"]
    assert mysql["writable_primaries"]["return_type"] == "integer"
    assert lab["promote"]["arguments"][:2] == [
        {"name": "node", "type": "string"},
        {"name": "keep_old_primary", "default": False, "type": "boolean"},
    ]


def test_discover_function_describes_every_activity() -> None:
    """probes.discover, found the way chaoslib finds it, types each activity and argument."""
    discover = get_discover_function(probes)
    discovery = discover(discover_system=False)
    assert discovery["extension"]["name"] == "mysql-chaos-checker"
    assert discovery["system"] is None
    assert_lists_our_activities(discovery)
    json.dumps(discovery)  # what chaos writes to discovery.json


def test_chaos_discover_on_the_installed_distribution(tmp_path: Path, lab: Lab) -> None:
    """The real `chaos discover --no-install` writes discovery.json listing our activities and
    describing the running lab named by CHECKER_LAB_DIR (without any password)."""
    picked = importlib.import_module(get_importname_from_package("mysql-chaos-checker"))
    assert callable(getattr(picked, "discover", None)), (
        f"chaoslib maps the distribution to `{picked.__name__}`, which has no discover(): "
        "it must delegate to probes.discover"
    )
    env = {**os.environ, "CHECKER_LAB_DIR": str(lab.dir)}
    proc = subprocess.run(
        [str(CHAOS), "discover", "mysql-chaos-checker", "--no-install"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (tmp_path / "discovery.json").read_text()
    discovery = json.loads(text)
    assert_lists_our_activities(discovery)
    assert discovery["system"]["lab"]["primary"] == "mysql-0"
    assert lab.secret("checker").reveal() not in text
    assert lab.secret("root").reveal() not in text
