"""One redaction for everything that leaves the process: values go, the words around them stay."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
import yaml

from checker import _logging
from checker.gameday import GameDay, load_plan
from checker.lab.topology import Lab
from checker.secrets import _PATTERNS, Secret, redact
from tests.service._run import running

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "message",
    [
        "no MySQL password: set CHECKER_PASSWORD or CHECKER_PASSWORD_FILE, or pass --password-file",
        "MySQL refused user 'root': wrong user or password (using password: YES)",
        "the API token is empty or whitespace: put a random token in it",
        "secret: the word alone is not a secret; token expired; bearer of bad news",
        "see https://example.invalid/path:8080/x@y for details",
    ],
)
def test_the_checkers_own_messages_are_left_alone(message: str) -> None:
    """Messages that only talk about passwords and tokens come out unchanged."""
    assert redact(message) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect mysql://app:hunter2@db:3306/x", "connect mysql://app:***@db:3306/x"),
        ("dsn host=db password=hunter2 user=app", "dsn host=db password=*** user=app"),
        ("CHECKER_PASSWORD=hunter2 checker run", "CHECKER_PASSWORD=*** checker run"),
        ('{"user": "app", "password": "hunter2"}', '{"user": "app", "password": "***"}'),
        ("{'token': 'abc123'}", "{'token': '***'}"),
        ("Authorization: Bearer abc.DEF-123", "Authorization: Bearer ***"),
        ("CREATE USER x IDENTIFIED BY 'hunter2'", "CREATE USER x IDENTIFIED BY '***'"),
        ("?api_key=k1&x=1", "?api_key=***&x=1"),
    ],
)
def test_secret_values_are_redacted_in_place(text: str, expected: str) -> None:
    """Each secret-shaped value is replaced by *** and only the value."""
    assert redact(text) == expected


def test_registered_secret_is_redacted_anywhere() -> None:
    """A secret read by the checker is removed wherever it shows up, mid-word included."""
    Secret("Reg1stered-Pw-77")
    assert redact("x=Reg1stered-Pw-77; prefixReg1stered-Pw-77suffix") == "x=***; prefix***suffix"


ADVERSARIAL = [
    "a" * 40_000,  # a run of scheme characters with no "://"
    "a://b:" + "c" * 40_000,  # userinfo that never reaches "@"
    "://a:b" * 7_000,  # many URL starts
    "password=" * 4_500,
    "bearer " * 6_000,
    '"password": "' * 3_000,
    "identified by '" * 3_000,
]


def test_redaction_is_linear_on_adversarial_input() -> None:
    """32 KB+ inputs built to make a backtracking pattern quadratic finish quickly.

    The bound is generous (the old URL pattern took 5.6 s on 32 KB); the patterns themselves
    have no quantified group, which is what keeps a regex engine linear here.
    """
    for pattern in _PATTERNS:
        assert not re.search(r"\)[*+?{]", pattern.pattern), pattern.pattern
    for text in ADVERSARIAL:
        assert len(text) >= 32_000
        started = time.perf_counter()
        redact(text)
        assert time.perf_counter() - started < 1.0, text[:20]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The checker's logging set-up writing JSON to a buffer; the root handlers restored after."""
    root = logging.getLogger()
    before = list(root.handlers)
    stream = io.StringIO()
    _logging.configure(json=True, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = before
        _logging.configure(json=True)


def test_stdlib_loggers_are_redacted_json(json_logs: io.StringIO) -> None:
    """uvicorn, APScheduler and chaostoolkit records come out as redacted JSON lines."""
    Secret("Std-Lib-Secret-42")
    logging.getLogger("uvicorn.error").error("bind failed for %s", "Std-Lib-Secret-42")
    logging.getLogger("apscheduler.scheduler").error("job raised %r", ValueError("password=x1y2"))
    logging.getLogger("chaostoolkit").warning("calling mysql://u:pw-in-url@127.0.0.1/db")
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    by_logger = {line["logger"]: line["event"] for line in lines}
    assert by_logger["uvicorn.error"] == "bind failed for ***"
    assert "password=***" in by_logger["apscheduler.scheduler"]
    assert by_logger["chaostoolkit"] == "calling mysql://u:***@127.0.0.1/db"
    assert all(line["level"] in ("error", "warning") for line in lines)


def test_log_records_are_redacted_for_any_handler() -> None:
    """Even a handler the checker did not install (chaostoolkit's log file) gets redacted text."""
    _logging.redact_stdlib()
    Secret("Handler-Secret-93")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    logger = logging.getLogger("chaostoolkit.test-redaction")
    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.warning("token %s and %s", "Handler-Secret-93", 42)
    finally:
        logger.removeHandler(handler)
    assert seen == ["token *** and 42"]


def test_annotations_are_redacted(lab: Lab, tmp_path: Path) -> None:
    """An annotation's name and detail are stored and served with secrets removed."""
    with running(lab, tmp_path / "j.sqlite") as (service, url):
        assert url is not None
        detail = "ran with --var db=mysql://u:annot-pw-1@h/x password=annot-pw-2"
        r = requests.post(
            url + "/annotations",
            json={"name": "inject Bearer abc123def", "phase": "start", "detail": detail},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        served = requests.get(url + "/annotations", timeout=30).json()[-1]
        service.journal.flush()
        journaled = service.journal.rows("annotations")[-1]
    for row in (served, journaled, r.json()):
        assert row["name"] == "inject Bearer ***"
        assert row["detail"] == "ran with --var db=mysql://u:***@h/x password=***"


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_gameday_summary_and_webhook_are_redacted(tmp_path: Path) -> None:
    """A run that fails with a secret in its error keeps it out of summary.json and the webhook."""
    received: list[dict[str, Any]] = []
    hook = ThreadingHTTPServer(("127.0.0.1", 0), type("Hook", (_Hook,), {"received": received}))
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        yaml.safe_dump(
            {
                "checker": {"url": f"http://gd-user:gd-Secret-pw-9@127.0.0.1:{closed}"},
                "experiments": [
                    {
                        "name": "kubelet-stop",
                        "path": str(ROOT / "experiments" / "local" / "kubelet-stop.json"),
                    }
                ],
                "results": {"dir": str(tmp_path / "results")},
                "webhook": {"url": f"http://127.0.0.1:{hook.server_address[1]}/hook"},
            }
        )
    )
    plan = load_plan(plan_file)
    game = GameDay(plan)
    try:
        summary = game.run(plan.experiments[0])
    finally:
        game.close()
        hook.shutdown()
    assert summary is not None and summary["valid"] == "unknown"
    (folder,) = (tmp_path / "results").glob("*-kubelet-stop")
    written = (folder / "summary.json").read_text()
    assert "gd-Secret-pw-9" not in written and "gd-user:***@" in written
    assert len(received) == 1
    assert "gd-Secret-pw-9" not in json.dumps(received) and "gd-user:***@" in json.dumps(received)
