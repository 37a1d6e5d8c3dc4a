"""One lab shared by the verification tests that can undo what they break (promotions start
their own, see test_failover.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checker.lab.topology import Lab
from tests.conftest import start_lab
from tests.verify._support import heal


@pytest.fixture(scope="package")
def vlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A 3-node lab (mysql-0 primary, two replicas) for the whole tests/verify package."""
    lab = start_lab(tmp_path_factory.mktemp("vlab"), replicas=2)
    try:
        yield lab
    finally:
        lab.down(purge=True)


@pytest.fixture
def healthy(vlab: Lab) -> Iterator[Lab]:
    """The shared lab, healthy when the test starts and made healthy again after it."""
    heal(vlab)
    yield vlab
    heal(vlab)
