"""The pure core of the checker: records in, verdict out.

No I/O, no clock, no MySQL, no logging, and no import of the rest of the project: adapters
import this package, never the reverse. Modules, each named for its concept:

- `history`: Attempt, Outcome, Row, Read, BankObservation, NodeState, History
- `ledger`: lost, duplicated, corrupted, unexpected, recovered (the sequenced-write workload)
- `replicas`: divergent, errant, stale, non_monotonic
- `primaries`: split_brain
- `bank`: bank_total
- `gtid`: GTID sets of MySQL and MariaDB
- `chunks`: per id-range aggregates for verification at scale
- `verdict`: Anomaly, Verdict and its JSON form
- `detectors`: the registry: which detector judges what, `combine` and its one guard
- `analysis`: the driver (`analyze`, `check_chunk`, `verdict_from_chunks`)
- `notation`: one-line histories for tests and examples
"""

from checker.core.analysis import (
    ChunkCheck,
    analyze,
    check_chunk,
    count_outcomes,
    verdict_from_chunks,
)
from checker.core.chunks import ChunkAggregate, ChunkDiff
from checker.core.history import (
    Attempt,
    BankObservation,
    History,
    Key,
    NodeState,
    Outcome,
    Read,
    Role,
    Row,
)
from checker.core.verdict import (
    ANOMALY_TYPES,
    Anomaly,
    Counts,
    Failure,
    NodeVerdict,
    Recovery,
    Validity,
    Verdict,
    build_verdict,
    merge,
)

__all__ = [
    "ANOMALY_TYPES",
    "Anomaly",
    "Attempt",
    "BankObservation",
    "ChunkAggregate",
    "ChunkCheck",
    "ChunkDiff",
    "Counts",
    "Failure",
    "History",
    "Key",
    "NodeState",
    "NodeVerdict",
    "Outcome",
    "Read",
    "Recovery",
    "Role",
    "Row",
    "Validity",
    "Verdict",
    "analyze",
    "build_verdict",
    "check_chunk",
    "count_outcomes",
    "merge",
    "verdict_from_chunks",
]
