"""bank_total: the sum over all accounts never changes, on any node."""

from __future__ import annotations

from checker.core.bank import bank_total
from checker.core.history import BankObservation


def test_totals_equal_to_the_invariant_are_clean() -> None:
    """Observed and final totals equal to the invariant give nothing."""
    obs = [BankObservation("mysql-0", 1, 500), BankObservation("mysql-1", 2, 500)]
    assert bank_total(obs, {"mysql-0": 500, "mysql-1": 500}, expected=500) == []


def test_half_applied_transfer_shows_on_its_node() -> None:
    """A total off by one side of a transfer is reported with its node, time and delta."""
    obs = [
        BankObservation("mysql-1", 3, 470, "s1"),
        BankObservation("mysql-0", 2, 500),
        BankObservation("mysql-1", 1, 500),
    ]
    found = bank_total(obs, {"mysql-0": 500, "mysql-1": 470, "mysql-2": None}, expected=500)
    assert [
        (x.node, x.evidence["when"], x.evidence["time"], x.evidence["delta"]) for x in found
    ] == [
        ("mysql-1", "during", 3, -30),
        ("mysql-1", "final", None, -30),
    ]
    assert found[0].evidence["server"] == "s1"
