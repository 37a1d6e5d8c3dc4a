"""probes.checker against a real checker on a real lab: answers, refusals and its failure policy."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from checker.core.verdict import ANOMALY_TYPES
from checker.lab.topology import Lab
from probes import checker as checker_probes
from probes import lab as lab_probes
from tests._wait import wait_for
from tests.chaos.conftest import TOKEN, Checker, checker_on, closed_port
from tests.probes.conftest import restore, run_python
from tests.service._run import get


@pytest.fixture(autouse=True)
def _runner_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token in the runner's environment, as the game-day CronJob has it: probes that list
    no secret (the experiments' GET probes) still authenticate; a listed secret wins."""
    monkeypatch.setenv("CHECKER_API_TOKEN", TOKEN)


def config_for(checker: Checker, **extra: Any) -> dict[str, Any]:
    return {"checker_url": checker.url, **extra}


# -- against the running checker ------------------------------------------------------------------
def test_verdict_valid_through_the_python_provider(shared_checker: Checker) -> None:
    """Run by chaoslib with the checker secret listed, verdict_valid is True on a healthy lab."""
    result = run_python(
        "probe",
        "probes.checker",
        "verdict_valid",
        {"timeout": 5},
        config_for(shared_checker),
        {"checker": {"token": TOKEN}},
    )
    assert result is True
    assert get(shared_checker.url, "/verdict")["valid"] is True


def test_anomaly_counts_are_flat_with_zeros_and_a_total(shared_checker: Checker) -> None:
    """anomaly_counts returns every anomaly type (zeros included) and the total, all integers."""
    counts = run_python("probe", "probes.checker", "anomaly_counts", {}, config_for(shared_checker))
    assert set(counts) == {*ANOMALY_TYPES, "total"}
    assert all(type(n) is int for n in counts.values())
    assert counts["total"] == sum(n for k, n in counts.items() if k != "total") == 0


def test_wait_for_new_writes_waits_for_that_many_acknowledgements(
    shared_checker: Checker,
) -> None:
    """wait_for_new_writes returns True only after the checker really acknowledged `count` more
    writes (strings from --var accepted)."""
    before = shared_checker.service.live.counts["ok"]
    result = run_python(
        "probe",
        "probes.checker",
        "wait_for_new_writes",
        {"count": "300", "timeout": "30"},
        config_for(shared_checker),
    )
    assert result is True
    assert shared_checker.service.live.counts["ok"] >= before + 300


def test_wait_for_new_writes_is_false_when_they_do_not_come(shared_checker: Checker) -> None:
    """Asked for more writes than can come within the timeout, it answers False, not an error."""
    started = time.monotonic()
    result = checker_probes.wait_for_new_writes(
        count=50_000_000, timeout=1.0, configuration=config_for(shared_checker)
    )
    assert result is False
    assert time.monotonic() - started >= 0.9


def test_write_outcomes_during_counts_the_window(shared_checker: Checker) -> None:
    """write_outcomes_during watches for the given seconds and counts what was acknowledged."""
    result = checker_probes.write_outcomes_during(
        seconds="1", configuration=config_for(shared_checker)
    )
    assert set(result) == {"ok", "failed", "indeterminate", "seconds"}
    assert result["ok"] > 0
    assert result["failed"] == result["indeterminate"] == 0
    assert result["seconds"] >= 1.0


def test_checker_healthy_on_a_running_checker(shared_checker: Checker) -> None:
    """checker_healthy is True while the checker and its scheduler run."""
    assert checker_probes.checker_healthy(configuration=config_for(shared_checker)) is True


def test_verify_with_the_token_returns_a_flat_verdict(shared_checker: Checker) -> None:
    """verify (an action) runs a full verification through POST /verify with the bearer token."""
    done_before = shared_checker.service.last_verification
    result = run_python(
        "action",
        "probes.checker",
        "verify",
        {"timeout": 120},
        config_for(shared_checker),
        {"checker": {"token": TOKEN}},
    )
    assert result["valid"] is True
    assert result["total"] == 0
    assert set(result) == {"valid", "total", "duration", *ANOMALY_TYPES}
    assert result["duration"] > 0
    assert shared_checker.service.last_verification is not done_before


