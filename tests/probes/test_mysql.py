"""probes.mysql against a real lab: the steady-state probes hold when healthy and fail when not."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from checker.lab.topology import Lab
from probes import lab as lab_probes
from probes import mysql as mysql_probes
from tests._flavor import replica_sql, server_flavor
from tests._wait import wait_for
from tests.conftest import start_lab
from tests.lab._sql import query
from tests.probes.conftest import lab_config, restore, run_python

WRONG_PASSWORD = "Wrong-Pa55word-for-test"


def cluster_config(lab: Lab) -> dict[str, Any]:
    """The lab's addresses given as a real cluster's would be (no lab_dir)."""
    info = lab.info()
    nodes = ",".join(f"{name}={node['endpoint']}" for name, node in info["nodes"].items())
    return {
        "mysql_writer": info["nodes"]["mysql-0"]["endpoint"],
        "mysql_reader": info["reader"],
        "mysql_nodes": nodes,
    }


def app_secrets(lab: Lab) -> dict[str, Any]:
    return {"mysql": {"password": lab.secret("checker").reveal()}}


def test_marker_is_written_and_read_back_on_a_healthy_lab(healthy_lab: Lab) -> None:
    """On a healthy lab the marker written through the writer is read back through mysql-read."""
    config = lab_config(healthy_lab)
    assert mysql_probes.marker_write_read(timeout=10, configuration=config) is True
    rows = query(healthy_lab, "writer", "SELECT COUNT(*) FROM chaos_marker")
    assert rows[0][0] >= 1


@pytest.mark.parametrize("fault", ["partition", "lag"])
def test_marker_is_not_read_back_while_every_replica_is_cut_off(
    healthy_lab: Lab, fault: str
) -> None:
    """With every replica partitioned or lagged the probe returns False, and True once healed."""
    config = lab_config(healthy_lab)
    actions: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "partition": (lab_probes.partition_node, lab_probes.heal_node),
        "lag": (lab_probes.lag_replica, lab_probes.unlag_replica),
    }
    apply, undo = actions[fault]
    for node in ("mysql-1", "mysql-2"):
        apply(node, configuration=config)
    started = time.monotonic()
    assert mysql_probes.marker_write_read(timeout=1.0, configuration=config) is False
    assert time.monotonic() - started < 5.0  # bounded by the timeout, not a connect hang
    for node in ("mysql-1", "mysql-2"):
        undo(node, configuration=config)
    wait_for(
        lambda: mysql_probes.marker_write_read(timeout=2.0, configuration=config),
        timeout=30,
        what="the marker to be readable again",
    )


def test_marker_is_false_when_the_writer_is_gone(healthy_lab: Lab) -> None:
    """A primary that refuses new connections makes the probe return False, not raise."""
    config = lab_config(healthy_lab)
    lab_probes.endpoint_loss("mysql-0", configuration=config)
    assert mysql_probes.marker_write_read(timeout=1.0, configuration=config) is False


def test_marker_table_is_created_in_the_lab_but_required_on_a_cluster(healthy_lab: Lab) -> None:
    """Without chaos_marker a cluster is refused with a hint; in lab mode the probe creates it."""
    query(healthy_lab, "writer", "DROP TABLE IF EXISTS integrity.chaos_marker", user="root")
    with pytest.raises(ActivityFailed, match=r"chaos_marker.*run `checker setup` first"):
        mysql_probes.marker_write_read(
            timeout=5, configuration=cluster_config(healthy_lab), secrets=app_secrets(healthy_lab)
        )
    assert mysql_probes.marker_write_read(configuration=lab_config(healthy_lab)) is True
    assert mysql_probes.marker_write_read(
        configuration=cluster_config(healthy_lab), secrets=app_secrets(healthy_lab)
    )


def test_replication_healthy_and_lag(healthy_lab: Lab) -> None:
    """A lagged replica (SQL thread stopped) makes replication unhealthy and its lag unknown."""
    config = lab_config(healthy_lab)
    assert mysql_probes.replication_healthy(configuration=config) is True
    assert 0.0 <= mysql_probes.replication_lag_seconds(configuration=config) <= 10.0
    lab_probes.lag_replica("mysql-2", configuration=config)
    assert mysql_probes.replication_healthy(configuration=config) is False
    assert mysql_probes.replication_lag_seconds(configuration=config) == -1.0
    lab_probes.unlag_replica("mysql-2", configuration=config)
    wait_for(
        lambda: mysql_probes.replication_healthy(configuration=config),
        timeout=30,
        what="replication healthy after unlag",
    )


def test_replication_unhealthy_when_a_replica_is_cut_off_or_hung(healthy_lab: Lab) -> None:
    """A partitioned replica (unreachable, its replication cut) is unhealthy, and so is a hung
    one, within the timeout (a reachable replica whose IO thread stopped: the test above)."""
    config = lab_config(healthy_lab)
    lab_probes.partition_node("mysql-1", configuration=config)
    assert mysql_probes.replication_healthy(timeout=1.0, configuration=config) is False
    lab_probes.heal_node("mysql-1", configuration=config)
    wait_for(
        lambda: mysql_probes.replication_healthy(configuration=config),
        timeout=30,
        what="replication healthy after heal",
    )
    lab_probes.pause_node("mysql-2", configuration=config)
    started = time.monotonic()
    assert mysql_probes.replication_healthy(timeout=1.0, configuration=config) is False
    assert time.monotonic() - started < 5.0


def test_replication_unhealthy_when_a_reachable_replicas_io_thread_stops(
    healthy_lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica that still answers but whose IO thread is stopped (it receives nothing from
    the primary) is unhealthy, its lag unknown, and the probe names the stopped IO thread."""
    config = lab_config(healthy_lab)
    flavor = server_flavor(healthy_lab)
    query(healthy_lab, "direct:mysql-1", replica_sql(flavor, "STOP", "IO_THREAD"), user="root")
    try:
        with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
            assert mysql_probes.replication_healthy(timeout=5.0, configuration=config) is False
        (warning,) = [
            r.getMessage()
            for r in caplog.records
            if r.name == "chaostoolkit" and r.levelno == logging.WARNING
        ]
        # Reached and read (not "unreachable"): the IO thread is the problem, the SQL one runs.
        assert warning.startswith("replication_healthy: mysql-1 threads not running: io=No sql=Yes")
        assert mysql_probes.replication_lag_seconds(configuration=config) == -1.0
    finally:
        query(healthy_lab, "direct:mysql-1", replica_sql(flavor, "START", "IO_THREAD"), user="root")
    wait_for(
        lambda: mysql_probes.replication_healthy(configuration=config),
        timeout=30,
        what="replication healthy once the IO thread runs again",
    )


