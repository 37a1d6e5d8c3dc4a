"""Semi-sync windows: was the primary acknowledging writes only after a replica had them?

MySQL's and MariaDB's semi-synchronous replication makes a commit wait until a replica has
received it, until `rpl_semi_sync_source_timeout` (`..._master_timeout`) passes without an
acknowledgement: then the primary silently falls back to asynchronous replication, and a
failover may lose what it acknowledged meanwhile. A sampler records the primary's state
(`Rpl_semi_sync_source_status` / `Rpl_semi_sync_master_status` and the `..._no_tx` counter);
this module turns those samples into windows and tells, for an acknowledged write, which
window it was acknowledged in:

- `on`: semi-sync was on at both samples around the ack and no commit went unacknowledged
  by a replica in between (`no_tx` unchanged): the write had reached a replica;
- `off`: semi-sync was off (or not enabled) at a sample around the ack, or some commit in
  between was acknowledged without a replica: the write may exist on the primary only;
- `unknown`: no samples of that server around the ack (unreachable, not sampled, a gap).

Pure: samples in, windows and annotated verdicts out.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from checker.core.verdict import Anomaly, Verdict

__all__ = [
    "MAX_GAP",
    "STATES",
    "Sample",
    "Window",
    "WindowIndex",
    "annotate",
    "between",
    "parse_status",
    "windows",
]

STATES = ("on", "off", "unknown")

MAX_GAP = 12.0
"""Seconds between two recorded samples beyond which the sampler is not trusted to have
watched in between (it records at least every 5 s, and on every change)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """The primary's semi-sync state at `time`, as the sampler saw it through the writer
    endpoint. `active` None: the server could not be asked (then the counters are None too)."""

    time: float
    server: str | None
    enabled: bool | None
    active: bool | None
    clients: int | None = None
    yes_tx: int | None = None
    no_tx: int | None = None

    @property
    def state(self) -> str:
        if self.active is None:
            return "unknown"
        return "on" if self.active and self.enabled is not False else "off"


@dataclass(frozen=True, slots=True)
class Window:
    """`start..end` (wall-clock seconds) on `server` in one state."""

    start: float
    end: float
    server: str | None
    state: str

    def to_dict(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "server": self.server, "state": self.state}


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().upper() in ("ON", "1", "YES", "TRUE")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_status(
    status: Mapping[str, str], variables: Mapping[str, str]
) -> tuple[bool, bool, int | None, int | None, int | None]:
    """(enabled, active, clients, yes_tx, no_tx) from `SHOW GLOBAL STATUS LIKE
    'Rpl_semi_sync%'` and `SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'`.

    MySQL 8.4 names them `..._source_...` (8.0.26+ with the new plugin), MariaDB and older
    MySQL `..._master_...`. No such variables: the plugin is not loaded, semi-sync is off.
    """
    s = {k.lower(): v for k, v in status.items()}
    v = {k.lower(): val for k, val in variables.items()}

    def pick(table: Mapping[str, str], suffix: str) -> str | None:
        for side in ("source", "master"):
            key = f"rpl_semi_sync_{side}_{suffix}"
            if key in table:
                return table[key]
        return None

    enabled = bool(_flag(pick(v, "enabled")))
    active = bool(_flag(pick(s, "status")))
    return (
        enabled,
        active,
        _int(pick(s, "clients")),
        _int(pick(s, "yes_tx")),
        _int(pick(s, "no_tx")),
    )


def between(a: Sample, b: Sample, max_gap: float) -> str:
    """The state of the interval between two consecutive samples."""
    if a.server != b.server or b.time - a.time > max_gap:
        return "unknown"
    if a.active is None or b.active is None:
        return "unknown"
    if a.state == "on" and b.state == "on":
        if a.no_tx is not None and b.no_tx is not None and b.no_tx != a.no_tx:
            return "off"  # a commit was acknowledged without a replica in between
        return "on"
    return "off"


def windows(samples: Iterable[Sample], *, max_gap: float = MAX_GAP) -> list[Window]:
    """Consecutive samples (by time) as windows, adjacent ones of the same state merged."""
    ordered = sorted(samples, key=lambda s: s.time)
    out: list[Window] = []
    for a, b in itertools.pairwise(ordered):
        state = between(a, b, max_gap)
        server = a.server if a.server == b.server else None
        last = out[-1] if out else None
        if last is not None and last.state == state and last.server == server:
            out[-1] = replace(last, end=b.time)
        else:
            out.append(Window(a.time, b.time, server, state))
    return out


class WindowIndex:
    """Windows per server, for looking up the state at an ack time."""

    def __init__(self, found: Sequence[Window]) -> None:
        self._by_server: dict[str | None, tuple[list[float], list[Window]]] = {}
        for w in sorted(found, key=lambda w: w.start):
            starts, ws = self._by_server.setdefault(w.server, ([], []))
            starts.append(w.start)
            ws.append(w)

    def __bool__(self) -> bool:
        return bool(self._by_server)

    def state(self, server: str | None, at: float) -> str:
        """`on`, `off` or `unknown` for a write acknowledged by `server` at `at`."""
        found = self._by_server.get(server)
        if found is None:
            return "unknown"
        starts, ws = found
        i = bisect.bisect_right(starts, at) - 1
        # An ack exactly on a boundary belongs to both windows: the less reassuring one wins.
        candidates = [w for w in ws[max(0, i - 1) : i + 1] if w.start <= at <= w.end]
        if not candidates:
            return "unknown"
        states = {w.state for w in candidates}
        return next(s for s in ("off", "unknown", "on") if s in states)


def annotate(verdict: Verdict, index: WindowIndex) -> Verdict:
    """The verdict with `evidence.semi_sync` on each `lost` example that says when it was
    acknowledged. Additive: counts and validity are unchanged (a write lost while semi-sync was
    off is still lost); without windows the verdict is returned as is."""
    if not index or not any(a.type == "lost" for a in verdict.anomalies):
        return verdict
    changed: list[Anomaly] = []
    for a in verdict.anomalies:
        at = a.when if a.type == "lost" else None
        known = a.evidence.get("semi_sync")
        # `unknown` may have been said before the samples around the ack were recorded (a
        # finding kept from an earlier cycle): a later, better-informed index may refine it.
        if at is not None and known in (None, "unknown"):
            state = index.state(a.server, at)
            if known is None or state != "unknown":
                a = replace(a, evidence={**a.evidence, "semi_sync": state})  # noqa: PLW2901
        changed.append(a)
    return replace(verdict, anomalies=tuple(changed))
