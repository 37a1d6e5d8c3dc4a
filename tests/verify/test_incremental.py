"""Incremental verification on the shared lab: the periodic cycle checks only the ids written
since the last pass, a full pass on its own schedule checks everything, findings are kept
until a full pass re-judges them, and a restart continues from the journaled watermark.

Tampers are made on mysql-1 alone (no binlog) and undone before the test ends. The ledger's
AUTO_INCREMENT is moved forward between passes, so that ids before and after a pass lie in
different grains of 1,000 ids, however few rows the lab wrote (`--verify-overlap 0`: only the
attempts since the last pass began are reached back for).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from checker.core.verdict import Validity
from checker.lab.topology import Lab
from checker.service import Service
from tests.verify._support import acked, checker, cli, keys, root, verdict_of, wait_acks

GRAIN = 1_000


def _jump(lab: Lab, ids: int = 5 * GRAIN) -> int:
    """Move the ledger's next id `ids` past the current highest one; that next id."""
    top = int(root(lab, "mysql-0", "SELECT COALESCE(MAX(id), 0) FROM ledger")[0][0])
    start = top + ids - (top + ids) % GRAIN
    root(lab, "mysql-0", f"ALTER TABLE ledger AUTO_INCREMENT = {start}")
    return start


@contextmanager
def _tampered(lab: Lab, row_id: int) -> Iterator[None]:
    """The row's payload changed on mysql-1 alone; put back on exit."""
    payload = root(lab, "mysql-1", "SELECT payload FROM ledger WHERE id = %s", args=(row_id,))
    root(
        lab,
        "mysql-1",
        "SET SESSION sql_log_bin = 0",
        "UPDATE ledger SET payload = 'bit rot' WHERE id = %s",
        args=(row_id,),
    )
    try:
        yield
    finally:
        root(
            lab,
            "mysql-1",
            "SET SESSION sql_log_bin = 0",
            "UPDATE ledger SET payload = %s WHERE id = %s",
            args=(payload[0][0], row_id),
        )


def _section(service: Service) -> dict[str, Any]:
    return service.verification_section()


def _corrupted_ids(service: Service) -> set[int]:
    assert service.full_verdict is not None
    return {int(a.evidence["id"]) for a in service.full_verdict.anomalies if a.type == "corrupted"}


def _row_of_run(journal: Path, below: int) -> int:
    """An acknowledged row id of this run below `below`."""
    ids = [a.row_id for a in acked(journal) if a.row_id is not None and a.row_id < below]
    assert ids
    return max(ids)


def _full_pass_past_a_jump(lab: Lab, service: Service, journal: Path) -> tuple[dict[str, Any], int]:
    """Rows, then rows in grains further on, then a periodic (full) pass: its section, and a
    row of this run in a grain below every row the pass's successors reach back for."""
    wait_acks(service, 50)
    first_jump = _jump(lab)
    wait_acks(service, 50)
    assert service.next_kind() == "full"
    service.periodic_verify()
    full = _section(service)
    assert full["kind"] == "full" and full["last_complete"] == full["last_full"]
    assert full["range"][1] >= first_jump
    return full, _row_of_run(journal, first_jump)


