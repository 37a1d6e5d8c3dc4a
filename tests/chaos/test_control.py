"""probes.control marks a run on the checker's timeline, and never breaks a run doing so."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from chaoslib.experiment import run_experiment

from checker.lab.topology import Lab
from probes import checker as checker_probes
from probes import control, discover
from tests.chaos.conftest import TOKEN, Checker, closed_port
from tests.service._run import get

ACTION = {
    "type": "action",
    "name": "take-the-primary-out-of-its-endpoints",
    "provider": {
        "type": "python",
        "module": "probes.lab",
        "func": "endpoint_loss",
        "arguments": {"node": "mysql-0"},
    },
}
SECRETS = {"checker": {"token": TOKEN}, "mysql": {"password": "not-used-here"}}


@pytest.fixture(autouse=True)
def fresh_control() -> Iterator[None]:
    """Each test starts as a new run does (chaoslib calls configure_control first)."""
    control.configure_control(configuration={}, secrets={})
    yield
    control.cleanup_control()


def timeline_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("checker-timeline")
    ]


def test_hooks_post_the_activity_start_and_end(shared_checker: Checker) -> None:
    """Before and after an activity the control posts start and end, named after the activity,
    with its type and provider, and its status (and a failure's reason) at the end."""
    config = {"checker_url": shared_checker.url}
    seen = len(get(shared_checker.url, "/annotations"))
    control.before_activity_control(context=ACTION, configuration=config, secrets=SECRETS)
    control.after_activity_control(
        context=ACTION,
        state={"status": "failed", "exception": ["Traceback ...", "ActivityFailed: lab gone\n"]},
        configuration=config,
        secrets=SECRETS,
    )
    posted = get(shared_checker.url, "/annotations")[seen:]
    assert [(a["name"], a["phase"]) for a in posted] == [
        ("take-the-primary-out-of-its-endpoints", "start"),
        ("take-the-primary-out-of-its-endpoints", "end"),
    ]
    assert posted[0]["detail"] == "action probes.lab.endpoint_loss"
    failed = "action probes.lab.endpoint_loss: failed (ActivityFailed: lab gone)"
    assert posted[1]["detail"] == failed
    assert posted[0]["time"] <= posted[1]["time"]


def test_experiment_method_and_rollbacks_are_marked(shared_checker: Checker) -> None:
    """The experiment (by title, with its final status), its method and its rollbacks each get
    a start and an end."""
    config = {"checker_url": shared_checker.url}
    experiment = {"title": "Lab: a test experiment"}
    seen = len(get(shared_checker.url, "/annotations"))
    control.before_experiment_control(context=experiment, configuration=config, secrets=SECRETS)
    control.before_method_control(context=experiment, configuration=config, secrets=SECRETS)
    control.after_method_control(context=experiment, configuration=config, secrets=SECRETS)
    control.before_rollback_control(context=experiment, configuration=config, secrets=SECRETS)
    control.after_rollback_control(context=experiment, configuration=config, secrets=SECRETS)
    control.after_experiment_control(
        context=experiment,
        state={"status": "completed", "deviated": False},
        configuration=config,
        secrets=SECRETS,
    )
    posted = get(shared_checker.url, "/annotations")[seen:]
    assert [(a["name"], a["phase"]) for a in posted] == [
        ("experiment: Lab: a test experiment", "start"),
        ("method", "start"),
        ("method", "end"),
        ("rollbacks", "start"),
        ("rollbacks", "end"),
        ("experiment: Lab: a test experiment", "end"),
    ]
    assert posted[-1]["detail"] == "chaostoolkit experiment: status completed, deviated False"


def test_an_unreachable_checker_is_one_warning_and_no_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With nobody listening every hook returns normally and the problem is logged once."""
    config = {"checker_url": f"http://127.0.0.1:{closed_port()}"}
    with caplog.at_level(logging.DEBUG, logger="chaostoolkit"):
        for _ in range(5):
            control.before_activity_control(context=ACTION, configuration=config, secrets=SECRETS)
            control.after_activity_control(
                context=ACTION, state={"status": "succeeded"}, configuration=config, secrets=SECRETS
            )
    (warning,) = timeline_warnings(caplog)
    assert "is unreachable (Connection refused)" in warning
    assert "the run goes on" in warning


@pytest.mark.parametrize(
    ("configuration", "secrets", "expected"),
    [
        ({"checker_url": "not a url"}, SECRETS, "configuration checker_url must be an http(s) URL"),
        ({"checker_timeout": "never"}, SECRETS, "configuration checker_timeout must be a number"),
        (None, {"checker": {"token": 42}}, "secrets checker.token must be a string"),
    ],
)
def test_malformed_configuration_is_one_warning_and_no_exception(
    caplog: pytest.LogCaptureFixture, configuration: Any, secrets: Any, expected: str
) -> None:
    """Configuration the control cannot use is reported once and the hooks carry on."""
    with caplog.at_level(logging.DEBUG, logger="chaostoolkit"):
        control.configure_control(configuration=configuration, secrets=secrets)
        for _ in range(3):
            control.before_activity_control(
                context=ACTION, configuration=configuration, secrets=secrets
            )
    (warning,) = timeline_warnings(caplog)
    assert expected in warning


def test_a_refused_token_is_one_warning_without_the_token(
    shared_checker: Checker, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong token: one warning naming HTTP 401, never the token, and no annotation stored."""
    config = {"checker_url": shared_checker.url}
    wrong = {"checker": {"token": "wrong-token-for-the-control-1c9"}}
    seen = len(get(shared_checker.url, "/annotations"))
    with caplog.at_level(logging.DEBUG, logger="chaostoolkit"):
        for _ in range(3):
            control.before_activity_control(context=ACTION, configuration=config, secrets=wrong)
    (warning,) = timeline_warnings(caplog)
    assert "HTTP 401" in warning
    assert "wrong-token-for-the-control-1c9" not in caplog.text
    assert len(get(shared_checker.url, "/annotations")) == seen


@pytest.fixture
def hanging_checker() -> Iterator[socket.socket]:
    """A listening socket that nobody accepts on: the kernel completes each TCP handshake and
    queues the connection, so a client connects, sends its request and never gets an answer."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield server
    finally:
        server.close()


def connections_made(server: socket.socket) -> int:
    """How many connections the clients made: drain the accept queue without waiting.

    A client's connect() returns only once the handshake is done, and the control waited its
    whole timeout after that, so every connection it made is in the queue by now: counting
    them needs no accept thread racing the client's timeout."""
    server.setblocking(False)
    made = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return made
        conn.close()
        made += 1


def test_a_hanging_checker_is_asked_once_per_backoff(hanging_checker: socket.socket) -> None:
    """After one annotation timed out the control skips the next ones for its backoff, so a hung
    checker costs the run one timeout, not one per activity."""
    url = f"http://127.0.0.1:{hanging_checker.getsockname()[1]}"
    config = {"checker_url": url, "checker_timeout": 0.3}
    for _ in range(10):
        control.before_activity_control(context=ACTION, configuration=config, secrets=SECRETS)
    assert connections_made(hanging_checker) == 1


def test_a_run_completes_with_the_checker_unreachable(
    shared_lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    """A whole chaoslib run with the control declared and no checker listening completes, its
    steady state met, with one warning about the timeline."""
    experiment = {
        "version": "1.0.0",
        "title": "the lab is up whatever happens to the timeline",
        "description": "A run whose control cannot reach the checker.",
        "configuration": {
            "lab_dir": str(shared_lab.dir),
            "checker_url": f"http://127.0.0.1:{closed_port()}",
        },
        "secrets": {"checker": {"token": TOKEN}},
        "controls": [
            {"name": "checker-timeline", "provider": {"type": "python", "module": "probes.control"}}
        ],
        "steady-state-hypothesis": {
            "title": "the lab runs",
            "probes": [
                {
                    "type": "probe",
                    "name": "lab-is-running",
                    "tolerance": True,
                    "provider": {"type": "python", "module": "probes.lab", "func": "lab_running"},
                }
            ],
        },
        "method": [
            {
                "type": "probe",
                "name": "primary-is-mysql-0",
                "provider": {"type": "python", "module": "probes.lab", "func": "primary_node"},
            }
        ],
        "rollbacks": [],
    }
    with caplog.at_level(logging.DEBUG, logger="chaostoolkit"):
        journal = run_experiment(experiment)
    assert journal["status"] == "completed"
    assert journal["deviated"] is False
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    assert journal["run"][0]["output"] == "mysql-0"
    (warning,) = timeline_warnings(caplog)
    assert "is unreachable" in warning


def test_discovery_lists_the_checker_probes_and_no_control_hook() -> None:
    """`chaos discover` describes probes.checker's activities, typed by PROBES, and lists none of
    the control's hooks as actions."""
    activities = discover(discover_system=False)["activities"]
    assert [a for a in activities if a["mod"] == "probes.control"] == []
    found = {a["name"]: a for a in activities if a["mod"] == "probes.checker"}
    assert set(found) == set(checker_probes.__all__)
    assert {n for n, a in found.items() if a["type"] == "probe"} == set(checker_probes.PROBES)
    assert found["verify"]["type"] == "action"
    assert found["verdict_valid"]["return_type"] == "boolean"
    assert found["wait_for_new_writes"]["arguments"][:2] == [
        {"name": "count", "default": 50, "type": "integer"},
        {"name": "timeout", "default": 60.0, "type": "number"},
    ]
