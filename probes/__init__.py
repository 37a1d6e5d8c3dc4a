"""Chaos Toolkit extension for the MySQL data-integrity checker.

Modules: `probes.mysql` (steady-state probes on the MySQL endpoints), `probes.lab` (the
local lab's faults), `probes.kubernetes` (the same faults on a cluster), `probes.checker` (the
checker's API), and the control `probes.control` (annotates the checker's timeline).
`chaos discover mysql-chaos-checker` ends up in `discover` below.

Each activity module lists its exports in `__all__` and its read-only activities in `PROBES`;
every other export is discovered as an action.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType
from typing import Any

from checker._logging import redact_stdlib

__all__ = ["discover"]

logger = logging.getLogger("chaostoolkit")
# `chaos run` loads this package: from then on every log record of the run (chaostoolkit's
# own, the activities') passes the checker's redaction before any handler writes it.
redact_stdlib()

DISTRIBUTION = "mysql-chaos-checker"
# Imported lazily, so discovery lists whichever of these exist in this installation.
ACTIVITY_MODULES = (
    "probes.mysql",
    "probes.lab",
    "probes.kubernetes",
    "probes.checker",
)  # probes.control is a control module (hooks), not activities


def discover(discover_system: bool = True) -> dict[str, Any]:
    """Describe this extension's activities for `chaos discover`, and the local lab if one is
    running (directory from CHECKER_LAB_DIR, default `.lab`) when `discover_system`."""
    from chaoslib.discovery import initialize_discovery_result

    discovery: dict[str, Any] = initialize_discovery_result(DISTRIBUTION, _version(), "mysql")
    for module in ACTIVITY_MODULES:
        loaded = _import_if_present(module)
        if loaded is not None:
            discovery["activities"].extend(_activities(loaded))
    if discover_system:
        discovery["system"] = _lab_system()
    return discovery


def _import_if_present(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # the module exists but is broken: say so rather than list less
        logger.debug("discover: %s is not part of this installation", name)
        return None


def _activities(module: ModuleType) -> list[dict[str, Any]]:
    from chaoslib.discovery import discover_actions, discover_probes

    probes = set(getattr(module, "PROBES", ()))
    found: list[dict[str, Any]] = [
        a for a in discover_probes(module.__name__) if a["name"] in probes
    ]
    found += [a for a in discover_actions(module.__name__) if a["name"] not in probes]
    return sorted(found, key=lambda a: str(a["name"]))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        from checker import __version__

        return __version__


def _lab_system() -> dict[str, Any] | None:
    """The running local lab's endpoints and nodes (never a password), or None."""
    from checker.errors import CheckerError
    from checker.lab.state import DEFAULT_DIR
    from checker.lab.topology import Lab

    lab = Lab(os.environ.get("CHECKER_LAB_DIR") or DEFAULT_DIR)
    try:
        if not lab.running():
            return None
        return {"lab": lab.info()}
    except CheckerError as exc:
        logger.debug("discover: no lab described: %s", exc)
        return None
