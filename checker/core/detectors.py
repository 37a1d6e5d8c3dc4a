"""The detector registry: which detector judges what, and `combine`, the one guard they run under.

Modelled on Elle's `checker/combine`: a list of named checks, each a detector bound to its input
by the driver that runs it, combined into one run. Every check runs under the same guard: one
that raises becomes a `Failure` naming it (the verdict is then at best unknown), never a crash
of the caller and never the loss of the other checks' findings.

Three drivers feed the same detectors, each its own way: `checker.core.analysis` (a whole
history in memory, or one id range at a time), the live verdict (`checker.live`: a window of
recent acknowledgements and reads) and verification's journal checks (`checker.verify`:
streamed from the journal's SQLite). All of them run the detectors through `combine` (or a
`Findings` step, for one whose input depends on the previous step's result).

| name | module | finds | judges |
|---|---|---|---|
| `match_rows` | `ledger` | (a step) | a node's rows against the writes acknowledged there |
| `lost`, `duplicated`, `corrupted`, `unexpected` | `ledger` | its type | the match |
| `recovered` | `ledger` | recoveries | the match |
| `errant`, `divergent` | `replicas` | its type | a replica against the primary |
| `split_brain` | `primaries` | its type | the acknowledgements (journal) |
| `stale`, `non_monotonic` | `replicas` | its type | the reads and acknowledgements (journal) |
| `bank_total` | `bank` | its type | bank observations (journal) and final totals |

The journal's detectors (`JOURNAL_TYPES`) need no server: `journal_checks` lists them, so a
driver binds every one of them or says (with None) why one does not apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from checker.core.verdict import Anomaly, Failure

__all__ = ["JOURNAL_TYPES", "Check", "Findings", "combine", "journal_checks"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

JOURNAL_TYPES = ("split_brain", "stale", "non_monotonic", "bank_total")
"""Anomaly types judged from the journal alone (acknowledgements, reads, bank observations):
found even when no server can be read. Each is also the name of its detector."""

Check = tuple[str, Callable[[], Iterable[Anomaly]]]
"""A detector by name, bound to its input: `("stale", lambda: replicas.stale(acked, reads))`."""


@dataclass(slots=True)
class Findings:
    """What the checks of one analysis found so far, and which of them failed and why."""

    anomalies: list[Anomaly] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def step(
        self, name: str, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T | None:
        """`fn(*args, **kwargs)`, or None with a `Failure` named `name` if it raised."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the guard: a crash is recorded, not raised
            # Any bug or bad input in one detector must turn into "unknown", never into "valid"
            # and never into a crash of the checker that would lose the other detectors' findings.
            self.failures.append(Failure(name, f"{type(exc).__name__}: {exc}"))
            return None

    def run(
        self,
        name: str,
        fn: Callable[_P, Iterable[Anomaly]],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> None:
        """Run one detector under the guard and keep what it found."""
        found = self.step(name, fn, *args, **kwargs)
        if found is not None:
            self.anomalies.extend(found)


def combine(checks: Iterable[Check], into: Findings | None = None) -> Findings:
    """Run every check in order, each under the guard; add to `into` (else new findings)."""
    out = Findings() if into is None else into
    for name, check in checks:
        out.run(name, check)
    return out


def journal_checks(
    *,
    split_brain: Callable[[], Iterable[Anomaly]],
    stale: Callable[[], Iterable[Anomaly]],
    non_monotonic: Callable[[], Iterable[Anomaly]],
    bank_total: Callable[[], Iterable[Anomaly]] | None,
) -> list[Check]:
    """The journal's detectors, each bound by the caller to its input, in `JOURNAL_TYPES`
    order; `bank_total` is None when the bank workload did not run (or saw nothing new)."""
    bound = {
        "split_brain": split_brain,
        "stale": stale,
        "non_monotonic": non_monotonic,
        "bank_total": bank_total,
    }
    return [(name, check) for name in JOURNAL_TYPES if (check := bound[name]) is not None]