def test_incremental_cycles_check_new_ids_and_keep_findings(healthy: Lab, tmp_path: Path) -> None:
    """The first periodic pass is full; the next ones are incremental, from the last pass's
    grain on: a tamper below that is missed by them and found by a full pass, a tamper above
    found by the next incremental pass, found again (counted once) by the one after, and kept
    by the one after that, which did not look there."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    with checker(lab, journal, verify_overlap=0, full_verify_interval=3600) as service:
        full, below = _full_pass_past_a_jump(lab, service, journal)
        lo, hi = full["range"]
        with _tampered(lab, below):
            above_start = _jump(lab)
            wait_acks(service, 50)
            assert service.next_kind() == "incremental"
            v = service.periodic_verify()
            inc = _section(service)
            assert inc["kind"] == "incremental", inc
            assert below < inc["range"][0] <= hi + 1 and inc["range"][0] % GRAIN == 0
            assert lo < inc["range"][0] and inc["range"][1] >= above_start
            assert inc["last_full"] == full["last_full"]
            assert inc["last_complete"] == inc["last_incremental"]
            assert v.valid is Validity.VALID, keys(v)

            above = min(
                a.row_id for a in acked(journal) if a.row_id is not None and a.row_id >= above_start
            )
            with _tampered(lab, above):
                wait_acks(service, 50)
                v = service.periodic_verify()
                found = _section(service)
                assert found["kind"] == "incremental" and found["range"][0] <= above
                assert keys(v) == [("corrupted", "mysql-1", *_key(journal, above))]
                assert _corrupted_ids(service) == {above}

                _jump(lab)
                wait_acks(service, 50)
                v = service.periodic_verify()
                again = _section(service)
                assert again["kind"] == "incremental" and again["range"][0] <= above
                assert _corrupted_ids(service) == {above}
                assert v.anomaly_counts["corrupted"] == 1

                _jump(lab)
                wait_acks(service, 50)
                v = service.periodic_verify()
                later = _section(service)
                # Not looked at again, still reported.
                assert later["kind"] == "incremental" and later["range"][0] > above
                assert _corrupted_ids(service) == {above}
                assert v.anomaly_counts["corrupted"] == 1

                v = service.verify()
                assert _section(service)["kind"] == "full"
                assert _corrupted_ids(service) == {above, below}
                assert v.anomaly_counts["corrupted"] == 2
    v = _journaled_last(journal)
    assert v["verification"]["kind"] == "full"
    assert v["verification"]["last_incremental"]["range"] == later["range"]


def _key(journal: Path, row_id: int) -> tuple[str, int]:
    a = next(a for a in acked(journal) if a.row_id == row_id)
    return a.writer_id, a.seq


def _journaled_last(journal: Path) -> dict[str, Any]:
    import json

    from checker.journal import Journal
    from checker.journal.reader import JournalReader

    j = Journal.open_readonly(journal)
    try:
        with JournalReader(j) as db:
            last = db.last_verification()
    finally:
        j.close()
    assert last is not None
    data: dict[str, Any] = json.loads(last[2])
    return data


def test_a_restart_continues_from_the_journaled_watermark(healthy: Lab, tmp_path: Path) -> None:
    """A checker restarted on the same journal continues incrementally from the last complete
    pass its previous incarnation journaled, and keeps that pass's findings; so does `checker
    verify --incremental` from the last pass journaled."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    with ExitStack() as undo:
        with checker(lab, journal, verify_overlap=0) as service:
            wait_acks(service, 50)
            first_jump = _jump(lab)
            wait_acks(service, 50)
            below = _row_of_run(journal, first_jump)
            undo.enter_context(_tampered(lab, below))
            service.periodic_verify()
            first = _section(service)
            assert first["kind"] == "full" and _corrupted_ids(service) == {below}
        _jump(lab)
        with checker(lab, journal, verify_overlap=0) as restarted:
            assert restarted.passes.last_complete is not None
            assert restarted.passes.last_complete.to_dict() == first["last_complete"]
            assert restarted.next_kind() == "incremental"
            wait_acks(restarted, 50)
            v = restarted.periodic_verify()
            again = _section(restarted)
            assert again["kind"] == "incremental", again
            assert first["range"][0] < again["range"][0] <= first["range"][1] + 1
            assert below < again["range"][0]
            # The first incarnation's finding, in a range this pass did not look at.
            assert _corrupted_ids(restarted) == {below}
            assert v.anomaly_counts["corrupted"] == 1
        # `checker verify --incremental` continues from the same journaled watermark.
        done = cli(
            "verify", "--lab", str(lab.dir), "--journal", str(journal), "--json",
            "--incremental", "--verify-overlap", "0",
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        _, data = verdict_of(done.stdout)
        section = data["verification"]
        assert section["kind"] == "incremental" and section["range"][0] > below
        assert section["last_complete"]["range"] == again["range"]
        found = [a["evidence"]["id"] for a in data["anomalies"] if a["type"] == "corrupted"]
        assert found == [below] and data["anomaly_counts"]["corrupted"] == 1


def test_full_verify_interval_0_makes_every_cycle_full(healthy: Lab, tmp_path: Path) -> None:
    """`--full-verify-interval 0`: every periodic pass is full, as before incremental passes
    existed, so a tamper below the last pass is found by the next periodic one."""
    lab, journal = healthy, tmp_path / "j.sqlite"
    with checker(lab, journal, verify_overlap=0, full_verify_interval=0) as service:
        first, below = _full_pass_past_a_jump(lab, service, journal)
        _jump(lab)
        wait_acks(service, 50)
        with _tampered(lab, below):
            assert service.next_kind() == "full"
            service.periodic_verify()
            second = _section(service)
            assert second["kind"] == "full" and second["last_incremental"] is None
            assert second["range"][0] == first["range"][0]
            assert _corrupted_ids(service) == {below}
