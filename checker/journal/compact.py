"""Retention: fold what a verification vouched for into compact aggregates, delete the raw
rows, and let SQLite reuse the space.

What may be folded. After every verification that judged every node (its merged verdict
`valid` or `invalid`, not `unknown`) the service journals a *watermark* (`watermarks`: the
verification's start and the highest attempt id journaled before it began; every such
attempt's row was committed before the verification read the primary's horizon, so the chunk
pass covered it). The attempts an `invalid` verification's anomalies name (by writer and seq)
are pinned (`pins`) first and never folded: the finding's evidence (in `verifications`) and the
attempts it concerns stay, and every later verification names them again in full. So a finding
does not stop retention (the disk would fill within days of one), and an `unknown`
verification vouches for nothing. Compaction
folds attempts with ids up to the last watermark, but only those older than `cut - margin`
(`cut`: the watermark's start, and at most `now - keep`), so the reads still journaled find
the acknowledgements they could have missed; reads, bank, lag and semi-sync samples older than
`cut` are deleted (lag folded per second first). Nothing newer than `keep` seconds is touched:
the live detectors keep their window in memory, and a restart needs only the reservations and
the folded seqs.

What is folded: acknowledged attempts with a row id and a payload hash, the bulk of any
journal. Every other attempt (failed, indeterminate, an acknowledgement without a row id) stays
raw, so a row found for it later is still judged by its journaled outcome.

What replaces them (`checker.journal.schema`): per grain of row ids, the count and XOR of the
folded rows' CRC32 text (what the expectations compute: folded grains are authoritative), a
bitmap of their row ids and their first and last acknowledgement; outcome totals with the crash
window's seqs counted as indeterminate, and those seqs themselves (`folded_window`); per writer
the highest folded seq; per server identity its acknowledgements and first and last one (split
brain); the report's per node/server/outcome summary and per-second write and lag aggregates.
`JournalReader` adds these to every answer. The verifier judges the rows of folded writes
against their grains as a whole (`checker.core.ledger.folded`): a vanished row is `lost`, named
by its row id (its writer and seq are no longer journaled); a row rewritten whole makes its
grain `corrupted`.

Space: each batch is one transaction; deleted pages go to SQLite's free list and are reused by
later inserts, so the file stops growing at its high-water mark without a VACUUM (which would
copy the whole journal and block the writers). Journals created by this version use
`auto_vacuum=INCREMENTAL`, and compaction then returns free pages to the file system with
`PRAGMA incremental_vacuum`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from checker import _logging
from checker.journal.reader import _ATTEMPT_COLUMNS, _ROW_TEXT, _WHEN, crc_xor, ensure_math
from checker.journal.schema import (
    FOLD_BINS_PER_DECADE,
    FOLD_GRAIN,
    FOLD_MIN_LATENCY,
    metadata,
)

if TYPE_CHECKING:
    from checker.journal.writer import Journal

log = _logging.get("checker.journal")

BATCH = 100_000
"""Attempts folded per transaction."""
MARGIN = 300.0
"""Seconds of attempts kept before the oldest kept read (what a stale read could have missed)."""
NO_BIN = -(2**31)
"""`folded_writes.bin` of attempts without a latency (a NULL cannot be part of a key)."""


@dataclass(frozen=True)
class Compaction:
    """What one compaction did."""

    attempts: int
    samples: int
    folded_id: int
    before: float | None
    seconds: float


def compact(
    journal: Journal | Path,
    *,
    keep: float = 3600.0,
    now: float | None = None,
    margin: float = MARGIN,
    batch: int = BATCH,
) -> Compaction:
    """Fold and delete what the last watermark allows (module docstring). Safe to run while
    the checker writes: each batch is one short transaction next to the flusher's. An older
    journal gets the retention tables first."""
    started = time.monotonic()
    now = time.time() if now is None else now
    path = journal if isinstance(journal, Path) else journal.path
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
    finally:
        engine.dispose()
    db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout=30000")
        ensure_math(db)
        mark = db.execute(
            "SELECT attempt_id, started FROM watermarks ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if mark is None:
            return Compaction(0, 0, _folded_id(db), None, time.monotonic() - started)
        cut = min(float(mark[1]), now - keep)
        upto = min(int(mark[0]), _first_id_at(db, cut - margin) - 1)
        lo = _folded_id(db)
        db.execute("BEGIN IMMEDIATE")
        try:
            _set_folded(db, None, None)
            _pin(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        folded = 0
        while lo < upto:
            hi = min(upto, lo + batch)
            db.execute("BEGIN IMMEDIATE")
            try:
                _set_folded(db, None, None)
                folded += _fold_attempts(db, lo, hi)
                _set_folded(db, hi, None)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            lo = hi
        samples = _fold_samples(db, cut)
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
            db.execute("PRAGMA incremental_vacuum")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        result = Compaction(folded, samples, lo, cut, time.monotonic() - started)
    finally:
        db.close()
    log.info(
        "journal_compacted",
        attempts=result.attempts,
        samples=result.samples,
        folded_id=result.folded_id,
        seconds=round(result.seconds, 3),
    )
    return result


def _folded_id(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT attempt_id FROM folded WHERE id = 1").fetchone()
    return 0 if row is None else int(row[0])


def _pin(db: sqlite3.Connection) -> None:
    """Add the attempts that the anomalies of verifications journaled since the last
    compaction name (by writer and seq) to `pins`: they are never folded, so their evidence
    (the attempt, its acknowledgement, its server) stays, and every later verification names
    them again in full. Each verification is read once (`folded.pinned_upto`)."""
    (upto,) = db.execute("SELECT pinned_upto FROM folded WHERE id = 1").fetchone()
    last = int(upto)
    for vid, verdict in db.execute(
        "SELECT id, verdict FROM verifications WHERE id > ? AND valid != 'true' ORDER BY id",
        (last,),
    ).fetchall():
        try:
            anomalies = json.loads(verdict).get("anomalies") or ()
        except (ValueError, AttributeError):
            anomalies = ()
        db.executemany(
            "INSERT OR IGNORE INTO pins VALUES (?, ?)",
            [
                (str(a["writer_id"]), int(a["seq"]))
                for a in anomalies
                if isinstance(a, dict)
                and a.get("writer_id") is not None
                and isinstance(a.get("seq"), int)
            ],
        )
        last = max(last, int(vid))
    (newest,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM verifications").fetchone()
    db.execute("UPDATE folded SET pinned_upto = ? WHERE id = 1", (max(last, int(newest)),))


def _first_id_at(db: sqlite3.Connection, t: float) -> int:
    """The lowest attempt id at or after time `t` (ids grow with time, so the scan in id order
    stops early); one past the last attempt if none."""
    row = db.execute(
        f"SELECT id FROM attempts WHERE {_WHEN} >= ? ORDER BY id LIMIT 1", (t,)
    ).fetchone()
    if row is not None:
        return int(row[0])
    return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM attempts").fetchone()[0]) + 1


def _set_folded(db: sqlite3.Connection, attempt_id: int | None, before: float | None) -> None:
    db.execute(
        "INSERT INTO folded (id, attempt_id, before, total, ok, compactions) "
        "VALUES (1, 0, 0, 0, 0, 0) ON CONFLICT (id) DO NOTHING"
    )
    if attempt_id is not None:
        db.execute(
            "UPDATE folded SET attempt_id = ?, compactions = compactions + 1 WHERE id = 1",
            (attempt_id,),
        )
    if before is not None:
        db.execute("UPDATE folded SET before = MAX(before, ?) WHERE id = 1", (before,))


_FOLDABLE = (
    "outcome = 'ok' AND row_id IS NOT NULL AND payload_sha256 IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM pins WHERE pins.writer_id = attempts.writer_id AND pins.seq = attempts.seq)"
)
"""The attempts retention folds: acknowledged ones with a row id and a payload hash, which a
folded grain can stand for, that no anomaly names (`pins`). Every other attempt (failed,
indeterminate, an acknowledgement without a row id, a pinned one) stays raw: the verifier still
needs it to judge a row it finds, or to name a finding in full."""


def _fold_attempts(db: sqlite3.Connection, lo: int, hi: int) -> int:
    """Fold the foldable attempts with ids in lo+1..hi into the folded tables and delete them."""
    span = "FROM attempts WHERE id > ? AND id <= ?"
    fold = f"{span} AND {_FOLDABLE}"
    ok, first, last = db.execute(
        f"SELECT COUNT(*), MIN(CASE WHEN invoke_wall > 0 THEN invoke_wall END), MAX({_WHEN}) "
        f"{fold}",
        (lo, hi),
    ).fetchone()
    window = _fold_writers(db, lo, hi)
    if not ok and not window:
        return 0
    db.execute(
        "UPDATE folded SET total = total + ?, ok = ok + ?, "
        "first = MIN(COALESCE(first, ?), COALESCE(?, first)), "
        "last = MAX(COALESCE(last, ?), COALESCE(?, last)) WHERE id = 1",
        (int(ok) + window, int(ok), first, first, last, last),
    )
    _fold_grains(db, lo, hi)
    _fold_servers(db, lo, hi)
    db.execute(
        "INSERT INTO folded_groups SELECT COALESCE(node, '?'), COALESCE(server, ''), outcome, "
        f"COUNT(*), MIN(invoke_wall), MAX({_WHEN}), MIN(complete_wall), MAX(complete_wall) "
        f"{fold} AND invoke_wall > 0 GROUP BY 1, 2, 3 "
        "ON CONFLICT (node, server, outcome) DO UPDATE SET n = n + excluded.n, "
        f"first = {_least('first')}, last = {_most('last')}, "
        f"first_ack = {_least('first_ack')}, last_ack = {_most('last_ack')}",
        (lo, hi),
    )
    db.execute(
        "INSERT INTO folded_writes SELECT CAST(w AS INTEGER), outcome, "
        f"COALESCE(CAST(FLOOR(? * LOG10(MAX(lat, ?))) AS INTEGER), {NO_BIN}) AS bin, "
        f"COUNT(*), MAX(lat) FROM (SELECT outcome, {_WHEN} AS w, "
        "COALESCE(complete_mono - invoke_mono, complete_wall - invoke_wall) AS lat "
        f"{fold} AND invoke_wall > 0) GROUP BY 1, 2, 3 "
        "ON CONFLICT (second, outcome, bin) DO UPDATE SET n = n + excluded.n, "
        f"top = {_most('top')}",
        (FOLD_BINS_PER_DECADE, FOLD_MIN_LATENCY, lo, hi),
    )
    db.execute(f"DELETE {fold}", (lo, hi))
    return int(ok)


def _fold_writers(db: sqlite3.Connection, lo: int, hi: int) -> int:
    """Per writer of attempts lo+1..hi: raise its highest folded seq to the span's highest, and
    record the seqs below it that no attempt anywhere has (reserved, never journaled: the crash
    window) in `folded_window`, so that a row found for one is still judged a recovered
    indeterminate write, not a folded acknowledged one. Returns how many were recorded."""
    window = 0
    for writer, highest in db.execute(
        "SELECT writer_id, MAX(seq) FROM attempts WHERE id > ? AND id <= ? GROUP BY writer_id",
        (lo, hi),
    ).fetchall():
        row = db.execute("SELECT seq FROM folded_writers WHERE writer_id = ?", (writer,)).fetchone()
        before = 0 if row is None else int(row[0])
        top = max(before, int(highest))
        if top > before:
            seen = {
                int(s)
                for (s,) in db.execute(
                    "SELECT seq FROM attempts WHERE writer_id = ? AND seq > ? AND seq <= ?",
                    (writer, before, top),
                )
            }
            missing = [(writer, s) for s in range(before + 1, top + 1) if s not in seen]
            db.executemany("INSERT OR IGNORE INTO folded_window VALUES (?, ?)", missing)
            window += len(missing)
        db.execute(
            "INSERT INTO folded_writers VALUES (?, ?) ON CONFLICT (writer_id) DO UPDATE SET "
            "seq = MAX(seq, excluded.seq)",
            (writer, top),
        )
    return window


def _least(col: str) -> str:
    return f"MIN(COALESCE({col}, excluded.{col}), COALESCE(excluded.{col}, {col}))"


def _most(col: str) -> str:
    return f"MAX(COALESCE({col}, excluded.{col}), COALESCE(excluded.{col}, {col}))"


def _fold_grains(db: sqlite3.Connection, lo: int, hi: int) -> None:
    """Per grain: count and XOR of the CRC32 row text (exactly `JournalReader.expected`'s), a
    bitmap of the row ids, and the first and last acknowledgement."""
    found: dict[int, tuple[list[str], list[int], list[float]]] = {}
    for row_id, text, acked in db.execute(
        f"SELECT row_id, {_ROW_TEXT}, complete_wall FROM attempts WHERE id > ? AND id <= ? "
        f"AND {_FOLDABLE}",
        (lo, hi),
    ):
        texts, ids, times = found.setdefault(int(row_id) // FOLD_GRAIN, ([], [], []))
        texts.append(text)
        ids.append(int(row_id) % FOLD_GRAIN)
        if acked is not None:
            times.append(float(acked))
    for g, (texts, ids, times) in found.items():
        x = crc_xor(texts)
        known = db.execute(
            "SELECT n, x, ids, first, last FROM folded_grains WHERE grain = ?", (g,)
        ).fetchone()
        bits = bytearray(known[2]) if known is not None else bytearray(FOLD_GRAIN // 8)
        for i in ids:
            bits[i // 8] |= 1 << (i % 8)
        first = min(times, default=None)
        last = max(times, default=None)
        n = len(texts)
        if known is not None:
            n, x = n + int(known[0]), x ^ int(known[1])
            first = min((t for t in (first, known[3]) if t is not None), default=None)
            last = max((t for t in (last, known[4]) if t is not None), default=None)
        db.execute(
            "INSERT OR REPLACE INTO folded_grains VALUES (?, ?, ?, ?, ?, ?)",
            (g, n, x, bytes(bits), first, last),
        )
    if found:
        low, high = db.execute(
            "SELECT MIN(row_id), MAX(row_id) FROM attempts "
            f"WHERE id > ? AND id <= ? AND {_FOLDABLE}",
            (lo, hi),
        ).fetchone()
        db.execute(
            "UPDATE folded SET row_lo = MIN(COALESCE(row_lo, ?), ?), "
            "row_hi = MAX(COALESCE(row_hi, ?), ?) WHERE id = 1",
            (low, low, high, high),
        )


def _fold_servers(db: sqlite3.Connection, lo: int, hi: int) -> None:
    """Per server identity: acknowledgements, and the first and last one (split brain)."""
    ok = f"FROM attempts WHERE id > ? AND id <= ? AND {_FOLDABLE} AND server = ?"
    for (server,) in db.execute(
        f"SELECT DISTINCT server FROM attempts WHERE id > ? AND id <= ? AND {_FOLDABLE} "
        "AND server IS NOT NULL",
        (lo, hi),
    ).fetchall():
        first = db.execute(
            f"SELECT MIN(complete_wall), COUNT(*), {_ATTEMPT_COLUMNS} {ok}", (lo, hi, server)
        ).fetchone()
        last = db.execute(
            f"SELECT MAX(complete_wall), {_ATTEMPT_COLUMNS} {ok}", (lo, hi, server)
        ).fetchone()
        acks, first_row, last_row = int(first[1]), list(first[2:]), list(last[1:])
        known = db.execute(
            "SELECT acks, first, last FROM folded_servers WHERE server = ?", (server,)
        ).fetchone()
        if known is not None:
            acks += int(known[0])
            old_first, old_last = json.loads(known[1]), json.loads(known[2])
            if _when(old_first) <= _when(first_row):
                first_row = old_first
            if _when(old_last) > _when(last_row):
                last_row = old_last
        db.execute(
            "INSERT OR REPLACE INTO folded_servers VALUES (?, ?, ?, ?)",
            (server, acks, json.dumps(first_row), json.dumps(last_row)),
        )


def _when(row: list[Any]) -> float:
    return float(row[5] if row[5] is not None else row[4])


def _fold_samples(db: sqlite3.Connection, cut: float) -> int:
    """Lag per second and node into `folded_lag`; reads, bank, lag and semi-sync samples
    older than `cut` deleted, one transaction per table."""
    deleted = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT INTO folded_lag SELECT CAST(time AS INTEGER), node, MAX(seconds), "
            "SUM(seconds IS NULL) FROM lag WHERE time < ? GROUP BY 1, 2 "
            "ON CONFLICT (second, node) DO UPDATE SET worst = "
            f"{_most('worst')}, unknown = unknown + excluded.unknown",
            (cut,),
        )
        _set_folded(db, None, cut)
        deleted += db.execute("DELETE FROM lag WHERE time < ?", (cut,)).rowcount
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    for table in ("reads", "bank", "semi_sync"):
        deleted += db.execute(f"DELETE FROM {table} WHERE time < ?", (cut,)).rowcount
    return deleted
