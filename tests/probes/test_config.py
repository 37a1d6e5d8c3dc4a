"""Malformed arguments, configuration and secrets are refused in one clear line, before any I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import _config as cfg
from probes import lab as lab_probes
from probes import mysql as mysql_probes

PASSWORD = "s3cret-Never-Shown"


def failure(call: Any, *args: Any, **kwargs: Any) -> str:
    """Call and return the ActivityFailed message, checking it is one line without a password."""
    with pytest.raises(ActivityFailed) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert PASSWORD not in message
    return message


@pytest.mark.parametrize("bad", ["abc", "", "0", "-1", "nan", "inf", True, None, [1]])
def test_timeout_must_be_a_positive_number(bad: Any) -> None:
    """A timeout that is not a positive finite number is refused, naming the argument."""
    message = failure(mysql_probes.marker_write_read, timeout=bad)
    assert message.startswith("argument timeout must be a number of seconds")


def test_numbers_from_chaos_run_var_are_parsed() -> None:
    """`--var` hands strings: numeric ones are durations, and max_lag_seconds may be 0."""
    assert cfg.seconds(" 2.5 ", "argument timeout") == 2.5
    assert cfg.seconds(3, "argument timeout") == 3.0
    assert cfg.seconds("0", "argument max_lag_seconds", allow_zero=True) == 0.0
    message = failure(cfg.seconds, "1e9", "argument wait", maximum=120)
    assert "at most 120" in message


def test_flags_accept_true_and_false_only() -> None:
    """Booleans accept JSON booleans and the strings true/false; anything looser is refused."""
    assert cfg.flag("TRUE", "argument keep_old_primary") is True
    assert cfg.flag(False, "argument keep_old_primary") is False
    message = failure(cfg.flag, "maybe", "argument keep_old_primary")
    assert message == "argument keep_old_primary must be true or false, not 'maybe'"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"mysql-0": "h0:3306", "mysql-1": "h1"}, {"mysql-0": "h0:3306", "mysql-1": "h1"}),
        ('["h0:3306", "h1:3307"]', {"h0:3306": "h0:3306", "h1:3307": "h1:3307"}),
        ('{"a": "h0:1"}', {"a": "h0:1"}),
        ("mysql-0=h0:3306, mysql-1 = h1:3306", {"mysql-0": "h0:3306", "mysql-1": "h1:3306"}),
        (["mysql-0=h0:3306", "h1:3306"], {"mysql-0": "h0:3306", "h1:3306": "h1:3306"}),
        (
            "n=mysql://checker@h:1/integrity?unix_socket=/s",
            {"n": "mysql://checker@h:1/integrity?unix_socket=/s"},
        ),
    ],
)
def test_mysql_nodes_forms(value: Any, expected: dict[str, str]) -> None:
    """mysql_nodes may be a mapping, a JSON list or object, or comma-separated name=address."""
    assert cfg.node_addresses(value) == expected


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("[not json", "is not valid JSON"),
        ("mysql-0=h0:1,,mysql-1=h1:1", "has an empty entry"),
        ("a=h0:1,a=h1:1", "names 'a' twice"),
        (42, "must be a mapping"),
        ([], "is empty"),
        ({"mysql-0": 3306}, "address of 'mysql-0' must be a string"),
        ("bad name=h:1", "is not a node name"),
    ],
)
def test_malformed_mysql_nodes_are_refused(value: Any, needle: str) -> None:
    """Each malformed mysql_nodes names the key, the problem, and the expected forms."""
    message = failure(
        mysql_probes.writable_primaries, configuration={"mysql_nodes": value}, secrets=None
    )
    assert message.startswith("configuration mysql_nodes")
    assert needle in message


def test_addresses_are_checked_and_passwords_in_urls_never_shown() -> None:
    """A bad port or a password inside a URL is refused without echoing the password."""
    message = failure(
        mysql_probes.writable_primaries,
        configuration={"mysql_nodes": f"mysql-0=mysql://checker:{PASSWORD}@h:3306"},
    )
    assert message.startswith("configuration mysql_nodes: password in the MySQL URL")
    message = failure(mysql_probes.marker_write_read, configuration={"mysql_writer": "h:99999"})
    assert message.startswith("configuration mysql_writer: malformed MySQL address")


def _addresses(configuration: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    target = cfg.mysql_target(configuration, None)
    where = lambda e: f"{e.host}:{e.port}"  # noqa: E731
    nodes = {n.name: where(n.endpoint) for n in target.nodes}
    return where(target.writer), where(target.reader), nodes


def test_cluster_addresses_resolve_from_any_namespace() -> None:
    """Without lab_dir, every address is derived from mysql_namespace as a .svc name."""
    writer, reader, nodes = _addresses({})
    assert writer == "mysql-0.mysql.mysql.svc:3306"
    assert reader == "mysql-read.mysql.svc:3306"
    assert nodes == {f"mysql-{i}": f"mysql-{i}.mysql.mysql.svc:3306" for i in range(3)}
    writer, reader, nodes = _addresses(
        {"mysql_namespace": "db", "mysql_replicas": "2", "mysql_port": "3307"}
    )
    assert (writer, reader) == ("mysql-0.mysql.db.svc:3307", "mysql-read.db.svc:3307")
    assert nodes == {"mysql-0": "mysql-0.mysql.db.svc:3307", "mysql-1": "mysql-1.mysql.db.svc:3307"}
    assert [n.replica for n in cfg.mysql_target({"mysql_namespace": "db"}, None).nodes] == [
        False,
        True,
        True,
    ]


def test_each_address_stays_overridable() -> None:
    """mysql_writer, mysql_reader and mysql_nodes override the derived names one by one."""
    writer, reader, nodes = _addresses({"mysql_writer": "127.0.0.1:4000", "mysql_reader": ""})
    assert (writer, reader) == ("127.0.0.1:4000", "mysql-read.mysql.svc:3306")
    assert nodes["mysql-0"] == "mysql-0.mysql.mysql.svc:3306"
    assert _addresses({"mysql_nodes": "a=127.0.0.1:1"})[2] == {"a": "127.0.0.1:1"}


@pytest.mark.parametrize(
    ("configuration", "needle"),
    [
        ({"mysql_namespace": "My_NS"}, "configuration mysql_namespace 'My_NS' is not a DNS label"),
        ({"mysql_replicas": 0}, "configuration mysql_replicas must be between 1 and 100"),
        ({"mysql_port": "http"}, "configuration mysql_port"),
    ],
)
def test_malformed_cluster_names_are_refused(configuration: dict[str, Any], needle: str) -> None:
    """A namespace, count or port that cannot make an address is refused in one line."""
    assert needle in failure(cfg.mysql_target, configuration, None)


def test_a_cluster_of_only_the_writer_has_no_replica_to_check() -> None:
    """replication_healthy refuses when mysql_nodes holds nothing but the writer's address."""
    config = {"mysql_writer": "db:3306", "mysql_nodes": "mysql-0=db:3306"}
    assert "no replica to check" in failure(mysql_probes.replication_healthy, configuration=config)


