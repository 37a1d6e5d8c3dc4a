"""The few calls a game day makes to a checker's HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from checker import secrets
from checker.errors import CheckerError
from checker.secrets import redact


class CheckerClient:
    """The few calls a game day makes to a checker's HTTP API."""

    def __init__(self, url: str, token: secrets.Secret | None, timeout: float = 600.0) -> None:
        self.url = url
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token.reveal()}"} if token else {}

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            r = requests.request(
                method,
                self.url + path,
                headers=self.headers,
                timeout=kwargs.pop("timeout", 30),
                **kwargs,
            )
        except requests.RequestException as exc:
            raise CheckerError(
                f"the checker at {self.url} did not answer {method} {path}: {redact(str(exc))}"
            ) from None
        if r.status_code >= 400:
            raise CheckerError(
                f"the checker at {self.url} answered {method} {path} with {r.status_code}: "
                f"{redact(r.text[:300])}"
            )
        return r

    def annotate(self, name: str, phase: str, detail: str | None = None) -> None:
        self._call("POST", "/annotations", json={"name": name, "phase": phase, "detail": detail})

    def verify(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/verify", timeout=self.timeout).json()
        return result

    def verdict(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/verdict").json()
        return result

    def journal(self, dest: Path) -> None:
        r = self._call("GET", "/journal", timeout=self.timeout, stream=True)
        with dest.open("wb") as f:
            for chunk in r.iter_content(1 << 16):
                f.write(chunk)
