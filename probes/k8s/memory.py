"""What this `chaos run` process did to the cluster, so later activities and rollbacks can undo it.

Chaos Toolkit cannot feed one activity's output into another's arguments, and the node to
restore or untaint may no longer be the node of the pod once that pod has been force-deleted and
rescheduled. So the destructive actions note their targets here, and the follow-up activities
use these notes when the experiment leaves the argument out. Explicit arguments always win.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StoppedKubelet:
    """A kubelet this process stopped, and the Ready heartbeat the node had just before."""

    node: str
    method: str
    heartbeat_before: str | None


@dataclass
class RunMemory:
    """Thread-safe notes (background activities run in threads)."""

    _stopped: list[StoppedKubelet] = field(default_factory=list)
    _tainted: list[str] = field(default_factory=list)
    _uids: dict[tuple[str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stopped(self, record: StoppedKubelet) -> None:
        with self._lock:
            self._stopped = [s for s in self._stopped if s.node != record.node] + [record]

    def last_stopped(self) -> StoppedKubelet | None:
        with self._lock:
            return self._stopped[-1] if self._stopped else None

    def stopped_on(self, node: str) -> StoppedKubelet | None:
        with self._lock:
            return next((s for s in self._stopped if s.node == node), None)

    def tainted(self, node: str) -> None:
        with self._lock:
            if node not in self._tainted:
                self._tainted.append(node)

    def untainted(self, node: str) -> None:
        with self._lock:
            self._tainted = [n for n in self._tainted if n != node]

    def tainted_nodes(self) -> list[str]:
        with self._lock:
            return list(self._tainted)

    def saw_uid(self, namespace: str, pod: str, uid: str, *, replace: bool) -> None:
        """Note the pod's UID; `replace=False` keeps an earlier note (the pre-fault incarnation)."""
        with self._lock:
            if replace or (namespace, pod) not in self._uids:
                self._uids[(namespace, pod)] = uid

    def uid_of(self, namespace: str, pod: str) -> str | None:
        with self._lock:
            return self._uids.get((namespace, pod))

    def clear(self) -> None:
        with self._lock:
            self._stopped.clear()
            self._tainted.clear()
            self._uids.clear()


MEMORY = RunMemory()
