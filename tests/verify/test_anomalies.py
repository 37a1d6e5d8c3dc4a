"""Each anomaly produced for real on the lab, and verification names exactly it.

The checker runs in-process on the shared lab; then a fault or direct SQL breaks something
and the run's journal is verified. Rows of the other tests' runs stay in the ledger: they are
foreign rows here, counted and never judged.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from checker.core.history import Outcome, Row
from checker.core.verdict import Validity
from checker.journal import Journal
from checker.lab.topology import Lab
from checker.service import Service
from checker.verify import ROW_HASH_SQL, row_hash
from tests._wait import wait_for
from tests.verify._support import (
    WIDE_LAG_BOUND,
    acked,
    attempts,
    checker,
    cli,
    keys,
    root,
    verdict_of,
    verify_journal,
    wait_acks,
)


def _middle(journal: Path) -> tuple[int, str, int]:
    """(row id, writer, seq) of an acknowledged write from the middle of the run."""
    oks = sorted((a for a in acked(journal) if a.row_id is not None), key=lambda a: a.row_id or 0)
    a = oks[len(oks) // 2]
    assert a.row_id is not None
    return a.row_id, a.writer_id, a.seq


def _run(lab: Lab, journal: Path, writes: int = 150) -> None:
    with checker(lab, journal) as service:
        wait_acks(service, writes)


@pytest.mark.parametrize("fault", ["none", "replica-restart", "endpoint-loss"])
def test_clean_runs_are_valid(healthy: Lab, tmp_path: Path, fault: str) -> None:
    """No fault, a replica killed and restarted, or mysql-0's endpoint lost and restored: VALID."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    with checker(lab, journal) as service:
        wait_acks(service, 100)
        if fault == "replica-restart":
            lab.fault("kill", "mysql-2")
            wait_acks(service, 100)
            lab.fault("start", "mysql-2")
        elif fault == "endpoint-loss":
            lab.fault("endpoint-loss", "mysql-0")
            wait_acks(service, 100)
            lab.fault("endpoint-restore", "mysql-0")
        wait_acks(service, 100)
    result = verify_journal(lab, journal)
    v = result.verdict
    assert v.valid is Validity.VALID, [a.to_dict() for a in v.anomalies]
    ok = len(acked(journal))
    assert v.counts.ok == ok >= 200
    assert {n: nv.valid for n, nv in v.nodes.items()} == dict.fromkeys(
        ("mysql-0", "mysql-1", "mysql-2"), Validity.VALID
    )
    assert all(nv.rows is not None and nv.rows >= ok for nv in v.nodes.values())
    if fault == "none":
        # The journal predicted every range's row hash bit for bit: nothing had to be fetched.
        assert result.drilled == 0 and result.fetched_rows == 0


@pytest.mark.parametrize("leaf_rows", [2000, 10], ids=["one-range", "ranges-apart"])
def test_duplicated_row_on_the_primary(healthy: Lab, tmp_path: Path, leaf_rows: int) -> None:
    """A copy of an acknowledged row inserted on the primary is duplicated, on mysql-0, only,
    whether the copy is fetched with the original or alone (found by the GROUP BY then)."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    _run(lab, journal)
    row_id, writer, seq = _middle(journal)
    root(
        lab,
        "mysql-0",
        "INSERT INTO ledger (writer_id, seq, payload, checksum, written_at) "
        "SELECT writer_id, seq, payload, checksum, written_at FROM ledger WHERE id = %s",
        args=(row_id,),
    )
    copy = root(lab, "mysql-0", "SELECT MAX(id) FROM ledger")[0][0]
    result = verify_journal(lab, journal, fetch_rows=leaf_rows)
    v = result.verdict
    assert result.fetched_rows <= 3 * leaf_rows
    assert keys(v) == [("duplicated", "mysql-0", writer, seq)]
    assert v.anomalies[0].evidence["ids"] == [row_id, copy]
    assert v.nodes["mysql-1"].valid is v.nodes["mysql-2"].valid is Validity.VALID


def test_corrupted_payload_on_one_replica(healthy: Lab, tmp_path: Path) -> None:
    """A payload changed on mysql-1 alone (not binlogged) is corrupted on mysql-1, only."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    _run(lab, journal)
    row_id, writer, seq = _middle(journal)
    root(
        lab,
        "mysql-1",
        "SET SESSION sql_log_bin = 0",
        "UPDATE ledger SET payload = 'bit rot' WHERE id = %s",
        args=(row_id,),
    )
    try:
        v = verify_journal(lab, journal).verdict
        assert keys(v) == [("corrupted", "mysql-1", writer, seq)]
        evidence = v.anomalies[0].evidence
        assert evidence["id"] == row_id
        assert set(evidence["mismatch"]) == {"stored_checksum", "written_hash"}
        assert {n: nv.valid for n, nv in v.nodes.items()} == {
            "mysql-0": Validity.VALID,
            "mysql-1": Validity.INVALID,
            "mysql-2": Validity.VALID,
        }
    finally:
        # Every row is compared node against node: later tests' runs would find mysql-1
        # divergent on this one.
        payload = root(lab, "mysql-0", "SELECT payload FROM ledger WHERE id = %s", args=(row_id,))
        root(
            lab,
            "mysql-1",
            "SET SESSION sql_log_bin = 0",
            "UPDATE ledger SET payload = %s WHERE id = %s",
            args=(payload[0][0], row_id),
        )


