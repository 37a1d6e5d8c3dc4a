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

POST routes and /journal require `Authorization: Bearer <token>` when the checker has a token.
Errors are JSON `{"error": "..."}` with a 4xx/5xx status, never a stack trace.
"""

from __future__ import annotations

import hmac
import math
import os
import sqlite3
import tempfile
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, cast

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from checker import _logging
from checker.core.verdict import Validity, Verdict
from checker.errors import CheckerError
from checker.metrics import render_metrics

if TYPE_CHECKING:
    from checker.service import Service

log = _logging.get("checker.api")
MAX_BODY = 64 * 1024
# Routes that change something, and the journal download: bearer token when one is set.
_PROTECTED = frozenset({("POST", "/verify"), ("POST", "/annotations"), ("GET", "/journal")})


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


class _Guard(BaseHTTPMiddleware):
    """Body size limit and bearer token for POST routes, before any parsing."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token and (request.method, request.url.path) in _PROTECTED:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return _error(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
                return _error(413, f"request body too large (limit {MAX_BODY} bytes)")
            body = await request.body()
            if len(body) > MAX_BODY:
                return _error(413, f"request body too large (limit {MAX_BODY} bytes)")
        return await call_next(request)


def create_app(service: Service) -> FastAPI:
    token = service.settings.api_token.reveal() if service.settings.api_token else None
    return _build(service, token)


def openapi_spec() -> dict[str, Any]:
    """The API's OpenAPI document, without a running service (docs/openapi.json)."""
    # The routes only touch the service when called; the spec needs none.
    return _build(cast("Service", None), None).openapi()


def _build(service: Service, token: str | None) -> FastAPI:
    app = FastAPI(
        title="mysql-chaos-checker",
        version="1",
        description="Data-integrity checker for MySQL under chaos: verdict, status, verification.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(_Guard, token=token)

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

    @app.get("/status")
    def status() -> dict[str, Any]:
        return service.status()

    @app.get("/verdict")
    def verdict() -> dict[str, Any]:
        return service.verdict().to_dict()

    @app.post("/verify")
    def verify() -> JSONResponse:
        try:
            v = service.verify()
        except CheckerError as exc:
            code = 409 if "already running" in str(exc) else 503
            return _error(code, str(exc))
        return JSONResponse(v.to_dict())

    @app.post("/annotations", status_code=201)
    def annotate(body: Annotation) -> dict[str, Any]:
        now = time.time()
        row = {
            "name": body.name,
            "phase": body.phase,
            "time": body.time or now,
            "received": now,
            "detail": body.detail,
        }
        service.journal.record("annotations", row)
        service.annotations.append(row)
        log.info("annotation", name=body.name, phase=body.phase)
        return {"ok": True, **row}

    @app.get("/annotations")
    def annotations() -> list[dict[str, Any]]:
        return list(service.annotations)

    @app.get("/journal", response_class=FileResponse)
    def journal() -> FileResponse:
        """A consistent snapshot of the journal (SQLite online backup), for reports elsewhere."""
        service.journal.flush()
        fd, tmp = tempfile.mkstemp(prefix="checker-journal-", suffix=".sqlite")
        os.close(fd)
        src, dst = sqlite3.connect(service.journal.path), sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        return FileResponse(
            tmp,
            media_type="application/vnd.sqlite3",
            filename="checker-journal.sqlite",
            background=BackgroundTask(os.unlink, tmp),
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


class ApiServer:
    """uvicorn in a background thread, stopped with the service."""

    def __init__(self, service: Service, host: str, port: int) -> None:
        config = uvicorn.Config(
            create_app(service),
            host=host,
            port=port,
            log_level="warning",
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
