"""Detector for the bank workload: transfers between accounts never change the total.

Each transfer moves money between two accounts in one transaction, so every consistent read of
the sum over all accounts, on any node, at any time, must show the invariant total. A transfer
applied by half (one side only) shows as a total that differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from checker.core.history import BankObservation
from checker.core.verdict import Anomaly

__all__ = ["bank_total"]


def bank_total(
    observations: Iterable[BankObservation],
    final_totals: Mapping[str, int | None],
    *,
    expected: int,
) -> list[Anomaly]:
    """One anomaly per observed or final total that differs from `expected`.

    `final_totals` maps a node to its total at the end of the run (None: not read, skipped).
    """
    found = [
        Anomaly(
            "bank_total",
            o.node,
            None,
            None,
            {
                "when": "during",
                "time": o.time,
                "total": o.total,
                "expected": expected,
                "delta": o.total - expected,
                "server": o.server,
            },
        )
        for o in sorted(observations, key=lambda o: (o.node, o.time, o.total, o.server or ""))
        if o.total != expected
    ]
    found.extend(
        Anomaly(
            "bank_total",
            node,
            None,
            None,
            {
                "when": "final",
                "time": None,
                "total": total,
                "expected": expected,
                "delta": total - expected,
                "server": None,
            },
        )
        for node, total in sorted(final_totals.items())
        if total is not None and total != expected
    )
    return found
