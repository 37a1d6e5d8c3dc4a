"""Scheduled game days: run chaos experiments against a checked MySQL and keep the evidence.

A plan (YAML) names the experiments with their schedules, the checker to use (a running one's
URL, or one to start), where results go and how many runs to keep, and an optional webhook:

```yaml
checker:
  url: http://127.0.0.1:8080          # a running checker ...
  token_file: /secrets/checker-token  # its API token, if it has one
  # start: {lab: .lab, journal: gameday.sqlite}   # ... or start one for the game day
experiments:
  - name: kubelet-stop
    path: experiments/local/kubelet-stop.json
    schedule: "0 3 * * 1"             # cron: 5 fields (6 with seconds first), in `timezone`
    vars: {lab_dir: .lab}             # chaos run --var k=v (checker_url is added)
    var_files: []                     # chaos run --var-file
    timeout: 900                      # seconds before the chaos run is interrupted (SIGINT)
    grace: 300                        # then seconds for its rollbacks before SIGKILL
results: {dir: gameday-results, keep: 20}
webhook: {url: http://127.0.0.1:9000/hook, token_file: null}
timezone: UTC
```

Each run: annotate the checker -> `chaos run` the experiment -> full verification -> report
into a dated folder (chaos journal, verdict.json, the checker journal snapshot, report/) ->
webhook with a summary. Without `timeout`/`grace`, both are derived from the experiment's own
durations (checker._gameday_result: the rule). A run succeeds only when the steady state held
before and after, the method ran, its probes' tolerances held and the verdict is VALID; the
summary's `result` and `reasons` say which criterion failed. Runs never overlap: a run due
while another is going is skipped and logged (APScheduler `max_instances=1`, `coalesce=True`,
plus one lock across experiments, since two experiments on one cluster would spoil each other's
evidence).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from checker import _gameday_result, _logging, secrets
from checker._spawn import Spawned, spawn_checker
from checker.errors import CheckerError, ConfigError
from checker.secrets import redact, redact_data

log = _logging.get("checker.gameday")
# A run's exit status: 0 success; 1 a failed criterion or an INVALID verdict; 2 unknown.
# `--once` exits with the worst run's: failed (1) outranks unknown (2), which outranks success.
EXIT_FOR = {"True": 0, "False": 1, "unknown": 2}
_SEVERITY = {"True": 0, "False": 2, "unknown": 1}
_RESULT_VALID = {"success": "True", "failed": "False", "unknown": "unknown"}


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    schedule: str | None
    vars: dict[str, str] = field(default_factory=dict)
    var_files: tuple[Path, ...] = ()
    timeout: float = 900.0
    # Seconds `chaos run` gets after SIGINT to play its rollbacks, before SIGKILL.
    grace: float = 300.0


@dataclass(frozen=True)
class Plan:
    experiments: tuple[Experiment, ...]
    checker_url: str | None
    checker_token: secrets.Secret | None
    start: dict[str, Any] | None
    results_dir: Path
    keep: int
    webhook_url: str | None
    webhook_token: secrets.Secret | None
    timezone: str = "UTC"


def _fail(path: Path, what: str) -> ConfigError:
    return ConfigError(f"game-day plan {path}: {what}")


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Parse and validate a plan file; every problem is one line naming the key."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"game-day plan {p} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _fail(p, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise _fail(p, "must be a mapping with `experiments`, `checker` and `results`")
    base = p.parent
    unknown = set(data) - {"experiments", "checker", "results", "webhook", "timezone"}
    if unknown:
        raise _fail(p, f"unknown key(s) {', '.join(sorted(unknown))}")
    experiments = tuple(
        _experiment(p, base, i, e) for i, e in enumerate(data.get("experiments") or [])
    )
    if not experiments:
        raise _fail(p, "`experiments` lists no experiment")
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        raise _fail(p, "experiment names must be unique")
    checker = data.get("checker") or {}
    if not isinstance(checker, dict) or not (checker.get("url") or checker.get("start")):
        raise _fail(
            p, "`checker` needs `url` (a running checker) or `start` (options to start one)"
        )
    if checker.get("start") is not None and not isinstance(checker["start"], dict):
        raise _fail(p, "`checker.start` must be a mapping of `checker run` options")
    results = data.get("results") or {}
    if not isinstance(results, dict):
        raise _fail(p, "`results` must be a mapping with `dir` and `keep`")
    keep = results.get("keep", 20)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise _fail(p, f"`results.keep` must be a whole number >= 1, not {keep!r}")
    webhook = data.get("webhook") or {}
    if not isinstance(webhook, dict):
        raise _fail(p, "`webhook` must be a mapping with `url`")
    tz = str(data.get("timezone") or "UTC")
    for e in experiments:
        if e.schedule:
            try:
                _trigger(e.schedule, tz)
            except ValueError as exc:
                raise _fail(
                    p, f"experiment {e.name!r}: bad schedule {e.schedule!r} ({exc})"
                ) from None
    return Plan(
        experiments=experiments,
        checker_url=str(checker["url"]).rstrip("/") if checker.get("url") else None,
        checker_token=secrets.resolve(
            file=_path(base, checker.get("token_file")), env=None, what="checker token"
        ),
        start=dict(checker["start"]) if checker.get("start") else None,
        results_dir=_path(base, results.get("dir") or "gameday-results")
        or base / "gameday-results",
        keep=keep,
        webhook_url=str(webhook["url"]) if webhook.get("url") else None,
        webhook_token=secrets.resolve(
            file=_path(base, webhook.get("token_file")), env=None, what="webhook token"
        ),
        timezone=tz,
    )


def _path(base: Path, value: Any) -> Path | None:
    if not value:
        return None
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def _experiment(plan: Path, base: Path, i: int, e: Any) -> Experiment:
    if not isinstance(e, dict):
        raise _fail(plan, f"experiments[{i}] must be a mapping with name, path and schedule")
    name = e.get("name")
    if not name or not isinstance(name, str) or "/" in name:
        raise _fail(plan, f"experiments[{i}] needs a `name` (text, no '/')")
    path = _path(base, e.get("path"))
    if path is None or not path.is_file():
        raise _fail(plan, f"experiment {name!r}: `path` {e.get('path')!r} is not a file")
    vars_ = e.get("vars") or {}
    if not isinstance(vars_, dict):
        raise _fail(plan, f"experiment {name!r}: `vars` must be a mapping")
    for key in ("timeout", "grace"):
        value = e.get(key)
        if value is not None and (
            not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0
        ):
            raise _fail(plan, f"experiment {name!r}: `{key}` must be a positive number of seconds")
    files = tuple(p for p in (_path(base, f) for f in e.get("var_files") or []) if p is not None)
    variables = {str(k): str(v) for k, v in vars_.items()}
    derived = _derived_timeouts(plan, name, path, variables, files)
    return Experiment(
        name=name,
        path=path,
        schedule=str(e["schedule"]) if e.get("schedule") else None,
        vars=variables,
        var_files=files,
        timeout=float(e.get("timeout") or derived.timeout),
        grace=float(e.get("grace") or derived.grace),
    )


def _derived_timeouts(
    plan: Path, name: str, path: Path, variables: dict[str, str], files: tuple[Path, ...]
) -> _gameday_result.Timeouts:
    try:
        experiment = yaml.safe_load(path.read_text())  # JSON is YAML
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _fail(
            plan, f"experiment {name!r}: {path} is not readable JSON/YAML ({exc})"
        ) from None
    if not isinstance(experiment, dict):
        raise _fail(plan, f"experiment {name!r}: {path} is not a chaostoolkit experiment")
    return _gameday_result.derive_timeouts(experiment, variables, files)


def job_deadline(plan: Plan) -> float:
    """Seconds a `--once` run of `plan` may take: each experiment's timeout and grace plus the
    verification and report after it (the game-day Job's activeDeadlineSeconds must cover it)."""
    return sum(
        e.timeout + e.grace + _gameday_result.VERIFY_ALLOWANCE_SECONDS for e in plan.experiments
    )


def _trigger(schedule: str, tz: str) -> CronTrigger:
    fields = schedule.split()
    if len(fields) == 6:  # seconds first, as in Quartz-style crons
        second, minute, hour, day, month, dow = fields
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=dow,
            timezone=tz,
        )
    if len(fields) == 5:
        return CronTrigger.from_crontab(schedule, timezone=tz)
    raise ValueError(
        "a cron needs 5 fields (minute hour day month weekday), or 6 with seconds first"
    )


