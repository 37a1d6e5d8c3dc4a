"""The HTTP API: every endpoint answers, bad input gets a clear 4xx, POST routes need the token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from checker.core.verdict import Verdict
from checker.lab.topology import Lab
from checker.service import Service
from tests._wait import wait_for
from tests.service._run import get, running, wait_writes

TOKEN = "api-token-for-tests-7d1c"


@pytest.fixture(scope="module")
def api(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """One checker with a bearer token, serving its API on a free loopback port."""
    token_file = tmp_path_factory.mktemp("secret") / "token"
    token_file.write_text(TOKEN + "\n")
    journal = tmp_path_factory.mktemp("api") / "j.sqlite"
    with running(lab, journal, api_token_file=str(token_file), workload="ledger,bank") as (
        service,
        url,
    ):
        assert url is not None
        wait_writes(service, 50)
        wait_for(lambda: service.live.cycles >= 2, timeout=30, what="two analysis cycles")
        wait_for(
            lambda: len([v for v in service.lag.values() if v is not None]) == 3,
            timeout=30,
            what="a lag sample from every node",
        )
        yield service, url


def post(url: str, path: str, token: str | None = TOKEN, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    return requests.post(url + path, headers=headers, timeout=120, **kwargs)


def test_get_endpoints_answer(api: tuple[Service, str]) -> None:
    """healthz, status, verdict, annotations and metrics answer 200 with their documented shapes."""
    _, url = api
    assert requests.get(url + "/healthz", timeout=10).json()["status"] == "ok"
    status = get(url, "/status")
    assert status["writes"]["ok"] >= 50 and status["primary"]["node"] == "mysql-0"
    verdict = Verdict.from_dict(get(url, "/verdict"))
    assert verdict.valid.json is True
    assert isinstance(get(url, "/annotations"), list)
    metrics = requests.get(url + "/metrics", timeout=10)
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        'checker_writes_total{outcome="ok"}',
        'checker_anomalies{type="lost"}',
        'checker_replica_lag_seconds{node="mysql-1"}',
        "checker_verdict_valid",
        "checker_bank_transfers_total",
    ):
        assert name in metrics.text
    spec = requests.get(url + "/openapi.json", timeout=10).json()
    assert {"/healthz", "/status", "/verdict", "/verify", "/annotations", "/metrics"} <= set(
        spec["paths"]
    )


def test_annotations_are_kept_in_order_and_journaled(api: tuple[Service, str]) -> None:
    """Posted annotations come back from GET /annotations and reach the journal."""
    service, url = api
    r = post(
        url, "/annotations", json={"name": "kill mysql-0", "phase": "start", "time": time.time()}
    )
    assert r.status_code == 201, r.text
    r = post(
        url,
        "/annotations",
        json={"name": "kill mysql-0", "phase": "end", "time": "2026-11-26T12:00:00Z"},
    )
    assert r.status_code == 201, r.text
    got = get(url, "/annotations")
    assert [(a["name"], a["phase"]) for a in got[-2:]] == [
        ("kill mysql-0", "start"),
        ("kill mysql-0", "end"),
    ]
    service.journal.flush()
    assert [a["phase"] for a in service.journal.rows("annotations")[-2:]] == ["start", "end"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"name": "x"}', 422, "phase"),
        (b'{"name": "x", "phase": "middle"}', 422, "phase"),
        (b'{"name": "", "phase": "start"}', 422, "name"),
        (b'{"name": "x", "phase": "start", "time": "yesterday"}', 422, "time"),
        (b'{"name": "x", "phase": "start", "extra": 1}', 422, "extra"),
        (b"[1, 2, 3]", 422, "body"),
    ],
)
def test_bad_annotation_bodies_get_a_clear_4xx(
    api: tuple[Service, str], body: bytes, status: int, needle: str
) -> None:
    """Malformed annotation bodies are refused with a JSON error naming what is wrong."""
    _, url = api
    r = post(url, "/annotations", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_unknown_routes_methods_tokens_and_oversized_bodies(api: tuple[Service, str]) -> None:
    """404/405/401/413 come back as JSON errors, not stack traces."""
    _, url = api
    r = requests.get(url + "/nope", timeout=10)
    assert r.status_code == 404 and r.json() == {"error": "no such route"}
    r = requests.delete(url + "/verdict", timeout=10)
    assert r.status_code == 405 and "not allowed" in r.json()["error"]
    r = post(url, "/annotations", token=None, json={"name": "x", "phase": "start"})
    assert r.status_code == 401 and "bearer token" in r.json()["error"]
    r = post(url, "/annotations", token="wrong", json={"name": "x", "phase": "start"})
    assert r.status_code == 401
    r = post(
        url, "/annotations", data=b"x" * (65 * 1024), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and "too large" in r.json()["error"]
    assert TOKEN not in r.text


def test_post_verify_returns_a_verdict(api: tuple[Service, str]) -> None:
    """POST /verify runs a full verification and returns the core's verdict JSON."""
    service, url = api
    r = post(url, "/verify")
    assert r.status_code == 200, r.text
    verdict = Verdict.from_dict(r.json())
    assert verdict.valid.json is True, r.json()
    assert service.last_verification is not None and service.last_verification["duration"] > 0
    metrics = requests.get(url + "/metrics", timeout=10).text
    assert "checker_last_verification_duration_seconds" in metrics
