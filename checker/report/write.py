"""Writes the page: picks the verdict (file, last verification or an analysis of the journal)
and hands the journal's facts to `checker.report.html`."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from checker import semisync
from checker.core.analysis import analyze
from checker.core.history import History
from checker.core.replicas import DEFAULT_LAG_BOUND
from checker.core.verdict import Anomaly, Counts, Failure, Verdict, build_verdict
from checker.errors import ConfigError, JournalError
from checker.journal import Journal, JournalReader
from checker.report import html
from checker.report.chaos import ChaosRun, load_chaos_journal
from checker.report.data import (
    SERVER_CHECKS,
    AnomalyRow,
    Choice,
    JournalFacts,
    journal_facts,
    lookup_attempt,
)
from checker.secrets import redact

__all__ = [
    "ANALYSIS_LIMIT",
    "SERVER_CHECKS",
    "AnomalyRow",
    "Choice",
    "write_report",
]

ANALYSIS_LIMIT = 1_000_000
"""Acknowledged writes plus reads held in memory at most by the journal-only analysis."""

NOT_VERIFIED = (
    "no verification in this journal: the checks of the data against the servers (lost, "
    "duplicated, corrupted, unexpected, divergent, errant, final bank totals) were not run; "
    "run `checker verify` or pass --verdict"
)


def write_report(
    journal_path: str | Path,
    out_dir: str | Path,
    *,
    chaos_journal: str | Path | None = None,
    verdict_file: str | Path | None = None,
    lag_bound: float = DEFAULT_LAG_BOUND,
    analysis_limit: int = ANALYSIS_LIMIT,
) -> Path:
    """Write DIR/index.html and DIR/verdict.json; return the page's path.

    Bad input raises a CheckerError whose message is one line.
    """
    out = _out_dir(Path(out_dir))
    chaos = load_chaos_journal(chaos_journal) if chaos_journal else None
    given = _verdict_file(Path(verdict_file)) if verdict_file else None
    journal = Journal.open_readonly(journal_path)
    try:
        with JournalReader(journal) as db:
            facts = journal_facts(journal, db, _chaos_times(chaos))
            choice = given or _from_journal(journal, db, facts, lag_bound, analysis_limit)
            rows = [_anomaly_row(db, a) for a in choice.verdict.anomalies]
            semi_sync = semisync.report_spans(db.semi_sync_samples())
    finally:
        journal.close()
    text = json.dumps(choice.data, indent=2)
    page = html.render(
        html.Page(
            facts=facts,
            choice=choice,
            anomalies=rows,
            chaos=chaos,
            journal_name=Path(journal_path).name,
            generated=time.time(),
            verdict_json=text,
            verdict_b64=base64.b64encode(text.encode()).decode(),
            semi_sync=semi_sync,
        )
    )
    _write(out / "verdict.json", text + "\n")
    index = out / "index.html"
    _write(index, page)
    return index


# -- input ----------------------------------------------------------------------------------------
def _out_dir(out: Path) -> Path:
    """Create the output directory now, so a bad --out fails before any work is done."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".report-{os.getpid()}.tmp"
        probe.write_text("")
        probe.unlink()
    except FileExistsError:
        raise ConfigError(f"--out {out} is a file; give a directory for the report") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot write the report to {out}: {reason}") from None
    return out


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot write {path}: {reason}") from None


def _verdict_file(path: Path) -> Choice:
    what = f"verdict file {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    # `checker verify --json` prints the verdict itself; accept a {"verdict": ...} wrapper too.
    if isinstance(data, dict) and isinstance(data.get("verdict"), dict):
        data = data["verdict"]
    return _choice(data, what, "file", f"from {path.name} (--verdict)")


def _choice(data: Any, what: str, source: str, description: str) -> Choice:
    """The verdict as shown and as written: both from the redacted JSON, so a password in an
    error text or a node's reason reaches neither the page nor verdict.json."""
    clean = _redacted(data)
    return Choice(_parse_verdict(clean, what), clean, source, description)


def _parse_verdict(data: Any, what: str) -> Verdict:
    if not isinstance(data, dict) or "valid" not in data:
        raise ConfigError(f'{what} is not a checker verdict (no "valid"); see docs/verdict.md')
    try:
        return Verdict.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{what} is not a checker verdict: {redact(str(exc))}") from None


def _chaos_times(chaos: ChaosRun | None) -> list[float]:
    if chaos is None:
        return []
    ends = [s.end for s in chaos.spans if s.end is not None]
    return [t for t in (chaos.start, chaos.end, *(s.start for s in chaos.spans), *ends) if t]