def test_writable_primaries_counts_reachable_writable_servers(healthy_lab: Lab) -> None:
    """Exactly one writable server on a healthy lab; an unreachable primary is not counted."""
    config = lab_config(healthy_lab)
    assert mysql_probes.writable_primaries(configuration=config) == 1
    lab_probes.endpoint_loss("mysql-0", configuration=config)
    assert mysql_probes.writable_primaries(timeout=1.0, configuration=config) == 0


def test_cluster_configuration_against_real_addresses(healthy_lab: Lab) -> None:
    """Without lab_dir, the probes use mysql_writer/reader/nodes and the mysql secret."""
    config = cluster_config(healthy_lab)
    secrets = app_secrets(healthy_lab)
    assert mysql_probes.marker_write_read(configuration=config, secrets=secrets) is True
    assert mysql_probes.replication_healthy(configuration=config, secrets=secrets) is True
    assert mysql_probes.writable_primaries(configuration=config, secrets=secrets) == 1
    as_json = {**config, "mysql_nodes": list(config["mysql_nodes"].split(","))}
    assert mysql_probes.writable_primaries(configuration=as_json, secrets=secrets) == 1


def test_wrong_password_is_a_failure_that_never_shows_it(healthy_lab: Lab) -> None:
    """A refused password raises one line naming the user and endpoint, never the password."""
    real = healthy_lab.secret("checker").reveal()
    bad = {"mysql": {"password": WRONG_PASSWORD}}
    for config in (lab_config(healthy_lab), cluster_config(healthy_lab)):
        for probe in (mysql_probes.marker_write_read, mysql_probes.writable_primaries):
            with pytest.raises(ActivityFailed) as info:
                probe(configuration=config, secrets=bad)
            message = str(info.value)
            assert "refused user 'checker': wrong user or password" in message
            assert "\n" not in message
            assert WRONG_PASSWORD not in message and real not in message


def test_no_password_outside_the_lab_says_how_to_give_one(healthy_lab: Lab) -> None:
    """A cluster probe run without secrets explains that the mysql secret must be listed."""
    with pytest.raises(ActivityFailed, match=r"no password was given: list \"mysql\""):
        mysql_probes.writable_primaries(configuration=cluster_config(healthy_lab))


def test_probes_through_the_chaostoolkit_python_provider(healthy_lab: Lab) -> None:
    """chaoslib injects configuration and the mysql secret scope; --var strings are parsed."""
    config = cluster_config(healthy_lab)
    secrets = app_secrets(healthy_lab)
    assert run_python(
        "probe", "probes.mysql", "marker_write_read", {"timeout": "5"}, config, secrets
    )
    count = run_python("probe", "probes.mysql", "writable_primaries", {}, config, secrets)
    assert count == 1
    with pytest.raises(ActivityFailed) as info:
        run_python(
            "probe",
            "probes.mysql",
            "replication_healthy",
            {"max_lag_seconds": "abc"},
            lab_config(healthy_lab),
        )
    assert "argument max_lag_seconds must be a number of seconds, not 'abc'" in str(info.value)
    wrong = {"mysql": {"password": WRONG_PASSWORD}}
    with pytest.raises(ActivityFailed) as info:
        run_python("probe", "probes.mysql", "writable_primaries", {}, config, wrong)
    message = str(info.value)
    assert "wrong user or password" in message and WRONG_PASSWORD not in message


@pytest.fixture
def promotable_lab(tmp_path: Path) -> Iterator[Lab]:
    """A lab of its own: a promotion changes the topology for good."""
    lab = start_lab(tmp_path / "lab", replicas=2)
    try:
        yield lab
    finally:
        lab.down(purge=True)


def test_promote_keeping_the_old_primary_makes_two_writable(promotable_lab: Lab) -> None:
    """After promote with keep_old_primary there are two writable primaries; without, one."""
    config = lab_config(promotable_lab)
    assert mysql_probes.writable_primaries(configuration=config) == 1
    result = run_python(
        "action",
        "probes.lab",
        "promote",
        {"node": "mysql-1", "keep_old_primary": "true"},
        config,
    )
    assert result["new_primary"] == "mysql-1"
    assert result["old_primary_state"] == "zombie"
    assert lab_probes.primary_node(configuration=config) == "mysql-1"
    assert mysql_probes.writable_primaries(configuration=config) == 2
    # The zombie is not a replica, and mysql-2 follows the new primary.
    wait_for(
        lambda: mysql_probes.replication_healthy(configuration=config),
        timeout=30,
        what="mysql-2 to follow mysql-1",
    )
    assert mysql_probes.marker_write_read(configuration=config) is True
    restore(promotable_lab)  # heal_all leaves a promotion alone: still two writable
    assert mysql_probes.writable_primaries(configuration=config) == 2