@pytest.mark.parametrize(
    ("secrets", "hint"),
    [
        ({"checker": {"token": "a-wrong-token-value-9f3"}}, "check the checker secret's token"),
        ({"token": "a-wrong-token-value-9f3"}, "check the checker secret's token"),
        (None, 'list "checker" in the provider\'s secrets'),
    ],
)
def test_a_refused_token_is_one_line_without_the_token(
    shared_checker: Checker,
    secrets: dict[str, Any] | None,
    hint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wrong or missing token fails verify with one line naming the bearer token problem and
    what to do, never the token itself."""
    monkeypatch.delenv("CHECKER_API_TOKEN")  # missing means missing everywhere
    with pytest.raises(ActivityFailed) as failed:
        checker_probes.verify(configuration=config_for(shared_checker), secrets=secrets)
    message = str(failed.value)
    assert "HTTP 401" in message
    assert "API token (Authorization: Bearer)" in message
    assert hint in message
    assert "a-wrong-token-value-9f3" not in message
    assert TOKEN not in message
    assert "\n" not in message


def test_verdict_unknown_is_not_valid(
    shared_lab: Lab, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the checker cannot vouch for the data (it cannot reach the primary) the verdict is
    unknown and verdict_valid answers False after its timeout; VALID again once it can."""
    # A checker of its own: one that has run a full verification reports that verification's
    # verdict and no longer turns unknown (see the report on checker.service.verdict).
    with checker_on(shared_lab, tmp_path) as checker:
        config = config_for(checker)
        try:
            # New connections refused, replication and open connections kept: the checker's
            # next analysis cannot read the primary, and no write goes missing meanwhile.
            lab_probes.endpoint_loss("mysql-0", configuration={"lab_dir": str(shared_lab.dir)})
            wait_for(
                lambda: get(checker.url, "/verdict")["valid"] == "unknown",
                timeout=30,
                what="an unknown verdict",
            )
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
                assert checker_probes.verdict_valid(timeout=1.0, configuration=config) is False
            assert time.monotonic() - started >= 1.0
            assert "the verdict is unknown" in caplog.text
        finally:
            restore(shared_lab)
        assert checker_probes.verdict_valid(timeout=30.0, configuration=config) is True


def test_a_wrong_path_is_not_the_checker(shared_checker: Checker) -> None:
    """A checker_url that reaches an HTTP server but not the checker's API fails the activity."""
    config = {"checker_url": shared_checker.url + "/not-the-api/"}
    with pytest.raises(ActivityFailed, match=r"has no /verdict \(HTTP 404\)"):
        checker_probes.verdict_valid(configuration=config)


# -- a checker that does not answer ---------------------------------------------------------------
def test_unreachable_checker_policy(caplog: pytest.LogCaptureFixture) -> None:
    """Nobody listening: boolean probes answer False (the reason logged); anomaly counts, write
    outcomes and verify have no honest answer and raise ActivityFailed."""
    config = {"checker_url": f"http://127.0.0.1:{closed_port()}"}
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        assert checker_probes.verdict_valid(timeout=0.5, configuration=config) is False
        assert checker_probes.checker_healthy(configuration=config) is False
        assert checker_probes.wait_for_new_writes(5, 0.5, configuration=config) is False
    assert "is unreachable (Connection refused)" in caplog.text
    for call in (
        lambda: checker_probes.anomaly_counts(configuration=config),
        lambda: checker_probes.write_outcomes_during(0, configuration=config),
        lambda: checker_probes.verify(timeout=1, configuration=config, secrets={"token": TOKEN}),
    ):
        with pytest.raises(ActivityFailed, match="is unreachable"):
            call()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (a hung checker)."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_a_hanging_checker_costs_the_request_timeout_only(silent_server: str) -> None:
    """A checker that accepts but never answers: False after checker_timeout for a boolean
    probe, ActivityFailed saying it did not answer for a count."""
    config = {"checker_url": silent_server, "checker_timeout": "0.5"}
    started = time.monotonic()
    assert checker_probes.verdict_valid(timeout=0, configuration=config) is False
    assert time.monotonic() - started < 5.0
    with pytest.raises(ActivityFailed, match=r"did not answer GET /verdict within 0.5s"):
        checker_probes.anomaly_counts(configuration=config)


@pytest.fixture
def not_a_checker() -> Iterator[str]:
    """An HTTP server on loopback that answers 200 with a page, as a wrong URL might."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_answer_that_is_not_the_checkers_fails(not_a_checker: str) -> None:
    """A 200 that is not the checker's JSON is a misconfiguration, even for a boolean probe."""
    config = {"checker_url": not_a_checker}
    for call in (
        lambda: checker_probes.verdict_valid(configuration=config),
        lambda: checker_probes.checker_healthy(configuration=config),
        lambda: checker_probes.wait_for_new_writes(configuration=config),
    ):
        with pytest.raises(ActivityFailed, match="is not the checker's"):
            call()


# -- malformed arguments and configuration --------------------------------------------------------
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"count": "abc"}, "argument count must be a whole number of writes, not 'abc'"),
        ({"count": 0}, "argument count must be a whole number of writes from 1"),
        ({"count": 2.5}, "argument count must be a whole number of writes from 1"),
        ({"count": True}, "argument count must be a whole number of writes, not bool"),
        ({"timeout": -1}, "argument timeout must be a number of seconds above 0"),
        ({"timeout": "soon"}, "argument timeout must be a number of seconds, not 'soon'"),
    ],
)
def test_malformed_arguments_fail_before_any_request(
    arguments: dict[str, Any], message: str
) -> None:
    """Arguments that make no sense fail the activity with one line, whatever the checker."""
    config = {"checker_url": f"http://127.0.0.1:{closed_port()}"}
    with pytest.raises(ActivityFailed, match=message.replace("(", r"\(")):
        checker_probes.wait_for_new_writes(**arguments, configuration=config)


