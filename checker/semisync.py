"""The semi-sync sampler: the primary's semi-sync state, watched off the write path.

One thread asks the writer endpoint every `interval` (0.25 s) for `SHOW GLOBAL STATUS LIKE
'Rpl_semi_sync%'`, and every `keepalive` (and on each new connection) for `SHOW GLOBAL
VARIABLES LIKE 'rpl_semi_sync%'` (neither needs a privilege).
It journals a sample (table `semi_sync`) whenever the state, the server, the number of
semi-sync replicas or the count of commits acknowledged without a replica (`..._no_tx`)
changes — together with the last unchanged sample before the change, so a window ends where
it was last seen — and at least every `keepalive` seconds. Writers are never touched: which
window a write was acknowledged in is decided at analysis time (`checker.core.semisync`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from checker import _logging
from checker.core.history import Span
from checker.core.semisync import (
    MAX_GAP,
    Sample,
    Window,
    WindowIndex,
    between,
    parse_status,
    windows,
)
from checker.journal import Journal, JournalReader
from checker.mysql import Endpoint
from checker.workload import Loop

log = _logging.get("checker.semisync")

INTERVAL = 0.25
KEEPALIVE = 5.0


class SemiSyncSampler(Loop):
    """Samples the primary's semi-sync state through the writer endpoint."""

    def __init__(
        self,
        endpoint: Endpoint,
        journal: Journal,
        stop: threading.Event,
        acked: Callable[[], int],
        *,
        interval: float = INTERVAL,
        keepalive: float = KEEPALIVE,
        memory: int = 20000,
    ) -> None:
        super().__init__("semi-sync", endpoint, stop)
        self.journal = journal
        self.acked = acked
        self.interval = interval
        self.keepalive = keepalive
        self.samples: deque[Sample] = deque(maxlen=memory)
        self.current: Sample | None = None
        self.acked_by_state = {"on": 0, "off": 0, "unknown": 0}
        self._lock = threading.Lock()
        self._last_recorded: Sample | None = None
        self._held: Sample | None = None
        self._last: Sample | None = None
        self._last_acked: int | None = None
        self._variables: dict[str, str] = {}
        self._variables_at = 0.0

    def connect(self) -> bool:
        ok = super().connect()
        if not ok:
            self.observe(Sample(time.time(), None, None, None))
        return ok

    def on_connect(self, info: Any) -> None:
        self._variables_at = 0.0  # a new connection may be another server: ask again

    def step(self) -> None:
        now = time.monotonic()
        with self.conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%'")
            status = {str(k): str(v) for k, v in cur.fetchall()}
            if now - self._variables_at >= self.keepalive:
                # Whether semi-sync is enabled changes rarely: asked every keepalive only.
                cur.execute("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'")
                self._variables = {str(k): str(v) for k, v in cur.fetchall()}
                self._variables_at = now
        enabled, active, clients, yes_tx, no_tx = parse_status(status, self._variables)
        server = self.info.identity if self.info else None
        self.observe(Sample(time.time(), server, enabled, active, clients, yes_tx, no_tx))
        self.stop.wait(self.interval)

    def observe(self, s: Sample) -> None:
        """Take one sample: count the writes acknowledged since the last one, journal it if
        it changes anything (or keeps the record alive)."""
        acked = self.acked()
        with self._lock:
            last = self._last
            if last is not None and self._last_acked is not None:
                state = between(last, s, MAX_GAP)
                self.acked_by_state[state] += max(0, acked - self._last_acked)
            self._last, self._last_acked, self.current = s, acked, s
            prev = self._last_recorded
            if prev is None or _key(s) != _key(prev):
                if self._held is not None:
                    self._record(self._held)
                self._record(s)
                self._held = None
            elif s.time - prev.time >= self.keepalive:
                self._record(s)
                self._held = None
            else:
                self._held = s

    def _record(self, s: Sample) -> None:
        self._last_recorded = s
        self.samples.append(s)
        self.journal.record("semi_sync", _row(s))

    def finish(self) -> None:
        with self._lock:
            if self._held is not None:
                self._record(self._held)
                self._held = None

    def index(self) -> WindowIndex:
        """Windows of what was sampled so far (the samples kept in memory, and the latest)."""
        with self._lock:
            found = list(self.samples)
            if self._held is not None:
                found.append(self._held)
        return WindowIndex(windows(found))


def _key(s: Sample) -> tuple[Any, ...]:
    # While semi-sync is off every commit bumps no_tx: only a change of state matters then.
    return (s.server, s.enabled, s.active, s.clients, s.no_tx if s.state == "on" else None)


def _row(s: Sample) -> dict[str, Any]:
    return {
        "time": s.time,
        "server": s.server,
        "enabled": s.enabled,
        "active": s.active,
        "clients": s.clients,
        "yes_tx": s.yes_tx,
        "no_tx": s.no_tx,
    }


def journal_windows(journal: Journal) -> list[Window]:
    """The windows of a journal."""
    with JournalReader(journal) as reader:
        return windows(reader.semi_sync_samples())


def report_spans(samples: list[Sample]) -> list[Span]:
    """A journal's windows with semi-sync off, as shaded spans for the report's timeline;
    none for servers that never had semi-sync enabled (all asynchronous by configuration)."""
    enabled = {s.server for s in samples if s.enabled}
    spans = []
    for w in windows(samples):
        if w.server not in enabled:
            continue
        if w.state == "off":
            spans.append(
                Span(
                    name="semi-sync off: primary acknowledging without a replica",
                    kind="semi-sync-off",
                    start=w.start,
                    end=w.end,
                    source="checker",
                    detail=f"server {w.server}" if w.server else None,
                )
            )
    return spans
