"""Scalar argument checks shared by every module of `probes`.

Chaos Toolkit hands activities raw JSON, and `chaos run --var key=value` hands them strings, so
each value is checked before anything acts and refused with one `ActivityFailed` line naming the
argument and what it expects. Messages pass through `checker.secrets.redact`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, NoReturn

from chaoslib.exceptions import ActivityFailed

from checker.secrets import redact

_CONFIG_KEY = re.compile(r"^configuration ([a-z_]+)\b")


def fail(message: str) -> NoReturn:
    """Raise the one-line, password-free `ActivityFailed` every activity reports.

    A message about a configuration key says how to set it: the experiment declares every key,
    so `chaos run --var KEY=VALUE` (or a `--var-file`) reaches it.
    """
    key = _CONFIG_KEY.match(message)
    if key and "--var" not in message:
        message = f"{message} (set it with: chaos run --var {key[1]}=...)"
    raise ActivityFailed(" ".join(redact(message).split()))


def text(value: Any, what: str) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str):
        fail(f"{what} must be a string, not {type(value).__name__}")
    stripped = value.strip()
    if not stripped:
        fail(f"{what} must not be empty")
    return stripped


def _float(value: Any, what: str, kind: str) -> float:
    # bool is an int to Python but never a number to a user.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        fail(f"{what} must be a {kind}, not {type(value).__name__}")
    try:
        return float(value)
    except ValueError:
        fail(f"{what} must be a {kind}, not {value!r}")


def number(value: Any, what: str) -> float:
    """A finite number; numeric strings from `--var` are accepted."""
    parsed = _float(value, what, "number")
    if not math.isfinite(parsed):
        fail(f"{what} must be a finite number, not {value!r}")
    return parsed


def seconds(value: Any, what: str, *, allow_zero: bool = False, maximum: float = 86_400.0) -> float:
    """A duration in seconds (> 0, or >= 0 with `allow_zero`); `--var` strings are accepted."""
    parsed = _float(value, what, "number of seconds")
    low_ok = parsed >= 0 if allow_zero else parsed > 0
    if not math.isfinite(parsed) or not low_ok or parsed > maximum:
        low = "at least 0" if allow_zero else "above 0"
        fail(f"{what} must be a number of seconds {low} and at most {maximum:g}, not {value!r}")
    return parsed


def whole_seconds(value: Any, what: str, maximum: int) -> int:
    """A whole number of seconds from 1 to `maximum`."""
    return whole(value, what, 1, maximum, unit=" seconds")


def whole(value: Any, what: str, low: int, high: int, unit: str = "") -> int:
    """A whole number from `low` to `high`; numeric strings from `--var` are accepted."""
    parsed = number(value, what)
    if parsed != int(parsed):
        fail(f"{what} must be a whole number{unit and ' of' + unit}, not {value!r}")
    if not low <= parsed <= high:
        fail(f"{what} must be between {low} and {high}{unit}, not {value!r}")
    return int(parsed)


def flag(value: Any, what: str) -> bool:
    """A boolean; "true"/"false" strings from `--var` are accepted, nothing looser."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    fail(f"{what} must be true or false, not {value!r}")


def choice(value: Any, what: str, options: Iterable[str]) -> str:
    """One of `options`, exactly."""
    allowed = tuple(options)
    chosen = text(value, what)
    if chosen not in allowed:
        fail(f"{what} must be one of {', '.join(allowed)}, not {chosen!r}")
    return chosen