@pytest.mark.parametrize(
    ("configuration", "secrets", "message"),
    [
        ({"checker_url": "ftp://127.0.0.1:1"}, None, "must be an http(s) URL"),
        ({"checker_url": "http://"}, None, "must be an http(s) URL"),
        ({"checker_url": "http://127.0.0.1:port"}, None, "is not a URL"),
        ({"checker_url": 8080}, None, "configuration checker_url must be a string"),
        ({"checker_url": "http://h:1/?a=b"}, None, "must have no query"),
        ({"checker_timeout": "soon"}, None, "configuration checker_timeout must be a number"),
        ({}, {"checker": {"token": 12345}}, "secrets checker.token must be a string"),
        ({}, {"checker": "a-token"}, "secrets checker must be a mapping"),
        ("http://x", None, "configuration must be a mapping"),
    ],
)
def test_malformed_configuration_fails_with_one_line(
    configuration: Any, secrets: Any, message: str
) -> None:
    """Bad configuration or secrets fail every activity with a line naming the key."""
    with pytest.raises(ActivityFailed) as failed:
        checker_probes.verdict_valid(configuration=configuration, secrets=secrets)
    assert message in str(failed.value)
    assert "12345" not in str(failed.value)


def test_credentials_in_the_url_are_refused_and_not_echoed() -> None:
    """A password in checker_url is refused without repeating it."""
    config = {"checker_url": "http://admin:hunter2-secret@127.0.0.1:8080"}
    with pytest.raises(ActivityFailed) as failed:
        checker_probes.checker_healthy(configuration=config)
    assert "must not carry credentials" in str(failed.value)
    assert "hunter2" not in str(failed.value)


def test_the_default_url_is_the_clusters_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without checker_url the probes go to the checker's Service in namespace mysql."""
    monkeypatch.delenv("CHECKER_API_TOKEN")
    target = checker_probes.target(None, {"checker": {"token": " t0ken-with-spaces \n"}})
    assert target.url == "http://checker.mysql.svc:8080"
    assert target.token is not None
    assert target.token.reveal() == "t0ken-with-spaces"
    assert checker_probes.target({}, {"checker": {"token": ""}}).token is None
    monkeypatch.setenv("CHECKER_API_TOKEN", "from-the-runner-env")
    from_env = checker_probes.target({}, None).token
    assert from_env is not None and from_env.reveal() == "from-the-runner-env"
