"""The journal's tables: one declaration each, and the statements the writer's flusher runs.

Format 1 (`FORMAT_VERSION`): `meta` (run id, incarnation, target, creation time), `attempts`
(one row per write attempt and its outcome), `reservations` (each writer's durably reserved
seqs: the crash window, `checker.journal`), `reads`, `bank`, `lag`, `semi_sync`,
`annotations`, `events` and `verifications`.
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
