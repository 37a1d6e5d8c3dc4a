"""The journal's expected aggregates and outcome counts, cached next to the journal
(`<journal>.verify-cache`) and only brought up to date by later verifications: a journal is
append-only."""

from __future__ import annotations

import json
import zlib
from itertools import groupby
from typing import Any

from checker import _logging
from checker.journal import Journal
from checker.journal.reader import FETCH_BATCH, JournalReader, Outcomes
from checker.journal.schema import FOLD_GRAIN

log = _logging.get("checker.verify")  # one logger name for the whole verification

GRAIN = FOLD_GRAIN
"""Row ids per cached grain: chunks are whole grains, so the cache serves all but the last."""
_CACHE_KEY_VERSION = 1


class Cache:
    """The verifier's own SQLite file next to the journal (`<journal>.verify-cache`).

    What it keeps is derived from the journal alone, and a journal's attempts are only ever
    appended: a value computed for attempt ids up to `covered` is brought up to date with the
    attempts journaled since. Each part (`section`) is written in one transaction, and only if
    no other verification wrote that part meanwhile. Where the file cannot be used, nothing is
    kept and everything is computed from the journal, as the first time.
    """

    def __init__(self, journal: Journal) -> None:
        self.path = f"{journal.path}.verify-cache"
        info = journal.info
        self.key = f"{info.run_id}:{info.created_at!r}:{GRAIN}:{_CACHE_KEY_VERSION}"

    def _connect(self) -> Any:
        import sqlite3

        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS grains (grain INTEGER PRIMARY KEY, n INTEGER, x INTEGER)"
        )
        return conn

    def load(self, section: str) -> tuple[int | None, Any, Any]:
        """(covered, value, connection) of a section of this journal's cache; covered is None
        when there is none. The caller closes the connection (None if the file is unusable)."""
        try:
            conn = self._connect()
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except Exception as exc:  # noqa: BLE001 - no cache is only slower
            log.debug("verify_cache_unusable", path=self.path, error=str(exc))
            return None, None, None
        raw = meta.get(section)
        if meta.get("key") != self.key or raw is None:
            return None, None, conn
        stored = json.loads(raw)
        return int(stored["covered"]), stored.get("value"), conn

    def store(self, section: str, loaded: int | None, covered: int, value: Any, write: Any) -> None:
        """Store a section (and what `write(conn)` writes) if it is still at `loaded`."""
        try:
            conn = self._connect()
        except Exception as exc:  # noqa: BLE001 - no cache is only slower
            log.debug("verify_cache_unusable", path=self.path, error=str(exc))
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("key") != self.key:
                # Another journal's (or an older format's) cache: start this one afresh.
                conn.execute("DELETE FROM meta")
                conn.execute("DELETE FROM grains")
                meta = {}
            raw = meta.get(section)
            if (None if raw is None else int(json.loads(raw)["covered"])) != loaded:
                conn.execute("ROLLBACK")
                return
            write(conn)
            conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("key", self.key), (section, json.dumps({"covered": covered, "value": value}))],
            )
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written is skipped
            log.debug("verify_cache_not_saved", path=self.path, error=str(exc))
        finally:
            conn.close()


