"""Passwords and tokens: read from the environment or files, never printed.

A `Secret` hides its value from `repr`/`str`, so it can sit in frozen settings objects
that get logged. Every secret value read is also registered for `redact`, which the log
pipeline and the error paths run over any text that leaves the process.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

from checker.errors import SecretError

_REDACTED = "***"
_lock = threading.Lock()
_known: set[str] = set()
# What looks like a secret even when it was never registered. Each pattern is linear: a literal
# anchor (a key name, "://", "bearer") and then single character classes that cannot overlap with
# what follows them, so no input makes the engine backtrack over what it already scanned. They
# match the VALUE, never the words around it: "no MySQL password: set CHECKER_PASSWORD" stays.
_PATTERNS = (
    # password=hunter2, token=abc (query strings, DSNs, command lines)
    re.compile(r"(?i)((?:password|passwd|pwd|token|secret|api[_-]?key)=)([^\s,;&'\"}]+)"),
    # "password": "hunter2" (JSON and Python reprs)
    re.compile(
        r"(?i)([\"'](?:password|passwd|pwd|token|secret|api[_-]?key)[\"']\s?:\s?[\"'])"
        r"([^\"'\s]+)"
    ),
    # scheme://user:pass@host: RFC 3986 userinfo holds no "/", so each try stops at the next "/"
    re.compile(r"(://[^:/@\s]*:)([^@\s/]+)(?=@)"),
    # Authorization: Bearer abc... (8+ characters: "bearer of bad news" is English)
    re.compile(r"(?i)(\bbearer\s)([A-Za-z0-9._~+/=-]{8,})"),
    # IDENTIFIED BY 'hunter2' (SQL echoed in errors)
    re.compile(r"(?i)(\bidentified by ')([^']+)"),
)


class Secret:
    """A string that will not show itself by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def register(value: str) -> None:
    """Remember a secret value so `redact` removes it from any text."""
    if value and len(value) >= 3:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Remove every registered secret and anything that looks like one from `text`.

    The secret values are replaced, the text around them is kept.
    """
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, _REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(_keep_prefix, text)
    return text


def _keep_prefix(match: re.Match[str]) -> str:
    return f"{match.group(1)}{_REDACTED}"


def redact_data(value: Any) -> Any:
    """`value` with `redact` applied to every string in it (dicts, lists, tuples, keys too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k): redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(v) for v in value)
    return value


def from_file(path: str | os.PathLike[str], what: str = "password") -> Secret:
    """Read a secret from a file (trailing newline stripped), as Kubernetes mounts them."""
    p = Path(path)
    try:
        value = p.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise SecretError(f"{what} file {p} does not exist") from None
    except IsADirectoryError:
        raise SecretError(f"{what} file {p} is a directory, expected a file") from None
    except PermissionError:
        raise SecretError(f"{what} file {p} is not readable by this user") from None
    except UnicodeDecodeError:
        raise SecretError(f"{what} file {p} is not UTF-8 text") from None
    return Secret(value)


def resolve(
    *,
    file: str | os.PathLike[str] | None = None,
    env: str | None = None,
    what: str = "password",
    environ: dict[str, str] | None = None,
) -> Secret | None:
    """The secret from `file` if given, else from environment variable `env`, else None.

    `<env>_FILE` is honoured too, the convention of container images.
    """
    environ = dict(os.environ) if environ is None else environ
    if file:
        return from_file(file, what)
    if env:
        if environ.get(f"{env}_FILE"):
            return from_file(environ[f"{env}_FILE"], what)
        if env in environ:
            return Secret(environ[env])
    return None
