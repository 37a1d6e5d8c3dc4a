"""Probes on the checker's HTTP API: its verdict, its anomaly counts, whether it keeps writing.

Target (configuration): `checker_url`, default `http://checker.mysql.svc:8080` (the Service of
manifests/base/checker); for the local lab `http://127.0.0.1:8080` with
`checker run --lab .lab --http 127.0.0.1:8080`. A path prefix (a proxy) is kept; credentials in
the URL are refused. `checker_timeout` bounds each HTTP request (seconds, default 10). The bearer
token is the `checker` secret's `token` (list `"checker"` in the provider's secrets); it is
sent on every request, since the checker wants it on every route that reveals its state.

Failure policy, as in `probes.mysql`: a checker that does not answer (unreachable, timed out,
HTTP 5xx) is the system's state, not a mistake, so the boolean probes return False and the
hypothesis deviates cleanly with the reason in the log. Probes that must return a number and
the `verify` action raise `ActivityFailed` instead: there is no honest count to give. Anything
no retry can fix raises `ActivityFailed` everywhere: malformed arguments or configuration, a
refused or missing token, a URL that is not the checker's API (HTTP 404, an answer that is not
its JSON). Messages are one line and never carry the token.

Annotations are evaluated at import time on purpose (no `from __future__ import annotations`):
`chaos discover` reads them to describe argument types.
"""

import logging
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import requests

from checker.core.verdict import ANOMALY_TYPES
from checker.errors import CheckerError
from checker.secrets import Secret
from checker.secrets import resolve as resolve_secret
from probes import _config as cfg

__all__ = [
    "anomaly_counts",
    "checker_healthy",
    "lost_by_semi_sync",
    "verdict_valid",
    "verify",
    "wait_for_new_writes",
    "write_outcomes_during",
]
# `verify` starts work on the checker, so it is an action (see probes.discover).
PROBES = (
    "anomaly_counts",
    "checker_healthy",
    "lost_by_semi_sync",
    "verdict_valid",
    "wait_for_new_writes",
    "write_outcomes_during",
)

logger = logging.getLogger("chaostoolkit")

Configuration = dict[str, Any] | None
Secrets = dict[str, Any] | None
T = TypeVar("T")

DEFAULT_CHECKER_URL = "http://checker.mysql.svc:8080"
DEFAULT_REQUEST_TIMEOUT = 10.0
# The configuration keys this module (and the checker-timeline control) reads, with defaults;
# experiments declare each (chaoslib drops `--var` keys an experiment does not declare).
CHECKER_KEYS: dict[str, Any] = {
    "checker_url": DEFAULT_CHECKER_URL,
    "checker_timeout": DEFAULT_REQUEST_TIMEOUT,
}
OUTCOMES = ("ok", "failed", "indeterminate")
_CONNECT_TIMEOUT = 3.0  # a reachable checker accepts at once; waiting longer only delays False
_MIN_REQUEST_TIMEOUT = 0.5
_POLL_INTERVAL = 0.2
_BUSY_RETRY = 1.0  # POST /verify answers 409 while another verification runs
_MAX_COUNT = 100_000_000
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


