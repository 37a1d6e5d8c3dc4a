"""HTTP API of a running checker (FastAPI; the OpenAPI spec is served at /openapi.json).

GET  /healthz       liveness: the process and its scheduler run (not MySQL's health: a
                    checker restarted during a fault would lose sight of it)
GET  /status        counters by outcome, primary identity, lag per node, uptime, errors
GET  /verdict       the latest verdict (the core's JSON contract, docs/verdict.md)
POST /verify        a full verification now; returns its verdict
POST /annotations   {"name", "phase": "start"|"end", "time"?}: chaos activities, journaled
GET  /annotations   the annotations so far
GET  /metrics       Prometheus text format
GET  /probe/verdict 200 only while the verdict is VALID; 409 INVALID, 503 UNKNOWN, with a short
                    reason: for other chaos tools' HTTP probes (Litmus httpProbe, Chaos Mesh
                    StatusCheck). No token: it tells the verdict's status and nothing else.

GET  /journal       a consistent snapshot of the journal (SQLite), e.g. for `checker report`

When the checker has a token, every route but /healthz and /metrics requires
`Authorization: Bearer <token>`: POST routes change things, and /status, /verdict,
/annotations and /journal reveal hosts, GTID sets and the journal. The check is a per-route
dependency (`Depends(auth)`), so an open route is one that simply does not declare it.
Request bodies are limited to MAX_BODY bytes while they stream in, on every route, with or
without Content-Length. Errors are JSON `{"error": "..."}`, never a stack trace.
"""

from __future__ import annotations

import hmac
import math
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checker import _logging
from checker.core.verdict import Validity, Verdict
from checker.errors import CheckerError
from checker.metrics import render_metrics
from checker.secrets import redact

if TYPE_CHECKING:
    from checker.service import Service

log = _logging.get("checker.api")
MAX_BODY = 64 * 1024
# Free space a journal snapshot must leave on the journal's volume, so a download can never
# fill the disk the journal itself writes to.
SNAPSHOT_RESERVE = 64 * 1024 * 1024
_TOO_LARGE = f"request body too large (limit {MAX_BODY} bytes)"
# Annotations kept in memory for GET /annotations (all of them are journaled): the oldest are
# dropped beyond this, and GET /annotations says how many in X-Annotations-Trimmed.
MAX_ANNOTATIONS = 10_000


