"""One version switch picks SHOW REPLICA STATUS or SHOW SLAVE STATUS for every server."""

from __future__ import annotations

import pytest

from checker import mysql
from checker.lab.topology import Lab


@pytest.mark.parametrize(
    ("flavor", "version", "word"),
    [
        ("mariadb", "10.11.19-MariaDB-0+deb12u1", "SLAVE"),
        ("mariadb", "11.4.2-MariaDB", "SLAVE"),
        ("mysql", "8.0.21", "SLAVE"),
        ("mysql", "8.0.22", "REPLICA"),
        ("mysql", "8.0.40-log", "REPLICA"),
        ("mysql", "8.4.10", "REPLICA"),
        ("mysql", "9.7.1", "REPLICA"),
        ("mysql", "", "REPLICA"),
    ],
)
def test_replica_keyword_follows_flavor_and_version(flavor: str, version: str, word: str) -> None:
    """MariaDB keeps SLAVE; MySQL says REPLICA from 8.0.22 (8.4 removed SLAVE); unknown: new."""
    assert mysql.replica_keyword(flavor, version) == word
    assert mysql.replica_status_sql(flavor, version) == f"SHOW {word} STATUS"


def test_the_switch_reads_a_real_replica(lab: Lab) -> None:
    """The statement the switch picks for the lab's server runs on its replica and shows it
    replicating."""
    conn = mysql.connect(lab.endpoint("direct:mysql-1", user="root", database="integrity"))
    try:
        info = mysql.server_info(conn)
        with conn.cursor() as cur:
            cur.execute(mysql.replica_status_sql(info.flavor, info.version))
            assert len(cur.fetchall()) == 1
    finally:
        conn.close()