class Expectations:
    """The journal's expected aggregates per grain of `GRAIN` row ids, kept in the `Cache`
    between verifications and brought up to date with the attempts journaled since."""

    def __init__(self, db: JournalReader, journal: Journal) -> None:
        self.db = db
        self.upto = db.last_attempt_id()
        self.cache = Cache(journal)
        self.grains: dict[int, tuple[int, int]] = {}
        self.dirty: set[int] = set()
        self.loaded, _, conn = self.cache.load("grains")
        if conn is not None:
            try:
                if self.loaded is not None:
                    self.grains = {
                        int(g): (int(n), int(x)) for g, n, x in conn.execute("SELECT * FROM grains")
                    }
            finally:
                conn.close()
        self.reset = self.loaded is not None and self.loaded < db.folded.attempt_id
        if self.reset:
            # Retention deleted attempts the cache has not seen: the journal's folded grains
            # (which `JournalReader` adds) are the truth now, so start the grains afresh.
            self.grains = {}
        elif self.loaded is not None and self.loaded < self.upto:
            self._catch_up(self.loaded)

    def _catch_up(self, covered: int) -> None:
        """Fold the attempts journaled since into the grains already known."""
        cur = self.db.acked_texts(covered, self.upto)
        while batch := cur.fetchmany(FETCH_BATCH):
            for row_id, text in batch:
                grain = int(row_id) // GRAIN
                known = self.grains.get(grain)
                if known is not None:
                    self.grains[grain] = (known[0] + 1, known[1] ^ zlib.crc32(text.encode()))
                    self.dirty.add(grain)

    def get(self, lo: int, hi: int) -> tuple[int, int]:
        """(count, XOR) expected for ids lo..hi: whole grains from the cache (computed if
        missing), the partial grains at either end straight from the journal."""
        first = -(-lo // GRAIN)  # the first whole grain
        end = (hi + 1) // GRAIN  # one past the last whole grain
        if first >= end:
            return self.db.expected(lo, hi, self.upto)
        count, checksum = 0, 0
        for a, b in ((lo, first * GRAIN - 1), (end * GRAIN, hi)):
            if a <= b:
                n, x = self.db.expected(a, b, self.upto)
                count, checksum = count + n, checksum ^ x
        self._compute([g for g in range(first, end) if g not in self.grains])
        for grain in range(first, end):
            n, x = self.grains[grain]
            count, checksum = count + n, checksum ^ x
        return count, checksum

    def _compute(self, missing: list[int]) -> None:
        """Compute missing grains, one journal query per run of consecutive ones."""
        for _, run in groupby(enumerate(missing), key=lambda p: p[1] - p[0]):
            grains = [g for _, g in run]
            self.grains.update(dict.fromkeys(grains, (0, 0)))
            self.dirty.update(grains)
            lo, hi = grains[0] * GRAIN, (grains[-1] + 1) * GRAIN - 1
            self.grains.update(self.db.expected_grains(lo, hi, self.upto, GRAIN))

    def save(self) -> None:
        if not self.dirty and self.loaded == self.upto:
            return
        rows = [(g, *self.grains[g]) for g in sorted(self.dirty)]

        def write(conn: Any) -> None:
            if self.loaded is None or self.reset:
                conn.execute("DELETE FROM grains")
            conn.executemany("INSERT OR REPLACE INTO grains VALUES (?, ?, ?)", rows)

        self.cache.store("grains", self.loaded, self.upto, None, write)


def warm_cache(journal: Journal) -> None:
    """Bring `<journal>.verify-cache` up to date with what is journaled now.

    The service runs this in the background during a run, so that the verification at its end
    (and `checker verify` after it) reads only the last few seconds of the journal instead of
    all of it (the cold cost: ~2.5 CPU-s per million attempts)."""
    db = JournalReader(journal)
    try:
        cached_outcomes(db, journal)
        lo, hi = db.row_ids()
        if lo is not None and hi is not None and hi >= GRAIN:
            expect = Expectations(db, journal)
            # Whole grains only: the last, still filling, is computed at verification time.
            expect.get(0, (hi // GRAIN) * GRAIN - 1)
            expect.save()
    finally:
        db.close()


def cached_outcomes(db: JournalReader, journal: Journal) -> Outcomes:
    """Attempts by outcome and the identities that acknowledged any, from the `Cache` and
    the attempts journaled since it was stored."""
    cache = Cache(journal)
    upto = db.last_attempt_id()
    loaded, value, conn = cache.load("outcomes")
    if conn is not None:
        conn.close()
    if loaded is not None and loaded < db.folded.attempt_id:
        # Retention deleted attempts the cache has not counted: the folded totals stand in.
        value = None
    known: list[Any] = [0, 0, 0, []] if value is None else list(value)
    servers = set(known[3])
    after = -1 if loaded is None or value is None else loaded
    delta = db.outcomes(after, upto)
    servers |= db.servers(after, upto)
    total = Outcomes(
        int(known[0]) + delta.total,
        int(known[1]) + delta.ok,
        int(known[2]) + delta.failed,
        len(servers),
    )
    if loaded != upto:
        value = [total.total, total.ok, total.failed, sorted(servers)]
        cache.store("outcomes", loaded, upto, value, lambda _conn: None)
    return total
