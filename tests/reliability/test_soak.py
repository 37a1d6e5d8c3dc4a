"""A ten-minute soak (excluded by default; `pytest -m soak`): memory and descriptors stay flat."""

from __future__ import annotations

import pytest

from bench.soak import soak


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_memory_and_descriptors_stay_flat() -> None:
    """Ten minutes of ledger + bank with periodic verifications grow neither RSS nor fds."""
    flat, summary = soak(600, 10)
    assert flat, summary
