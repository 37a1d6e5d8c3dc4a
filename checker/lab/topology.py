"""The lab: a StatefulSet-like MySQL/MariaDB topology on one machine, and its faults.

`mysql-0` starts as the primary (binlog, GTIDs, ROW), `mysql-1..N` replicate from it through
the lab proxy. Everything about a lab lives in its directory: `lab.json` (ports, pids, roles,
faults), the datadirs, logs, and `secrets/` (generated passwords, mode 0600). Separate
commands, the chaos probes and the tests therefore act on the same lab. Mutations take an
exclusive `flock` on `lab.lock`.

The faults reproduce what a *client* sees of each Kubernetes event (DESIGN.md, "The local
lab"); each has an undo, and `down` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql

from checker import schema
from checker.errors import LabError
from checker.lab import _server
from checker.lab._proxy import CONTROL_SOCKET, STATE_FILE
from checker.mysql import Endpoint
from checker.secrets import Secret

DEFAULT_DIR = ".lab"
APP_USER = "checker"
APP_DATABASE = "integrity"
REPL_USER = "repl"
ROOT_USER = "root"

FAULTS = (
    "endpoint-loss",
    "endpoint-restore",
    "kill",
    "start",
    "pause",
    "resume",
    "partition",
    "heal",
    "promote",
    "double-start",
    "lag",
    "unlag",
    "semi-sync-fallback",
    "semi-sync-restore",
)


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _free_port() -> int:
    """A free loopback port *outside* the ephemeral range.

    Ports the kernel hands out for bind(0) are also the source ports of outgoing connections:
    while a killed node is down, any client connection could take its port and the node could
    not restart on it. Below the ephemeral range only listeners compete.
    """
    lo, hi = _ephemeral_range()
    candidates = list(range(10000, lo)) if lo > 11000 else list(range(hi + 1, 65535))
    for port in random.sample(candidates, k=min(len(candidates), 200)):
        if not _port_busy(port):
            return port
    raise LabError("no free loopback port below the ephemeral range: use --base-port")


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _port_owner(port: int) -> str:
    """' (pid N: cmd)' of the process listening on 127.0.0.1:port, if /proc tells."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
                    return f" (pid {proc.name}: {cmd.strip()})"
        except OSError:
            continue
    return ""


