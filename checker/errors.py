"""Every exception the checker raises on purpose, in one place.

Each carries a one-line message that says what is wrong and what to do; the CLI prints
it as is (no traceback) and exits non-zero. Messages never contain a password.
"""

from __future__ import annotations


class CheckerError(Exception):
    """Base of all user-facing errors; `str(err)` is the one line shown to the user."""

    exit_code = 2


class ConfigError(CheckerError):
    """Bad option, environment variable, config file or experiment argument."""


class SecretError(ConfigError):
    """A password or token could not be read from where it was said to be."""


class DatabaseError(CheckerError):
    """MySQL could not be reached or refused what the checker needs."""


class UnreachableError(DatabaseError):
    """No MySQL server answers at the address (down, wrong host/port, not MySQL)."""


class AuthError(DatabaseError):
    """The server refused the user name or password."""


class GrantError(DatabaseError):
    """The checker's user lacks a privilege it needs; the message names it."""


class SchemaError(DatabaseError):
    """The checker's schema is missing or not what it expects."""


class LabError(CheckerError):
    """The local lab cannot do what was asked (not running, unknown node, busy port...)."""


class ServerBinaryMissing(LabError):
    """No MySQL/MariaDB server binary on PATH."""


class JournalError(CheckerError):
    """The local journal cannot be opened, written, or belongs to another run."""


class VerifyError(CheckerError):
    """A verification could not be carried out (the verdict is then UNKNOWN)."""
