"""`GameDay`: runs a plan's experiments, once or on schedule, and keeps each run's evidence."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from checker import _logging
from checker._spawn import Spawned, spawn_checker
from checker.errors import CheckerError, ConfigError
from checker.gameday.chaos import run_chaos
from checker.gameday.client import CheckerClient
from checker.gameday.plan import Experiment, Plan, trigger
from checker.gameday.result import evaluate
from checker.gameday.stop import StopRequest
from checker.gameday.timeouts import experiment_configuration
from checker.secrets import redact, redact_data

log = _logging.get("checker.gameday")
# A run's exit status: 0 success; 1 a failed criterion or an INVALID verdict; 2 unknown.
# `--once` exits with the worst run's: failed (1) outranks unknown (2), which outranks success.
EXIT_FOR = {"True": 0, "False": 1, "unknown": 2}
_SEVERITY = {"True": 0, "False": 2, "unknown": 1}
_RESULT_VALID = {"success": "True", "failed": "False", "unknown": "unknown"}


class GameDay:
    """Runs a plan, once or on schedule."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.lock = threading.Lock()
        self.checker: CheckerClient | None = None
        self._spawned: Spawned | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.runs: list[dict[str, Any]] = []
        self.skipped: list[str] = []
        # Set by SIGTERM/SIGINT (checker.gameday.stop.stop_on_signals): a running chaos run is
        # interrupted as at its timeout, and no further run starts.
        self.stop = StopRequest()

    # -- the checker --------------------------------------------------------------------------
    def connect(self) -> CheckerClient:
        if self.plan.checker_url:
            self.checker = CheckerClient(self.plan.checker_url, self.plan.checker_token)
        else:
            self.checker = self._start_checker(self.plan.start or {})
        return self.checker

    def _start_checker(self, options: dict[str, Any]) -> CheckerClient:
        self._tmp = tempfile.TemporaryDirectory(prefix="gameday-")
        args: list[str] = []
        for key, value in options.items():
            args += [f"--{str(key).replace('_', '-')}", str(value)]
        self.plan.results_dir.mkdir(parents=True, exist_ok=True)
        self._spawned = spawn_checker(
            args,
            ready=Path(self._tmp.name) / "ready.json",
            log=self.plan.results_dir / "checker.log",
        )
        log.info("gameday_checker_started", url=self._spawned.url, pid=self._spawned.pid)
        return CheckerClient(self._spawned.url, None)

    def close(self) -> None:
        if self._spawned is not None:
            self._spawned.stop(timeout=120)
            self._spawned = None
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- one run --------------------------------------------------------------------------------
    def run(self, exp: Experiment) -> dict[str, Any] | None:
        """One run of `exp`, unless the game day was asked to stop or another run is going
        (then skipped, logged, None)."""
        if self.stop.is_set():
            self._skip_stopped(exp)
            return None
        if not self.lock.acquire(blocking=False):
            log.warning(
                "gameday_run_skipped", experiment=exp.name, reason="another run is still going"
            )
            self.skipped.append(exp.name)
            return None
        try:
            return self._run(exp)
        finally:
            self.lock.release()

    def _run(self, exp: Experiment) -> dict[str, Any]:
        checker = self.checker or self.connect()
        started = datetime.now(UTC)
        folder = self.plan.results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{exp.name}"
        folder.mkdir(parents=True, exist_ok=False)
        log.info("gameday_run_started", experiment=exp.name, folder=str(folder))
        summary: dict[str, Any] = {
            "experiment": exp.name,
            "started": started.isoformat(),
            "folder": str(folder),
        }
        try:
            checker.annotate(f"gameday {exp.name}", "start", detail=str(exp.path))
            chaos = run_chaos(exp, checker.url, folder, self.stop)
            summary["chaos_status"] = chaos.status
            summary["chaos_exit_code"] = chaos.exit_code
            if chaos.stopped:
                summary["chaos_stopped"] = chaos.stopped
            if self.stop.is_set():
                self._pending_summary(exp, folder, summary)
            verdict = checker.verify()
            checker.annotate(f"gameday {exp.name}", "end", detail=summary["chaos_status"])
            (folder / "verdict.json").write_text(json.dumps(verdict, indent=2, sort_keys=True))
            summary["valid"] = verdict.get("valid")
            summary["anomaly_counts"] = {
                k: v for k, v in (verdict.get("anomaly_counts") or {}).items() if v
            }
            from checker.findings import gameday_fields  # issue 14: runs, deviated

            chaos_journal = folder / "journal.json"
            summary.update(gameday_fields(verdict, chaos_journal, summary["chaos_status"]))
            summary["report"] = self._report(checker, folder)
        except CheckerError as exc:
            summary["valid"] = "unknown"
            summary["error"] = str(exc)
            log.error("gameday_run_failed", experiment=exp.name, error=str(exc))
        self._judge(exp, folder, summary)
        summary["finished"] = datetime.now(UTC).isoformat()
        summary = self._write_summary(folder, summary)
        self._prune(exp.name)
        self._webhook(summary)
        self.runs.append(summary)
        log.info(
            "gameday_run_done",
            experiment=exp.name,
            valid=summary["valid"],
            result=summary["result"],
            reasons=summary["reasons"],
            chaos_status=summary.get("chaos_status"),
            folder=str(folder),
        )
        return summary

    @staticmethod
    def _write_summary(folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
        """summary.json; the summary leaves the process (the file, the webhook): one redaction
        for all of it, returned."""
        redacted: dict[str, Any] = redact_data(summary)
        (folder / "summary.json").write_text(json.dumps(redacted, indent=2, sort_keys=True))
        return redacted

    def _pending_summary(self, exp: Experiment, folder: Path, summary: dict[str, Any]) -> None:
        """After a stop request, a summary.json of what is known before the verification: the
        pod may be killed (terminationGracePeriodSeconds) before the verification and report
        end. The full summary replaces it when they do."""
        pending = {
            **summary,
            "valid": "unknown",
            "pending": f"verification and report (the game day was stopped by {self.stop.why})",
        }
        self._judge(exp, folder, pending, quiet=True)
        self._write_summary(folder, pending)
        log.info("gameday_pending_summary", experiment=exp.name, folder=str(folder))

    def _skip_stopped(self, exp: Experiment) -> None:
        log.warning(
            "gameday_run_skipped", experiment=exp.name, reason=f"stopped by {self.stop.why}"
        )
        self.skipped.append(exp.name)

    def _judge(
        self, exp: Experiment, folder: Path, summary: dict[str, Any], quiet: bool = False
    ) -> None:
        """Add `result` and `reasons` (checker.gameday.result) to a run's summary (`quiet`: no
        warning, for a summary that another replaces)."""
        try:
            journal: dict[str, Any] | None = json.loads((folder / "journal.json").read_text())
        except (OSError, ValueError):
            journal = None
        experiment = (journal or {}).get("experiment") or {}
        configuration = experiment_configuration(
            experiment, {"checker_url": "", **exp.vars}, exp.var_files
        )
        stopped = summary.get("chaos_stopped")
        outcome = evaluate(journal, summary.get("valid"), configuration, stopped=stopped)
        summary["result"] = outcome.result
        summary["reasons"] = list(outcome.reasons)
        if outcome.reasons and not quiet:
            log.warning(
                "gameday_run_not_successful",
                experiment=exp.name,
                result=outcome.result,
                reasons=list(outcome.reasons),
            )

    def _report(self, checker: CheckerClient, folder: Path) -> str | None:
        """The HTML report from a snapshot of the checker's journal (GET /journal)."""
        snapshot = folder / "checker-journal.sqlite"
        try:
            checker.journal(snapshot)
        except CheckerError as exc:
            log.warning("gameday_no_journal", error=str(exc))
            return None
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "checker.cli",
                "report",
                "--journal",
                str(snapshot),
                "--chaos-journal",
                str(folder / "journal.json"),
                "--verdict",
                str(folder / "verdict.json"),
                "--out",
                str(folder / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            log.warning("gameday_report_failed", error=redact(proc.stderr.strip()[-500:]))
            return None
        return str(folder / "report" / "index.html")

    def _prune(self, name: str) -> None:
        runs = sorted(d for d in self.plan.results_dir.glob(f"*-{name}") if d.is_dir())
        for old in runs[: max(0, len(runs) - self.plan.keep)]:
            shutil.rmtree(old, ignore_errors=True)
            log.info("gameday_run_pruned", folder=str(old))

    def _webhook(self, summary: dict[str, Any]) -> None:
        if not self.plan.webhook_url:
            return
        headers = (
            {"Authorization": f"Bearer {self.plan.webhook_token.reveal()}"}
            if self.plan.webhook_token
            else {}
        )
        try:
            r = requests.post(self.plan.webhook_url, json=summary, headers=headers, timeout=30)
            r.raise_for_status()
        except requests.RequestException as exc:
            # A broken webhook must not lose the run: the folder has everything.
            log.warning("gameday_webhook_failed", error=redact(str(exc)))

    # -- the two modes --------------------------------------------------------------------------
    def once(self) -> int:
        """Every experiment now, one after the other; the worst run's exit status (EXIT_FOR:
        0 only when every run succeeded). After a stop request no further experiment starts:
        each is skipped and logged, and counts as unknown (a run it interrupted is failed)."""
        worst = "True"
        try:
            for exp in self.plan.experiments:
                summary = self.run(exp)  # None when skipped
                valid = (
                    _RESULT_VALID.get(str(summary["result"]), "unknown") if summary else "unknown"
                )
                if _SEVERITY.get(valid, 1) > _SEVERITY[worst]:
                    worst = valid if valid in _SEVERITY else "unknown"
        finally:
            self.close()
        return EXIT_FOR[worst]

    def scheduler(self) -> BackgroundScheduler:
        sched = BackgroundScheduler(
            timezone=self.plan.timezone,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
        )
        for exp in self.plan.experiments:
            if exp.schedule:
                sched.add_job(
                    self.run,
                    trigger(exp.schedule, self.plan.timezone),
                    args=[exp],
                    id=exp.name,
                    name=exp.name,
                )

        def skipped(event: JobExecutionEvent) -> None:
            log.warning(
                "gameday_run_skipped",
                experiment=event.job_id,
                reason="its previous run is still going",
            )
            self.skipped.append(event.job_id)

        sched.add_listener(skipped, EVENT_JOB_MAX_INSTANCES)
        return sched

    def serve(self) -> int:
        """Run on schedule until `self.stop` is set; a run going then is interrupted as at its
        timeout (SIGINT, its grace for the rollbacks), so the shutdown ends within that grace
        plus the run's verification."""
        scheduled = [e.name for e in self.plan.experiments if e.schedule]
        if not scheduled:
            raise ConfigError(
                "no experiment in the plan has a `schedule`: use --once to run them now"
            )
        sched = self.scheduler()
        sched.start()
        for job in sched.get_jobs():
            log.info("gameday_scheduled", experiment=job.id, next_run=str(job.next_run_time))
        try:
            self.stop.wait()
        finally:
            with contextlib.suppress(Exception):
                sched.shutdown(wait=True)
            self.close()
        return 0
