"""The code base stays clean: ruff (lint and format) and strict mypy pass on the whole tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_tool_is_clean(command: list[str]) -> None:
    """Each linter exits 0 over the project (config in pyproject.toml)."""
    proc = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_core_imports_nothing_of_the_project_but_itself() -> None:
    """checker/core is pure: no import of checker.* outside checker.core, no I/O modules."""
    forbidden = (
        "import checker.",
        "from checker import",
        "import pymysql",
        "import sqlalchemy",
        "import socket",
        "import time",
        "import os",
        "import subprocess",
        "import requests",
    )
    for path in (ROOT / "checker" / "core").glob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("from checker.", "import checker")):
                assert stripped.startswith(("from checker.core", "import checker.core")), (
                    path,
                    line,
                )
            assert not stripped.startswith(forbidden), (path, line)


def test_checker_never_imports_probes() -> None:
    """Arrows point one way: probes use checker, checker never imports probes."""
    for path in (ROOT / "checker").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            assert not stripped.startswith(("import probes", "from probes")), (path, line)
