"""The API's limits: streamed body limit everywhere, token rules, journal download, annotations."""

from __future__ import annotations

import contextlib
import select
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from checker.api import MAX_BODY, ApiServer
from checker.errors import ConfigError
from checker.lab.topology import Lab
from checker.service import Service
from checker.settings import build
from tests._wait import wait_for
from tests.service._run import get, running, wait_writes

TOKEN = "limits-token-for-tests-4a9f"


@pytest.fixture(scope="module")
def api(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """One checker with a bearer token, serving its API on a free loopback port."""
    token_file = tmp_path_factory.mktemp("secret") / "token"
    token_file.write_text(TOKEN + "\n")
    journal = tmp_path_factory.mktemp("limits") / "j.sqlite"
    with running(lab, journal, api_token_file=str(token_file)) as (service, url):
        assert url is not None
        wait_writes(service, 20)
        yield service, url


def _chunked(url: str, method: str, path: str, budget: int) -> tuple[int, int]:
    """Send a chunked body of up to `budget` bytes until the server answers: (status, bytes sent).

    The client stops sending as soon as a response is readable, as a real client that reads
    while it writes does; a server that reads the whole body first sees all of `budget`.
    """
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    chunk = b"x" * 65536
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.setblocking(False)
        while sent < budget:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            if not writable:
                raise AssertionError("the server neither read nor answered for 30 s")
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
            try:
                sock.sendall(frame)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        else:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"0\r\n\r\n")
        sock.setblocking(True)
        head = sock.recv(65536).decode(errors="replace")
    return int(head.split(" ", 2)[1]), sent


@pytest.mark.parametrize(("method", "path"), [("POST", "/annotations"), ("GET", "/healthz")])
def test_chunked_body_is_refused_while_streaming(
    api: tuple[Service, str], method: str, path: str
) -> None:
    """A chunked body with no Content-Length gets 413 long before it has all been sent."""
    _, url = api
    budget = 64 * 1024 * 1024
    status, sent = _chunked(url, method, path, budget)
    assert status == 413
    # Kernel socket buffers may take a few MiB before the client sees the answer; a server
    # that reads the whole body first takes all 64 MiB.
    assert sent < 16 * 1024 * 1024, f"{sent} bytes sent before the server answered"


def test_body_just_under_the_limit_is_accepted(api: tuple[Service, str]) -> None:
    """The limit is a limit, not a refusal of every chunked body: a small one goes through."""
    _, url = api
    body = b'{"name": "chunked", "phase": "start", "detail": "' + b"y" * 1000 + b'"}'
    r = requests.post(
        url + "/annotations",
        data=iter([body[:100], body[100:]]),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    assert len(body) < MAX_BODY


@pytest.mark.parametrize("path", ["/status", "/verdict", "/annotations", "/journal"])
def test_revealing_get_routes_need_the_token(api: tuple[Service, str], path: str) -> None:
    """Hosts, GTID sets, the timeline and the journal are not served without the token."""
    _, url = api
    r = requests.get(url + path, timeout=30)
    assert r.status_code == 401 and "bearer token" in r.json()["error"]
    r = requests.get(url + path, headers={"Authorization": "Bearer wrong"}, timeout=30)
    assert r.status_code == 401


def test_probe_and_metrics_routes_stay_open(api: tuple[Service, str]) -> None:
    """kubelet's /healthz probe and Prometheus' /metrics need no token."""
    _, url = api
    assert requests.get(url + "/healthz", timeout=10).status_code == 200
    assert requests.get(url + "/metrics", timeout=10).status_code == 200
    assert get(url, "/status")["writes"]["ok"] > 0


def test_journal_download_does_not_use_tmp(
    api: tuple[Service, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot is made beside the journal, not in the temp directory, and removed after."""
    service, url = api
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    r = requests.get(url + "/journal", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    assert r.status_code == 200, r.text
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(r.content)
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT count(*) FROM attempts").fetchone()[0] > 0
    # The snapshot is deleted by a background task once the body is sent: wait for it.
    folder = Path(service.journal.path).parent
    wait_for(lambda: not list(folder.glob(".snapshot-*")), timeout=30, what="the snapshot removed")


def test_annotations_in_memory_are_bounded_and_say_so(lab: Lab, tmp_path: Path) -> None:
    """Past the cap the oldest annotations leave memory, GET says how many; the journal has all."""
    with running(lab, tmp_path / "j.sqlite", http=False) as (service, _):
        server = ApiServer(service, "127.0.0.1", 0, max_annotations=5)
        url = f"http://127.0.0.1:{server.start()}"
        try:
            for i in range(8):
                r = requests.post(
                    url + "/annotations", json={"name": f"a{i}", "phase": "start"}, timeout=30
                )
                assert r.status_code == 201, r.text
            r = requests.get(url + "/annotations", timeout=30)
        finally:
            server.stop()
        assert [a["name"] for a in r.json()] == ["a3", "a4", "a5", "a6", "a7"]
        assert r.headers["X-Annotations-Trimmed"] == "3"
        service.journal.flush()
        assert len(service.journal.rows("annotations")) == 8


def _raw(tmp_path: Path, token: str | None, http: str) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "writer": "mysql://checker@127.0.0.1:3306/integrity",
        "journal": str(tmp_path / "j.sqlite"),
        "http": http,
    }
    if token is not None:
        (tmp_path / "token").write_text(token)
        raw["api_token_file"] = str(tmp_path / "token")
    return raw


@pytest.mark.parametrize("token", ["", "   \n", "\t"])
def test_empty_or_whitespace_token_is_refused_at_start(tmp_path: Path, token: str) -> None:
    """A token that is empty would switch authentication off: refused with one clear line."""
    environ = {"CHECKER_PASSWORD": "pw-for-settings"}
    with pytest.raises(ConfigError, match="API token is empty or whitespace"):
        build(_raw(tmp_path, token, "127.0.0.1:0"), environ=environ)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "[::]", "checker.example"])
def test_non_loopback_bind_without_token_is_refused(tmp_path: Path, host: str) -> None:
    """Serving beyond loopback needs a token; with one it is accepted."""
    environ = {"CHECKER_PASSWORD": "pw-for-settings"}
    with pytest.raises(ConfigError, match="not a loopback address and no API token"):
        build(_raw(tmp_path, None, f"{host}:8080"), environ=environ)
    settings = build(_raw(tmp_path, "a-real-token", f"{host}:8080"), environ=environ)
    assert settings.http is not None and settings.api_token is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]"])
def test_loopback_bind_without_token_is_allowed(tmp_path: Path, host: str) -> None:
    """The lab and local runs keep working without a token on loopback."""
    settings = build(_raw(tmp_path, None, f"{host}:0"), environ={"CHECKER_PASSWORD": "pw-x"})
    assert settings.api_token is None


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs, like a journal volume with little room left (needs root to mount)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_journal_download_is_refused_when_the_volume_has_no_room(
    lab: Lab, small_volume: Path
) -> None:
    """A snapshot that would leave less than the reserve free is refused (507), nothing written."""
    with running(lab, small_volume / "j.sqlite", rate=5) as (service, url):
        assert url is not None
        wait_writes(service, 5)
        r = requests.get(url + "/journal", timeout=60)
    assert r.status_code == 507, r.status_code
    assert "no room for a journal snapshot" in r.json()["error"]
    assert sorted(p.name for p in small_volume.iterdir() if p.name.startswith(".snapshot")) == []
