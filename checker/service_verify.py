"""The running checker's verification: `verify_service` is the `Service.verify_fn` that
`checker run` installs. It lives on the service's side: `checker.verify` knows nothing of the
service, the service knows `checker.verify`."""

from __future__ import annotations

import time
from collections.abc import Callable

from checker import _logging
from checker.core.verdict import Failure, Verdict, build_verdict
from checker.errors import AuthError, CheckerError, GrantError
from checker.journal.reader import JournalReader
from checker.service import Service
from checker.verify import LiveRun, Options, target_from_settings, unfinished, verify
from checker.verify.incremental import FULL, INCREMENTAL, carry, complete, incremental_since

log = _logging.get("checker.verify")  # one logger name for the whole verification


def verify_service(service: Service) -> Verdict:
    """`Service.verify_fn`: verify with the service's settings and journal. During a live run,
    rows written after the verification started are left to the next one.

    `service.verify_kind` says which pass: `full`, or `incremental` (from the service's last
    complete pass on; `checker.verify.incremental`). The kind run and its id range are left in
    `service.pass_info`. Unless a full pass judged every node, the earlier passes' range
    findings are carried over (`carry`): nothing found is dropped until a full pass re-judges."""
    verdict = _verify(service)
    kind, _ = service.pass_info or (FULL, None)
    if kind == FULL and complete(verdict):
        return verdict
    return carry(service.carried, verdict)


def _verify(service: Service) -> Verdict:
    settings = service.settings
    watermark = service.passes.last_complete
    since = None
    if service.verify_kind == INCREMENTAL and watermark is not None:
        since = incremental_since(service.journal, watermark, settings.verify_overlap)
    options = Options(timeout=settings.verify_timeout, lag_bound=settings.lag_bound, since=since)
    live = not service.stop_event.is_set()
    service.pass_info = (FULL if since is None else INCREMENTAL, None)
    try:
        target = target_from_settings(settings)
        run = LiveRun(_settler(service), lambda: {w.writer_id: w.recorded for w in service.writers})
        result = verify(target, service.journal, options, live=run if live else None, summary=False)
        service.pass_info = (result.kind, result.id_range)
        return result.verdict
    except (AuthError, GrantError) as exc:
        log.warning("verification_failed", error=str(exc))
        return _failed(str(exc))
    except CheckerError as exc:
        # The primary unreachable or failing: the journal can still speak (its counts, its
        # own checks); the service adds what its live analysis saw (`merge_full`).
        log.warning("verification_failed", error=str(exc))
        try:
            target = target_from_settings(settings)
            return unfinished(target, service.journal, str(exc), options, recorded=False).verdict
        except Exception:
            # Fall back to the bare unknown.
            log.exception("verification_fallback_crashed")
            return _failed(str(exc))
    except Exception as exc:
        # A crashed verification is unknown, never valid (and never a crash of the service).
        log.exception("verification_crashed")
        return _failed(f"{type(exc).__name__}: {exc}")


def _failed(reason: str) -> Verdict:
    return build_verdict([], failures=[Failure("verify", reason)])


def _settler(service: Service) -> Callable[[], None]:
    """Wait until each writer's attempt in flight at the call is decided and journaled (or the
    statement timeout passes), then flush the journal."""

    def settle() -> None:
        marks = {w: w.seq for w in service.writers}
        deadline = time.monotonic() + service.settings.writer.read_timeout + 1.0
        db = JournalReader(service.journal)
        try:
            while True:
                service.journal.flush()
                pending = [
                    w
                    for w, seq in marks.items()
                    if seq > 0
                    and w.seq == seq
                    and w.conn is not None
                    and w.is_alive()
                    and db.max_seq(w.writer_id) < seq
                ]
                if not pending or time.monotonic() >= deadline:
                    return
                time.sleep(0.005)
        finally:
            db.close()

    return settle
