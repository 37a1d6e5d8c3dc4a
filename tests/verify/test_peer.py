"""pt-table-checksum as an oracle: every node it reports as differing gets an anomaly.

Replicas (and the primary) are tampered in many ways: rows added, removed or changed, of this
run's writers, of another registered run, of a writer no checker registered, in the ledger,
the bank's accounts and the chaos markers, without binlog (`SET sql_log_bin = 0`: no GTID
betrays the change) and with it. Each case runs Percona's pt-table-checksum on the lab, then
`checker verify`, and requires an anomaly on every node pt-table-checksum names, then undoes
the change (rows restored from an untouched node) for the next case.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from checker.core.verdict import Validity
from checker.lab.topology import Lab
from tests.conftest import start_lab
from tests.verify import _pt
from tests.verify._support import acked, checker, heal, root, verify_journal, wait_acks

INTRUDER = "intruder-7"
"""A writer id no checker registered."""


@dataclass(frozen=True)
class Runs:
    judged: Path
    """The journal verified in every case (ledger and bank workloads)."""
    foreign: Path
    """Another registered run's journal: its rows are foreign to `judged`."""


@pytest.fixture(scope="module")
def plab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A 3-node lab of this module's own: the cases leave traces (GTIDs) in it."""
    lab = start_lab(tmp_path_factory.mktemp("plab"), replicas=2)
    try:
        yield lab
    finally:
        lab.down(purge=True)


@pytest.fixture(scope="module")
def pt() -> str:
    """pt-table-checksum, installed when missing."""
    return _pt.find_or_install()