def test_unexpected_row_exits_1_with_the_verdict_json(healthy: Lab, tmp_path: Path) -> None:
    """A row with this run's writer prefix that was never attempted: `checker verify` exits 1
    and its JSON names it unexpected on mysql-0, and nothing else."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    _run(lab, journal)
    run_id = Journal.open_readonly(journal).info.run_id
    writer = f"{run_id}-1-99"
    root(
        lab,
        "mysql-0",
        "INSERT INTO ledger (writer_id, seq, payload, checksum, written_at) "
        "VALUES (%s, 7, 'never sent', SHA2('never sent', 256), NOW(6))",
        args=(writer,),
    )
    try:
        done = cli("verify", "--lab", str(lab.dir), "--journal", str(journal), "--json")
        assert done.returncode == 1, done.stderr
        v, data = verdict_of(done.stdout)
        assert v.valid is Validity.INVALID
        assert keys(v) == [("unexpected", "mysql-0", writer, 7)]
        assert v.anomalies[0].evidence["reason"] == "never_attempted"
        assert data["verification"]["primary"] == "mysql-0"
    finally:
        # No run registered this writer: later tests' runs would find its row unexpected.
        root(lab, "mysql-0", "DELETE FROM ledger WHERE writer_id = %s", args=(writer,))


@pytest.mark.mariadb_only(
    reason="expects MariaDB's domain-server-seq GTID (0-2-N) and undoes the errant write with "
    "MariaDB's recipe (RESET MASTER on the replica, safe under MASTER_USE_GTID=slave_pos); on "
    "MySQL the replica's own server_uuid names it and the undo is an empty transaction with "
    "that GTID on the primary, which no MySQL 8 here has proven"
)
def test_errant_write_on_a_replica(healthy: Lab, tmp_path: Path) -> None:
    """A write binlogged on mysql-1 itself is an errant GTID of server 2 on mysql-1, only."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    _run(lab, journal)
    root(lab, "mysql-0", "CREATE TABLE IF NOT EXISTS scratch (id INT PRIMARY KEY)")
    wait_for(lambda: root(lab, "mysql-1", "SHOW TABLES LIKE 'scratch'"), what="scratch on mysql-1")
    root(lab, "mysql-1", "REPLACE INTO scratch VALUES (1)")
    try:
        v = verify_journal(lab, journal).verdict
        assert keys(v) == [("errant", "mysql-1", None, None)]
        errant = v.anomalies[0].evidence["errant"]
        assert errant.startswith("0-2-"), errant
        assert v.nodes["mysql-2"].valid is Validity.VALID
    finally:
        # The errant GTID would break mysql-1's replication at the primary's next write
        # (gtid_strict_mode): forget the replica's own binlog, as a DBA would.
        root(lab, "mysql-1", "STOP SLAVE", "RESET MASTER", "START SLAVE")


def _pause_until_writes_time_out(lab: Lab, service: Service) -> None:
    """SIGSTOP the primary until every writer's statement timed out, then SIGCONT it."""
    counts = service.live.counts
    before = counts["indeterminate"] + counts["failed"]
    lab.fault("pause", "mysql-0")
    try:
        wait_for(
            lambda: counts["indeterminate"] + counts["failed"] >= before + 4,
            timeout=15,
            what="the writers' statements to time out",
        )
    finally:
        lab.fault("resume", "mysql-0")


