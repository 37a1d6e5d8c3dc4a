"""A Chaos Toolkit control that marks a run on the checker's timeline (POST /annotations).

Declare it once per experiment:

    "controls": [{"name": "checker-timeline",
                  "provider": {"type": "python", "module": "probes.control"}}]

It posts a `start` and an `end` annotation for the experiment (name `experiment: <title>`), its
method (`method`), its rollbacks (`rollbacks`) and every activity (the activity's name; detail:
its type and provider, e.g. `action probes.lab.endpoint_loss`, plus its status at the end), so
the checker's report shows what chaos did when. It reads the experiment's configuration
(`checker_url`, `checker_timeout`, as `probes.checker`) and its `checker` secret's `token`.

It never breaks a run: a checker that is unreachable, slow, refuses the token, or a malformed
configuration is logged as a warning (once per problem, not once per activity) and the run
goes on. After the checker failed to answer, annotations are skipped for `BACKOFF_SECONDS` so a
checker that hangs costs the run one short timeout, not one per activity.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from chaoslib.exceptions import ActivityFailed

from checker.secrets import redact
from probes import checker as api

__all__ = [
    "after_activity_control",
    "after_experiment_control",
    "after_method_control",
    "after_rollback_control",
    "before_activity_control",
    "before_experiment_control",
    "before_method_control",
    "before_rollback_control",
    "cleanup_control",
    "configure_control",
]
# A control, not activities: nothing here is a probe (see probes.discover).
PROBES: tuple[str, ...] = ()

logger = logging.getLogger("chaostoolkit")

BACKOFF_SECONDS = 15.0
# An annotation is worth less than the run's pace: short, whatever checker_timeout says.
ANNOTATION_TIMEOUT = 3.0
_NAME_CHARS = 200  # the API's limits
_DETAIL_CHARS = 4000
_REASON_CHARS = 300


class _Timeline:
    """Posts annotations; remembers across hooks which problem was already reported."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._quiet_until = 0.0  # monotonic time before which nothing is posted
            self._skipped = 0
            self._reported: str | None = None
            self.posted = 0

    # chaoslib calls each hook with `context=` plus the parameters its signature names.
    def configure_control(
        self, configuration: Mapping[str, Any] | None = None, secrets: Any = None, **_: Any
    ) -> None:
        self.reset()
        try:
            logger.debug("checker-timeline: annotating %s", api.target(configuration, secrets).url)
        except ActivityFailed as exc:
            # Reported (once) by the first annotation it prevents.
            logger.debug("checker-timeline: %s", exc)

    def cleanup_control(self) -> None:
        self.reset()

    def before_experiment_control(
        self, context: Mapping[str, Any], configuration: Any = None, secrets: Any = None, **_: Any
    ) -> None:
        self._post(
            _experiment_name(context), "start", "chaostoolkit experiment", configuration, secrets
        )

    def after_experiment_control(
        self,
        context: Mapping[str, Any],
        state: Any = None,
        configuration: Any = None,
        secrets: Any = None,
        **_: Any,
    ) -> None:
        detail = "chaostoolkit experiment"
        if isinstance(state, Mapping):
            detail += f": status {state.get('status')}, deviated {state.get('deviated')}"
        self._post(_experiment_name(context), "end", detail, configuration, secrets)

    def before_method_control(
        self, context: Any = None, configuration: Any = None, secrets: Any = None, **_: Any
    ) -> None:
        self._post("method", "start", "experiment method", configuration, secrets)

    def after_method_control(
        self, context: Any = None, configuration: Any = None, secrets: Any = None, **_: Any
    ) -> None:
        self._post("method", "end", "experiment method", configuration, secrets)

    def before_rollback_control(
        self, context: Any = None, configuration: Any = None, secrets: Any = None, **_: Any
    ) -> None:
        self._post("rollbacks", "start", "experiment rollbacks", configuration, secrets)

    def after_rollback_control(
        self, context: Any = None, configuration: Any = None, secrets: Any = None, **_: Any
    ) -> None:
        self._post("rollbacks", "end", "experiment rollbacks", configuration, secrets)

    def before_activity_control(
        self, context: Mapping[str, Any], configuration: Any = None, secrets: Any = None, **_: Any
    ) -> None:
        self._post(_activity_name(context), "start", _describe(context), configuration, secrets)

    def after_activity_control(
        self,
        context: Mapping[str, Any],
        state: Any = None,
        configuration: Any = None,
        secrets: Any = None,
        **_: Any,
    ) -> None:
        detail = _describe(context)
        if isinstance(state, Mapping) and state.get("status"):
            detail += f": {state['status']}{_failure_reason(state)}"
        self._post(_activity_name(context), "end", detail, configuration, secrets)

    # -- posting ----------------------------------------------------------------------------------
    def _post(self, name: str, phase: str, detail: str, configuration: Any, secrets: Any) -> None:
        """Post one annotation; whatever happens, return normally."""
        now = time.time()
        with self._lock:
            if time.monotonic() < self._quiet_until:
                self._skipped += 1
                return
        try:
            checker = api.target(configuration, secrets)
            timed = api.Checker(
                checker.url, checker.token, min(checker.timeout, ANNOTATION_TIMEOUT)
            )
            body = {
                "name": name[:_NAME_CHARS],
                "phase": phase,
                "time": now,
                "detail": redact(detail)[:_DETAIL_CHARS],
            }
            api.call_api(timed, "POST", "/annotations", timed.timeout, body=body)
        except api.NoAnswer as exc:
            with self._lock:
                self._quiet_until = time.monotonic() + BACKOFF_SECONDS
            self._report(
                f"checker-timeline: {exc}; annotations skipped for {BACKOFF_SECONDS:g}s, "
                "the run goes on"
            )
            return
        except ActivityFailed as exc:
            self._report(f"checker-timeline: annotation not posted, the run goes on: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a timeline mark must never end a chaos run
            self._report(
                "checker-timeline: annotation not posted, the run goes on: "
                f"{type(exc).__name__}: {redact(str(exc))}"
            )
            return
        with self._lock:
            skipped, self._skipped = self._skipped, 0
            recovered = self._reported is not None
            self._reported = None
            self.posted += 1
        if recovered:
            logger.info(
                "checker-timeline: the checker takes annotations again (%d skipped)", skipped
            )

    def _report(self, message: str) -> None:
        """Warn once per distinct problem; repeats go to the debug log."""
        with self._lock:
            repeated = message == self._reported
            self._reported = message
        (logger.debug if repeated else logger.warning)(" ".join(message.split()))


def _experiment_name(experiment: Any) -> str:
    title = experiment.get("title") if isinstance(experiment, Mapping) else None
    return f"experiment: {title or 'untitled'}"


def _activity_name(activity: Any) -> str:
    name = activity.get("name") if isinstance(activity, Mapping) else None
    return str(name or "unnamed activity")


def _describe(activity: Any) -> str:
    """`action probes.lab.endpoint_loss`: what ran, never its arguments (they may be secret)."""
    if not isinstance(activity, Mapping):
        return "activity"
    kind = str(activity.get("type") or "activity")
    provider = activity.get("provider")
    if not isinstance(provider, Mapping):
        return kind
    if provider.get("type") == "python":
        return f"{kind} {provider.get('module')}.{provider.get('func')}"
    return f"{kind} {provider.get('type')} provider"


def _failure_reason(run: Mapping[str, Any]) -> str:
    """The last line of a failed activity's exception (chaoslib keeps the traceback's lines)."""
    lines = run.get("exception")
    if run.get("status") != "failed" or not isinstance(lines, list) or not lines:
        return ""
    last = " ".join(str(lines[-1]).split())
    return f" ({redact(last)[:_REASON_CHARS]})"


# chaoslib looks the hooks up by name on the module. They are bound methods, not functions, so
# `chaos discover` (which lists a module's functions as activities) does not list them.
_timeline = _Timeline()
configure_control = _timeline.configure_control
cleanup_control = _timeline.cleanup_control
before_experiment_control = _timeline.before_experiment_control
after_experiment_control = _timeline.after_experiment_control
before_method_control = _timeline.before_method_control
after_method_control = _timeline.after_method_control
before_rollback_control = _timeline.before_rollback_control
after_rollback_control = _timeline.after_rollback_control
before_activity_control = _timeline.before_activity_control
after_activity_control = _timeline.after_activity_control
