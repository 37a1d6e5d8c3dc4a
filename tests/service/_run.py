"""Run the checker against a lab: in-process (Service + HTTP API) or as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from checker.api import ApiServer
from checker.lab.topology import Lab
from checker.service import Service
from checker.settings import build
from tests._wait import wait_for

# The bearer token of each in-process checker's API, by URL, for `get`: every route that reveals
# state needs it when the checker has one.
TOKENS: dict[str, str] = {}


def settings_for(lab: Lab, journal: Path, **raw: Any) -> Any:
    return build({"lab": str(lab.dir), "journal": str(journal), "concurrency": 4, **raw})


@contextmanager
def running(
    lab: Lab, journal: Path, *, http: bool = True, **raw: Any
) -> Iterator[tuple[Service, str | None]]:
    """A started in-process checker (and its API on a free port); stopped on exit."""
    from checker.cli.run import _verify_fn

    settings = settings_for(lab, journal, **raw)
    service = Service(settings, verify=_verify_fn())
    api = None
    url = None
    if http:
        api = ApiServer(service, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{api.start()}"
        if settings.api_token:
            TOKENS[url] = settings.api_token.reveal()
    service.start()
    try:
        yield service, url
    finally:
        service.stop()
        if api is not None:
            api.stop()


def wait_writes(service: Service, n: int, timeout: float = 30.0) -> None:
    """Wait until `n` more writes have been acknowledged."""
    target = service.live.counts["ok"] + n
    wait_for(
        lambda: service.live.counts["ok"] >= target,
        timeout=timeout,
        what=f"{n} more acknowledged writes",
    )


def start_subprocess(
    lab: Lab, journal: Path, ready: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`checker run` as its own process; returns it and its API URL once ready."""
    if ready.exists():
        ready.unlink()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "checker.cli",
            "run",
            "--lab",
            str(lab.dir),
            "--journal",
            str(journal),
            "--http",
            "127.0.0.1:0",
            "--ready-file",
            str(ready),
            "--log-format",
            "json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or dict(os.environ),
    )
    wait_for(
        lambda: ready.exists() or proc.poll() is not None, timeout=60, what="checker to be ready"
    )
    if proc.poll() is not None:
        _, err = proc.communicate()
        raise AssertionError(f"checker exited with {proc.returncode}: {err[-2000:]}")
    return proc, json.loads(ready.read_text())["url"]


def get(url: str, path: str, token: str | None = None) -> Any:
    """GET a JSON route, with the checker's bearer token (given, or the one `running` noted)."""
    token = token or TOKENS.get(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.get(url + path, headers=headers, timeout=30)
    r.raise_for_status()
    return r.json()
