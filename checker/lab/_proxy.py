"""The lab's TCP proxy: Kubernetes Services and endpoints, as clients see them.

One process per lab, started by `checker lab up`. It listens on loopback ports:
- `writer`  (the `mysql-0` Service in the StatefulSet example: always the current primary),
- `reader`  (`mysql-read`: round-robin over ready replicas),
- `node:N`  (one per pod, like `mysql-N.mysql`),
- `repl:N`  (what replica N replicates from: the current primary; the source is N, so a
  partition of N cuts its replication too).

Routing state is the lab's state file (`lab.json`, read as `checker.lab.state.LabState`); the
lab changes it under a lock and then asks the proxy to `reload` over a Unix socket (`call`,
`reload` below: the client side), so the file stays the one source of truth.
Faults, per node:
- `endpoint_lost`: new connections routed to the node are refused (accepted and closed at
  once), open ones keep working — what a NotReady pod looks like to clients.
- `partitioned` (mode `reset`): every open connection from or to the node is closed and new
  ones are refused; (mode `blackhole`): open connections stall and new ones hang until healed.

Run as `python -m checker.lab._proxy LAB_DIR`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checker.errors import LabError
from checker.lab.state import LabState, load

CONTROL_SOCKET = "proxy.sock"
LOOPBACK = "127.0.0.1"
_BUFFER_LIMIT = 1 << 20  # pause reading from one side when the other has this much queued


@dataclass(eq=False)  # identity semantics: connections live in a set
class _Conn:
    """One client connection and its backend: who it is from and to, and both transports."""

    listener: str
    source: str | None
    target: str
    client: asyncio.Transport | None = None
    backend: asyncio.Transport | None = None
    flowing: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        for t in (self.client, self.backend):
            if t is not None and not t.is_closing():
                # abort, not close: a cut connection must not drain politely
                t.abort()


class _Pump(asyncio.Protocol):
    """Copies bytes from its transport to the peer's, with back-pressure and stall support."""

    def __init__(
        self, proxy: Proxy, conn: _Conn, side: str, on_made: Callable[[_Pump], None] | None = None
    ) -> None:
        self.proxy = proxy
        self.on_made = on_made
        self.conn = conn
        self.side = side
        self.transport: asyncio.Transport | None = None
        self.peer: _Pump | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):  # pragma: no cover - TCP only
            raise TypeError("the lab proxy only serves stream transports")
        self.transport = transport
        transport.set_write_buffer_limits(high=_BUFFER_LIMIT)
        if self.side == "client":
            self.conn.client = transport
        if self.on_made is not None:
            self.on_made(self)

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None or not self.conn.flowing.is_set():
            self.pending.append(data)
            if self.transport is not None and sum(map(len, self.pending)) > _BUFFER_LIMIT:
                self.transport.pause_reading()
            return
        self.peer.transport.write(data)

    def flush(self) -> None:
        if self.peer is not None and self.peer.transport is not None and self.pending:
            for chunk in self.pending:
                self.peer.transport.write(chunk)
            self.pending.clear()
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and self.conn.flowing.is_set():
            self.peer.transport.resume_reading()

    def eof_received(self) -> bool | None:
        # The MySQL protocol never half-closes: EOF from either side ends the whole connection,
        # so no socket lingers half-open after a server dies.
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()
        self.proxy.forget(self.conn)