class Annotation(BaseModel):
    """A chaos activity's start or end, as the chaos control posts it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    phase: Literal["start", "end"]
    time: float | None = Field(default=None, description="unix seconds or ISO 8601; default: now")
    detail: str | None = Field(default=None, max_length=4000)

    @field_validator("time", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise ValueError("time must be unix seconds or an ISO 8601 timestamp") from None
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and not math.isfinite(value)
        ):
            raise ValueError("time must be finite")
        return value


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _BodyLimit:
    """Refuse bodies over `limit` bytes while they stream in, chunked or not, on every route.

    A declared Content-Length over the limit is refused before anything is read. Any other
    body is read here chunk by chunk, counted as it arrives, and refused as soon as it passes
    the limit, whether or not the route would have read it; at most `limit` bytes (plus one
    chunk) are ever held. A body within the limit is handed on to the route unchanged.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _send_error(send, 413, _TOO_LARGE)
            return
        if length in (None, b"0") and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body at all
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                await _send_error(send, 413, _TOO_LARGE)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_error(send: Send, status: int, message: str) -> None:
    response = _error(status, message)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def bearer_auth(token: str | None) -> Callable[[Request], None]:
    """A route dependency: the bearer token when one is set (compared in constant time)."""

    def auth(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise StarletteHTTPException(
                401, "missing or wrong bearer token (Authorization: Bearer <token>)"
            )

    return auth


def create_app(service: Service, max_annotations: int = MAX_ANNOTATIONS) -> FastAPI:
    token = service.settings.api_token.reveal() if service.settings.api_token else None
    return _build(service, token, max_annotations)


def openapi_spec() -> dict[str, Any]:
    """The API's OpenAPI document, without a running service (docs/openapi.json)."""
    # The routes only touch the service when called; the spec needs none.
    return _build(cast("Service", None), None).openapi()


def _build(service: Service, token: str | None, max_annotations: int = MAX_ANNOTATIONS) -> FastAPI:
    app = FastAPI(
        title="mysql-chaos-checker",
        version="1",
        description="Data-integrity checker for MySQL under chaos: verdict, status, verification.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(_BodyLimit)
    auth = [Depends(bearer_auth(token))]
    snapshots = threading.Lock()
    trimmed = {"count": 0}
    annotating = threading.Lock()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "no such route", 405: "method not allowed on this route"}
        return _error(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        if first.get("type") == "json_invalid":
            return _error(400, "request body is not valid JSON")
        return _error(422, f"invalid request: {where or 'body'}: {first.get('msg', 'invalid')}")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "scheduler": service.scheduler.running, "fatal": service.fatal}

    @app.get("/status", dependencies=auth)
    def status() -> dict[str, Any]:
        return service.status()

    @app.get("/verdict", dependencies=auth)
    def verdict() -> dict[str, Any]:
        # `verification`: the last pass (kind, range) and the last of each kind.
        return {**service.verdict().to_dict(), "verification": service.verification_section()}

    @app.post("/verify", dependencies=auth)
    def verify() -> JSONResponse:
        try:
            v = service.verify()
        except CheckerError as exc:
            code = 409 if "already running" in str(exc) else 503
            return _error(code, str(exc))
        return JSONResponse({**v.to_dict(), "verification": service.verification_section()})

    @app.post("/annotations", status_code=201, dependencies=auth)
    def annotate(body: Annotation) -> dict[str, Any]:
        now = time.time()
        row = {
            "name": redact(body.name),
            "phase": body.phase,
            "time": body.time or now,
            "received": now,
            "detail": None if body.detail is None else redact(body.detail),
        }
        service.journal.record("annotations", row)
        with annotating:
            service.annotations.append(row)
            excess = len(service.annotations) - max_annotations
            if excess > 0:
                del service.annotations[:excess]
                trimmed["count"] += excess
        if excess > 0 and (trimmed["count"] == excess or trimmed["count"] % 1000 < excess):
            # Said once when it starts, then every 1000 dropped: no log line per request.
            log.warning(
                "annotations_trimmed",
                kept=max_annotations,
                dropped=trimmed["count"],
                note="the oldest are dropped from memory; the journal keeps every one",
            )
        log.info("annotation", name=row["name"], phase=body.phase)
        return {"ok": True, **row}

    @app.get("/annotations", dependencies=auth, response_model=list[dict[str, Any]])
    def annotations() -> JSONResponse:
        """The newest annotations (MAX_ANNOTATIONS by default); X-Annotations-Trimmed counts
        the older ones dropped from memory (the journal keeps them all)."""
        headers = {"X-Annotations-Trimmed": str(trimmed["count"])}
        return JSONResponse(list(service.annotations), headers=headers)

    @app.get("/journal", response_class=FileResponse, dependencies=auth)
    def journal() -> Response:
        """A consistent snapshot of the journal (SQLite online backup), for reports elsewhere.

        The snapshot is written next to the journal (its own volume, never /tmp), one at a
        time, and only if it leaves SNAPSHOT_RESERVE bytes free there; it is streamed from
        that file and deleted once sent.
        """
        if not snapshots.acquire(blocking=False):
            return _error(409, "a journal download is already in progress; retry when it ends")
        try:
            service.journal.flush()
            tmp = _snapshot(Path(service.journal.path))
        except BaseException:
            snapshots.release()
            raise
        if isinstance(tmp, str):
            snapshots.release()
            return _error(507, tmp)

        def done() -> None:
            try:
                os.unlink(tmp)
            finally:
                snapshots.release()

        return FileResponse(
            tmp,
            media_type="application/vnd.sqlite3",
            filename="checker-journal.sqlite",
            background=BackgroundTask(done),
        )

    @app.get(
        "/probe/verdict",
        responses={
            200: {"description": "the verdict is VALID"},
            409: {"description": "the verdict is INVALID (an anomaly was proven)"},
            503: {"description": "the verdict is UNKNOWN (the checker cannot vouch now)"},
        },
    )
    def probe_verdict() -> JSONResponse:
        """The verdict as a pass/fail HTTP probe: 200 only while VALID, and why not otherwise."""
        code, body = probe_answer(service.verdict())
        return JSONResponse(body, status_code=code)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        text, content_type = render_metrics(service)
        return PlainTextResponse(text, media_type=content_type)

    return app


def probe_answer(verdict: Verdict) -> tuple[int, dict[str, Any]]:
    """(status code, body) of GET /probe/verdict: anomaly types and counts, or the names of
    the checks that could not run — never rows, hosts or error texts."""
    if verdict.valid is Validity.VALID:
        return 200, {"status": "VALID", "valid": True, "reason": "no anomaly; every check ran"}
    if verdict.valid is Validity.INVALID:
        found = {k: n for k, n in verdict.anomaly_counts.items() if n}
        reason = "anomalies: " + ", ".join(f"{k}={n}" for k, n in found.items())
        return 409, {"status": "INVALID", "valid": False, "reason": reason, "anomalies": found}
    checks = sorted({f.detector for f in verdict.failures}) or sorted(
        name for name, node in verdict.nodes.items() if node.valid is not Validity.VALID
    )
    reason = "cannot vouch for the data: " + (", ".join(checks) or "no analysis yet")
    return 503, {"status": "UNKNOWN", "valid": "unknown", "reason": reason, "checks": checks}


def _snapshot(path: Path) -> Path | str:
    """The journal's online backup in a hidden file beside it, or why there is no room."""
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    free = shutil.disk_usage(path.parent).free
    if free < size + SNAPSHOT_RESERVE:
        return (
            f"no room for a journal snapshot beside {path.name}: it needs {size} bytes and "
            f"{SNAPSHOT_RESERVE} to spare, {free} are free; grow the journal's volume"
        )
    fd, name = tempfile.mkstemp(prefix=".snapshot-", suffix=".sqlite", dir=path.parent)
    os.close(fd)
    src, dst = sqlite3.connect(path), sqlite3.connect(name)
    try:
        src.backup(dst)
    except BaseException:
        os.unlink(name)
        raise
    finally:
        src.close()
        dst.close()
    return Path(name)


class ApiServer:
    """uvicorn in a background thread, stopped with the service."""

    def __init__(
        self, service: Service, host: str, port: int, max_annotations: int = MAX_ANNOTATIONS
    ) -> None:
        config = uvicorn.Config(
            create_app(service, max_annotations),
            host=host,
            port=port,
            log_level="warning",
            # No logging set-up of uvicorn's own: its records reach the root handler that
            # checker._logging installs (redacted, JSON like every other line).
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def start(self, timeout: float = 10.0) -> int:
        """Start serving; returns the bound port (useful with port 0)."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise CheckerError(
                    f"the HTTP API could not listen on "
                    f"{self.server.config.host}:{self.server.config.port} "
                    "(port in use or not allowed): choose another --http"
                )
            time.sleep(0.01)
        sockets = [s for server in self.server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1]) if sockets else self.server.config.port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


if __name__ == "__main__":  # `python -m checker.api > docs/openapi.json`
    import json
    import sys

    sys.stdout.write(json.dumps(openapi_spec(), indent=2, sort_keys=True) + "\n")