@pytest.mark.parametrize(
    ("configuration", "needle"),
    [
        ("lab_dir=x", "configuration must be a mapping"),
        ({"mysql_user": ""}, "configuration mysql_user must not be empty"),
        ({"mysql_database": "in-tegrity"}, "configuration mysql_database: invalid SQL identifier"),
        ({"lab_dir": 7}, "configuration lab_dir must be a string, not int"),
    ],
)
def test_malformed_configuration(configuration: Any, needle: str) -> None:
    """Configuration of the wrong shape is refused, naming the key."""
    assert needle in failure(mysql_probes.marker_write_read, configuration=configuration)


@pytest.mark.parametrize(
    ("secrets", "needle"),
    [
        ("password", "secrets must be a mapping"),
        ({"mysql": PASSWORD}, "secrets mysql must be a mapping"),
        ({"mysql": {"password": 12345678}}, "secrets mysql.password must be a string"),
    ],
)
def test_malformed_secrets_are_refused_without_their_value(secrets: Any, needle: str) -> None:
    """A secret of the wrong shape is refused; the message never repeats what it held."""
    message = failure(mysql_probes.marker_write_read, configuration={}, secrets=secrets)
    assert needle in message
    assert "12345678" not in message


def test_password_from_flattened_or_scoped_secrets() -> None:
    """chaoslib passes the provider's scopes flattened; called directly, the scope is accepted."""
    flat = cfg.password({"password": PASSWORD})
    scoped = cfg.password({"mysql": {"password": PASSWORD}})
    assert flat is not None and scoped is not None
    assert flat.reveal() == scoped.reveal() == PASSWORD
    assert cfg.password(None) is None
    assert cfg.password({"kubernetes": {"token": "x"}}) is None


def test_a_directory_without_a_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lab_dir (or the default .lab) without a lab says how to start one."""
    missing = tmp_path / "none"
    message = failure(mysql_probes.marker_write_read, configuration={"lab_dir": str(missing)})
    assert message == (
        f"configuration lab_dir: no lab at {missing}: start one with "
        f"`checker lab up --dir {missing}` (set it with: chaos run --var lab_dir=...)"
    )
    monkeypatch.chdir(tmp_path)
    message = failure(lab_probes.kill_node, "mysql-0")
    assert f"no lab at {tmp_path / '.lab'}" in message
    assert lab_probes.lab_running() is False


@pytest.mark.parametrize(
    ("call", "kwargs", "needle"),
    [
        (lab_probes.kill_node, {"node": 5}, "argument node must be a string, not int"),
        (lab_probes.kill_node, {"node": "  "}, "argument node must not be empty"),
        (lab_probes.kill_node, {"node": "a;b"}, "argument node 'a;b' is not a node name"),
        (
            lab_probes.partition_node,
            {"node": "mysql-1", "mode": "sideways"},
            "argument mode must be one of reset, blackhole, not 'sideways'",
        ),
        (
            lab_probes.promote,
            {"node": "mysql-1", "keep_old_primary": "maybe"},
            "argument keep_old_primary must be true or false",
        ),
        (lab_probes.double_start, {"node": "mysql-0", "wait": "soon"}, "argument wait must be"),
    ],
)
def test_malformed_lab_arguments(
    tmp_path: Path, call: Any, kwargs: dict[str, Any], needle: str
) -> None:
    """Lab actions check their arguments before looking for the lab."""
    config = {"lab_dir": str(tmp_path / "none")}
    assert needle in failure(call, configuration=config, **kwargs)


@pytest.mark.parametrize(
    ("configuration", "key"),
    [
        ({"mysql_user": ""}, "mysql_user"),
        ({"mysql_writer": "   "}, None),  # blank means "derive it": no error
        ({"checker_url": 8080}, "checker_url"),
    ],
)
def test_a_bad_key_names_the_var_that_sets_it(
    configuration: dict[str, Any], key: str | None
) -> None:
    """A missing or malformed key fails in one line naming the key and the --var that sets it."""
    from probes import checker as checker_probes

    if key is None:
        cfg.mysql_target(configuration, None)
        return
    call = checker_probes.target if key.startswith("checker") else cfg.mysql_target
    message = failure(call, configuration, None)
    assert message.startswith(f"configuration {key}")
    assert message.endswith(f"(set it with: chaos run --var {key}=...)")
