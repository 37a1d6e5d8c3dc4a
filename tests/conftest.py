"""Shared fixtures: labs of real MariaDB/MySQL servers started by the tests themselves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from checker.lab.topology import Lab


def start_lab(directory: Path, **options: object) -> Lab:
    lab = Lab(directory)
    lab.up(**options)  # type: ignore[arg-type]
    return lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A 3-node lab (mysql-0 primary, two replicas) shared by one test module."""
    lab = start_lab(tmp_path_factory.mktemp("lab"), replicas=2)
    try:
        yield lab
    finally:
        lab.down(purge=True)