# -- probes ---------------------------------------------------------------------------------------
def verdict_valid(
    timeout: float = 10.0, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """True when the checker's verdict is VALID: nothing acknowledged lost, duplicated, ...

    An INVALID verdict answers False at once. While the verdict is `unknown` (the checker cannot
    vouch for the data yet, e.g. just after a fault or a start) or the checker does not answer,
    GET /verdict is retried for up to `timeout` seconds (0: one try); then False. The verdict
    is the checker's latest live analysis (about one a second), so ask a moment after a fault.
    """
    limit = cfg.seconds(timeout, "argument timeout", allow_zero=True)
    checker = target(configuration, secrets)
    deadline = time.monotonic() + limit
    while True:
        try:
            verdict = _verdict(checker, _request_timeout(checker, deadline))
            valid = verdict["valid"]
            if valid is True:
                logger.info("verdict_valid: VALID (%s)", _ok_writes(verdict))
                return True
            if valid is False:
                found = {k: n for k, n in verdict["anomaly_counts"].items() if n}
                logger.warning("verdict_valid: INVALID, anomalies %s", _pairs(found))
                return False
            why = "; ".join(_failures(verdict)) or "no reason given"
            problem = f"the verdict is unknown ({why})"
        except NoAnswer as exc:
            problem = str(exc)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.warning("verdict_valid: not VALID within %gs: %s", limit, problem)
            return False
        time.sleep(min(_POLL_INTERVAL, remaining))


def anomaly_counts(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, int]:
    """The current verdict's anomaly counts by type (zeros included) plus their `total`.

    A flat mapping such as {"lost": 0, "duplicated": 0, ..., "total": 0}, for a `range`
    tolerance with a `target`. Raises ActivityFailed when the checker does not answer.
    """
    checker = target(configuration, secrets)
    verdict = _answer(lambda: _verdict(checker, checker.timeout))
    counts = {name: 0 for name in ANOMALY_TYPES}
    counts.update(verdict["anomaly_counts"])
    counts["total"] = sum(counts.values())
    logger.info("anomaly_counts: %s", _pairs({k: n for k, n in counts.items() if n}) or "none")
    return counts


def lost_by_semi_sync(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, int]:
    """The verdict's `lost` examples by the semi-sync window their ack fell in:
    {"on": n, "off": n, "unknown": n, "examples": n, "lost": total}. Examples are capped (the
    verdict's `cap`), `lost` is the exact count. Raises ActivityFailed when the checker does
    not answer."""
    checker = target(configuration, secrets)
    verdict = _answer(lambda: _verdict(checker, checker.timeout))
    counts = {"on": 0, "off": 0, "unknown": 0}
    examples = [a for a in verdict.get("anomalies") or () if a.get("type") == "lost"]
    for a in examples:
        state = (a.get("evidence") or {}).get("semi_sync", "unknown")
        counts[state if state in counts else "unknown"] += 1
    counts["examples"] = len(examples)
    counts["lost"] = int(verdict["anomaly_counts"].get("lost", 0))
    logger.info("lost_by_semi_sync: %s", _pairs(counts))
    return counts


def wait_for_new_writes(
    count: int = 50,
    timeout: float = 60.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True once the checker has had `count` more writes acknowledged, within `timeout` seconds.

    Polls GET /status (`writes.ok`). If the counter goes back (a restarted checker), its new
    value counts as progress. False when the writes do not come in time or the checker does
    not answer meanwhile.
    """
    wanted = _count(count, "argument count")
    limit = cfg.seconds(timeout, "argument timeout")
    checker = target(configuration, secrets)
    started = time.monotonic()
    deadline = started + limit
    last: int | None = None
    progress = 0
    problem = "no answer yet"
    while True:
        try:
            ok = _writes(checker, _request_timeout(checker, deadline))["ok"]
            if last is not None:
                progress += ok - last if ok >= last else ok
            last = ok
            if progress >= wanted:
                waited = time.monotonic() - started
                logger.info("wait_for_new_writes: %d new writes in %.2fs", progress, waited)
                return True
            problem = f"{progress} of {wanted} so far"
        except NoAnswer as exc:
            problem = str(exc)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.warning(
                "wait_for_new_writes: fewer than %d new writes within %gs (%s)",
                wanted,
                limit,
                problem,
            )
            return False
        time.sleep(min(_POLL_INTERVAL, remaining))


def write_outcomes_during(
    seconds: float = 10.0, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, float]:
    """Watch the checker's writes for `seconds`; return how many were acknowledged (`ok`),
    `failed` and `indeterminate` meanwhile, and the `seconds` actually watched.

    A fault's evidence in the journal, and a pause that `--var` can set. Raises ActivityFailed
    when the checker does not answer at the start or at the end.
    """
    duration = cfg.seconds(seconds, "argument seconds", allow_zero=True)
    checker = target(configuration, secrets)
    before = _answer(lambda: _writes(checker, checker.timeout))
    started = time.monotonic()
    time.sleep(duration)
    after = _answer(lambda: _writes(checker, checker.timeout))
    watched = time.monotonic() - started
    # A counter that went back belongs to a restarted checker: all of it is new.
    result: dict[str, float] = {
        k: after[k] - before[k] if after[k] >= before[k] else after[k] for k in OUTCOMES
    }
    result["seconds"] = round(watched, 3)
    logger.info("write_outcomes_during: %s", _pairs(result))
    return result


def checker_healthy(configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """True when the checker answers GET /healthz with its scheduler running and no fatal error.

    This is the checker's own liveness, not MySQL's. False when it does not answer.
    """
    checker = target(configuration, secrets)
    try:
        health = _get(checker, "/healthz", checker.timeout)
    except NoAnswer as exc:
        logger.warning("checker_healthy: %s", exc)
        return False
    if not isinstance(health, Mapping) or "status" not in health:
        _not_the_checker(checker, "/healthz")
    if health.get("status") == "ok" and health.get("scheduler") and not health.get("fatal"):
        return True
    logger.warning(
        "checker_healthy: status=%s scheduler=%s fatal=%s",
        health.get("status"),
        health.get("scheduler"),
        health.get("fatal"),
    )
    return False


# -- actions --------------------------------------------------------------------------------------
def verify(
    timeout: float = 300.0, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Run a full verification now (POST /verify) and return its verdict, flat.

    {"valid": true|false|"unknown", "total": n, "lost": n, ..., "duration": seconds}. Waits for
    a verification already running, all within `timeout` seconds. Needs the `checker` secret's
    token when the checker has one. Raises ActivityFailed when the checker does not answer or
    cannot verify.
    """
    limit = cfg.seconds(timeout, "argument timeout")
    checker = target(configuration, secrets)
    started = time.monotonic()
    deadline = started + limit
    while True:
        try:
            raw = call_api(checker, "POST", "/verify", max(deadline - time.monotonic(), 1.0))
            break
        except _Busy as exc:
            if time.monotonic() + _BUSY_RETRY > deadline:
                cfg.fail(f"verify: {exc} for {limit:g}s: try again later or raise the timeout")
            time.sleep(_BUSY_RETRY)
        except NoAnswer as exc:
            cfg.fail(f"verify: {exc}")
    verdict = _checked_verdict(checker, "/verify", raw)
    result: dict[str, Any] = {"valid": verdict["valid"]}
    counts = {name: 0 for name in ANOMALY_TYPES}
    counts.update(verdict["anomaly_counts"])
    result["total"] = sum(counts.values())
    result.update(counts)
    result["duration"] = round(time.monotonic() - started, 3)
    logger.info("verify: %s", _pairs({k: v for k, v in result.items() if v or k == "valid"}))
    return result


# -- the checker's API ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Checker:
    """Where the checker's API is and how to talk to it, parsed once per activity."""

    url: str  # no trailing slash
    token: Secret | None
    timeout: float


class NoAnswer(Exception):
    """The checker did not answer usefully: unreachable, too slow, or failing (HTTP 5xx)."""


class _Busy(NoAnswer):
    """HTTP 409: the checker is already doing what was asked (a verification)."""


def target(configuration: Any, secrets: Any) -> Checker:
    """The checker's base URL, token and request timeout from an activity's configuration."""
    config = cfg.config_of(configuration)
    url = _base_url(config.get("checker_url", DEFAULT_CHECKER_URL))
    timeout = cfg.seconds(
        config.get("checker_timeout", DEFAULT_REQUEST_TIMEOUT),
        "configuration checker_timeout",
        maximum=3600.0,
    )
    return Checker(url, _token(secrets), timeout)


def _base_url(value: Any) -> str:
    raw = cfg.text(value, "configuration checker_url")
    example = DEFAULT_CHECKER_URL
    try:
        parts = urllib.parse.urlsplit(raw)
        port = parts.port  # raises on a port that is not a number
    except ValueError:
        cfg.fail(f"configuration checker_url is not a URL such as {example}")
    if parts.username is not None or parts.password is not None:
        # Not echoed: whatever sits before the @ may be a password.
        cfg.fail("configuration checker_url must not carry credentials: give the checker secret")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        cfg.fail(f"configuration checker_url must be an http(s) URL such as {example}, not {raw!r}")
    if parts.query or parts.fragment:
        cfg.fail(f"configuration checker_url must have no query or fragment, not {raw!r}")
    if port == 0:
        cfg.fail("configuration checker_url has port 0: give the port the checker listens on")
    return raw.rstrip("/")


def _token(secrets: Any) -> Secret | None:
    """The bearer token: `{"token": ...}` as chaoslib passes a listed scope, or the whole
    `{"checker": {"token": ...}}` mapping (direct calls, controls); else the runner's
    CHECKER_API_TOKEN(_FILE), as the game-day CronJob sets it, so that probes that do not list
    the secret still authenticate. None when absent or empty."""
    given = _given_token(secrets)
    if given is not None:
        return given
    try:
        from_env = resolve_secret(env="CHECKER_API_TOKEN", what="API token")
    except CheckerError as exc:
        cfg.fail(str(exc))
    return from_env if from_env and from_env.reveal().strip() else None


def _given_token(secrets: Any) -> Secret | None:
    if secrets is None:
        return None
    if not isinstance(secrets, Mapping):
        cfg.fail(f"secrets must be a mapping, not {type(secrets).__name__}")
    scope = secrets.get("checker", secrets)
    if not isinstance(scope, Mapping):
        cfg.fail(f"secrets checker must be a mapping with a token, not {type(scope).__name__}")
    value = scope.get("token")
    if value is None:
        return None
    if not isinstance(value, str):
        cfg.fail("secrets checker.token must be a string")  # the value itself is never echoed
    token = value.strip()
    return Secret(token) if token else None


def call_api(
    checker: Checker,
    method: str,
    path: str,
    timeout: float,
    *,
    body: Mapping[str, Any] | None = None,
) -> Any:
    """One request; the JSON answer, or NoAnswer / ActivityFailed as the policy says."""
    headers = {"Accept": "application/json"}
    if checker.token:  # every route but /healthz and /metrics needs it when one is set
        headers["Authorization"] = f"Bearer {checker.token.reveal()}"
    where = f"the checker at {checker.url}"
    try:
        response = requests.request(
            method,
            checker.url + path,
            headers=headers,
            json=body,
            timeout=(min(_CONNECT_TIMEOUT, timeout), timeout),
            allow_redirects=False,
        )
    except requests.Timeout:
        raise NoAnswer(f"{where} did not answer {method} {path} within {timeout:g}s") from None
    except requests.ConnectionError as exc:
        raise NoAnswer(f"{where} is unreachable ({_reason(exc)})") from None
    except requests.RequestException as exc:
        cfg.fail(f"{where}: {method} {path} failed: {type(exc).__name__}")
    status = response.status_code
    if status == 401:
        hint = (
            "check the checker secret's token"
            if checker.token
            else 'none was given: list "checker" in the provider\'s secrets'
        )
        # Worded so that checker.secrets.redact, which hides whatever follows "bearer ",
        # leaves the message readable.
        cfg.fail(
            f"{where} refused {method} {path} (HTTP 401): wrong or missing API token "
            f"(Authorization: Bearer): {hint}"
        )
    if status == 409:
        raise _Busy(f"{where} is busy: {_error_text(response)}")
    if status >= 500:
        raise NoAnswer(f"{where} failed {method} {path}: HTTP {status}: {_error_text(response)}")
    if status == 404:
        cfg.fail(
            f"{where} has no {path} (HTTP 404): configuration checker_url must be the checker's "
            "API, such as http://checker.mysql.svc:8080"
        )
    if status >= 300:
        cfg.fail(f"{where} refused {method} {path}: HTTP {status}: {_error_text(response)}")
    try:
        return response.json()
    except ValueError:
        _not_the_checker(checker, path)


def _get(checker: Checker, path: str, timeout: float) -> Any:
    return call_api(checker, "GET", path, timeout)


def _verdict(checker: Checker, timeout: float) -> dict[str, Any]:
    return _checked_verdict(checker, "/verdict", _get(checker, "/verdict", timeout))


def _checked_verdict(checker: Checker, path: str, raw: Any) -> dict[str, Any]:
    """The verdict JSON (docs/verdict.md), or ActivityFailed when it is not one."""
    if (
        not isinstance(raw, Mapping)
        or raw.get("valid") not in (True, False, "unknown")
        or not isinstance(raw.get("anomaly_counts"), Mapping)
        or not all(_is_count(n) for n in raw["anomaly_counts"].values())
    ):
        _not_the_checker(checker, path)
    return dict(raw)


def _writes(checker: Checker, timeout: float) -> dict[str, int]:
    status = _get(checker, "/status", timeout)
    writes = status.get("writes") if isinstance(status, Mapping) else None
    if isinstance(writes, Mapping) and all(_is_count(writes.get(k)) for k in OUTCOMES):
        return {k: int(writes[k]) for k in OUTCOMES}
    _not_the_checker(checker, "/status")


def _answer(call: Callable[[], T]) -> T:
    """Run a request for an activity that has no honest answer without one."""
    try:
        return call()
    except NoAnswer as exc:
        cfg.fail(str(exc))


def _not_the_checker(checker: Checker, path: str) -> NoReturn:
    cfg.fail(
        f"the answer of {checker.url}{path} is not the checker's: configuration checker_url must "
        "be the checker's API"
    )


def _request_timeout(checker: Checker, deadline: float) -> float:
    """A request never outlives the activity's own deadline by much, nor gets absurdly short."""
    return max(min(checker.timeout, deadline - time.monotonic()), _MIN_REQUEST_TIMEOUT)


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no reason given"
    if isinstance(body, Mapping) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.reason or "no reason given"


def _reason(exc: requests.ConnectionError) -> str:
    """ "Connection refused" rather than urllib3's three nested exception reprs."""
    found = _ERRNO_TEXT.search(str(exc))
    return found.group(1).strip() if found else "connection failed"


# -- arguments and text ---------------------------------------------------------------------------
def _count(value: Any, what: str) -> int:
    """A whole number of writes >= 1; `--var` strings are accepted."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        cfg.fail(f"{what} must be a whole number of writes, not {type(value).__name__}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except ValueError:
        cfg.fail(f"{what} must be a whole number of writes, not {value!r}")
    # 50.0 from a JSON tool is fine; 2.5 writes is not.
    if not math.isfinite(number) or not number.is_integer() or not 1 <= number <= _MAX_COUNT:
        cfg.fail(f"{what} must be a whole number of writes from 1 to {_MAX_COUNT}, not {value!r}")
    return int(number)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _ok_writes(verdict: Mapping[str, Any]) -> str:
    counts = verdict.get("counts")
    ok = counts.get("ok") if isinstance(counts, Mapping) else None
    return f"{ok} acknowledged writes" if ok is not None else "no write counts"


def _failures(verdict: Mapping[str, Any]) -> list[str]:
    failures = verdict.get("failures")
    if not isinstance(failures, list):
        return []
    return [
        f"{f.get('detector')}: {f.get('error')}" for f in failures[:3] if isinstance(f, Mapping)
    ]


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
