"""A game day's stop request: SIGTERM or SIGINT to `checker gameday`, as the kubelet sends when
the game-day pod is terminated (the Job's activeDeadlineSeconds, a deleted pod, a drained node).

`StopRequest` is a `threading.Event` that remembers why it was first set ("SIGTERM"). A running
`chaos run` waits on it as on its timeout (checker.gameday.chaos), `--once` runs no further
experiment once it is set, and serve mode shuts down.

`stop_on_signals` turns the signals into `request(...)` without running Python code in a signal
handler: the handlers do nothing, and `signal.set_wakeup_fd` makes the interpreter write each
caught signal's number to a pipe that a listener thread reads. Setting an Event takes its lock; a
handler doing it in the main thread could deadlock if the signal landed while that same thread
held the lock (in `Event.wait`, or in a first handler's `set` when a second signal arrives).
Installing a handler also matters in a container: the kernel drops a signal sent to PID 1 (our
process there) that PID 1 has no handler for (pid_namespaces(7)), so without one a SIGTERM would
only be followed, at the end of the grace period, by the SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from checker import _logging

log = _logging.get("checker.gameday")


class StopRequest(threading.Event):
    """Set once the game day is asked to stop; `why` names the first request ("SIGTERM")."""

    def __init__(self) -> None:
        super().__init__()
        self.why: str | None = None

    def request(self, why: str) -> bool:
        """Ask the game day to stop; True for the first request (the one `why` keeps)."""
        first = self.why is None
        if first:
            self.why = why
        self.set()
        return first


def _ignore(_signum: int, _frame: Any) -> None:
    """The Python-level handler: the wakeup fd carries the signal to the listener thread."""


def _listen(read_fd: int, stop: StopRequest, signals: frozenset[int]) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:  # the write end was closed: stop_on_signals is leaving
            return
        # The interpreter writes every signal that has a Python handler; only ours stop.
        for signum in (s for s in data if s in signals):
            name = signal.Signals(signum).name
            if stop.request(name):
                log.warning("gameday_stop_requested", signal=name)
            else:
                log.warning(
                    "gameday_stop_already_requested",
                    signal=name,
                    first=stop.why,
                    note="a running chaos run keeps its grace; it is not interrupted again",
                )


@contextlib.contextmanager
def stop_on_signals(
    stop: StopRequest, signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[StopRequest]:
    """While inside, each of `signals` to this process sets `stop` (the first one names why).
    Call from the main thread (Python's signal handlers and wakeup fd live there)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        # The wakeup fd first, the handlers second (and the reverse on the way out): a signal
        # is never caught by a handler while nothing carries it to the listener.
        old_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        os.close(write_fd)
        os.close(read_fd)
        raise
    listener = threading.Thread(
        target=_listen,
        args=(read_fd, stop, frozenset(int(s) for s in signals)),
        name="gameday-signals",
        daemon=True,
    )
    listener.start()
    previous = {sig: signal.signal(sig, _ignore) for sig in signals}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(old_wakeup)
        os.close(write_fd)  # the listener reads the end of the pipe and returns
        listener.join(timeout=5)
        os.close(read_fd)