# -- the verdict ----------------------------------------------------------------------------------
def _from_journal(
    journal: Journal, db: JournalReader, facts: JournalFacts, lag_bound: float, limit: int
) -> Choice:
    last = db.last_verification()
    if last is not None:
        started, finished, text = last
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise JournalError(
                f"journal {journal.path}: its last verification is not JSON (corrupt journal?); "
                "pass --verdict FILE to report another verdict"
            ) from None
        when = html.utc(float(finished))
        n = facts.verifications
        how = f"from the last of {n} verifications" if n > 1 else "from the verification"
        took = f" (finished {when}, took {float(finished) - float(started):.1f} s)"
        what = f"journal {journal.path}: its last verification"
        return _choice(data, what, "verification", how + took)
    return _choice(
        _analyse(journal, db, facts, lag_bound, limit).to_dict(),
        "the journal's analysis",
        "analysis",
        "from an analysis of the journal alone (history-based detectors only)",
    )


def _analyse(
    journal: Journal, db: JournalReader, facts: JournalFacts, lag_bound: float, limit: int
) -> Verdict:
    """The history-based detectors over the journal; honest about what they cannot see."""
    o = facts.outcomes
    counts = Counts(
        attempted=sum(o.values()) + facts.unjournaled,
        ok=o["ok"],
        failed=o["failed"],
        indeterminate=o["indeterminate"] + facts.unjournaled,
    )
    held = o["ok"] + facts.reads
    if held > limit:
        why = (
            f"the journal holds {held:,} acknowledged writes and reads, more than the "
            f"{limit:,} an in-memory analysis may hold (--analysis-limit)"
        )
        return _unknown(counts, [Failure("analysis", why), Failure("verification", NOT_VERIFIED)])
    bank = journal.meta("bank_total")
    history = History(
        # Acknowledged attempts only: with no final state the other outcomes change nothing.
        attempts=list(db.acked()),
        reads=list(db.reads()),
        bank=list(db.bank()),
        bank_total=int(bank) if bank is not None else None,
    )
    try:
        verdict = analyze(history, [], lag_bound=lag_bound)
    except Exception as exc:  # noqa: BLE001 - a crashed analysis is unknown, never valid
        why = redact(f"{type(exc).__name__}: {exc}")
        return _unknown(counts, [Failure("analysis", why), Failure("verification", NOT_VERIFIED)])
    # With no final state, `analyze` says "no node's final state was given": say why instead.
    failures = [f for f in verdict.failures if f.detector != "final_state"]
    failures.append(Failure("verification", NOT_VERIFIED))
    return replace(verdict, counts=counts, failures=tuple(failures))


def _unknown(counts: Counts, failures: list[Failure]) -> Verdict:
    return build_verdict([], counts=counts, failures=failures)


def _redacted(data: Any) -> Any:
    """Every string in a JSON value run through `redact`: nothing secret leaves in the page."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, list):
        return [_redacted(x) for x in data]
    if isinstance(data, dict):
        return {str(k): _redacted(v) for k, v in data.items()}
    return data


# -- anomalies ------------------------------------------------------------------------------------
def _anomaly_row(db: JournalReader, a: Anomaly) -> AnomalyRow:
    """The anomaly with its journaled write: when and by which server it happened, from the
    anomaly itself, else from the write (a duplicate or corrupted row names no time)."""
    evidence = _redacted(dict(a.evidence))
    attempt = None
    if a.writer_id is not None and isinstance(a.seq, int):
        attempt = lookup_attempt(db, str(a.writer_id), a.seq)
    when = a.when
    if when is None and attempt is not None:
        when = _number(attempt.get("complete_wall")) or _number(attempt.get("invoke_wall"))
    server = a.server
    identities = evidence.get("identities")
    if server is None and a.type == "split_brain" and isinstance(identities, list):
        servers = [str(i.get("server")) for i in identities if isinstance(i, dict)]
        server = " vs ".join(servers) or None
    if server is None and attempt is not None and attempt.get("server"):
        server = str(attempt["server"])
    node = a.node or (attempt or {}).get("node")
    return AnomalyRow(
        type=a.type,
        node=redact(str(node)) if node else None,
        writer_id=redact(str(a.writer_id)) if a.writer_id is not None else None,
        # A verdict file is input: a seq that is not a whole number is no seq at all.
        seq=a.seq if isinstance(a.seq, int) and not isinstance(a.seq, bool) else None,
        server=redact(server) if server else None,
        when=when,
        evidence=evidence,
        attempt=attempt,
    )


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v else None
