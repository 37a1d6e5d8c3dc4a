"""Headless Chromium driven over the DevTools protocol on a pipe (no port, no network).

`--remote-debugging-pipe` makes Chromium read protocol messages on fd 3 and write them on
fd 4, each a JSON text ended by a NUL byte. Through it a test sees what a person's browser
would complain about: console errors, uncaught exceptions, Content-Security-Policy
violations (`Log.entryAdded`), and every request the page makes (`Network.requestWillBeSent`).
The flags keep Chromium from reaching for outside hosts: the machine's network is closed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
)
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_or_install() -> str:
    """Chromium's path; installed with apt-get when missing and root, else a clear failure."""
    found = _which()
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail(
            "Chromium is needed to render the report and is not installed; as root run "
            "`apt-get update && apt-get install -y chromium` (Debian), then rerun the tests"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr[-1500:]}")
    found = _which()
    if not found:
        pytest.fail("apt-get installed chromium but no chromium binary is on PATH")
    return found


def _which() -> str | None:
    return next((p for c in CANDIDATES if (p := shutil.which(c))), None)


@dataclass
class Rendered:
    """What a page did in the browser."""

    console: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dom: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    png: bytes = b""


class Browser:
    """One Chromium process and its protocol pipe."""

    def __init__(self, exe: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_pipes() -> None:
            # The protocol's fixed descriptors; dup2 leaves them inheritable across exec. Move
            # both ends out of the way first: either may itself be fd 3 or 4.
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=False,
            preexec_fn=wire_pipes,  # noqa: PLW1509 - only dup2 runs between fork and exec
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    # -- protocol -----------------------------------------------------------------------------
    def call(
        self, method: str, session: str | None = None, timeout: float = 30.0, **params: Any
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        reply = self._read_until(lambda m: m.get("id") == self._next_id, timeout, method)
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        found = self._read_until(lambda m: m.get("method") == method, timeout, method)
        self.events.remove(found)
        return found

    def _read_until(self, wanted: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return dict(message)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"Chromium did not answer {what} within {timeout}s")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise AssertionError(f"Chromium closed its pipe: {self._stderr()}")
                self._buffer += chunk

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):  # it may be gone already
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    # -- one page -----------------------------------------------------------------------------
    def render(self, page: Path, probe: str, width: int = 1400, height: int = 2000) -> Rendered:
        """Load `page`, wait for its load event, evaluate `probe` (a JS expression returning
        JSON-able facts about the DOM), and capture a full-page screenshot."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.events.clear()
        self.call("Page.navigate", session, url=page.resolve().as_uri())
        self.wait_event("Page.loadEventFired")
        out = Rendered()
        out.facts = self._evaluate(session, probe)
        out.dom = str(self._evaluate(session, "document.documentElement.outerHTML"))
        shot = self.call(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
        )
        out.png = base64.b64decode(shot["data"])
        # Protocol messages of one session arrive in order: everything the page logged before
        # the screenshot's answer is in `events` now.
        for event in self.events:
            _collect(out, event)
        self.events.clear()
        self.call("Target.closeTarget", targetId=target)
        return out

    def _evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"probe script failed: {result['exceptionDetails']}")
        return result["result"].get("value")


def _collect(out: Rendered, event: dict[str, Any]) -> None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled":
        text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
        out.console.append({"type": params["type"], "text": text})
        if params["type"] in ("error", "assert"):
            out.errors.append(f"console.{params['type']}: {text}")
    elif method == "Runtime.exceptionThrown":
        out.errors.append(f"exception: {params['exceptionDetails'].get('text')}")
    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
        out.errors.append(f"log ({params['entry']['source']}): {params['entry']['text']}")
    elif method == "Network.requestWillBeSent":
        out.requests.append(params["request"]["url"])
