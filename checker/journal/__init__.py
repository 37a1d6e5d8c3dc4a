"""Durable local history: SQLite through SQLAlchemy, written in batches off the write path.

Writers hand records to `Journal.record*` (a queue put, no I/O); one flusher thread writes
them in group commits (every `flush_interval` or `batch` records). SQLite runs in WAL mode:
a committed batch survives a SIGKILL of the checker.

The crash window, and why it loses nothing: before a writer uses sequence numbers it
*reserves* a block of them durably (`reserve`, synchronous, once per `RESERVE_BLOCK` writes).
Attempts completed but not yet flushed when the checker dies are missing from the journal,
but their seqs are inside a reservation; on analysis every reserved seq without a journaled
attempt becomes an INDETERMINATE attempt with an unknown payload. Such a write is then
`recovered` if its row exists and unremarkable if not: never `lost`, never `unexpected`.
The window is at most one flush interval (default 20 ms) of completed writes per writer,
plus whatever was in flight.

A journal belongs to one target (writer address, database, table); opening it against
another target is refused, so two runs never mix histories.

The package: `schema` (the tables), `writer` (`Journal`: opening, group commits, seq
reservations, the small tables) and `reader` (`JournalReader`: every streamed query, and the
one place that turns rows into records and reservations into the crash window's attempts).
"""

from checker.journal.reader import JournalReader
from checker.journal.schema import FORMAT_VERSION
from checker.journal.writer import RESERVE_BLOCK, Journal, JournalInfo

__all__ = ["FORMAT_VERSION", "RESERVE_BLOCK", "Journal", "JournalInfo", "JournalReader"]
