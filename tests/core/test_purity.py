"""checker.core stays pure: no I/O, clock, logging or project imports outside itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import checker.core

CORE = Path(checker.core.__file__).parent
# Standard library modules with no I/O, clock or randomness; anything else needs a reason.
ALLOWED = {
    "__future__",
    "bisect",
    "collections",
    "dataclasses",
    "enum",
    "hashlib",
    "itertools",
    "json",
    "math",
    "operator",
    "re",
    "typing",
    "zlib",  # crc32 of a row text, as hashlib: a pure function
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_only_itself_and_pure_stdlib_modules() -> None:
    """Every import in checker/core is checker.core.* or a pure standard-library module."""
    offending = {
        f"{path.name}: {name}"
        for path in sorted(CORE.glob("*.py"))
        for name in _imports(path)
        if not (
            name == "checker.core"
            or name.startswith("checker.core.")
            or name.split(".")[0] in ALLOWED
        )
    }
    assert offending == set()


def test_importing_core_loads_nothing_else_of_the_project() -> None:
    """A fresh interpreter importing checker.core loads no other checker module, nor a driver."""
    code = (
        "import sys, checker.core, checker.core.notation\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('checker', 'probes', 'sqlalchemy', 'pymysql', 'structlog', 'logging'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert {m for m in loaded.stdout.split() if not m.startswith("checker.core")} == {"checker"}
