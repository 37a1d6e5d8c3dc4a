"""Full verification at scale: a GTID barrier, server-side chunk checksums, rows only where needed.

`verify` judges a journal (the checker's own history) against every node:

1. Find the primary (the lab's state, the node the writer endpoint reaches, or the only
   writable node) and capture, once, its highest ledger id and its GTID position: the
   checker's heartbeat moves the primary's position every 10 ms, so the barrier must aim at
   a fixed point, not chase a moving one.
2. Barrier: wait (up to the timeout) until each replica has executed that position. A
   replica that does not get there is `unknown`, with the reason; never skipped silently.
3. Chunks: per id range, every node computes a count and a `BIT_XOR` of per-row CRC32s
   server-side (`COPY_HASH_SQL`, the rows as stored, to compare nodes with each other); the
   primary also computes `ROW_HASH_SQL`, which the journal predicts bit for bit (`row_hash`),
   and counts rows whose payload does not hash to their checksum (`BAD_PAYLOAD_SQL`). Ranges
   are sized so that one query takes about `Options.chunk_seconds`.
4. Drill-down: a range that differs (primary vs journal, or a caught-up replica vs the
   primary) is bisected server-side until it is small, then its rows are fetched and judged by
   the core's detectors (`check_chunk`, `divergent_rows`). Memory follows the chunk, never
   the table.
5. Whole-table checks: duplicates across ranges by an indexed GROUP BY of the keys that were
   not where the journal expected them, errant GTIDs, bank totals, and the journal's reads,
   bank observations and acknowledgements (stale, non_monotonic, bank_total, split_brain),
   each streamed in bounded memory.

The journal's expected aggregates are cached next to it (`<journal>.verify-cache`) and only
brought up to date by later verifications: a journal is append-only.

Nodes are compared with each other over every row (ledger, accounts, chaos markers), whoever
wrote it. The journal judges only rows of this journal's run (writer ids `<run_id>-...`); rows
of other registered runs are counted per node (`foreign_rows`), rows of writers no run
registered are `unexpected`. docs/verification.md has the rest.

The package, one module per concern: `model` (what to verify, how, and the result), `node`
(the SQL each MySQL node runs, finding the primary), `expectations` (the journal's expected
aggregates and their cache), `journal_checks` (split brain, stale and non-monotonic reads,
bank observations: the journal alone), `run` (the servers' side of one verification, once the
primary is known), `verification` (`verify` and `unfinished`) and `text` (a verification in
words, for the CLI only). The journal is read through `checker.journal.reader`.
"""

from checker.verify.expectations import warm_cache
from checker.verify.model import (
    LiveRun,
    NodeReport,
    Options,
    Target,
    Verification,
    target_from_settings,
)
from checker.verify.node import BAD_PAYLOAD_SQL, COPY_HASH_SQL, ROW_HASH_SQL, row_hash
from checker.verify.verification import (
    activity_windows,
    placed,
    unfinished,
    verify,
)

__all__ = [
    "BAD_PAYLOAD_SQL",
    "COPY_HASH_SQL",
    "ROW_HASH_SQL",
    "LiveRun",
    "NodeReport",
    "Options",
    "Target",
    "Verification",
    "activity_windows",
    "placed",
    "row_hash",
    "target_from_settings",
    "unfinished",
    "verify",
    "warm_cache",
]
