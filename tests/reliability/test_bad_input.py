"""A catalogue of bad input to the command line: each case gets one clear line on stderr, a
non-zero exit, no traceback, and loses nothing already recorded."""

from __future__ import annotations

import hashlib
import http.server
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from checker.lab.topology import Lab
from tests.lab._sql import query
from tests.service._run import running, wait_writes

CHECKER = [sys.executable, "-m", "checker.cli"]
CANARY = "Canary-Pw-bad-input-31f"


@dataclass
class World:
    """What the cases refer to: a lab, a real journal of it, files and ports."""

    lab: Lab
    tmp: Path
    journal: Path
    http_port: int
    closed_port: int


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A lab with a real journal, an HTTP server (not MySQL) and a closed port on loopback."""
    tmp = tmp_path_factory.mktemp("bad-input")
    journal = tmp / "real.sqlite"
    with running(lab, journal, http=False) as (service, _):
        wait_writes(service, 30)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    (tmp / "pw").write_text(CANARY + "\n")
    (tmp / "bad.yaml").write_text("concurrency: [1, 2\n")
    (tmp / "list.yaml").write_text("- a\n- b\n")
    (tmp / "secret.yaml").write_text("password: hunter2\n")
    (tmp / "unknown.yaml").write_text("concurrency: 2\nfrobnicate: true\n")
    (tmp / "garbage.sqlite").write_bytes(b"this is not a database at all" * 100)
    corrupt = tmp / "corrupt.sqlite"
    # Fixed bytes, not os.urandom: the same corruption (and so the same message) every run.
    corrupt.write_bytes(journal.read_bytes()[:4096] + random.Random(18).randbytes(8192))
    other = sqlite3.connect(tmp / "other.sqlite")
    other.execute("CREATE TABLE t (x)")
    other.close()
    (tmp / "adir").mkdir()
    query(lab, "writer", "DROP USER IF EXISTS 'nogrant'@'127.0.0.1'", user="root")
    query(lab, "writer", f"CREATE USER 'nogrant'@'127.0.0.1' IDENTIFIED BY '{CANARY}'", user="root")
    query(lab, "writer", "GRANT SELECT ON integrity.* TO 'nogrant'@'127.0.0.1'", user="root")
    try:
        yield World(lab, tmp, journal, server.server_address[1], closed_port)
    finally:
        server.shutdown()


# name: (the command line's arguments, the full error message after `checker: error: `)
Case = Callable[[World], list[str]]


def run_case(w: World) -> list[str]:
    return [
        "run",
        "--lab",
        str(w.lab.dir),
        "--journal",
        str(w.tmp / "fresh.sqlite"),
        "--duration",
        "1",
    ]


CASES: dict[str, tuple[Case, str]] = {
    "unknown command": (
        lambda w: ["frobnicate"],
        "No such command 'frobnicate'. (see 'python -m checker.cli --help')",
    ),
    "unknown option": (
        lambda w: ["run", "--bogus"],
        "No such option '--bogus'. Did you mean '--user'? (see 'python -m checker.cli run --help')",
    ),
    "no target": (
        lambda w: ["run", "--journal", str(w.tmp / "x.sqlite")],
        "no MySQL to check: give --lab DIR, or --writer URL (and --reader URL, --node NAME=URL)",
    ),
    "bad scheme": (
        lambda w: ["run", "--writer", "http://127.0.0.1:3306"],
        "unsupported scheme 'http' in 'http://127.0.0.1:3306'; use mysql://user@host:port/db",
    ),
    "password in URL": (
        lambda w: ["run", "--writer", f"mysql://u:{CANARY}@127.0.0.1:1/db"],
        "password in the MySQL URL 'mysql://u:***@127.0.0.1:1/db': pass it through "
        "CHECKER_PASSWORD or --password-file instead",
    ),
    "bad port": (
        lambda w: ["run", "--writer", "mysql://127.0.0.1:99999"],
        "malformed MySQL address 'mysql://127.0.0.1:99999': Port out of range 0-65535; expected "
        "mysql://user@host:port/db",
    ),
    "no host": (
        lambda w: ["run", "--writer", "mysql://:3306/db"],
        "no host in MySQL address 'mysql://:3306/db'",
    ),
    "no password": (
        lambda w: ["run", "--writer", f"mysql://c@127.0.0.1:{w.closed_port}"],
        "no MySQL password given; set CHECKER_PASSWORD or CHECKER_PASSWORD_FILE, or pass "
        "--password-file",
    ),
    "bad database name": (
        lambda w: [*run_case(w), "--database", "x; DROP TABLE y"],
        "invalid SQL identifier 'x; DROP TABLE y': use letters, digits and _ (max 64, not "
        "starting with a digit)",
    ),
    "concurrency not a number": (
        lambda w: [*run_case(w), "--concurrency", "many"],
        "Invalid value for '--concurrency': 'many' is not a valid integer. (see 'python -m "
        "checker.cli run --help')",
    ),
    "concurrency zero": (
        lambda w: [*run_case(w), "--concurrency", "0"],
        "--concurrency must be at least 1, not 0",
    ),
    "negative rate": (
        lambda w: [*run_case(w), "--rate", "-5"],
        "--rate must be at least 0, not -5.0",
    ),
    "bad --http": (
        lambda w: [*run_case(w), "--http", "nonsense"],
        "--http expects HOST:PORT (e.g. 127.0.0.1:8080), not 'nonsense'",
    ),
    "unknown workload": (
        lambda w: [*run_case(w), "--workload", "ledger,poker"],
        "--workload takes a comma-separated list of ledger, bank, not 'ledger,poker'",
    ),
    "bad log format": (
        lambda w: [*run_case(w), "--log-format", "xml"],
        "Invalid value for '--log-format': 'xml' is not one of 'auto', 'json', 'console'. (see "
        "'python -m checker.cli run --help')",
    ),
    "missing config": (
        lambda w: [*run_case(w), "--config", str(w.tmp / "none.yaml")],
        "config file {tmp}/none.yaml does not exist",
    ),
    "invalid YAML": (
        lambda w: [*run_case(w), "--config", str(w.tmp / "bad.yaml")],
        "config file {tmp}/bad.yaml is not valid YAML: while parsing a flow sequence",
    ),
    "config not a mapping": (
        lambda w: [*run_case(w), "--config", str(w.tmp / "list.yaml")],
        "config file {tmp}/list.yaml must hold a mapping of option: value",
    ),
    "password in config": (
        lambda w: [*run_case(w), "--config", str(w.tmp / "secret.yaml")],
        "config file {tmp}/secret.yaml holds a password; use password_file or CHECKER_PASSWORD "
        "instead",
    ),
    "unknown config key": (
        lambda w: [*run_case(w), "--config", str(w.tmp / "unknown.yaml")],
        "config file {tmp}/unknown.yaml: unknown key(s) frobnicate",
    ),
    "missing password file": (
        lambda w: [*run_case(w), "--password-file", str(w.tmp / "nope")],
        "password file {tmp}/nope does not exist",
    ),
    "password file is a dir": (
        lambda w: [*run_case(w), "--password-file", str(w.tmp / "adir")],
        "Invalid value for '--password-file': File '{tmp}/adir' is a directory. (see 'python -m "
        "checker.cli run --help')",
    ),
    "no lab there": (
        lambda w: ["run", "--lab", str(w.tmp / "nolab"), "--journal", str(w.tmp / "y.sqlite")],
        "no lab at {tmp}/nolab: start one with `checker lab up --dir {tmp}/nolab`",
    ),
    "journal is a directory": (
        lambda w: ["run", "--lab", str(w.lab.dir), "--journal", str(w.tmp / "adir")],
        "Invalid value for '--journal': File '{tmp}/adir' is a directory. (see 'python -m "
        "checker.cli run --help')",
    ),
    "journal not sqlite": (
        lambda w: ["run", "--lab", str(w.lab.dir), "--journal", str(w.tmp / "garbage.sqlite")],
        "journal {tmp}/garbage.sqlite is not a checker journal (not SQLite, or corrupt): file is "
        "not a database",
    ),
    "journal corrupt": (
        lambda w: ["run", "--lab", str(w.lab.dir), "--journal", str(w.tmp / "corrupt.sqlite")],
        "journal {tmp}/corrupt.sqlite is not a checker journal (not SQLite, or corrupt): "
        "database disk image is malformed",
    ),
    "sqlite but not a journal": (
        lambda w: ["run", "--lab", str(w.lab.dir), "--journal", str(w.tmp / "other.sqlite")],
        "{tmp}/other.sqlite is an SQLite file but not a checker journal: give a new --journal path",
    ),
    "journal of another target": (
        lambda w: [
            "run",
            "--writer",
            f"mysql://checker@127.0.0.1:{w.closed_port}/integrity",
            "--password-file",
            str(w.tmp / "pw"),
            "--journal",
            str(w.journal),
        ],
        "journal {tmp}/real.sqlite belongs to another target ({writer}/integrity.ledger), not "
        "127.0.0.1:{closed}/integrity.ledger: use a new --journal path",
    ),
    "wrong password": (
        lambda w: [*run_case(w), "--password-file", str(w.tmp / "pw")],
        "MySQL at mysql-0 ({writer}) refused user 'checker': wrong user or password (check "
        "CHECKER_PASSWORD / --password-file)",
    ),
    "missing grants": (
        lambda w: [*run_case(w), "--user", "nogrant", "--password-file", str(w.tmp / "pw")],
        "user 'nogrant' lacks INSERT on integrity.* at mysql-0 ({writer}): run `checker setup` "
        "or see docs/grants.md",
    ),
    "verify: missing journal": (
        lambda w: ["verify", "--lab", str(w.lab.dir), "--journal", str(w.tmp / "no.sqlite")],
        "journal {tmp}/no.sqlite does not exist",
    ),
    "verify: not MySQL on the port": (
        lambda w: [
            "verify",
            "--node",
            f"mysql-0=mysql://checker@127.0.0.1:{w.http_port}",
            "--password-file",
            str(w.tmp / "pw"),
            "--journal",
            str(w.journal),
            "--connect-timeout",
            "1",
            "--statement-timeout",
            "1",
            "--timeout",
            "5",
        ],
        "cannot read the primary mysql-0: no MySQL handshake from mysql-0 (127.0.0.1:{http}) "
        "within 1s (not a MySQL server, or a hung one)",
    ),
    "verify: node without a name": (
        lambda w: [
            "verify",
            "--node",
            "127.0.0.1:3306",
            "--password-file",
            str(w.tmp / "pw"),
            "--journal",
            str(w.journal),
        ],
        "--node expects NAME=URL (e.g. mysql-1=mysql://checker@host:3306), not '127.0.0.1:3306'",
    ),
    "setup: no target": (
        lambda w: ["setup"],
        "where to set up: --lab DIR or --writer mysql://admin@host:port",
    ),
    "setup: no admin password": (
        lambda w: ["setup", "--writer", f"mysql://root@127.0.0.1:{w.closed_port}"],
        "no admin password given; pass --admin-password-file or set CHECKER_ADMIN_PASSWORD",
    ),
    "lab: too many replicas": (
        lambda w: ["lab", "up", "--dir", str(w.tmp / "l"), "--replicas", "99"],
        "Invalid value for '--replicas': 99 is not in the range 0<=x<=8. (see 'python -m "
        "checker.cli lab up --help')",
    ),
    "lab: unknown node": (
        lambda w: ["lab", "fault", "kill", "mysql-7", "--dir", str(w.lab.dir)],
        "unknown node 'mysql-7': this lab has mysql-0, mysql-1, mysql-2",
    ),
}


def expected_line(w: World, message: str) -> str:
    """The one error line a case must print, its paths and ports filled in from the world."""
    fields = {
        "tmp": w.tmp,
        "lab": w.lab.dir,
        "writer": w.lab.info()["writer"],
        "closed": w.closed_port,
        "http": w.http_port,
    }
    return "checker: error: " + message.format(**fields)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_clear_line(world: World, name: str) -> None:
    """Each bad input exits 2 with exactly its own one-line `checker: error:` message (what is
    wrong and what to do) and no traceback, shows no password, and changes no journal."""
    make, message = CASES[name]
    before = hashlib.sha256(world.journal.read_bytes()).hexdigest()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKER_")}
    proc = subprocess.run(
        [*CHECKER, *make(world)], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("checker: error:")]
    assert errors == [expected_line(world, message)], proc.stderr
    # The error is the last thing said: nothing after it (a usage dump, a second message).
    assert proc.stderr.rstrip("\n").splitlines()[-1] == errors[0], proc.stderr
    assert CANARY not in proc.stderr + proc.stdout
    assert "hunter2" not in proc.stderr + proc.stdout
    # Nothing already recorded is lost: the run's real journal is byte for byte the same.
    assert hashlib.sha256(world.journal.read_bytes()).hexdigest() == before
