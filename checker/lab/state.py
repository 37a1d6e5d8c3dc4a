"""A lab's state: what `lab.json` holds, as frozen records, and its endpoints for a user.

This is the only part of the lab that code outside `checker/lab` reads: the checker's settings,
the verifier (which node is primary), `checker setup --lab` and the Chaos Toolkit probes ask it
for endpoints and the generated passwords, never the lifecycle (`checker.lab.topology`).

Everything about a lab lives in its directory: `lab.json` (ports, pids, roles, faults), the
datadirs, logs, and `secrets/` (generated passwords, mode 0600). Changes are made under an
exclusive `flock` on `lab.lock` (`locked`) and written atomically (`save`); a change is a new
`LabState` (`with_node`, `with_fault`, `dataclasses.replace`), never an edit in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checker.errors import LabError
from checker.mysql import Endpoint
from checker.schema import Names
from checker.secrets import Secret

DEFAULT_DIR = ".lab"
STATE_FILE = "lab.json"
LOCK_FILE = "lab.lock"
APP_USER = "checker"
APP_DATABASE = Names.database
REPL_USER = "repl"
ROOT_USER = "root"

# A fault in force on a node: True, a mode (`partitioned`: reset | blackhole), or the replicas
# a fault acted on (`semi_sync_fallback`: the ones whose IO thread it stopped).
FaultValue = bool | str | tuple[str, ...]


@dataclass(frozen=True)
class Node:
    """One server of the lab: its ports, files, role (primary | replica | zombie) and process."""

    name: str
    index: int
    server_id: int
    port: int  # the server's own port (`direct:NAME`)
    endpoint_port: int  # the proxy's port for this node (`mysql-N.mysql`)
    repl_port: int  # the proxy's port this node replicates through
    datadir: Path
    socket: Path
    role: str
    state: str  # stopped | starting | running | killed | paused
    pid: int | None = None
    double_pid: int | None = None  # a second server on the datadir (`double-start`), while up

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> Node:
        return cls(
            name=name,
            index=int(data["index"]),
            server_id=int(data["server_id"]),
            port=int(data["port"]),
            endpoint_port=int(data["endpoint_port"]),
            repl_port=int(data["repl_port"]),
            datadir=Path(data["datadir"]),
            socket=Path(data["socket"]),
            role=str(data["role"]),
            state=str(data.get("state") or "stopped"),
            pid=data.get("pid"),
            double_pid=data.get("double_pid"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "server_id": self.server_id,
            "port": self.port,
            "endpoint_port": self.endpoint_port,
            "repl_port": self.repl_port,
            "datadir": str(self.datadir),
            "socket": str(self.socket),
            "role": self.role,
            "state": self.state,
            "pid": self.pid,
            "double_pid": self.double_pid,
        }


@dataclass(frozen=True)
class LabState:
    """The lab in `dir`: its server flavor, listener ports, primary, nodes and faults."""

    dir: Path  # where the state lives; not part of `lab.json`
    flavor: str
    server: str
    version: str
    semi_sync: bool
    buffer_pool_mb: int
    writer_port: int
    reader_port: int
    primary: str
    nodes: Mapping[str, Node]
    faults: Mapping[str, Mapping[str, FaultValue]]
    proxy_pid: int | None = None
    version_format: int = 1

    # -- reading ----------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(sorted(self.nodes))
            raise LabError(f"unknown node {name!r}: this lab has {known}") from None

    def fault(self, name: str, key: str) -> FaultValue | None:
        """The value of fault `key` in force on node `name`, or None."""
        return self.faults.get(name, {}).get(key)

    def password_file(self, user: str) -> Path:
        return password_file(self.dir, user)

    def secret(self, user: str) -> Secret:
        """The password the lab generated for `user`."""
        return secret(self.dir, user)

    def endpoint(
        self,
        which: str = "writer",
        *,
        user: str = APP_USER,
        database: str | None = None,
        password: Secret | None = None,
    ) -> Endpoint:
        """A client endpoint: `writer`, `reader`, a node name (through the proxy) or
        `direct:NODE` (the server's own port, bypassing the proxy). The password is the lab's
        generated one for `user` unless given."""
        if which == "writer":
            port = self.writer_port
        elif which == "reader":
            port = self.reader_port
        elif which.startswith("direct:"):
            port = self.node(which.split(":", 1)[1]).port
        else:
            port = self.node(which).endpoint_port
        name = {"writer": "mysql-0", "reader": "mysql-read"}.get(which, which)
        if database is None and user == APP_USER:
            database = APP_DATABASE
        return Endpoint(
            host="127.0.0.1",
            port=port,
            user=user,
            password=password if password is not None else self.secret(user),
            database=database,
            name=name,
            tls="disabled",  # the lab's servers listen on loopback without TLS
        )

    # -- changing (a new state each time) -----------------------------------------------------
    def with_node(self, name: str, **changes: Any) -> LabState:
        node = dataclasses.replace(self.node(name), **changes)
        return dataclasses.replace(self, nodes={**self.nodes, name: node})

    def with_fault(self, name: str, key: str, value: FaultValue | None) -> LabState:
        """Fault `key` of node `name` set to `value`, or cleared when `value` is falsy."""
        faults = {k: v for k, v in self.faults.get(name, {}).items() if k != key}
        if value:
            faults[key] = value
        others = {n: f for n, f in self.faults.items() if n != name}
        return dataclasses.replace(self, faults={**others, name: faults} if faults else others)

    # -- the file -----------------------------------------------------------------------------
    @classmethod
    def from_json(cls, directory: Path, data: Mapping[str, Any]) -> LabState:
        return cls(
            dir=directory,
            flavor=str(data["flavor"]),
            server=str(data["server"]),
            version=str(data["version"]),
            semi_sync=bool(data.get("semi_sync", False)),
            buffer_pool_mb=int(data.get("buffer_pool_mb", 128)),
            writer_port=int(data["writer_port"]),
            reader_port=int(data["reader_port"]),
            primary=str(data["primary"]),
            nodes={name: Node.from_json(name, n) for name, n in data["nodes"].items()},
            faults={
                name: {k: tuple(v) if isinstance(v, list) else v for k, v in f.items()}
                for name, f in data.get("faults", {}).items()
            },
            proxy_pid=data.get("proxy_pid"),
            version_format=int(data.get("version_format", 1)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version_format": self.version_format,
            "flavor": self.flavor,
            "server": self.server,
            "version": self.version,
            "semi_sync": self.semi_sync,
            "buffer_pool_mb": self.buffer_pool_mb,
            "writer_port": self.writer_port,
            "reader_port": self.reader_port,
            "primary": self.primary,
            "faults": {
                name: {k: list(v) if isinstance(v, tuple) else v for k, v in f.items()}
                for name, f in self.faults.items()
            },
            "nodes": {name: n.to_json() for name, n in self.nodes.items()},
            "proxy_pid": self.proxy_pid,
        }


def password_file(directory: Path, user: str) -> Path:
    """Where the lab in `directory` keeps the password it generated for `user` (mode 0600)."""
    return directory / "secrets" / f"{user}.password"


def secret(directory: Path, user: str) -> Secret:
    """The password the lab in `directory` generated for `user`."""
    try:
        return Secret(password_file(directory, user).read_text().strip())
    except FileNotFoundError:
        raise LabError(f"no password for {user} in {directory / 'secrets'}") from None


def exists(directory: str | os.PathLike[str]) -> bool:
    return (Path(directory) / STATE_FILE).is_file()


def load(directory: str | os.PathLike[str]) -> LabState:
    """The state of the lab in `directory`; a missing or corrupt state says what to run."""
    where = Path(directory).resolve()
    path = where / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(
            f"no lab at {where}: start one with `checker lab up --dir {where}`"
        ) from None
    except json.JSONDecodeError as exc:
        raise LabError(
            f"lab state {path} is corrupt ({exc}); run `checker lab down --purge`"
        ) from None
    return LabState.from_json(where, data)


def save(state: LabState) -> None:
    """Write `state` to its directory atomically (readers never see half a file)."""
    path = state.dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2, sort_keys=True))
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the lab's exclusive lock: one change to a lab at a time, across processes."""
    where = Path(directory)
    where.mkdir(parents=True, exist_ok=True)
    with (where / LOCK_FILE).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