class Proxy:
    """Listeners, routing decisions and the registry of open connections."""

    def __init__(self, lab_dir: Path) -> None:
        self.dir = lab_dir
        self._state: LabState | None = None
        self.conns: set[_Conn] = set()
        self.servers: dict[str, asyncio.base_events.Server] = {}
        self._rr = itertools.count()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    # -- state ------------------------------------------------------------------------------
    @property
    def state(self) -> LabState:
        if self._state is None:
            raise RuntimeError("the proxy has not read the lab state yet")
        return self._state

    def load(self) -> None:
        self._state = load(self.dir)

    def faults(self, name: str) -> Mapping[str, Any]:
        return self.state.faults.get(name, {})

    def routable(self, name: str) -> bool:
        """May a *new* connection reach this node? (endpoint present, not partitioned)"""
        f = self.faults(name)
        return not f.get("endpoint_lost") and not f.get("partitioned")

    def ready(self, name: str) -> bool:
        """Would the pod be in the Service's endpoints (running, not paused, routable)?"""
        return self.state.nodes[name].state == "running" and self.routable(name)

    def route(self, listener: str) -> tuple[str | None, str | None]:
        """(source, target) for a new connection on `listener`; target None means refuse."""
        kind, _, name = listener.partition(":")
        primary = self.state.primary
        if kind == "writer":
            return None, primary if primary and self.routable(primary) else None
        if kind == "reader":
            replicas = sorted(
                n for n, v in self.state.nodes.items() if v.role == "replica" and self.ready(n)
            )
            if not replicas:
                return None, None
            return None, replicas[next(self._rr) % len(replicas)]
        if kind == "node":
            return None, name if self.routable(name) else None
        if kind == "repl":
            if self.faults(name).get("partitioned") or not primary or primary == name:
                return name, None
            return name, primary if self.routable(primary) else None
        return None, None

    def stalled(self, conn: _Conn) -> bool:
        """Blackhole partition: the connection exists but no byte moves."""
        for n in (conn.source, conn.target):
            if n and self.faults(n).get("partitioned") == "blackhole":
                return True
        return False

    def apply(self) -> dict[str, Any]:
        """Re-read the state file and bring open connections in line with it."""
        self.load()
        cut = 0
        for conn in list(self.conns):
            modes = {self.faults(n).get("partitioned") for n in (conn.source, conn.target) if n}
            if "reset" in modes:
                conn.close()
                cut += 1
            elif "blackhole" in modes:
                conn.flowing.clear()
            elif not conn.flowing.is_set():
                self._resume(conn)
        return {"ok": True, "cut": cut, "open": len(self.conns)}

    # -- connections ------------------------------------------------------------------------
    def forget(self, conn: _Conn) -> None:
        self.conns.discard(conn)

    def _resume(self, conn: _Conn) -> None:
        conn.flowing.set()
        for t in (conn.client, conn.backend):
            proto = t.get_protocol() if t is not None else None
            if isinstance(proto, _Pump):
                proto.flush()

    async def _connect(self, listener: str, client: _Pump) -> None:
        """Route a freshly accepted client connection to its backend (or refuse it)."""
        source, target = self.route(listener)
        transport = client.transport
        if transport is None or target is None:
            if transport is not None:
                transport.abort()
            return
        conn = client.conn
        conn.source, conn.target = source, target
        self.conns.add(conn)
        if self.stalled(conn):
            conn.flowing.clear()
            await conn.flowing.wait()  # a blackholed SYN: the client waits until healed
            source, target = self.route(listener)
            if target is None or transport.is_closing():
                transport.abort()
                self.forget(conn)
                return
            conn.target = target
        port = self.state.nodes[conn.target].port
        loop = asyncio.get_running_loop()
        try:
            _, backend = await loop.create_connection(
                lambda: _Pump(self, conn, "backend"), LOOPBACK, port
            )
        except OSError:
            transport.abort()
            self.forget(conn)
            return
        if transport.is_closing():
            if backend.transport is not None:
                backend.transport.abort()
            self.forget(conn)
            return
        conn.backend = backend.transport
        backend.peer, client.peer = client, backend
        conn.flowing.set()
        if self.stalled(conn):
            conn.flowing.clear()
        else:
            client.flush()
            backend.flush()

    def _accept(self, listener: str) -> asyncio.Protocol:
        conn = _Conn(listener=listener, source=None, target="")

        def route(pump: _Pump) -> None:
            task = asyncio.get_running_loop().create_task(self._connect(listener, pump))
            self.tasks.add(task)  # keep a reference: the loop holds tasks only weakly
            task.add_done_callback(self.tasks.discard)

        return _Pump(self, conn, "client", on_made=route)

    # -- control ----------------------------------------------------------------------------
    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            request = json.loads(line or b"{}")
            op = request.get("op")
            if op == "reload":
                reply = self.apply()
            elif op == "ping":
                reply = {"ok": True, "pid": os.getpid(), "open": len(self.conns)}
            elif op == "connections":
                reply = {
                    "ok": True,
                    "connections": [
                        {
                            "listener": c.listener,
                            "source": c.source,
                            "target": c.target,
                            "flowing": c.flowing.is_set(),
                        }
                        for c in self.conns
                    ],
                }
            elif op == "stop":
                reply = {"ok": True}
                self.stopping.set()
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as exc:  # noqa: BLE001 - the control channel must answer, not die
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(reply).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def serve(self) -> None:
        self.load()
        loop = asyncio.get_running_loop()
        listeners: dict[str, int] = {
            "writer": self.state.writer_port,
            "reader": self.state.reader_port,
        }
        for name, node in self.state.nodes.items():
            listeners[f"node:{name}"] = node.endpoint_port
            listeners[f"repl:{name}"] = node.repl_port
        for listener, port in listeners.items():
            self.servers[listener] = await loop.create_server(
                lambda listener=listener: self._accept(listener),  # type: ignore[misc]
                LOOPBACK,
                port,
                reuse_address=True,
                family=socket.AF_INET,
            )
        control_path = self.dir / CONTROL_SOCKET
        with contextlib.suppress(FileNotFoundError):
            control_path.unlink()
        control = await asyncio.start_unix_server(self._control, path=str(control_path))
        os.chmod(control_path, 0o600)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        (self.dir / "proxy.ready").write_text(str(os.getpid()))
        await self.stopping.wait()
        control.close()
        for server in self.servers.values():
            server.close()
        for conn in list(self.conns):
            conn.close()
        with contextlib.suppress(FileNotFoundError):
            control_path.unlink()


def call(lab_dir: Path, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to the lab's proxy over its control socket; its reply, if `ok`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(lab_dir / CONTROL_SOCKET))
        except OSError as exc:
            raise LabError(
                f"the lab proxy is not answering ({exc}): run `checker lab up --dir {lab_dir}`"
            ) from None
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data or b"{}")
    if not reply.get("ok"):
        raise LabError(f"lab proxy refused {request.get('op')}: {reply.get('error')}")
    return reply


def reload(lab_dir: Path) -> dict[str, Any]:
    """Have the proxy re-read the state file and cut or stall connections to match it."""
    return call(lab_dir, {"op": "reload"})


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m checker.lab._proxy LAB_DIR", file=sys.stderr)
        return 2
    lab_dir = Path(argv[0]).resolve()
    try:
        asyncio.run(Proxy(lab_dir).serve())
    except OSError as exc:
        # The parent reads this file to report a clear error (e.g. a port taken meanwhile).
        (lab_dir / "proxy.failed").write_text(f"{exc}")
        print(f"lab proxy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
