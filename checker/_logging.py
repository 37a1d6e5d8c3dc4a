"""structlog set-up: JSON lines off a terminal, readable console output on one.

Every event passes `redact`, so a password that slips into an event or an exception
text is replaced before it is written. Standard-library loggers (uvicorn, APScheduler,
chaostoolkit and the probes) go through the same redaction twice over: every record is
redacted when it is created (`redact_stdlib`, whatever handler later writes it), and the
root logger's handler renders them with the same processors as structlog's own events.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from checker.secrets import redact

_state = {"configured": False, "stdlib": False}
_SAFE_ARGS = (int, float, bool, type(None))


def _redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, BaseException):
            event[key] = redact(f"{type(value).__name__}: {value}")
    return event


def _redact_arg(value: Any) -> Any:
    return value if isinstance(value, _SAFE_ARGS) else redact(str(value))


def redact_stdlib() -> None:
    """Redact every standard-library log record as it is created, in this process (idempotent).

    The message and each non-numeric argument are redacted separately, so formatters that
    read `record.args` (uvicorn's access log) still get their tuple.
    """
    if _state["stdlib"]:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        else:
            record.msg = redact(str(record.msg))
        if isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(_redact_arg(a) for a in record.args)
        return record

    logging.setLogRecordFactory(factory)
    _state["stdlib"] = True


class _RootHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root logger's handler installed by `configure`, replaced on reconfiguration."""


def configure(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog once per process (later calls reconfigure)."""
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    redact_stdlib()
    _route_stdlib(stream, renderer)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _state["configured"] = True


def get(name: str | None = None, **bound: Any) -> Any:
    """A structlog logger; configures defaults the first time if nobody did."""
    if not _state["configured"]:
        configure()
    log = structlog.get_logger(name) if name else structlog.get_logger()
    return log.bind(**bound) if bound else log


def _route_stdlib(stream: TextIO, renderer: Any) -> None:
    """Send standard-library records to `stream`, rendered like structlog's events.

    The root logger keeps its level (WARNING unless someone changed it): libraries' INFO
    chatter stays out, their warnings and errors come out as JSON lines like everything else.
    """
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact_event,
            renderer,
        ],
    )
    handler = _RootHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RootHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