class Lab:
    """A lab directory and the operations on it. Constructing one has no side effect."""

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIR) -> None:
        self.dir = Path(directory).resolve()

    # -- state ------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def exists(self) -> bool:
        return self.state_path.is_file()

    def load(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            raise LabError(
                f"no lab at {self.dir}: start one with `checker lab up --dir {self.dir}`"
            ) from None
        except json.JSONDecodeError as exc:
            raise LabError(
                f"lab state {self.state_path} is corrupt ({exc}); run `checker lab down --purge`"
            ) from None
        return state

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(tmp, self.state_path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "lab.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def running(self) -> bool:
        """Is a lab up here: state present, proxy alive and every node not killed alive?"""
        if not self.exists():
            return False
        state = self.load()
        if not _server.alive(state.get("proxy_pid")):
            return False
        return any(_server.alive(n.get("pid")) for n in state["nodes"].values())

    def secret(self, user: str) -> Secret:
        path = self.dir / "secrets" / f"{user}.password"
        try:
            return Secret(path.read_text().strip())
        except FileNotFoundError:
            raise LabError(f"no password for {user} in {self.dir / 'secrets'}") from None

    def password_file(self, user: str) -> Path:
        return self.dir / "secrets" / f"{user}.password"

    # -- endpoints --------------------------------------------------------------------------
    def endpoint(
        self,
        which: str = "writer",
        *,
        user: str = APP_USER,
        database: str | None = None,
        password: Secret | None = None,
    ) -> Endpoint:
        """A client endpoint: `writer`, `reader`, a node name (through the proxy) or
        `direct:NODE` (the server's own port, bypassing the proxy)."""
        state = self.load()
        if which == "writer":
            port = state["writer_port"]
        elif which == "reader":
            port = state["reader_port"]
        elif which.startswith("direct:"):
            port = self._node(state, which.split(":", 1)[1])["port"]
        else:
            port = self._node(state, which)["endpoint_port"]
        name = {"writer": "mysql-0", "reader": "mysql-read"}.get(which, which)
        if database is None and user == APP_USER:
            database = APP_DATABASE
        return Endpoint(
            host="127.0.0.1",
            port=int(port),
            user=user,
            password=password if password is not None else self.secret(user),
            database=database,
            name=name,
            tls="disabled",  # the lab's servers listen on loopback without TLS
        )

    def info(self) -> dict[str, Any]:
        """What `lab up --json` prints: endpoints, nodes, user and flavor."""
        state = self.load()
        nodes = {}
        for name, n in state["nodes"].items():
            nodes[name] = {
                "endpoint": f"127.0.0.1:{n['endpoint_port']}",
                "direct": f"127.0.0.1:{n['port']}",
                "datadir": n["datadir"],
                "pid": n.get("pid"),
                "role": n["role"],
                "state": n.get("state"),
            }
        return {
            "dir": str(self.dir),
            "writer": f"127.0.0.1:{state['writer_port']}",
            "reader": f"127.0.0.1:{state['reader_port']}",
            "nodes": nodes,
            "primary": state["primary"],
            "user": APP_USER,
            "password_file": str(self.password_file(APP_USER)),
            "root_password_file": str(self.password_file(ROOT_USER)),
            "database": APP_DATABASE,
            "flavor": state["flavor"],
            "version": state["version"],
            "semi_sync": state.get("semi_sync", False),
        }

    @staticmethod
    def _node(state: dict[str, Any], name: str) -> dict[str, Any]:
        try:
            node: dict[str, Any] = state["nodes"][name]
        except KeyError:
            known = ", ".join(sorted(state["nodes"]))
            raise LabError(f"unknown node {name!r}: this lab has {known}") from None
        return node

    def _flavor(self, state: dict[str, Any]) -> _server.Flavor:
        return _server.Flavor(
            name=state["flavor"], server=state["server"], version=state["version"]
        )

    # -- up / down --------------------------------------------------------------------------
    def up(
        self,
        *,
        replicas: int = 2,
        semi_sync: bool = False,
        base_port: int | None = None,
        buffer_pool_mb: int = 128,
    ) -> dict[str, Any]:
        """Start the lab (or report the running one). Returns `info()` plus `already_running`."""
        if replicas < 0 or replicas > 8:
            raise LabError(f"--replicas must be between 0 and 8, not {replicas}")
        with self.locked():
            if self.exists():
                state = self.load()
                have = len(state["nodes"]) - 1
                if have != replicas:
                    raise LabError(
                        f"the lab at {self.dir} has {have} replicas, not {replicas}: "
                        f"run `checker lab down --dir {self.dir} --purge` to start over"
                    )
                if self.running():
                    return {**self.info(), "already_running": True}
                self._restart(state)
                return {**self.info(), "already_running": False}
            try:
                self._create(replicas, semi_sync, base_port, buffer_pool_mb)
            except BaseException:
                # Never leave half a lab running: stop what was started, keep the logs.
                with contextlib.suppress(Exception):
                    state = self.load()
                    self._stop_all(state)
                    self.save(state)
                raise
        return {**self.info(), "already_running": False}

    def _allocate_ports(self, count: int, base_port: int | None) -> list[int]:
        if base_port is None:
            ports: list[int] = []
            while len(ports) < count:
                p = _free_port()
                if p not in ports:
                    ports.append(p)
            return ports
        if base_port < 1024 or base_port + count > 65535:
            raise LabError(
                f"--base-port {base_port} leaves no room for {count} ports (1024..65535)"
            )
        ports = list(range(base_port, base_port + count))
        busy = [p for p in ports if _port_busy(p)]
        if busy:
            raise LabError(
                f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are already in use: "
                "choose another --base-port or omit it to pick free ports"
            )
        return ports

    def _tmpdir(self, name: str) -> Path:
        path = self.dir / "tmp" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _socket_dir(self) -> Path:
        # Unix socket paths are limited to 107 bytes; a deep lab dir falls back to /tmp.
        candidate = self.dir / "run"
        if len(str(candidate)) + 16 < 100:
            return candidate
        import hashlib

        digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"checker-lab-{digest}"  # noqa: S108 - short socket path only

    def _create(
        self, replicas: int, semi_sync: bool, base_port: int | None, buffer_pool_mb: int
    ) -> None:
        flavor = _server.detect()
        names = [f"mysql-{i}" for i in range(replicas + 1)]
        ports = self._allocate_ports(2 + 3 * len(names), base_port)
        run = self._socket_dir()
        for d in (self.dir, self.dir / "secrets", self.dir / "logs", run):
            d.mkdir(parents=True, exist_ok=True)
        # Private: the secrets, and the sockets that reach root@localhost.
        os.chmod(self.dir / "secrets", 0o700)
        os.chmod(run, 0o700)
        for user in (ROOT_USER, APP_USER, REPL_USER):
            path = self.password_file(user)
            path.write_text(secrets.token_hex(16) + "\n")
            os.chmod(path, 0o600)
        state: dict[str, Any] = {
            "version_format": 1,
            "flavor": flavor.name,
            "server": flavor.server,
            "version": flavor.version,
            "semi_sync": semi_sync,
            "buffer_pool_mb": buffer_pool_mb,
            "writer_port": ports[0],
            "reader_port": ports[1],
            "primary": "mysql-0",
            "faults": {},
            "nodes": {},
            "proxy_pid": None,
        }
        for i, name in enumerate(names):
            base = 2 + 3 * i
            state["nodes"][name] = {
                "index": i,
                "server_id": i + 1,
                "port": ports[base],
                "endpoint_port": ports[base + 1],
                "repl_port": ports[base + 2],
                "datadir": str(self.dir / "data" / name),
                "socket": str(run / f"{name}.sock"),
                "role": "primary" if i == 0 else "replica",
                "state": "stopped",
                "pid": None,
            }
        self.save(state)
        for name in names:
            node = state["nodes"][name]
            flavor.initialise(
                Path(node["datadir"]), self.dir / "logs" / f"{name}.init.log", self._tmpdir(name)
            )
        for name in names:
            self._start_server(state, name)
        self.save(state)
        self._bootstrap_users(state)
        for name in names[1:]:
            self._configure_replica(state, name)
        self._start_proxy(state)
        self.save(state)
        self._wait_replication(state, timeout=60)

    def _bootstrap_users(self, state: dict[str, Any]) -> None:
        """Users, the checker's schema and grants, created on the primary and replicated."""
        primary = state["nodes"][state["primary"]]
        names = schema.Names(database=APP_DATABASE)
        root_pw = self.secret(ROOT_USER).reveal()
        app_pw = self.secret(APP_USER).reveal()
        repl_pw = self.secret(REPL_USER).reveal()
        sock = Path(primary["socket"])
        # install-db leaves password-less root accounts for TCP hosts: drop them, keep the
        # socket one (the lab's back door), give root@127.0.0.1 the generated password.
        extra = _server.execute(
            sock,
            "SELECT user AS u, host AS h FROM mysql.user WHERE (user = 'root' AND host NOT IN "
            "('localhost', '127.0.0.1')) OR user = ''",
        )
        _server.execute(sock, [f"DROP USER '{r['u']}'@'{r['h']}'" for r in extra] or "SELECT 1")
        _server.execute(
            sock,
            [
                f"CREATE USER IF NOT EXISTS '{ROOT_USER}'@'127.0.0.1'",
                f"ALTER USER '{ROOT_USER}'@'127.0.0.1' IDENTIFIED BY '{root_pw}'",
                f"GRANT ALL PRIVILEGES ON *.* TO '{ROOT_USER}'@'127.0.0.1' WITH GRANT OPTION",
                f"CREATE USER IF NOT EXISTS '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY '{repl_pw}'",
                f"GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'127.0.0.1'",
                *schema.ddl(names),
                f"CREATE USER IF NOT EXISTS '{APP_USER}'@'127.0.0.1' IDENTIFIED BY '{app_pw}'",
                # exactly the documented minimal grants (docs/grants.md), nothing more
                *schema.grants(names, APP_USER, "127.0.0.1", state["flavor"]),
            ],
        )
        # Last, root@localhost (the socket account) gets the root password on every node, each
        # on its own and unlogged (replication is not set up yet); from then on the lab's own
        # connections find it through the pointer file beside the sockets.
        for node in state["nodes"].values():
            _server.execute(
                Path(node["socket"]),
                [
                    "SET SESSION sql_log_bin = 0",
                    f"ALTER USER '{ROOT_USER}'@'localhost' IDENTIFIED BY '{root_pw}'",
                ],
            )
        pointer = sock.parent / _server.ROOT_PASSWORD_POINTER
        pointer.write_text(f"{self.password_file(ROOT_USER)}\n")
        os.chmod(pointer, 0o600)

    def _configure_replica(self, state: dict[str, Any], name: str) -> None:
        node = state["nodes"][name]
        flavor = self._flavor(state)
        stmts = flavor.change_primary(node["repl_port"], REPL_USER, self.secret(REPL_USER).reveal())
        _server.execute(Path(node["socket"]), stmts)

    def _start_server(self, state: dict[str, Any], name: str) -> None:
        node = state["nodes"][name]
        flavor = self._flavor(state)
        logs = self.dir / "logs"
        error_log = logs / f"{name}.err"
        sock = Path(node["socket"])
        sock.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(sock.parent, 0o700)
        port = int(node["port"])
        deadline = time.monotonic() + 10
        while _port_busy(port):
            # Right after a kill the old socket may take a moment to go; wait, then name it.
            if time.monotonic() > deadline:
                owner = _port_owner(port)
                raise LabError(
                    f"port {port} of {name} is in use by another process{owner}: stop it, or "
                    f"`checker lab down --dir {self.dir} --purge` and start a new lab"
                )
            time.sleep(0.1)
        args = flavor.server_args(
            datadir=Path(node["datadir"]),
            port=int(node["port"]),
            socket=sock,
            server_id=int(node["server_id"]),
            pid_file=Path(node["datadir"]) / "mysqld.pid",
            error_log=error_log,
            read_only=node["role"] != "primary",
            semi_sync=bool(state.get("semi_sync")),
            buffer_pool_mb=int(state.get("buffer_pool_mb", 128)),
            tmpdir=self._tmpdir(name),
        )
        pid = _server.start(args, logs / f"{name}.out")
        node["pid"] = pid
        node["state"] = "starting"
        _server.wait_ready(sock, pid, error_log)
        node["state"] = "running"

    def _start_proxy(self, state: dict[str, Any]) -> None:
        for f in ("proxy.ready", "proxy.failed"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / f).unlink()
        busy = [
            p
            for p in [state["writer_port"], state["reader_port"]]
            + [n[k] for n in state["nodes"].values() for k in ("endpoint_port", "repl_port")]
            if _port_busy(int(p))
        ]
        if busy:
            raise LabError(
                f"lab endpoint port(s) {', '.join(map(str, busy))} are in use by another process"
            )
        self.save(state)
        with (self.dir / "logs" / "proxy.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "checker.lab._proxy", str(self.dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        state["proxy_pid"] = proc.pid
        deadline = time.monotonic() + 15
        while not (self.dir / "proxy.ready").exists():
            if (self.dir / "proxy.failed").exists():
                raise LabError(f"lab proxy failed: {(self.dir / 'proxy.failed').read_text()}")
            if not _server.alive(proc.pid) or time.monotonic() > deadline:
                raise LabError(f"lab proxy did not start; see {self.dir / 'logs' / 'proxy.log'}")
            time.sleep(0.02)

    def _restart(self, state: dict[str, Any]) -> None:
        """`up` on a stopped lab: start every node that is not alive, then the proxy."""
        for name, node in state["nodes"].items():
            if not _server.alive(node.get("pid")):
                self._start_server(state, name)
                self.save(state)
        for name, node in state["nodes"].items():
            if node["role"] == "replica":
                self._ensure_replicating(state, name)
        if not _server.alive(state.get("proxy_pid")):
            self._start_proxy(state)
        state["faults"] = {}
        self.save(state)
        self._reload_proxy()

    def down(self, *, purge: bool = False) -> dict[str, Any]:
        """Stop every process the lab started; keep data unless `purge`."""
        with self.locked():
            if not self.exists():
                # No state (a start that crashed before saving it): servers may still run on
                # the datadirs, found by their command lines.
                stray = self._stop_strays()
                if stray:
                    raise LabError(
                        f"servers still run on {self.dir / 'data'} after SIGKILL (pids "
                        f"{', '.join(map(str, stray))}): not purging their data"
                    )
                if purge and self.dir.exists():
                    self._purge()
                return {"stopped": [], "purged": purge}
            state = self.load()
            stopped = self._stop_all(state)
            self.save(state)
            running = self._still_running(state)
            if self._stop_strays():
                running.append(f"other servers on {self.dir / 'data'}")
            if running:
                raise LabError(
                    f"servers still run on {', '.join(running)} after SIGKILL: not "
                    + ("purging their data; " if purge else "")
                    + "stop them (see `checker lab status`) and run `checker lab down` again"
                )
            if purge:
                self._purge(state)
        return {"stopped": stopped, "purged": purge}

    def _stop_strays(self) -> list[int]:
        """Servers on this lab's datadirs that the state does not name (a pid lost when a
        start crashed): terminated like the others; the pids that survive are returned."""
        needle = f"--datadir={self.dir / 'data'}/"
        for pid in _server.running_with(needle):
            _server.terminate(pid, timeout=10)
        return _server.running_with(needle)

    def _still_running(self, state: dict[str, Any]) -> list[str]:
        """Nodes with a server process still alive on their datadir (recorded or not): each
        is terminated (SIGKILL after a timeout); those that survive even that are returned."""
        left = []
        for name, node in sorted(state["nodes"].items()):
            needle = f"--datadir={node['datadir']}\0"
            for pid in _server.running_with(needle):
                _server.terminate(pid, timeout=10)
            if _server.running_with(needle):
                left.append(name)
        return left

    def _stop_all(self, state: dict[str, Any]) -> list[str]:
        stopped: list[str] = []
        proxy_pid = state.get("proxy_pid")
        if proxy_pid and _server.alive(proxy_pid) and _server.owns(proxy_pid, "checker.lab._proxy"):
            _server.terminate(proxy_pid, timeout=5)
            stopped.append("proxy")
        state["proxy_pid"] = None
        for name, node in state["nodes"].items():
            for key in ("pid", "double_pid"):
                pid = node.get(key)
                if pid and _server.alive(pid) and _server.owns(pid, node["datadir"]):
                    _server.terminate(pid)
                    stopped.append(name if key == "pid" else f"{name} (second instance)")
                node[key] = None
            node["state"] = "stopped"
        for zombie in state.get("zombies", []):
            if _server.alive(zombie) and _server.owns(zombie, str(self.dir)):
                _server.terminate(zombie)
        state["zombies"] = []
        return stopped

    def _purge(self, state: dict[str, Any] | None = None) -> None:
        import shutil

        run = self._socket_dir()
        if run != self.dir / "run":
            shutil.rmtree(run, ignore_errors=True)
        for child in ("data", "logs", "secrets", "run", "tmp"):
            shutil.rmtree(self.dir / child, ignore_errors=True)
        for f in (STATE_FILE, "lab.lock", "proxy.ready", "proxy.failed", CONTROL_SOCKET, "lab.tmp"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / f).unlink()
        with contextlib.suppress(OSError):
            self.dir.rmdir()

    # -- proxy control ----------------------------------------------------------------------
    def _proxy_call(self, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        path = self.dir / CONTROL_SOCKET
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            try:
                s.connect(str(path))
            except OSError as exc:
                raise LabError(
                    f"the lab proxy is not answering ({exc}): run `checker lab up --dir {self.dir}`"
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

    def _reload_proxy(self) -> dict[str, Any]:
        return self._proxy_call({"op": "reload"})

    def connections(self) -> list[dict[str, Any]]:
        """Open proxied connections (listener, source, target), for status and tests."""
        conns: list[dict[str, Any]] = self._proxy_call({"op": "connections"})["connections"]
        return conns

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        state = self.load()
        flavor = self._flavor(state)
        proxy_alive = _server.alive(state.get("proxy_pid"))
        nodes: dict[str, Any] = {}
        primary = state["nodes"].get(state["primary"], {})
        primary_gtid = None
        for name, node in state["nodes"].items():
            entry: dict[str, Any] = {
                "role": node["role"],
                "pid": node.get("pid"),
                "state": self._process_state(node),
                "faults": sorted(k for k, v in state["faults"].get(name, {}).items() if v),
            }
            if entry["state"] == "running":
                try:
                    entry.update(self._node_sql_status(flavor, node))
                except pymysql.err.MySQLError as exc:
                    entry["error"] = str(exc)
            nodes[name] = entry
            if node is primary:
                primary_gtid = entry.get("gtid")
        return {
            "dir": str(self.dir),
            "primary": state["primary"],
            "primary_gtid": primary_gtid,
            "proxy": {"pid": state.get("proxy_pid"), "alive": proxy_alive},
            "flavor": state["flavor"],
            "nodes": nodes,
            "faults": {
                n: sorted(k for k, v in f.items() if v)
                for n, f in state["faults"].items()
                if any(f.values())
            },
        }

    @staticmethod
    def _process_state(node: dict[str, Any]) -> str:
        pid = node.get("pid")
        if not _server.alive(pid):
            return "killed" if node.get("state") in ("running", "killed", "paused") else "stopped"
        if _server.stopped(pid):
            return "paused"
        return "running"

    def _node_sql_status(self, flavor: _server.Flavor, node: dict[str, Any]) -> dict[str, Any]:
        sock = Path(node["socket"])
        conn = _server.socket_connect(sock, timeout=2.0)
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(flavor.gtid_sql())
                gtid = next(iter(cur.fetchone().values())) or ""
                cur.execute("SELECT @@read_only AS ro")
                read_only = bool(int(cur.fetchone()["ro"]))
                cur.execute(flavor.replica_status_sql())
                repl = cur.fetchone()
        finally:
            conn.close()
        out: dict[str, Any] = {"gtid": gtid, "read_only": read_only}
        if repl:
            io = repl.get("Slave_IO_Running") or repl.get("Replica_IO_Running")
            sql = repl.get("Slave_SQL_Running") or repl.get("Replica_SQL_Running")
            lag = repl.get("Seconds_Behind_Master", repl.get("Seconds_Behind_Source"))
            out["replication"] = {
                "io_running": io,
                "sql_running": sql,
                "seconds_behind": lag,
                "last_io_error": repl.get("Last_IO_Error") or None,
                "last_sql_error": repl.get("Last_SQL_Error") or None,
                "received": repl.get("Gtid_IO_Pos") or repl.get("Retrieved_Gtid_Set"),
            }
        return out

    def _wait_replication(self, state: dict[str, Any], timeout: float) -> None:
        """Wait until every running replica has executed the primary's GTID position."""
        flavor = self._flavor(state)
        primary = state["nodes"][state["primary"]]
        target = _server.execute(Path(primary["socket"]), flavor.gtid_sql())
        pos = next(iter(target[0].values())) if target else ""
        if not pos:
            return
        for name, node in state["nodes"].items():
            if node["role"] != "replica" or not _server.alive(node.get("pid")):
                continue
            if flavor.mariadb:
                sql = f"SELECT MASTER_GTID_WAIT('{pos}', {float(timeout)}) AS r"
            else:
                sql = f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{pos}', {float(timeout)}) AS r"
            rows = _server.execute(Path(node["socket"]), sql, timeout=timeout + 5)
            if rows and int(rows[0]["r"] or 0) != 0:
                raise LabError(f"{name} did not catch up with the primary within {timeout:.0f}s")

    # -- faults -----------------------------------------------------------------------------
    def fault(self, action: str, node: str, **options: Any) -> dict[str, Any]:
        """Apply one lab fault (or its undo) to `node`; returns what was done, as data."""
        if action not in FAULTS:
            raise LabError(f"unknown fault {action!r}: choose one of {', '.join(FAULTS)}")
        with self.locked():
            state = self.load()
            if not _server.alive(state.get("proxy_pid")):
                raise LabError(
                    f"the lab at {self.dir} is not running: `checker lab up --dir {self.dir}`"
                )
            n = self._node(state, node)
            handler = getattr(self, "_fault_" + action.replace("-", "_"))
            result: dict[str, Any] = handler(state, node, n, **options)
            self.save(state)
            self._reload_proxy()
        return {"action": action, "node": node, **result}

    def _set_fault(self, state: dict[str, Any], node: str, key: str, value: Any) -> None:
        faults = state["faults"].setdefault(node, {})
        if value:
            faults[key] = value
        else:
            faults.pop(key, None)
        if not faults:
            state["faults"].pop(node, None)

    def _fault_endpoint_loss(
        self, state: dict[str, Any], name: str, node: dict[str, Any]
    ) -> dict[str, Any]:
        self._set_fault(state, name, "endpoint_lost", True)
        return {"endpoint_lost": True}

    def _fault_endpoint_restore(
        self, state: dict[str, Any], name: str, node: dict[str, Any]
    ) -> dict[str, Any]:
        self._set_fault(state, name, "endpoint_lost", False)
        return {"endpoint_lost": False}

    def _fault_partition(
        self, state: dict[str, Any], name: str, node: dict[str, Any], mode: str = "reset"
    ) -> dict[str, Any]:
        if mode not in ("reset", "blackhole"):
            raise LabError(f"partition mode must be reset or blackhole, not {mode!r}")
        self._set_fault(state, name, "partitioned", mode)
        return {"partitioned": mode}

    def _fault_heal(self, state: dict[str, Any], name: str, node: dict[str, Any]) -> dict[str, Any]:
        self._set_fault(state, name, "partitioned", False)
        return {"partitioned": False}

    def _fault_kill(self, state: dict[str, Any], name: str, node: dict[str, Any]) -> dict[str, Any]:
        pid = node.get("pid")
        if not pid or not _server.alive(pid) or not _server.owns(pid, node["datadir"]):
            raise LabError(
                f"{name} is not running (already killed?): `checker lab fault start {name}`"
            )
        _server.signal_pid(pid, signal.SIGKILL)
        if not _server.wait_exit(pid, 15):
            raise LabError(f"{name} (pid {pid}) did not die after SIGKILL")
        node["state"] = "killed"
        self._set_fault(state, name, "paused", False)
        return {"pid": pid, "signal": "SIGKILL"}

    def _fault_start(
        self, state: dict[str, Any], name: str, node: dict[str, Any]
    ) -> dict[str, Any]:
        if _server.alive(node.get("pid")):
            raise LabError(f"{name} is already running (pid {node['pid']})")
        self._start_server(state, name)
        self.save(state)
        if node["role"] != "primary":
            # A demoted old primary comes back as a replica of whoever is primary now.
            self._ensure_replicating(state, name)
        self._set_fault(state, name, "lagging", False)
        return {"pid": node["pid"], "role": node["role"]}

    def _ensure_replicating(self, state: dict[str, Any], name: str) -> None:
        node = state["nodes"][name]
        flavor = self._flavor(state)
        sock = Path(node["socket"])
        rows = _server.execute(sock, flavor.replica_status_sql())
        _server.execute(sock, ["SET GLOBAL read_only = 1", *flavor.durability_sql(primary=False)])
        if not rows:
            if flavor.mariadb:
                # A former primary has no slave position yet: start from what it has itself.
                _server.execute(sock, "SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos")
            self._configure_replica(state, name)
        else:
            _server.execute(sock, flavor.start_replica_sql())

    def _fault_pause(
        self, state: dict[str, Any], name: str, node: dict[str, Any]
    ) -> dict[str, Any]:
        pid = node.get("pid")
        if not pid or not _server.alive(pid) or not _server.owns(pid, node["datadir"]):
            raise LabError(f"{name} is not running: nothing to pause")
        _server.signal_pid(pid, signal.SIGSTOP)
        node["state"] = "paused"
        self._set_fault(state, name, "paused", True)
        return {"pid": pid, "signal": "SIGSTOP"}

    def _fault_resume(
        self, state: dict[str, Any], name: str, node: dict[str, Any]
    ) -> dict[str, Any]:
        pid = node.get("pid")
        if not pid or not _server.alive(pid):
            raise LabError(f"{name} is not running: nothing to resume")
        _server.signal_pid(pid, signal.SIGCONT)
        node["state"] = "running"
        self._set_fault(state, name, "paused", False)
        return {"pid": pid, "signal": "SIGCONT"}

    def _fault_lag(self, state: dict[str, Any], name: str, node: dict[str, Any]) -> dict[str, Any]:
        if node["role"] != "replica":
            raise LabError(f"{name} is the {node['role']}, not a replica: only replicas can lag")
        self._require_running(name, node)
        _server.execute(Path(node["socket"]), self._flavor(state).stop_replica_sql("SQL_THREAD"))
        self._set_fault(state, name, "lagging", True)
        return {"sql_thread": "stopped"}

    def _fault_unlag(
        self, state: dict[str, Any], name: str, node: dict[str, Any]
    ) -> dict[str, Any]:
        if node["role"] != "replica":
            raise LabError(f"{name} is the {node['role']}, not a replica")
        self._require_running(name, node)
        _server.execute(Path(node["socket"]), self._flavor(state).start_replica_sql("SQL_THREAD"))
        self._set_fault(state, name, "lagging", False)
        return {"sql_thread": "running"}

    def _fault_semi_sync_fallback(
        self, state: dict[str, Any], name: str, node: dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Replicas stop acknowledging: every running replica's IO thread is stopped, then one
        canary commit on the primary waits out the semi-sync timeout and the primary falls
        back to asynchronous replication. What it acknowledges from then on is on no replica."""
        if node["role"] != "primary":
            raise LabError(f"{name} is the {node['role']}, not the primary: name the primary")
        if not state.get("semi_sync"):
            raise LabError("this lab runs without semi-sync: start one with `lab up --semi-sync`")
        self._require_running(name, node)
        flavor = self._flavor(state)
        stopped = []
        for other, n in state["nodes"].items():
            if n["role"] == "replica" and _server.alive(n.get("pid")):
                if _server.stopped(n.get("pid")):
                    continue
                _server.execute(Path(n["socket"]), flavor.stop_replica_sql("IO_THREAD"))
                stopped.append(other)
        self._set_fault(state, name, "semi_sync_fallback", stopped or True)
        self.save(state)
        started = time.monotonic()
        self._canary(node)
        waited = time.monotonic() - started
        active = self._semi_sync_wait(node, "OFF", timeout)
        return {
            "replicas_not_acknowledging": stopped,
            "canary_commit_seconds": round(waited, 3),
            "semi_sync": active,
        }

    def _fault_semi_sync_restore(
        self, state: dict[str, Any], name: str, node: dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Undo `semi-sync-fallback`: the replicas fetch again, catch up and acknowledge; a
        canary commit lets the primary notice and switch semi-sync back on."""
        fault = state["faults"].get(name, {}).get("semi_sync_fallback")
        flavor = self._flavor(state)
        restarted = []
        names = fault if isinstance(fault, list) else list(state["nodes"])
        for other in names:
            n = state["nodes"].get(other)
            if n is None or n["role"] != "replica" or not _server.alive(n.get("pid")):
                continue
            if _server.stopped(n.get("pid")):
                continue
            _server.execute(Path(n["socket"]), flavor.start_replica_sql("IO_THREAD"))
            restarted.append(other)
        self._set_fault(state, name, "semi_sync_fallback", False)
        active = "unchanged"
        if node["role"] == "primary" and restarted and self._usable(node):
            deadline = time.monotonic() + timeout
            active = "OFF"
            while time.monotonic() < deadline and active != "ON":
                self._canary(node)
                active = self._semi_sync_wait(node, "ON", 0.5)
        return {"replicas_acknowledging": restarted, "semi_sync": active}

    @staticmethod
    def _usable(node: dict[str, Any]) -> bool:
        return _server.alive(node.get("pid")) and not _server.stopped(node.get("pid"))

    @staticmethod
    def _canary(node: dict[str, Any]) -> None:
        _server.execute(
            Path(node["socket"]),
            [
                "CREATE DATABASE IF NOT EXISTS lab_canary",
                "CREATE TABLE IF NOT EXISTS lab_canary.t "
                "(id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))",
                "INSERT INTO lab_canary.t (at) VALUES (NOW(6))",
            ],
            timeout=60,
        )

    @staticmethod
    def _semi_sync_wait(node: dict[str, Any], want: str, timeout: float) -> str:
        """The primary's semi-sync status once it is `want`, or when `timeout` ran out."""
        deadline = time.monotonic() + timeout
        while True:
            rows = _server.execute(
                Path(node["socket"]),
                "SHOW GLOBAL STATUS WHERE Variable_name IN "
                "('Rpl_semi_sync_master_status', 'Rpl_semi_sync_source_status')",
            )
            value = str(rows[0]["Value"]) if rows else "absent"
            if value == want or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    @staticmethod
    def _require_running(name: str, node: dict[str, Any]) -> None:
        if not _server.alive(node.get("pid")) or _server.stopped(node.get("pid")):
            raise LabError(f"{name} is not running (killed or paused): start or resume it first")

    def _fault_promote(
        self, state: dict[str, Any], name: str, node: dict[str, Any], keep_old_primary: bool = False
    ) -> dict[str, Any]:
        """Operator-style failover to replica `name`.

        The relay log it already holds is applied first unless its SQL thread was stopped on
        purpose (`lag`): then the unapplied events are discarded, as a careless failover would,
        and acknowledged writes are lost — which the checker must then report.
        """
        old = state["primary"]
        if name == old:
            raise LabError(f"{name} is already the primary")
        if node["role"] != "replica":
            raise LabError(f"{name} is a {node['role']}, not a replica: cannot promote it")
        self._require_running(name, node)
        flavor = self._flavor(state)
        old_node = state["nodes"][old]
        old_alive = _server.alive(old_node.get("pid")) and not _server.stopped(old_node.get("pid"))
        if old_alive and not keep_old_primary:
            # Fence the old primary first, so it cannot ack a write after the new one starts.
            _server.execute(Path(old_node["socket"]), "SET GLOBAL read_only = 1")
        sock = Path(node["socket"])
        lagging = bool(state["faults"].get(name, {}).get("lagging"))
        discarded = None
        if lagging:
            status = _server.execute(sock, flavor.replica_status_sql())
            discarded = (
                (status[0].get("Gtid_IO_Pos") or status[0].get("Retrieved_Gtid_Set"))
                if status
                else None
            )
        else:
            self._drain_relay_log(flavor, sock)
        _server.execute(
            sock,
            [
                flavor.stop_replica_sql(),
                flavor.reset_replica_sql(),
                *flavor.durability_sql(primary=True),
                "SET GLOBAL read_only = 0",
            ],
        )
        self._set_fault(state, name, "lagging", False)
        # A fallback was the old primary's; promote restarts the other replicas' threads.
        self._set_fault(state, old, "semi_sync_fallback", False)
        node["role"] = "primary"
        state["primary"] = name
        if keep_old_primary and old_alive:
            old_node["role"] = "zombie"
        else:
            old_node["role"] = "replica"
            if old_alive:
                self._ensure_replicating(state, old)
        # Let the proxy route the writer and the replication ports to the new primary before
        # the other replicas reconnect.
        self.save(state)
        self._reload_proxy()
        others = []
        for other, other_node in state["nodes"].items():
            if (
                other_node["role"] == "replica"
                and other != old
                and _server.alive(other_node.get("pid"))
            ):
                if _server.stopped(other_node.get("pid")):
                    continue
                stmts = [flavor.stop_replica_sql(), flavor.start_replica_sql()]
                if state["faults"].get(other, {}).get("lagging"):
                    stmts = [
                        flavor.stop_replica_sql("IO_THREAD"),
                        flavor.start_replica_sql("IO_THREAD"),
                    ]
                _server.execute(Path(other_node["socket"]), stmts)
                others.append(other)
        return {
            "old_primary": old,
            "new_primary": name,
            "old_primary_state": old_node["role"] if old_alive else "down",
            "discarded_relay_log_up_to": discarded,
            "replicas_following": others,
        }

    def _drain_relay_log(self, flavor: _server.Flavor, sock: Path, timeout: float = 30.0) -> None:
        """Stop fetching, then wait until what was fetched has been applied."""
        _server.execute(sock, flavor.stop_replica_sql("IO_THREAD"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = _server.execute(sock, flavor.replica_status_sql())
            if not rows:
                return
            r = rows[0]
            if flavor.mariadb:
                received = r.get("Gtid_IO_Pos") or ""
                done = _server.execute(sock, "SELECT @@gtid_slave_pos AS p")[0]["p"] or ""
                if not received or _gtid_pos_covers(done, received):
                    return
            else:
                got = _server.execute(
                    sock,
                    f"SELECT GTID_SUBSET('{r.get('Retrieved_Gtid_Set') or ''}', "
                    "@@gtid_executed) AS ok",
                )
                if int(got[0]["ok"]):
                    return
            if (r.get("Slave_SQL_Running") or r.get("Replica_SQL_Running")) != "Yes":
                return
            time.sleep(0.05)
        raise LabError("the replica did not apply its relay log in time; promote aborted")

    def _fault_double_start(
        self, state: dict[str, Any], name: str, node: dict[str, Any], wait: float = 10.0
    ) -> dict[str, Any]:
        """Start a second server on the node's datadir, as a force delete on a shared volume
        would, and report whether the file locks refused it and the original kept serving."""
        self._require_running(name, node)
        flavor = self._flavor(state)
        logs = self.dir / "logs"
        stamp = time.strftime("%Y%m%dT%H%M%S")
        err = logs / f"{name}.double-start.{stamp}.err"
        port = _free_port()
        sock = Path(node["socket"]).with_name(f"{name}.second.sock")
        args = flavor.server_args(
            datadir=Path(node["datadir"]),
            port=port,
            socket=sock,
            server_id=int(node["server_id"]),
            pid_file=Path(node["datadir"]) / "second.pid",
            error_log=err,
            read_only=True,
            semi_sync=False,
            buffer_pool_mb=64,
            tmpdir=self._tmpdir(name),
        )
        pid = _server.start(args, logs / f"{name}.double-start.out")
        node["double_pid"] = pid
        self.save(state)
        refusal = None
        deadline = time.monotonic() + wait
        accepted = False
        while time.monotonic() < deadline:
            refusal = _server.lock_refused(err)
            accepted = _server.accepting(err)
            if refusal or accepted or not _server.alive(pid):
                break
            time.sleep(0.05)
        # A refused second server retries its lock for ~30 s and ignores SIGTERM meanwhile.
        _server.signal_pid(pid, signal.SIGKILL)
        _server.wait_exit(pid, 10)
        node["double_pid"] = None
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        serving, probe_error = self._original_serving(state, name)
        return {
            "refused": refusal is not None and not accepted,
            "second_pid": pid,
            "evidence": refusal
            or ("the second server accepted connections" if accepted else "no lock error logged"),
            "second_log": str(err),
            "original_serving": serving,
            "original_error": probe_error,
        }

    def _original_serving(self, state: dict[str, Any], name: str) -> tuple[bool, str | None]:
        node = state["nodes"][name]
        try:
            if node["role"] == "primary":
                _server.execute(
                    Path(node["socket"]),
                    [
                        "CREATE DATABASE IF NOT EXISTS lab_canary",
                        "CREATE TABLE IF NOT EXISTS lab_canary.t "
                        "(id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))",
                        "INSERT INTO lab_canary.t (at) VALUES (NOW(6))",
                    ],
                )
            else:
                _server.execute(Path(node["socket"]), "SELECT 1")
        except pymysql.err.MySQLError as exc:
            return False, str(exc)
        return True, None


def _gtid_pos_covers(done: str, received: str) -> bool:
    """MariaDB positions (`d-s-n,...`, one per domain): has `done` reached `received`?"""

    def parse(pos: str) -> dict[int, int]:
        out: dict[int, int] = {}
        for part in filter(None, (p.strip() for p in pos.split(","))):
            d, _, n = part.split("-")
            out[int(d)] = int(n)
        return out

    have = parse(done)
    return all(have.get(d, -1) >= n for d, n in parse(received).items())