@dataclass(frozen=True)
class ChaosRun:
    """How one `chaos run` ended: the journal's status, its exit code, and whether (and how) it
    had to be stopped at its timeout."""

    status: str
    exit_code: int
    stopped: str | None = None


def _stop_gracefully(proc: subprocess.Popen[bytes], exp: Experiment) -> str | None:
    """Wait `exp.timeout` for `chaos run`; then SIGINT it and wait `exp.grace` for its rollbacks;
    SIGKILL (its whole process group) only after that. None when it ended by itself.

    chaostoolkit turns SIGINT into KeyboardInterrupt, marks the journal "interrupted" and, with
    `--rollback-strategy always`, still plays the rollbacks (chaoslib/run.py, Runner._run and
    run_rollback). Only the chaos process gets the SIGINT, not its group: a second interrupt
    during the rollbacks would make chaoslib skip the rest of them.
    """
    try:
        proc.wait(timeout=exp.timeout)
        return None
    except subprocess.TimeoutExpired:
        pass
    log.warning(
        "gameday_chaos_interrupted", experiment=exp.name, timeout=exp.timeout, grace=exp.grace
    )
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=exp.grace)
        return (
            f"timed out after {exp.timeout:g} s: interrupted, and it ended within its "
            f"{exp.grace:g} s grace"
        )
    except subprocess.TimeoutExpired:
        pass
    log.error("gameday_chaos_killed", experiment=exp.name, grace=exp.grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return (
        f"timed out after {exp.timeout:g} s and killed {exp.grace:g} s after the interrupt: "
        "its rollbacks may not have run"
    )


class CheckerClient:
    """The few calls a game day makes to a checker's HTTP API."""

    def __init__(self, url: str, token: secrets.Secret | None, timeout: float = 600.0) -> None:
        self.url = url
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token.reveal()}"} if token else {}

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            r = requests.request(
                method,
                self.url + path,
                headers=self.headers,
                timeout=kwargs.pop("timeout", 30),
                **kwargs,
            )
        except requests.RequestException as exc:
            raise CheckerError(
                f"the checker at {self.url} did not answer {method} {path}: {redact(str(exc))}"
            ) from None
        if r.status_code >= 400:
            raise CheckerError(
                f"the checker at {self.url} answered {method} {path} with {r.status_code}: "
                f"{redact(r.text[:300])}"
            )
        return r

    def annotate(self, name: str, phase: str, detail: str | None = None) -> None:
        self._call("POST", "/annotations", json={"name": name, "phase": phase, "detail": detail})

    def verify(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/verify", timeout=self.timeout).json()
        return result

    def verdict(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/verdict").json()
        return result

    def journal(self, dest: Path) -> None:
        r = self._call("GET", "/journal", timeout=self.timeout, stream=True)
        with dest.open("wb") as f:
            for chunk in r.iter_content(1 << 16):
                f.write(chunk)


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
        """One run of `exp`, unless another run is going (then skipped, logged, None)."""
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
            chaos = self._chaos(exp, checker.url, folder)
            summary["chaos_status"] = chaos.status
            summary["chaos_exit_code"] = chaos.exit_code
            if chaos.stopped:
                summary["chaos_stopped"] = chaos.stopped
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
        # The summary leaves the process (summary.json, the webhook): one redaction for all of it.
        summary = redact_data(summary)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
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

    def _judge(self, exp: Experiment, folder: Path, summary: dict[str, Any]) -> None:
        """Add `result` and `reasons` (checker._gameday_result) to a run's summary."""
        try:
            journal: dict[str, Any] | None = json.loads((folder / "journal.json").read_text())
        except (OSError, ValueError):
            journal = None
        experiment = (journal or {}).get("experiment") or {}
        configuration = _gameday_result.experiment_configuration(
            experiment, {"checker_url": "", **exp.vars}, exp.var_files
        )
        stopped = summary.get("chaos_stopped")
        outcome = _gameday_result.evaluate(
            journal, summary.get("valid"), configuration, stopped=stopped
        )
        summary["result"] = outcome.result
        summary["reasons"] = list(outcome.reasons)
        if outcome.reasons:
            log.warning(
                "gameday_run_not_successful",
                experiment=exp.name,
                result=outcome.result,
                reasons=list(outcome.reasons),
            )

    def _chaos(self, exp: Experiment, checker_url: str, folder: Path) -> ChaosRun:
        chaos = shutil.which("chaos", path=str(Path(sys.executable).parent)) or shutil.which(
            "chaos"
        )
        if chaos is None:
            raise CheckerError("the `chaos` command is not installed (pip install chaostoolkit)")
        args = [
            chaos,
            "run",
            str(exp.path.resolve()),
            "--journal-path",
            str(folder / "journal.json"),
            "--rollback-strategy",
            "always",
        ]
        variables = {"checker_url": checker_url, **exp.vars}
        for key, value in variables.items():
            args += ["--var", f"{key}={value}"]
        for f in exp.var_files:
            args += ["--var-file", str(f.resolve())]
        with (folder / "chaos.log").open("wb") as out:
            proc = subprocess.Popen(
                args, cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            stopped = _stop_gracefully(proc, exp)
        try:
            status = str(json.loads((folder / "journal.json").read_text()).get("status"))
        except (OSError, ValueError):
            status = f"failed (exit {proc.returncode}, no journal; see chaos.log)"
        return ChaosRun(status=status, exit_code=proc.returncode, stopped=stopped)

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
        0 only when every run succeeded)."""
        worst = "True"
        try:
            for exp in self.plan.experiments:
                summary = self.run(exp)
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
                    _trigger(exp.schedule, self.plan.timezone),
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

    def serve(self, stop: threading.Event) -> int:
        """Run on schedule until `stop` is set."""
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
            stop.wait()
        finally:
            with contextlib.suppress(Exception):
                sched.shutdown(wait=True)
            self.close()
        return 0
