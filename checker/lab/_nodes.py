"""One node's server: loopback ports, starting it on its datadir, pointing it at the primary.

Shared by the lifecycle (`checker.lab.topology`: up, restart) and the faults
(`checker.lab.faults`: start, promote, double-start). Functions that change a node return the
new `LabState`; saving it is the caller's business.
"""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path

from checker.errors import LabError
from checker.lab import _server
from checker.lab.state import REPL_USER, LabState


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free loopback port *outside* the ephemeral range.

    Ports the kernel hands out for bind(0) are also the source ports of outgoing connections:
    while a killed node is down, any client connection could take its port and the node could
    not restart on it. Below the ephemeral range only listeners compete.
    """
    lo, hi = _ephemeral_range()
    candidates = list(range(10000, lo)) if lo > 11000 else list(range(hi + 1, 65535))
    for port in random.sample(candidates, k=min(len(candidates), 200)):
        if not port_busy(port):
            return port
    raise LabError("no free loopback port below the ephemeral range: use --base-port")


def port_busy(port: int) -> bool:
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


def flavor(state: LabState) -> _server.Flavor:
    """The server flavor the lab was created with."""
    return _server.Flavor(name=state.flavor, server=state.server, version=state.version)


def tmpdir(state: LabState, name: str) -> Path:
    path = state.dir / "tmp" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_server(state: LabState, name: str) -> LabState:
    """Start node `name`'s server on its datadir and wait until it accepts connections."""
    node = state.node(name)
    logs = state.dir / "logs"
    error_log = logs / f"{name}.err"
    node.socket.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(node.socket.parent, 0o700)
    deadline = time.monotonic() + 10
    while port_busy(node.port):
        # Right after a kill the old socket may take a moment to go; wait, then name it.
        if time.monotonic() > deadline:
            owner = _port_owner(node.port)
            raise LabError(
                f"port {node.port} of {name} is in use by another process{owner}: stop it, or "
                f"`checker lab down --dir {state.dir} --purge` and start a new lab"
            )
        time.sleep(0.1)
    args = flavor(state).server_args(
        datadir=node.datadir,
        port=node.port,
        socket=node.socket,
        server_id=node.server_id,
        pid_file=node.datadir / "mysqld.pid",
        error_log=error_log,
        read_only=node.role != "primary",
        semi_sync=state.semi_sync,
        buffer_pool_mb=state.buffer_pool_mb,
        tmpdir=tmpdir(state, name),
    )
    pid = _server.start(args, logs / f"{name}.out")
    _server.wait_ready(node.socket, pid, error_log)
    return state.with_node(name, pid=pid, state="running")


def configure_replica(state: LabState, name: str) -> None:
    """Point node `name` at the primary, through its replication port on the proxy."""
    node = state.node(name)
    stmts = flavor(state).change_primary(
        node.repl_port, REPL_USER, state.secret(REPL_USER).reveal()
    )
    _server.execute(node.socket, stmts)


def ensure_replicating(state: LabState, name: str) -> None:
    """Make node `name` a read-only replica of the current primary, replicating."""
    sock = state.node(name).socket
    fl = flavor(state)
    rows = _server.execute(sock, fl.replica_status_sql())
    _server.execute(sock, ["SET GLOBAL read_only = 1", *fl.durability_sql(primary=False)])
    if not rows:
        if fl.mariadb:
            # A former primary has no slave position yet: start from what it has itself.
            _server.execute(sock, "SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos")
        configure_replica(state, name)
    else:
        _server.execute(sock, fl.start_replica_sql())
