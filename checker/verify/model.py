"""What to verify, how, and the result: the verification's public records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checker.core.verdict import DEFAULT_CAP, Verdict
from checker.mysql import Endpoint
from checker.schema import Names
from checker.settings import LAG_BOUND, VERIFY_TIMEOUT

if TYPE_CHECKING:
    from checker.settings import Settings


@dataclass(frozen=True)
class Target:
    """The nodes to verify. `primary` names the primary when something authoritative (the lab's
    state) says which it is; otherwise the node `writer` reaches is, or the only writable one."""

    nodes: Mapping[str, Endpoint]
    writer: Endpoint | None = None
    primary: str | None = None
    names: Names = field(default_factory=Names)


@dataclass(frozen=True)
class Options:
    """How to verify. `timeout` bounds the GTID barrier; chunks aim at `chunk_seconds` each
    (pt-table-checksum's 0.5 s), between `min_chunk` and `max_chunk` ids; a differing range is
    bisected until at most `fetch_rows` rows are fetched at once. `since`: an incremental pass,
    checking ledger ids from `since` on only (`checker.verify.incremental`); None: every id."""

    timeout: float = VERIFY_TIMEOUT.default
    lag_bound: float = LAG_BOUND.default
    chunk_seconds: float = 0.5
    first_chunk: int = 10_000
    min_chunk: int = 1_000
    max_chunk: int = 250_000
    fetch_rows: int = 2_000
    cap: int = DEFAULT_CAP
    progress: Callable[[str], None] | None = None
    since: int | None = None


@dataclass(frozen=True)
class LiveRun:
    """What verifying a checker that is still writing needs from it.

    `settle` is called once the primary's highest id has been captured: it returns when every
    write in flight at that moment is decided and journaled (it flushes the journal).
    `writer_seqs` gives each live writer's last seq handed to the journal; read just before
    `settle`, everything up to it is on disk afterwards, and seqs the writer reserved beyond it
    are in flight or queued, not a crash window.
    """

    settle: Callable[[], None]
    writer_seqs: Callable[[], Mapping[str, int]]


@dataclass(frozen=True)
class NodeReport:
    """What verification learned about one node (the verdict's node entry says valid/why not)."""

    name: str
    role: str
    server: str | None = None
    gtid: str | None = None
    caught_up: bool | None = None
    rows: int | None = None
    foreign_rows: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "server": self.server,
            "gtid": self.gtid,
            "caught_up": self.caught_up,
            "rows": self.rows,
            "foreign_rows": self.foreign_rows,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Verification:
    """A verification's verdict plus what it did (for the CLI, logs and benchmarks)."""

    verdict: Verdict
    run_id: str
    primary: str | None
    nodes: Mapping[str, NodeReport]
    gtid_target: str | None = None
    id_range: tuple[int, int] | None = None
    chunks: int = 0
    drilled: int = 0
    fetched_rows: int = 0
    seconds: float = 0.0
    phases: Mapping[str, float] = field(default_factory=dict)
    registry: str | None = None
    started_at: float | None = None
    kind: str = "full"
    passes: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The core's verdict JSON, with foreign row counts in the node entries and a
        `verification` section; `Verdict.from_dict` reads it back, ignoring the extras."""
        data = self.verdict.to_dict()
        for name, node in data["nodes"].items():
            report = self.nodes.get(name)
            node["foreign_rows"] = report.foreign_rows if report else None
        data["verification"] = {
            "kind": self.kind,
            "range": list(self.id_range) if self.id_range else None,
            "run_id": self.run_id,
            "primary": self.primary,
            "gtid_target": self.gtid_target,
            "id_range": list(self.id_range) if self.id_range else None,
            "chunks": self.chunks,
            "drilled_ranges": self.drilled,
            "fetched_rows": self.fetched_rows,
            "seconds": round(self.seconds, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "registry": self.registry,
            "nodes": {name: r.to_dict() for name, r in sorted(self.nodes.items())},
            **self.passes,
        }
        return data


def target_from_settings(settings: Settings) -> Target:
    """The nodes of a checker's settings (the writer alone if no node was named)."""
    primary = None
    if settings.lab_dir is not None:
        from checker.lab import state

        primary = state.load(settings.lab_dir).primary
    nodes = dict(settings.nodes) or {settings.writer.name or "mysql-0": settings.writer}
    return Target(nodes=nodes, writer=settings.writer, primary=primary, names=settings.names)
