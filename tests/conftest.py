"""Shared fixtures: labs of real MariaDB/MySQL servers started by the tests themselves."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checker.errors import CheckerError
from checker.lab._server import detect
from checker.lab.topology import Lab


def start_lab(directory: Path, **options: object) -> Lab:
    lab = Lab(directory)
    lab.up(**options)  # type: ignore[arg-type]
    return lab


def module_lab(name: str, **options: object) -> Any:
    """A module-scoped `lab` fixture of its own shape, e.g. `lab = module_lab("semi",
    replicas=1, semi_sync=True)` in a test module: started once, purged after the module."""

    @pytest.fixture(scope="module")
    def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
        started = start_lab(tmp_path_factory.mktemp(name), **options)
        try:
            yield started
        finally:
            started.down(purge=True)

    return lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A 3-node lab (mysql-0 primary, two replicas) shared by one test module."""
    lab = start_lab(tmp_path_factory.mktemp("lab"), replicas=2)
    try:
        yield lab
    finally:
        lab.down(purge=True)


# -- markers --------------------------------------------------------------------------------------
# A test needs a server when it, or any fixture it uses (directly or through other fixtures),
# starts a lab: `pytest -m "not lab"` then runs everything else in seconds.
_STARTS_A_LAB = re.compile(r"start_lab\(|\.up\(|\"lab\",\s*\"up\"")


def _source(func: object) -> str:
    try:
        return inspect.getsource(func)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return ""


def _needs_a_server(item: pytest.Item) -> bool:
    # a soak runs the bench's own lab; `-m "not lab"` replaces the default `-m "not soak"`
    if item.get_closest_marker("lab") or item.get_closest_marker("soak"):
        return True
    funcs = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:
        funcs += [d.func for defs in info.name2fixturedefs.values() for d in defs]
    return any(_STARTS_A_LAB.search(_source(f)) for f in funcs if f is not None)


def _lab_server_flavor() -> str | None:
    """The flavor of the server binary the labs will start (None: no binary found)."""
    try:
        return detect().name
    except CheckerError:
        return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs a server `lab` (and put it in the `lab` xdist group); skip
    `mariadb_only` tests on a MySQL lab."""
    flavor: str | None = None
    for item in items:
        if _needs_a_server(item):
            item.add_marker(pytest.mark.lab)
            # `make test` runs on two workers with `--dist loadgroup`: every lab test in one
            # worker, in order (a module's lab is started once, and two labs never compete),
            # while the other worker takes the tests that need no server.
            item.add_marker(pytest.mark.xdist_group("lab"))
        only = item.get_closest_marker("mariadb_only")
        if only is None:
            continue
        if flavor is None:
            flavor = _lab_server_flavor() or "mariadb"
        if flavor != "mariadb":
            why = only.kwargs.get("reason") or (only.args[0] if only.args else "")
            item.add_marker(pytest.mark.skip(reason=f"MariaDB only: {why}"))
