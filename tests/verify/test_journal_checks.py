"""The journal-side checks of a verification, streamed in bounded windows, agree with the core's
detectors run on the whole history at once (no lab needed)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from checker import verify
from checker.core import bank, chunks, primaries, replicas
from checker.core.analysis import count_outcomes
from checker.core.history import Attempt, BankObservation, Outcome, Read
from checker.core.verdict import Anomaly
from checker.journal import Journal, JournalReader
from checker.verify import expectations, journal_checks

UUIDS = [f"{i}1111111-2222-3333-4444-555555555555" for i in range(3)]


def _key(a: Anomaly) -> tuple[str, str, str, int, str]:
    evidence = json.dumps(a.evidence, sort_keys=True, default=str)
    return (a.type, a.node or "", a.writer_id or "", -1 if a.seq is None else a.seq, evidence)


def same(found: list[Anomaly], expected: list[Anomaly]) -> bool:
    return sorted(map(_key, found)) == sorted(map(_key, expected))


def _history(rng: random.Random) -> tuple[list[Attempt], list[Read], list[BankObservation]]:
    """Four writers over three primaries whose acks overlap, reads that are sometimes stale and
    sometimes go back in time, some indeterminate and failed writes, a few bank totals."""
    attempts: list[Attempt] = []
    row_id = 0
    for w in range(4):
        writer = f"run1-1-{w}"
        t = 1000.0 + w * 0.01
        for seq in range(1, 301):
            t += rng.uniform(0.05, 0.35)
            # Each writer moves on at its own time: the identities' ack intervals overlap.
            server = UUIDS[0] if t < 1030 + w else UUIDS[1] if t < 1045 + w * 3 else UUIDS[2]
            outcome = rng.choices(list(Outcome), weights=[90, 5, 5])[0]
            rid = None
            if outcome is not Outcome.FAILED:
                row_id += 1
                rid = row_id if outcome is Outcome.OK or rng.random() < 0.5 else None
            attempts.append(
                Attempt(writer, seq, f"{seq:064x}", outcome, t, t + 0.005, server=server,
                        node=f"mysql-{UUIDS.index(server)}", row_id=rid)
            )  # fmt: skip
    reads = []
    for _ in range(600):
        a = rng.choice(attempts)
        seen = a.seq + rng.choice([-200, -20, -3, 0, 0, 1])
        reads.append(
            Read(a.invoke_wall + rng.choice([0.0, 0.0, 7.5]), a.writer_id,
                 None if seen < 1 else seen, node=rng.choice(["mysql-1", "mysql-2", None]),
                 server=rng.choice([None, UUIDS[1]]))
        )  # fmt: skip
    observations = [
        BankObservation(f"mysql-{i % 3}", 1000.0 + i, 10_000 + (7 if i % 17 == 0 else 0))
        for i in range(200)
    ]
    return attempts, reads, observations


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Journal, list[Attempt]]]:
    """A journal of `_history`, with a crash window (reserved seqs never journaled)."""
    attempts, reads, observations = _history(random.Random(7))
    path = tmp_path_factory.mktemp("journal") / "j.sqlite"
    j = Journal(path, target="127.0.0.1:3306/integrity.ledger")
    for writer in sorted({a.writer_id for a in attempts}):
        j.reserve(writer, 320)
    j.reserve("run1-1-9", 5)  # a writer that died before journaling anything
    for a in attempts:
        if a.seq % 97 != 0:  # these never reached the journal
            j.record_attempt(a)
    for r in reads:
        j.record_read(r)
    for o in observations:
        j.record_bank(o)
    j.flush()
    j.close()
    ro = Journal.open_readonly(path)
    try:
        yield ro, list(ro.attempts())
    finally:
        ro.close()


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of a handful of reads and acks, so that every boundary case is crossed."""
    monkeypatch.setattr(journal_checks, "READ_WINDOW", 7)
    monkeypatch.setattr(journal_checks, "ACK_WINDOW", 5)
    monkeypatch.setattr(journal_checks, "FETCH_BATCH", 11)


def test_expected_aggregates_equal_the_cores(journal: tuple[Journal, list[Attempt]]) -> None:
    """SQLite-built row texts hashed in C equal `chunks.expected_chunks` with `row_hash`."""
    j, every = journal
    db = JournalReader(j)
    try:
        for size in (1, 13, 250, 5000):
            bounds = chunks.chunk_bounds(1, 1300, size)
            core = chunks.expected_chunks(every, bounds, verify.row_hash)
            assert [db.expected(lo, hi) for lo, hi in bounds] == [
                (c.count, c.checksum) for c in core
            ]
    finally:
        db.close()


def test_counts_and_lookup_follow_journal_attempts(journal: tuple[Journal, list[Attempt]]) -> None:
    """Counts equal `count_outcomes(Journal.attempts())`; a live writer's window ends at its
    seq; lookups synthesize the crash window's attempts exactly as `attempts()` does."""
    j, every = journal
    db = JournalReader(j)
    try:
        outcomes = db.outcomes()
        assert outcomes.servers == 3
        assert db.counts(outcomes) == count_outcomes(every)
        live = db.counts(outcomes, {"run1-1-0": 300})
        assert count_outcomes(every).indeterminate - live.indeterminate == 20
        by_key = {a.key: a for a in every}
        wanted = [("run1-1-0", 97), ("run1-1-0", 98), ("run1-1-0", 320), ("run1-1-0", 321),
                  ("run1-1-9", 5), ("run1-1-9", 6), ("nobody", 1)]  # fmt: skip
        found = db.lookup(wanted)
        assert found == {k: by_key[k] for k in wanted if k in by_key}
        assert found[("run1-1-0", 97)].payload_sha256 is None
        assert found[("run1-1-0", 97)].outcome is Outcome.INDETERMINATE
    finally:
        db.close()


