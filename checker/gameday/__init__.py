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
durations (checker.gameday.timeouts: the rule). A run succeeds only when the steady state held
before and after, the method ran, its probes' tolerances held and the verdict is VALID; the
summary's `result` and `reasons` say which criterion failed. Runs never overlap: a run due
while another is going is skipped and logged (APScheduler `max_instances=1`, `coalesce=True`,
plus one lock across experiments, since two experiments on one cluster would spoil each other's
evidence).

SIGTERM or SIGINT to the game day (the kubelet terminating its pod) interrupts a running
`chaos run` as its timeout does (SIGINT, `grace` for the rollbacks, SIGKILL last); no further run
starts, and `--once` exits non-zero.

The package: `plan` (the YAML, validated), `timeouts` (how long a `chaos run` may take),
`chaos` (one `chaos run`), `client` (the checker's API), `result` (a run's outcome), `stop`
(the stop request and its signals), `run` (`GameDay`: one run, `--once`, the schedule).
"""

from __future__ import annotations

from checker.gameday.plan import Experiment, Plan, job_deadline, load_plan, termination_grace
from checker.gameday.run import GameDay

__all__ = ["Experiment", "GameDay", "Plan", "job_deadline", "load_plan", "termination_grace"]
