"""MySQL/MariaDB server processes for the lab: find the binaries, initialise, start, stop.

MariaDB (Debian's `mariadb-server`) is what CI has; MySQL 8 is supported where its `mysqld`
is on PATH (initialised with `--initialize-insecure`, GTID mode ON). The SQL that differs
between the two lives in `Flavor`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from checker import mysql
from checker.errors import LabError, ServerBinaryMissing
from checker.secrets import redact

SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/usr/libexec", "/usr/bin")
_LOCK_REFUSAL = re.compile(
    r"Unable to lock|Can't lock aria control file|error: 11|Resource temporarily unavailable"
)


def which(name: str) -> str | None:
    """`shutil.which`, plus the sbin directories a non-root PATH often lacks.

    `CHECKER_LAB_SEARCH_DIRS` (colon-separated) replaces those extra directories.
    """
    found = shutil.which(name)
    if found:
        return found
    extra = os.environ.get("CHECKER_LAB_SEARCH_DIRS")
    for d in extra.split(":") if extra is not None else SEARCH_DIRS:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@dataclass(frozen=True)
class Flavor:
    """The server family found on this machine and the SQL each needs."""

    name: str  # "mariadb" | "mysql"
    server: str  # path of mariadbd / mysqld
    version: str

    @property
    def mariadb(self) -> bool:
        return self.name == "mariadb"

    def initialise(self, datadir: Path, log: Path, tmpdir: Path) -> None:
        """Create a fresh datadir (root@localhost with no password, reachable by socket only).

        Each node gets its own tmpdir: bootstrap temp tables in a shared /tmp can collide
        between labs started at the same moment."""
        datadir.mkdir(parents=True, exist_ok=True)
        tmpdir.mkdir(parents=True, exist_ok=True)
        if self.mariadb:
            tool = which("mariadb-install-db") or which("mysql_install_db")
            if not tool:
                raise ServerBinaryMissing(
                    "mariadb-install-db not found: install Debian's mariadb-server package"
                )
            cmd = [
                tool,
                "--no-defaults",
                f"--datadir={datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--basedir={_basedir(self.server)}",
                f"--tmpdir={tmpdir}",
            ]
            if os.geteuid() == 0:
                cmd.append("--user=root")
        else:
            cmd = [
                self.server,
                "--no-defaults",
                "--initialize-insecure",
                f"--datadir={datadir}",
                f"--tmpdir={tmpdir}",
            ]
            if os.geteuid() == 0:
                cmd.append("--user=root")
        with log.open("ab") as out:
            proc = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=120
            )
        if proc.returncode != 0:
            raise LabError(f"initialising {datadir} failed (exit {proc.returncode}); see {log}")

    def server_args(
        self,
        *,
        datadir: Path,
        port: int,
        socket: Path,
        server_id: int,
        pid_file: Path,
        error_log: Path,
        read_only: bool,
        semi_sync: bool,
        buffer_pool_mb: int,
        tmpdir: Path,
    ) -> list[str]:
        """Command line of one node. Durability on (a SIGKILL loses nothing committed)."""
        args = [
            self.server,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--port={port}",
            f"--socket={socket}",
            "--bind-address=127.0.0.1",
            f"--server-id={server_id}",
            f"--pid-file={pid_file}",
            f"--log-error={error_log}",
            f"--tmpdir={tmpdir}",
            "--log-bin=binlog",
            "--relay-log=relay-bin",
            "--binlog-format=ROW",
            # The primary is fully durable; replicas flush lazily (safe against the process
            # crashes the lab injects) so they keep up. `durability_sql` flips it on promote.
            f"--sync-binlog={0 if read_only else 1}",
            f"--innodb-flush-log-at-trx-commit={2 if read_only else 1}",
            f"--innodb-buffer-pool-size={buffer_pool_mb}M",
            "--skip-name-resolve",
            "--max-connections=400",
            "--relay-log-recovery=1",
            "--report-host=127.0.0.1",
        ]
        if read_only:
            args.append("--read-only=1")
        if self.mariadb:
            args += [
                # Detect a cut replication link in seconds, not the default minute.
                "--slave-net-timeout=10",
                "--log-slave-updates=1",
                "--gtid-strict-mode=1",
                "--performance-schema=0",
                # In-order parallel apply of what the primary group-committed together.
                "--slave-parallel-threads=4",
                "--slave-parallel-mode=optimistic",
            ]
            if semi_sync:
                args += [
                    "--rpl-semi-sync-master-enabled=1",
                    "--rpl-semi-sync-slave-enabled=1",
                    "--rpl-semi-sync-master-timeout=2000",
                ]
        else:
            args += [
                # MySQL's name since 8.0.26 (the slave_* aliases are deprecated).
                "--replica-net-timeout=10",
                "--gtid-mode=ON",
                "--enforce-gtid-consistency=ON",
                "--log-replica-updates=ON",
                "--mysqlx=OFF",
                "--skip-replica-start=OFF",
                "--replica-parallel-workers=4",
                "--replica-preserve-commit-order=ON",
            ]
            if semi_sync:
                args += [
                    "--plugin-load-add=semisync_source.so;semisync_replica.so",
                    "--rpl-semi-sync-source-enabled=1",
                    "--rpl-semi-sync-replica-enabled=1",
                    "--rpl-semi-sync-source-timeout=2000",
                ]
        if os.geteuid() == 0:
            args.append("--user=root")
        return args

    # -- replication SQL --------------------------------------------------------------------
    def change_primary(self, port: int, user: str, password: str) -> list[str]:
        """Statements that point a replica at the proxy port of its primary, GTID-based."""
        if self.mariadb:
            return [
                "STOP SLAVE",
                (
                    f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={int(port)}, "
                    f"MASTER_USER='{user}', MASTER_PASSWORD='{password}', "
                    "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
                ),
                "START SLAVE",
            ]
        return [
            "STOP REPLICA",
            (
                f"CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={int(port)}, "
                f"SOURCE_USER='{user}', SOURCE_PASSWORD='{password}', SOURCE_AUTO_POSITION=1, "
                "SOURCE_CONNECT_RETRY=1, GET_SOURCE_PUBLIC_KEY=1"
            ),
            "START REPLICA",
        ]

    def replica_status_sql(self) -> str:
        return mysql.replica_status_sql(self.name, self.version)

    def stop_replica_sql(self, thread: str = "") -> str:
        return f"STOP {mysql.replica_keyword(self.name, self.version)} {thread}".strip()

    def start_replica_sql(self, thread: str = "") -> str:
        return f"START {mysql.replica_keyword(self.name, self.version)} {thread}".strip()

    def reset_replica_sql(self) -> str:
        return f"RESET {mysql.replica_keyword(self.name, self.version)} ALL"

    @staticmethod
    def durability_sql(primary: bool) -> list[str]:
        """Full durability for a primary, lazy flushing for a replica (see `server_args`)."""
        return [
            f"SET GLOBAL sync_binlog = {1 if primary else 0}",
            f"SET GLOBAL innodb_flush_log_at_trx_commit = {1 if primary else 2}",
        ]

    def gtid_sql(self) -> str:
        return "SELECT @@gtid_current_pos" if self.mariadb else "SELECT @@gtid_executed"


def _basedir(server: str) -> str:
    # /usr/sbin/mariadbd -> /usr ; install-db needs it to find its SQL scripts.
    return str(Path(server).resolve().parent.parent)


def detect() -> Flavor:
    """The server binary on this machine, preferring MariaDB's names.

    `CHECKER_LAB_SERVER` names a binary explicitly (e.g. a MySQL 8 build in /opt).
    """
    explicit = os.environ.get("CHECKER_LAB_SERVER")
    candidates = [explicit] if explicit else ["mariadbd", "mysqld"]
    for name in candidates:
        path = which(name) if "/" not in name else (name if os.access(name, os.X_OK) else None)
        if not path:
            continue
        try:
            out = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=30, check=False
            ).stdout
        except OSError:
            continue
        # "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu ..." -> the version
        match = re.search(r"Ver\s+(\S+)", out)
        version = match.group(1) if match else out.strip()
        flavor = "mariadb" if "mariadb" in out.lower() else "mysql"
        return Flavor(name=flavor, server=path, version=version)
    if explicit:
        raise ServerBinaryMissing(
            f"CHECKER_LAB_SERVER={explicit} is not an executable server binary"
        )
    raise ServerBinaryMissing(
        "no MySQL/MariaDB server binary (mariadbd or mysqld) found on PATH or in /usr/sbin: "
        "install Debian's mariadb-server package (`sudo apt-get install mariadb-server`)"
    )


# -- processes ------------------------------------------------------------------------------
def alive(pid: int | None) -> bool:
    """Is `pid` a live (not zombie) process? Reaps it first if it is our own child."""
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    if state not in ("Z", "X"):
        return True
    # A zombie thread-group leader whose other threads still run (a server whose main thread
    # has returned while it shuts down): the process is not gone until they are.
    return any(_task_alive(pid, tid) for tid in _tasks(pid) if tid != pid)


def _tasks(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except (OSError, ValueError):
        return []


def _task_alive(pid: int, tid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def running_with(needle: str) -> list[int]:
    """Live processes with `needle` (a datadir option) on their command line: whatever the
    state file says, a server still running on a datadir."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _mentions(int(entry), needle) and alive(int(entry)):
            found.append(int(entry))
    return sorted(found)