@pytest.mark.usefixtures("small_windows")
def test_split_brain_from_spans_equals_the_core(journal: tuple[Journal, list[Attempt]]) -> None:
    """Split brain from per-identity first/last acks (SQL) equals the core's over every ack."""
    j, every = journal
    acked = sorted(
        (a for a in every if a.outcome is Outcome.OK),
        key=lambda a: (a.complete_wall or 0.0, a.writer_id, a.seq),
    )
    db = JournalReader(j)
    try:
        found = journal_checks.split_brain(db, db.outcomes().servers)
    finally:
        db.close()
    expected = primaries.split_brain(acked)
    assert len(expected) >= 2
    assert same(found, expected)


@pytest.mark.usefixtures("small_windows")
def test_stale_in_windows_equals_the_core(journal: tuple[Journal, list[Attempt]]) -> None:
    """Stale reads judged per writer and window, with capped acks, equal the core's at once."""
    j, every = journal
    acked = [a for a in every if a.outcome is Outcome.OK]
    reads = list(j.reads())
    db = JournalReader(j)
    try:
        found = journal_checks.stale(db, 5.0)
    finally:
        db.close()
    expected = replicas.stale(acked, reads, lag_bound=5.0)
    assert len(expected) >= 20
    assert any(a.evidence["missed_acked"] > 5 for a in expected)  # the capped path ran
    assert same(found, expected)


@pytest.mark.usefixtures("small_windows")
def test_non_monotonic_and_bank_in_windows_equal_the_core(
    journal: tuple[Journal, list[Attempt]],
) -> None:
    """Non-monotonic reads (windows carrying the highest read) and bank observations (batches)
    equal the core's detectors over everything at once."""
    j, _ = journal
    reads = list(j.reads())
    db = JournalReader(j)
    try:
        found = journal_checks.non_monotonic(db)
        found_bank = journal_checks.bank_observations(db, 10_000)
    finally:
        db.close()
    expected = replicas.non_monotonic(reads)
    assert len(expected) >= 20
    assert same(found, expected)
    assert same(found_bank, bank.bank_total(list(j.bank()), {}, expected=10_000))


def test_cached_expectations_catch_up_with_new_attempts(tmp_path: Path) -> None:
    """Grains cached by one verification, brought up to date with attempts journaled since,
    equal the grains computed from scratch; a cache of another journal is ignored."""
    attempts, _, _ = _history(random.Random(11))
    path = tmp_path / "j.sqlite"
    j = Journal(path, target="127.0.0.1:3306/integrity.ledger")
    half = len(attempts) // 2
    for a in attempts[:half]:
        j.record_attempt(a)
    j.flush()
    bounds = chunks.chunk_bounds(0, 1999, expectations.GRAIN)

    def grains(fresh: bool) -> list[tuple[int, int]]:
        db = JournalReader(j)
        try:
            if fresh:
                return [db.expected(lo, hi) for lo, hi in bounds]
            expect = expectations.Expectations(db, j)
            found = [expect.get(lo, hi) for lo, hi in bounds]
            expect.save()
            return found
        finally:
            db.close()

    assert grains(fresh=False) == grains(fresh=True)  # cold: builds the cache
    db = JournalReader(j)
    try:
        assert expectations.cached_outcomes(db, j) == db.outcomes()  # cold: counted and cached
    finally:
        db.close()
    for a in attempts[half:]:
        j.record_attempt(a)
    j.flush()
    assert Path(f"{path}.verify-cache").exists()
    db = JournalReader(j)
    try:
        assert expectations.cached_outcomes(db, j) == db.outcomes()  # cached counts, caught up
        assert db.outcomes().total == len(attempts) and db.outcomes().servers == 3
    finally:
        db.close()
    warm = grains(fresh=False)
    assert warm == grains(fresh=True)
    db = JournalReader(j)
    try:
        expect = expectations.Expectations(db, j)
        for lo, hi in [(0, 0), (1, 998), (999, 1000), (17, 1999), (1000, 1998), (250, 4321)]:
            assert expect.get(lo, hi) == db.expected(lo, hi), (lo, hi)
    finally:
        db.close()
    assert warm == [
        (c.count, c.checksum) for c in chunks.expected_chunks(attempts, bounds, verify.row_hash)
    ]
    j.close()
    other = Journal(tmp_path / "other.sqlite", target="127.0.0.1:3306/integrity.ledger")
    Path(f"{tmp_path / 'other.sqlite'}.verify-cache").write_bytes(
        Path(f"{path}.verify-cache").read_bytes()
    )
    db = JournalReader(other)
    try:
        assert expectations.Expectations(db, other).grains == {}
    finally:
        db.close()
        other.close()