def test_indeterminate_commits_that_applied_are_recovered(healthy: Lab, tmp_path: Path) -> None:
    """COMMITs timed out on a SIGSTOPped primary and applied after SIGCONT are reported
    recovered (not lost, not unexpected); those that did not apply are not reported."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    # The primary is frozen for up to 15 s at a time, so reads through the replicas miss the
    # writes acknowledged just before, for longer than 5 s: truly stale, but this test is about
    # what the timed-out COMMITs became, not about replica freshness.
    with checker(lab, journal, statement_timeout=1.0, lag_bound=WIDE_LAG_BOUND) as service:
        wait_acks(service, 100)
        for _ in range(5):
            _pause_until_writes_time_out(lab, service)
            wait_acks(service, 50)
            if service.live.counts["indeterminate"] >= 3:
                break
    unsure = [a for a in attempts(journal) if a.outcome is Outcome.INDETERMINATE]
    present = {
        (a.writer_id, a.seq)
        for a in unsure
        if root(
            lab,
            "mysql-0",
            "SELECT id FROM ledger WHERE writer_id = %s AND seq = %s",
            args=(a.writer_id, a.seq),
        )
    }
    assert present, "no timed-out COMMIT was applied; the scenario did not happen"
    v = verify_journal(lab, journal, lag_bound=WIDE_LAG_BOUND).verdict
    assert v.valid is Validity.VALID, v.to_dict()
    assert {(r.writer_id, r.seq) for r in v.recovered} == present
    assert {r.node for r in v.recovered} == {"mysql-0"}
    assert v.counts.indeterminate == len(unsure) and v.counts.recovered == len(present)


def test_live_verification_while_writing_is_valid(healthy: Lab, tmp_path: Path) -> None:
    """Verifying a checker that keeps writing (POST /verify, the periodic job) gives VALID with
    exact counts: in-flight writes are settled first, later rows left to the next check, and
    writes still queued for the journal are never counted as the crash window (indeterminate).
    Verified again and again, so the race between writers and the journal's flush is hit."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    with checker(lab, journal, workload="ledger,bank") as service:
        wait_acks(service, 100)
        previous = 0
        for _ in range(12):
            verdict = service.verify()
            assert verdict.valid is Validity.VALID, verdict.to_dict()
            assert not verdict.failures
            assert previous < verdict.counts.ok <= service.live.counts["ok"]
            assert verdict.counts.indeterminate == 0, verdict.counts
            previous = verdict.counts.ok
            wait_acks(service, 20)
        assert service.last_verification is not None


def test_row_hash_matches_the_server(healthy: Lab) -> None:
    """`row_hash` computes ROW_HASH_SQL bit for bit, odd payloads and a bad checksum included."""
    lab = healthy
    writer = f"hash-{uuid.uuid4().hex[:8]}-1-0"
    payloads = [b"", b"#", b"\x00\xff" * 40, "é".encode(), b"x" * 255]
    for seq, payload in enumerate(payloads):
        checksum = "0" * 64 if seq == 2 else None
        root(
            lab,
            "mysql-0",
            "INSERT INTO ledger (writer_id, seq, payload, checksum, written_at) "
            "VALUES (%s, %s, %s, COALESCE(%s, SHA2(%s, 256)), NOW(6))",
            args=(writer, seq, payload, checksum, payload),
        )
    found = root(
        lab,
        "mysql-0",
        f"SELECT id, writer_id, seq, SHA2(payload, 256), checksum, {ROW_HASH_SQL} FROM ledger "
        "WHERE writer_id = %s",
        args=(writer,),
    )
    # No run registered this writer: later tests' runs would find its rows unexpected.
    root(lab, "mysql-0", "DELETE FROM ledger WHERE writer_id = %s", args=(writer,))
    assert len(found) == len(payloads)
    for r in found:
        assert row_hash(Row(r[0], r[1], r[2], r[3], r[4])) == r[5], r


def test_live_verification_beside_another_run_is_valid(healthy: Lab, tmp_path: Path) -> None:
    """Two checkers write to the same table at once; verifying one of them live, again and
    again, compares every row node against node (the other run's too) and finds them VALID:
    the other run's commits in flight are not taken for divergences."""
    lab = healthy
    with (
        checker(lab, tmp_path / "other.sqlite") as other,
        checker(lab, tmp_path / "j.sqlite") as service,
    ):
        wait_acks(other, 50)
        wait_acks(service, 50)
        for _ in range(6):
            verdict = service.verify()
            assert verdict.valid is Validity.VALID, verdict.to_dict()
            wait_acks(service, 20)
            wait_acks(other, 20)