def _mentions(pid: int, needle: str) -> bool:
    """`owns`, also for a zombie leader: its own command line reads empty, its live threads'
    still show it."""
    if owns(pid, needle):
        return True
    for tid in _tasks(pid):
        try:
            cmdline = Path(f"/proc/{pid}/task/{tid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline.decode(errors="replace"):
            return True
    return False


def stopped(pid: int | None) -> bool:
    """Is the process stopped by SIGSTOP (state T)?"""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def owns(pid: int | None, needle: str) -> bool:
    """Does process `pid` run with `needle` (a datadir path) on its command line?

    Guards every signal we send: a pid from a stale state file may belong to someone else now.
    """
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return needle in cmdline


def start(args: list[str], log: Path) -> int:
    """Start a server detached from us (own session), return its pid."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def terminate(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM (clean shutdown), then SIGKILL if it does not go in time."""
    if not alive(pid):
        return
    if stopped(pid):
        signal_pid(pid, signal.SIGCONT)
    signal_pid(pid, signal.SIGTERM)
    if not wait_exit(pid, timeout):
        signal_pid(pid, signal.SIGKILL)
        wait_exit(pid, 10)


# In the socket directory (mode 0700), once root@localhost has its password: the path of the
# file that holds it (the lab's secrets/root.password), never the password itself.
ROOT_PASSWORD_POINTER = ".root-password-file"  # noqa: S105 - a file name, not a password


def root_password(sock: Path) -> str:
    """root@localhost's password for the node behind `sock`: "" until the lab has set it."""
    pointer = sock.parent / ROOT_PASSWORD_POINTER
    try:
        return Path(pointer.read_text().strip()).read_text().strip()
    except FileNotFoundError:
        return ""


def socket_connect(sock: Path, timeout: float = 5.0) -> pymysql.Connection:
    """Root over the node's Unix socket: the lab's own back door, never through the proxy.

    root@localhost has a password too (the lab's secrets/root.password, found through the
    pointer file beside the sockets), so a local user who reaches the socket still needs it.
    """
    return pymysql.connect(
        unix_socket=str(sock),
        user="root",
        password=root_password(sock),
        connect_timeout=timeout,
        read_timeout=max(timeout, 30),
        autocommit=True,
    )


def wait_ready(sock: Path, pid: int, log: Path, timeout: float = 60.0) -> None:
    """Wait until the server answers on its socket; explain from its log if it died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not alive(pid):
            raise LabError(f"server exited during start-up: {tail(log)} (full log: {log})")
        try:
            socket_connect(sock, timeout=1.0).close()
            return
        except pymysql.err.MySQLError as exc:
            last = exc
            time.sleep(0.05)
    raise LabError(f"server did not answer within {timeout:.0f}s ({last}); see {log}")


def tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    interesting = [line for line in text if "ERROR" in line] or text
    return " | ".join(line.strip() for line in interesting[-lines:])


def lock_refused(log: Path) -> str | None:
    """The line of a second server's log saying it could not lock the datadir, if any."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if _LOCK_REFUSAL.search(line):
            return line.strip()
    return None


def accepting(log: Path) -> bool:
    try:
        return "ready for connections" in log.read_text(errors="replace")
    except OSError:
        return False


def execute(sock: Path, statements: list[str] | str, timeout: float = 10.0) -> list[Any]:
    """Run statements as root over the socket; return the last statement's rows as dicts."""
    if isinstance(statements, str):
        statements = [statements]
    try:
        conn = socket_connect(sock, timeout=timeout)
    except pymysql.err.MySQLError as exc:
        raise LabError(f"cannot reach the server on {sock}: {redact(str(exc))}") from None
    try:
        rows: list[Any] = []
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            for sql in statements:
                try:
                    cur.execute(sql)
                except pymysql.err.MySQLError as exc:
                    # The statement may carry a password: name its first words only.
                    head = " ".join(sql.split()[:3])
                    raise LabError(
                        f"{head} ... failed on {sock.name}: {redact(str(exc))}"
                    ) from None
                rows = list(cur.fetchall())
        return rows
    finally:
        conn.close()
