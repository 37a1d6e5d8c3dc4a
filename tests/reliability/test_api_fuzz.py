"""Fuzz the HTTP API from its own OpenAPI spec: whatever is sent, no 5xx and no traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from checker.lab.topology import Lab
from tests.service._run import running, wait_writes

TOKEN = "fuzz-token-1"


@pytest.fixture(scope="module")
def checker_url(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real checker with a token, serving its API on a free loopback port."""
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "token").write_text(TOKEN)
    with running(lab, tmp / "j.sqlite", api_token_file=str(tmp / "token")) as (service, url):
        assert url is not None
        wait_writes(service, 20)
        yield url


def test_no_server_errors(checker_url: str) -> None:
    """Requests generated from the OpenAPI spec, with and without the token, never get a 5xx or
    a stack trace, and every error is a JSON body with an `error` key."""
    schema = schemathesis.openapi.from_url(checker_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/annotations", "/verify", "/verdict", "/status"}
    for operation in operations:
        examples = 5 if operation.path in ("/verify", "/journal") else 40

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
                response = case.call(base_url=checker_url, headers=headers, timeout=120)
                assert response.status_code < 500, (case.method, case.path, response.content[:500])
                assert b"Traceback" not in response.content
                if response.status_code >= 400:
                    assert "error" in response.json()

        check()
