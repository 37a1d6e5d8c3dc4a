"""The code base stays clean: ruff (lint and format) and strict mypy pass on the whole tree."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
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


# -- the import arrows of docs/design.md ----------------------------------------------------------
_ARROW_LINE = re.compile(r"^(?P<name>[\w.]+)\s+\[(?P<prefixes>[^\]]*)\]\s*->\s*(?P<to>.*)$")


def _declared() -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """Components (name -> module prefixes) and arrows (name -> names) from docs/design.md."""
    text = (ROOT / "docs" / "design.md").read_text()
    block = text.split("```arrows\n", 1)[1].split("```", 1)[0]
    components: dict[str, list[str]] = {}
    arrows: dict[str, set[str]] = {}
    for line in block.strip().splitlines():
        m = _ARROW_LINE.match(line.strip())
        assert m, f"docs/design.md: cannot read the arrow line {line!r}"
        name = m["name"]
        components[name] = [p.strip() for p in m["prefixes"].split(",") if p.strip()]
        arrows[name] = {t.strip() for t in m["to"].split(",") if t.strip()}
    return components, arrows


def _component(module: str, components: dict[str, list[str]]) -> str | None:
    best: tuple[int, str] | None = None
    for name, prefixes in components.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[0]):
                best = (len(p), name)
    return best[1] if best else None


def _runtime_imports(path: Path) -> Iterator[str]:
    """Every project module imported at run time (function-level imports included; the ones
    under `if TYPE_CHECKING:` are type hints, not arrows)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = ROOT.joinpath(*node.module.split("."), a.name)
                is_module = sub.with_suffix(".py").exists() or sub.is_dir()
                yield f"{node.module}.{a.name}" if is_module else node.module


def _actual_arrows(components: dict[str, list[str]]) -> dict[tuple[str, str], str]:
    """(from, to) component pairs in use, each with one module and import as an example."""
    found: dict[tuple[str, str], str] = {}
    for path in sorted(
        [*ROOT.joinpath("checker").rglob("*.py"), *ROOT.joinpath("probes").rglob("*.py")]
    ):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        source = _component(module, components)
        assert source is not None, f"{module} belongs to no component of docs/design.md"
        for target in _runtime_imports(path):
            if target.split(".")[0] not in ("checker", "probes"):
                continue
            dest = _component(target, components)
            assert dest is not None, f"{module} imports {target}, which belongs to no component"
            if dest != source:
                found.setdefault((source, dest), f"{module} imports {target}")
    return found


def test_imports_follow_the_arrows_of_docs_design() -> None:
    """Every import between components is an arrow of docs/design.md, and every arrow is used."""
    components, arrows = _declared()
    actual = _actual_arrows(components)
    undeclared = [why for (a, b), why in sorted(actual.items()) if b not in arrows[a]]
    assert not undeclared, "imports against docs/design.md's arrows: " + "; ".join(undeclared)
    unused = sorted(f"{a} -> {b}" for a, tos in arrows.items() for b in tos if (a, b) not in actual)
    assert not unused, "arrows in docs/design.md no module uses: " + ", ".join(unused)


def test_the_declared_arrows_have_no_cycle() -> None:
    """The components of docs/design.md form layers: no import cycle between them."""
    _, arrows = _declared()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "cycle: " + " -> ".join((*path, name))
        if name in done:
            return
        for target in arrows.get(name, ()):
            visit(target, (*path, name))
        done.add(name)

    for name in arrows:
        visit(name, ())
