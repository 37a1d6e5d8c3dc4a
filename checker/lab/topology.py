"""The lab's lifecycle: a StatefulSet-like MySQL/MariaDB topology on one machine.

`mysql-0` starts as the primary (binlog, GTIDs, ROW), `mysql-1..N` replicate from it through
the lab proxy. `Lab(dir)` starts (`up`), inspects (`status`, `info`), breaks (`fault`, with the
faults of `checker.lab.faults`) and stops (`down`) the lab in `dir`; its state is a
`checker.lab.state.LabState` in `lab.json`, changed only under the lab's lock, so separate
commands, the chaos probes and the tests act on the same lab. `down` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pymysql

from checker import schema
from checker.errors import LabError
from checker.lab import _nodes, _proxy, _server, faults
from checker.lab.state import (
    APP_DATABASE,
    APP_USER,
    DEFAULT_DIR,
    LOCK_FILE,
    REPL_USER,
    ROOT_USER,
    STATE_FILE,
    LabState,
    Node,
    exists,
    load,
    locked,
    password_file,
    save,
    secret,
)
from checker.mysql import Endpoint
from checker.secrets import Secret


class Lab:
    """A lab directory and the operations on it. Constructing one has no side effect."""

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIR) -> None:
        self.dir = Path(directory).resolve()

    # -- state ------------------------------------------------------------------------------
    def exists(self) -> bool:
        return exists(self.dir)

    def load(self) -> LabState:
        return load(self.dir)

    def running(self) -> bool:
        """Is a lab up here: state present, proxy alive and every node not killed alive?"""
        if not self.exists():
            return False
        state = self.load()
        if not _server.alive(state.proxy_pid):
            return False
        return any(_server.alive(n.pid) for n in state.nodes.values())

    def secret(self, user: str) -> Secret:
        return secret(self.dir, user)

    def password_file(self, user: str) -> Path:
        return password_file(self.dir, user)

    def endpoint(
        self,
        which: str = "writer",
        *,
        user: str = APP_USER,
        database: str | None = None,
        password: Secret | None = None,
    ) -> Endpoint:
        """A client endpoint (`LabState.endpoint`): `writer`, `reader`, a node name (through
        the proxy) or `direct:NODE` (the server's own port, bypassing the proxy)."""
        return self.load().endpoint(which, user=user, database=database, password=password)

    def info(self) -> dict[str, Any]:
        """What `lab up --json` prints: endpoints, nodes, user and flavor."""
        state = self.load()
        nodes = {}
        for name, n in state.nodes.items():
            nodes[name] = {
                "endpoint": f"127.0.0.1:{n.endpoint_port}",
                "direct": f"127.0.0.1:{n.port}",
                "datadir": str(n.datadir),
                "pid": n.pid,
                "role": n.role,
                "state": n.state,
            }
        return {
            "dir": str(self.dir),
            "writer": f"127.0.0.1:{state.writer_port}",
            "reader": f"127.0.0.1:{state.reader_port}",
            "nodes": nodes,
            "primary": state.primary,
            "user": APP_USER,
            "password_file": str(self.password_file(APP_USER)),
            "root_password_file": str(self.password_file(ROOT_USER)),
            "database": APP_DATABASE,
            "flavor": state.flavor,
            "version": state.version,
            "semi_sync": state.semi_sync,
        }

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
        with locked(self.dir):
            if self.exists():
                state = self.load()
                have = len(state.nodes) - 1
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
                    save(self._stop_all(self.load())[0])
                raise
        return {**self.info(), "already_running": False}

    def _allocate_ports(self, count: int, base_port: int | None) -> list[int]:
        if base_port is None:
            ports: list[int] = []
            while len(ports) < count:
                p = _nodes.free_port()
                if p not in ports:
                    ports.append(p)
            return ports
        if base_port < 1024 or base_port + count > 65535:
            raise LabError(
                f"--base-port {base_port} leaves no room for {count} ports (1024..65535)"
            )
        ports = list(range(base_port, base_port + count))
        busy = [p for p in ports if _nodes.port_busy(p)]
        if busy:
            raise LabError(
                f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are already in use: "
                "choose another --base-port or omit it to pick free ports"
            )
        return ports

    def _socket_dir(self) -> Path:
        # Unix socket paths are limited to 107 bytes; a deep lab dir falls back to /tmp.
        candidate = self.dir / "run"
        if len(str(candidate)) + 16 < 100:
            return candidate
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
        state = LabState(
            dir=self.dir,
            flavor=flavor.name,
            server=flavor.server,
            version=flavor.version,
            semi_sync=semi_sync,
            buffer_pool_mb=buffer_pool_mb,
            writer_port=ports[0],
            reader_port=ports[1],
            primary="mysql-0",
            faults={},
            nodes={
                name: Node(
                    name=name,
                    index=i,
                    server_id=i + 1,
                    port=ports[2 + 3 * i],
                    endpoint_port=ports[3 + 3 * i],
                    repl_port=ports[4 + 3 * i],
                    datadir=self.dir / "data" / name,
                    socket=run / f"{name}.sock",
                    role="primary" if i == 0 else "replica",
                    state="stopped",
                )
                for i, name in enumerate(names)
            },
        )
        save(state)
        for name in names:
            node = state.node(name)
            flavor.initialise(
                node.datadir, self.dir / "logs" / f"{name}.init.log", _nodes.tmpdir(state, name)
            )
        for name in names:
            state = _nodes.start_server(state, name)
        save(state)
        self._bootstrap_users(state)
        for name in names[1:]:
            _nodes.configure_replica(state, name)
        state = self._start_proxy(state)
        save(state)
        self._wait_replication(state, timeout=60)

    def _bootstrap_users(self, state: LabState) -> None:
        """Users, the checker's schema and grants, created on the primary and replicated."""
        names = schema.Names(database=APP_DATABASE)
        root_pw = self.secret(ROOT_USER).reveal()
        app_pw = self.secret(APP_USER).reveal()
        repl_pw = self.secret(REPL_USER).reveal()
        sock = state.node(state.primary).socket
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
                *schema.grants(names, APP_USER, "127.0.0.1", state.flavor),
            ],
        )
        # Last, root@localhost (the socket account) gets the root password on every node, each
        # on its own and unlogged (replication is not set up yet); from then on the lab's own
        # connections find it through the pointer file beside the sockets.
        for node in state.nodes.values():
            _server.execute(
                node.socket,
                [
                    "SET SESSION sql_log_bin = 0",
                    f"ALTER USER '{ROOT_USER}'@'localhost' IDENTIFIED BY '{root_pw}'",
                ],
            )
        pointer = sock.parent / _server.ROOT_PASSWORD_POINTER
        pointer.write_text(f"{self.password_file(ROOT_USER)}\n")
        os.chmod(pointer, 0o600)

    def _start_proxy(self, state: LabState) -> LabState:
        for f in ("proxy.ready", "proxy.failed"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / f).unlink()
        busy = [
            p
            for p in [state.writer_port, state.reader_port]
            + [port for n in state.nodes.values() for port in (n.endpoint_port, n.repl_port)]
            if _nodes.port_busy(p)
        ]
        if busy:
            raise LabError(
                f"lab endpoint port(s) {', '.join(map(str, busy))} are in use by another process"
            )
        save(state)
        with (self.dir / "logs" / "proxy.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "checker.lab._proxy", str(self.dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + 15
        while not (self.dir / "proxy.ready").exists():
            if (self.dir / "proxy.failed").exists():
                raise LabError(f"lab proxy failed: {(self.dir / 'proxy.failed').read_text()}")
            if not _server.alive(proc.pid) or time.monotonic() > deadline:
                raise LabError(f"lab proxy did not start; see {self.dir / 'logs' / 'proxy.log'}")
            time.sleep(0.02)
        return dataclasses.replace(state, proxy_pid=proc.pid)

    def _restart(self, state: LabState) -> None:
        """`up` on a stopped lab: start every node that is not alive, then the proxy."""
        for name, node in state.nodes.items():
            if not _server.alive(node.pid):
                state = _nodes.start_server(state, name)
                save(state)
        for name, node in state.nodes.items():
            if node.role == "replica":
                _nodes.ensure_replicating(state, name)
        if not _server.alive(state.proxy_pid):
            state = self._start_proxy(state)
        save(dataclasses.replace(state, faults={}))
        _proxy.reload(self.dir)

    def down(self, *, purge: bool = False) -> dict[str, Any]:
        """Stop every process the lab started; keep data unless `purge`."""
        with locked(self.dir):
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
            state, stopped = self._stop_all(self.load())
            save(state)
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
                self._purge()
        return {"stopped": stopped, "purged": purge}

    def _stop_strays(self) -> list[int]:
        """Servers on this lab's datadirs that the state does not name (a pid lost when a
        start crashed): terminated like the others; the pids that survive are returned."""
        needle = f"--datadir={self.dir / 'data'}/"
        for pid in _server.running_with(needle):
            _server.terminate(pid, timeout=10)
        return _server.running_with(needle)

    @staticmethod
    def _still_running(state: LabState) -> list[str]:
        """Nodes with a server process still alive on their datadir (recorded or not): each
        is terminated (SIGKILL after a timeout); those that survive even that are returned."""
        left = []
        for name, node in sorted(state.nodes.items()):
            needle = f"--datadir={node.datadir}\0"
            for pid in _server.running_with(needle):
                _server.terminate(pid, timeout=10)
            if _server.running_with(needle):
                left.append(name)
        return left

    @staticmethod
    def _stop_all(state: LabState) -> tuple[LabState, list[str]]:
        """Terminate the proxy and every server; the stopped state and what was stopped."""
        stopped: list[str] = []
        proxy_pid = state.proxy_pid
        if proxy_pid and _server.alive(proxy_pid) and _server.owns(proxy_pid, "checker.lab._proxy"):
            _server.terminate(proxy_pid, timeout=5)
            stopped.append("proxy")
        state = dataclasses.replace(state, proxy_pid=None)
        for name, node in state.nodes.items():
            for pid, what in ((node.pid, name), (node.double_pid, f"{name} (second instance)")):
                if pid and _server.alive(pid) and _server.owns(pid, str(node.datadir)):
                    _server.terminate(pid)
                    stopped.append(what)
            state = state.with_node(name, pid=None, double_pid=None, state="stopped")
        return state, stopped

    def _purge(self) -> None:
        run = self._socket_dir()
        if run != self.dir / "run":
            shutil.rmtree(run, ignore_errors=True)
        for child in ("data", "logs", "secrets", "run", "tmp"):
            shutil.rmtree(self.dir / child, ignore_errors=True)
        files = (STATE_FILE, LOCK_FILE, "proxy.ready", "proxy.failed", _proxy.CONTROL_SOCKET)
        for f in (*files, "lab.tmp"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / f).unlink()
        with contextlib.suppress(OSError):
            self.dir.rmdir()

    def connections(self) -> list[dict[str, Any]]:
        """Open proxied connections (listener, source, target), for status and tests."""
        conns: list[dict[str, Any]] = _proxy.call(self.dir, {"op": "connections"})["connections"]
        return conns

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        state = self.load()
        flavor = _nodes.flavor(state)
        nodes: dict[str, Any] = {}
        primary_gtid = None
        for name, node in state.nodes.items():
            entry: dict[str, Any] = {
                "role": node.role,
                "pid": node.pid,
                "state": self._process_state(node),
                "faults": sorted(k for k, v in state.faults.get(name, {}).items() if v),
            }
            if entry["state"] == "running":
                try:
                    entry.update(self._node_sql_status(flavor, node))
                except pymysql.err.MySQLError as exc:
                    entry["error"] = str(exc)
            nodes[name] = entry
            if name == state.primary:
                primary_gtid = entry.get("gtid")
        return {
            "dir": str(self.dir),
            "primary": state.primary,
            "primary_gtid": primary_gtid,
            "proxy": {"pid": state.proxy_pid, "alive": _server.alive(state.proxy_pid)},
            "flavor": state.flavor,
            "nodes": nodes,
            "faults": {
                n: sorted(k for k, v in f.items() if v)
                for n, f in state.faults.items()
                if any(f.values())
            },
        }

    @staticmethod
    def _process_state(node: Node) -> str:
        if not _server.alive(node.pid):
            return "killed" if node.state in ("running", "killed", "paused") else "stopped"
        if _server.stopped(node.pid):
            return "paused"
        return "running"

    @staticmethod
    def _node_sql_status(flavor: _server.Flavor, node: Node) -> dict[str, Any]:
        conn = _server.socket_connect(node.socket, timeout=2.0)
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

    @staticmethod
    def _wait_replication(state: LabState, timeout: float) -> None:
        """Wait until every running replica has executed the primary's GTID position."""
        flavor = _nodes.flavor(state)
        target = _server.execute(state.node(state.primary).socket, flavor.gtid_sql())
        pos = next(iter(target[0].values())) if target else ""
        if not pos:
            return
        for name, node in state.nodes.items():
            if node.role != "replica" or not _server.alive(node.pid):
                continue
            if flavor.mariadb:
                sql = f"SELECT MASTER_GTID_WAIT('{pos}', {float(timeout)}) AS r"
            else:
                sql = f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{pos}', {float(timeout)}) AS r"
            rows = _server.execute(node.socket, sql, timeout=timeout + 5)
            if rows and int(rows[0]["r"] or 0) != 0:
                raise LabError(f"{name} did not catch up with the primary within {timeout:.0f}s")

    # -- faults -----------------------------------------------------------------------------
    def fault(self, action: str, node: str, **options: Any) -> dict[str, Any]:
        """Apply one lab fault (or its undo, `checker.lab.faults`) to `node`; returns what was
        done, as data."""
        spec = faults.get(action)
        unknown = sorted(set(options) - set(spec.options))
        if unknown:
            raise TypeError(f"fault {action} takes no option {', '.join(unknown)}")
        with locked(self.dir):
            state = self.load()
            if not _server.alive(state.proxy_pid):
                raise LabError(
                    f"the lab at {self.dir} is not running: `checker lab up --dir {self.dir}`"
                )
            state.node(node)  # an unknown node is refused before anything is done
            state, result = spec.apply(state, node, **options)
            save(state)
            _proxy.reload(self.dir)
        return {"action": action, "node": node, **result}
