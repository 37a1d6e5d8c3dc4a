"""The journal's tables: one declaration each, and the statements the writer's flusher runs.

Format 1 (`FORMAT_VERSION`): `meta` (run id, incarnation, target, creation time), `attempts`
(one row per write attempt and its outcome), `reservations` (each writer's durably reserved
seqs: the crash window, `checker.journal`), `reads`, `bank`, `lag`, `semi_sync`,
`annotations`, `events` and `verifications`.

Retention (`checker.journal.compact`) adds, to new and older journals alike (`create_all`):
`watermarks` (after each verification that judged every node: the highest attempt id it
vouched for), `pins` (the attempts any verification's anomaly names: never folded), and the
folded history that replaces deleted raw rows: `folded` (one row: how far attempts and samples
were folded, and the folded attempts' outcome totals, crash window included), `folded_writers`
(per writer, the highest folded seq), `folded_grains` (per `FOLD_GRAIN` row ids: count and XOR
of the acknowledged rows' CRC32 text, as the expectations compute it, a bitmap of their row ids
and their first and last acknowledgement), `folded_window` (the crash window's seqs among the
folded ones: reserved, never journaled), `folded_servers` (per
server identity: acknowledgements, first and last), `folded_groups` (the report's per node,
server and outcome summary), `folded_writes` and `folded_lag` (the report's per-second
aggregates).
"""

from __future__ import annotations

import sqlalchemy as sa

FORMAT_VERSION = 1

metadata = sa.MetaData()
meta_t = sa.Table(
    "meta", metadata, sa.Column("key", sa.String, primary_key=True), sa.Column("value", sa.String)
)
attempts_t = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("writer_id", sa.String, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("payload_sha256", sa.String),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("invoke_wall", sa.Float, nullable=False),
    sa.Column("complete_wall", sa.Float),
    sa.Column("invoke_mono", sa.Float),
    sa.Column("complete_mono", sa.Float),
    sa.Column("server", sa.String),
    sa.Column("node", sa.String),
    sa.Column("row_id", sa.Integer),
    sa.Column("error", sa.String),
    sa.Index("attempts_writer_seq", "writer_id", "seq"),
    sa.Index("attempts_row_id", "row_id"),
)
reservations_t = sa.Table(
    "reservations",
    metadata,
    sa.Column("writer_id", sa.String, primary_key=True),
    sa.Column("upto", sa.Integer, nullable=False),
    sa.Column("incarnation", sa.Integer, nullable=False),
    sa.Column("closed", sa.Boolean, nullable=False, default=False),
)
reads_t = sa.Table(
    "reads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("node", sa.String),
    sa.Column("server", sa.String),
    sa.Column("writer_id", sa.String, nullable=False),
    sa.Column("max_seq", sa.Integer),
)
bank_t = sa.Table(
    "bank",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("server", sa.String),
    sa.Column("total", sa.Integer, nullable=False),
)
lag_t = sa.Table(
    "lag",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("seconds", sa.Float),
)
semi_sync_t = sa.Table(
    "semi_sync",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("server", sa.String),
    sa.Column("enabled", sa.Boolean),
    sa.Column("active", sa.Boolean),
    sa.Column("clients", sa.Integer),
    sa.Column("yes_tx", sa.Integer),
    sa.Column("no_tx", sa.Integer),
)
annotations_t = sa.Table(
    "annotations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("phase", sa.String, nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("received", sa.Float, nullable=False),
    sa.Column("detail", sa.String),
)
events_t = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("detail", sa.String),
)
verifications_t = sa.Table(
    "verifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("finished", sa.Float, nullable=False),
    sa.Column("valid", sa.String, nullable=False),
    sa.Column("verdict", sa.Text, nullable=False),
)
watermarks_t = sa.Table(
    "watermarks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("attempt_id", sa.Integer, nullable=False),
)
folded_t = sa.Table(
    "folded",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("attempt_id", sa.Integer, nullable=False),
    sa.Column("before", sa.Float, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("ok", sa.Integer, nullable=False),
    sa.Column("first", sa.Float),
    sa.Column("last", sa.Float),
    sa.Column("row_lo", sa.Integer),
    sa.Column("row_hi", sa.Integer),
    sa.Column("compactions", sa.Integer, nullable=False),
    sa.Column("pinned_upto", sa.Integer, nullable=False, server_default="0"),
)
folded_writers_t = sa.Table(
    "folded_writers",
    metadata,
    sa.Column("writer_id", sa.String, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
)
folded_grains_t = sa.Table(
    "folded_grains",
    metadata,
    sa.Column("grain", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("x", sa.Integer, nullable=False),
    sa.Column("ids", sa.LargeBinary, nullable=False),
    sa.Column("first", sa.Float),
    sa.Column("last", sa.Float),
)
pins_t = sa.Table(
    "pins",
    metadata,
    sa.Column("writer_id", sa.String, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
)
folded_window_t = sa.Table(
    "folded_window",
    metadata,
    sa.Column("writer_id", sa.String, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
)
folded_servers_t = sa.Table(
    "folded_servers",
    metadata,
    sa.Column("server", sa.String, primary_key=True),
    sa.Column("acks", sa.Integer, nullable=False),
    sa.Column("first", sa.Text, nullable=False),
    sa.Column("last", sa.Text, nullable=False),
)
folded_groups_t = sa.Table(
    "folded_groups",
    metadata,
    sa.Column("node", sa.String, primary_key=True),
    sa.Column("server", sa.String, primary_key=True),
    sa.Column("outcome", sa.String, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("first", sa.Float),
    sa.Column("last", sa.Float),
    sa.Column("first_ack", sa.Float),
    sa.Column("last_ack", sa.Float),
)
folded_writes_t = sa.Table(
    "folded_writes",
    metadata,
    sa.Column("second", sa.Integer, primary_key=True),
    sa.Column("outcome", sa.String, primary_key=True),
    sa.Column("bin", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("top", sa.Float),
)
folded_lag_t = sa.Table(
    "folded_lag",
    metadata,
    sa.Column("second", sa.Integer, primary_key=True),
    sa.Column("node", sa.String, primary_key=True),
    sa.Column("worst", sa.Float),
    sa.Column("unknown", sa.Integer, nullable=False),
)
FOLD_GRAIN = 1000
"""Row ids per folded grain (the verifier's `GRAIN`)."""
FOLD_BINS_PER_DECADE = 20
"""Latency bins per factor of ten in `folded_writes` (the report's `BINS_PER_DECADE`)."""
FOLD_MIN_LATENCY = 1e-6
"""Latencies below this fall in the lowest bin of `folded_writes` (the report's)."""
TABLES = {t.name: t for t in metadata.sorted_tables}
# Insert columns per table (all but the rowid), and the statements the flusher runs.
COLUMNS = {name: tuple(c.name for c in t.columns if c.name != "id") for name, t in TABLES.items()}
INSERT = {
    name: f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    for name, cols in COLUMNS.items()
}
UPSERT_RESERVATION = (
    "INSERT INTO reservations (writer_id, upto, incarnation, closed) "
    "VALUES (:writer_id, :upto, :incarnation, :closed) ON CONFLICT (writer_id) DO UPDATE SET "
    "upto = excluded.upto, incarnation = excluded.incarnation, closed = excluded.closed"
)
