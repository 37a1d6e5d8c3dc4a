"""Which server family a lab runs, asked of the server itself, and the SQL words that differ.

The lab records the flavor it detected from the binary; tests compare that claim with what the
running server says of itself (`SELECT VERSION()`), so a wrong detection fails a test instead
of being accepted as "either flavor".
"""

from __future__ import annotations

from checker.lab.topology import Lab
from tests.lab._sql import query


def server_flavor(lab: Lab, where: str = "writer") -> str:
    """`mariadb` when the server's own version string says MariaDB, else `mysql`."""
    version = str(query(lab, where, "SELECT VERSION()", user="root")[0][0])
    return "mariadb" if "-mariadb" in version.lower() else "mysql"


def monitor_grant(flavor: str) -> str:
    """The privilege that lets a user read replication status (see docs/grants.md)."""
    return "SLAVE MONITOR" if flavor == "mariadb" else "REPLICATION CLIENT"


def semi_sync_status(flavor: str, what: str) -> str:
    """A semi-sync primary-side status variable: MariaDB keeps `master`, MySQL 8.0.26+ with the
    semisync_source plugin says `source`."""
    return f"Rpl_semi_sync_{'master' if flavor == 'mariadb' else 'source'}_{what}"


def replica_sql(flavor: str, verb: str, thread: str = "") -> str:
    """`START`/`STOP` of the replication threads: MariaDB says SLAVE, MySQL 8.0.22+ REPLICA."""
    word = "SLAVE" if flavor == "mariadb" else "REPLICA"
    return f"{verb} {word} {thread}".strip()