@pytest.fixture(scope="module")
def runs(plab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Two checker runs on the lab, with a marker row: what the cases tamper with."""
    d = tmp_path_factory.mktemp("runs")
    with checker(plab, d / "foreign.sqlite") as service:
        wait_acks(service, 60)
    with checker(plab, d / "judged.sqlite", workload="ledger,bank") as service:
        wait_acks(service, 150)
    root(
        plab,
        "mysql-0",
        "INSERT INTO chaos_marker (marker, written_at) VALUES ('m-1', NOW(6)), ('m-2', NOW(6))",
    )
    heal(plab)
    return Runs(d / "judged.sqlite", d / "foreign.sqlite")


def _ledger_row(lab: Lab, journal: Path) -> tuple[int, str, int]:
    oks = sorted((a for a in acked(journal) if a.row_id is not None), key=lambda a: a.row_id or 0)
    a = oks[len(oks) // 2]
    assert a.row_id is not None
    return a.row_id, a.writer_id, a.seq


def _max_id(lab: Lab) -> int:
    return int(root(lab, "mysql-0", "SELECT MAX(id) FROM ledger")[0][0])


def _restore(lab: Lab, node: str, table: str, ids: list[int], source: str) -> None:
    """Make `node`'s rows `ids` of `table` what `source` holds, without binlog."""
    marks = ", ".join(["%s"] * len(ids))
    rows = root(lab, source, f"SELECT * FROM {table} WHERE id IN ({marks})", args=ids)
    statements = ["SET SESSION sql_log_bin = 0", f"DELETE FROM {table} WHERE id IN ({marks})"]
    root(lab, node, *statements, args=ids)
    for row in rows:
        values = ", ".join(["%s"] * len(row))
        root(
            lab,
            node,
            "SET SESSION sql_log_bin = 0",
            f"INSERT INTO {table} VALUES ({values})",
            args=list(row),
        )


@dataclass(frozen=True)
class Case:
    node: str
    table: str
    sql: str
    """One statement; `{id}`, `{writer}`, `{seq}`, `{foreign_id}`, `{new_id}` are filled in."""


def _fill(case: Case, values: dict[str, Any]) -> tuple[str, list[int]]:
    sql = case.sql.format(**values)
    ids = [values["new_id"]] if "{new_id}" in case.sql else []
    ids += [values["id"]] if "{id}" in case.sql else []
    ids += [values["foreign_id"]] if "{foreign_id}" in case.sql else []
    return sql, ids


_ADD = (
    "INSERT INTO ledger (id, writer_id, seq, payload, checksum, written_at) "
    "VALUES ({new_id}, '{who}', {seq_new}, 'x', SHA2('x', 256), NOW(6))"
)

CASES = {
    "replica-removes-own-row": Case("mysql-1", "ledger", "DELETE FROM ledger WHERE id = {id}"),
    "replica-changes-own-payload": Case(
        "mysql-2", "ledger", "UPDATE ledger SET payload = 'tampered' WHERE id = {id}"
    ),
    "replica-changes-own-row-consistently": Case(
        "mysql-1",
        "ledger",
        "UPDATE ledger SET payload = 'other', checksum = SHA2('other', 256) WHERE id = {id}",
    ),
    "replica-changes-own-seq": Case(
        "mysql-2", "ledger", "UPDATE ledger SET seq = seq + 100000 WHERE id = {id}"
    ),
    "replica-adds-row-of-own-writer": Case(
        "mysql-2", "ledger", _ADD.replace("{who}", "{writer}").replace("{seq_new}", "99999")
    ),
    "replica-adds-row-of-unregistered-writer": Case(
        "mysql-1", "ledger", _ADD.replace("{who}", INTRUDER).replace("{seq_new}", "1")
    ),
    "replica-changes-foreign-row": Case(
        "mysql-2", "ledger", "UPDATE ledger SET payload = 'tampered' WHERE id = {foreign_id}"
    ),
    "replica-removes-foreign-row": Case(
        "mysql-1", "ledger", "DELETE FROM ledger WHERE id = {foreign_id}"
    ),
    "replica-changes-account": Case(
        "mysql-1", "accounts", "UPDATE accounts SET balance = balance + 7 WHERE id = {account}"
    ),
    "replica-adds-marker": Case(
        "mysql-2",
        "chaos_marker",
        "INSERT INTO chaos_marker (id, marker, written_at) VALUES ({new_id}, 'x', NOW(6))",
    ),
    "primary-adds-row-of-unregistered-writer": Case(
        "mysql-0", "ledger", _ADD.replace("{who}", INTRUDER).replace("{seq_new}", "2")
    ),
    "primary-removes-own-row": Case("mysql-0", "ledger", "DELETE FROM ledger WHERE id = {id}"),
    "primary-changes-foreign-row": Case(
        "mysql-0", "ledger", "UPDATE ledger SET checksum = SHA2('y', 256) WHERE id = {foreign_id}"
    ),
}


def _values(lab: Lab, runs: Runs) -> dict[str, Any]:
    row_id, writer, seq = _ledger_row(lab, runs.judged)
    foreign_id = _ledger_row(lab, runs.foreign)[0]
    account = int(root(lab, "mysql-0", "SELECT MIN(id) FROM accounts")[0][0])
    return {
        "id": row_id,
        "writer": writer,
        "seq": seq,
        "foreign_id": foreign_id,
        "new_id": _max_id(lab) + 1000,
        "account": account,
    }


def _nodes_with_anomalies(lab: Lab, journal: Path) -> tuple[set[str], list[dict[str, Any]]]:
    v = verify_journal(lab, journal).verdict
    assert not v.failures, v.failures
    return {a.node for a in v.anomalies if a.node}, [a.to_dict() for a in v.anomalies]


@pytest.mark.parametrize("name", list(CASES))
def test_every_node_the_peer_finds_differing_has_an_anomaly(
    plab: Lab, pt: str, runs: Runs, tmp_path: Path, name: str
) -> None:
    """A change made without binlog on one node: pt-table-checksum names the nodes that
    differ, and `checker verify` reports an anomaly on each of them."""
    case = CASES[name]
    values = _values(plab, runs)
    if case.table == "accounts":
        ids = [values["account"]]
        sql = case.sql.format(**values)
    else:
        sql, ids = _fill(case, values)
    root(plab, case.node, "SET SESSION sql_log_bin = 0", sql)
    try:
        differing = _pt.differing(plab, pt, tmp_path)
        assert differing, f"pt-table-checksum saw no difference after {name}: the case is void"
        flagged, anomalies = _nodes_with_anomalies(plab, runs.judged)
        assert differing <= flagged, (differing, anomalies)
    finally:
        source = "mysql-1" if case.node != "mysql-1" else "mysql-2"
        _restore(plab, case.node, case.table, ids, source)
    # Undone: the peer and the checker both see agreeing nodes again.
    assert _pt.differing(plab, pt, tmp_path) == set()
    v = verify_journal(plab, runs.judged).verdict
    assert v.valid is Validity.VALID, [a.to_dict() for a in v.anomalies]


def test_unregistered_writer_on_the_primary_is_unexpected(
    plab: Lab, pt: str, runs: Runs, tmp_path: Path
) -> None:
    """A row written (and replicated) by a writer no checker registered: pt-table-checksum
    sees nothing (every node has it), the checker names it `unexpected` on the primary."""
    new_id = _max_id(plab) + 2000
    root(
        plab,
        "mysql-0",
        _ADD.replace("{who}", INTRUDER).replace("{seq_new}", "3").format(new_id=new_id),
    )
    heal(plab)
    try:
        assert _pt.differing(plab, pt, tmp_path) == set()
        result = verify_journal(plab, runs.judged)
        found = [
            a
            for a in result.verdict.anomalies
            if a.type == "unexpected" and a.writer_id == INTRUDER
        ]
        assert [(a.node, a.evidence["id"], a.evidence["reason"]) for a in found] == [
            ("mysql-0", new_id, "unregistered_writer")
        ]
        # The other run's rows are registered: foreign, never anomalies.
        assert result.nodes["mysql-0"].foreign_rows == len(
            [a for a in acked(runs.foreign) if a.row_id is not None]
        )
    finally:
        root(plab, "mysql-0", f"DELETE FROM ledger WHERE id = {new_id}")
        heal(plab)


def test_tables_without_the_registry_keep_working_and_say_they_cannot_tell(
    plab: Lab, runs: Runs
) -> None:
    """Without the registry table (set up before it existed) verification still judges the
    run, and says that unregistered writers' rows cannot be told."""
    root(plab, "mysql-0", "DROP TABLE run_writer")
    heal(plab)
    try:
        result = verify_journal(plab, runs.judged)
        assert result.verdict.valid is Validity.VALID
        assert result.registry is not None and "cannot be told" in result.registry
        assert result.to_dict()["verification"]["registry"] == result.registry
    finally:
        from checker.schema import Names, ddl

        root(plab, "mysql-0", ddl(Names())[-1])
        heal(plab)


def test_changes_with_binlog_are_found_too(plab: Lab, pt: str, runs: Runs, tmp_path: Path) -> None:
    """A replica's own write (with binlog: an errant GTID) removing a row: the peer names the
    replica, the checker reports it (divergent and errant). Runs last: errant GTIDs stay.

    In a GTID domain of its own: in the replication domain, strict mode would stop the
    replica's SQL thread at the primary's next write (pt-table-checksum's own), and the peer
    would wait for it forever."""
    values = _values(plab, runs)
    root(
        plab,
        "mysql-2",
        "SET SESSION gtid_domain_id = 9",
        f"DELETE FROM ledger WHERE id = {values['id']}",
    )
    differing = _pt.differing(plab, pt, tmp_path)
    assert differing == {"mysql-2"}
    v = verify_journal(plab, runs.judged).verdict
    types = {a.type for a in v.anomalies if a.node == "mysql-2"}
    assert {"divergent", "errant"} <= types, [a.to_dict() for a in v.anomalies]
