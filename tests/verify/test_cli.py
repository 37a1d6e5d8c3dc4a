"""`checker verify` from the command line: exit statuses, JSON, unknown nodes, bad input."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from checker.core.verdict import Validity
from checker.journal import Journal
from checker.lab.topology import Lab
from tests.verify._support import acked, checker, cli, root, verdict_of, wait_acks


@pytest.fixture(scope="module")
def clean_journal(vlab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The journal of one short clean run on the shared lab."""
    journal = tmp_path_factory.mktemp("cli") / "j.sqlite"
    with checker(vlab, journal) as service:
        wait_acks(service, 100)
    yield journal


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("checker: error: "), stderr
    return lines[0]


def test_valid_exits_0_and_json_parses_as_the_verdict(healthy: Lab, clean_journal: Path) -> None:
    """A clean run's journal: exit 0; --json is the core's verdict with foreign row counts."""
    done = cli("verify", "--lab", str(healthy.dir), "--journal", str(clean_journal), "--json")
    assert done.returncode == 0, done.stderr
    v, data = verdict_of(done.stdout)
    assert v.valid is Validity.VALID and v.counts.ok == len(acked(clean_journal))
    assert set(v.nodes) == {"mysql-0", "mysql-1", "mysql-2"}
    for node in data["nodes"].values():
        assert isinstance(node["foreign_rows"], int) and node["foreign_rows"] >= 0
    assert data["verification"]["run_id"] == Journal.open_readonly(clean_journal).info.run_id


def test_readable_summary_and_nodes_given_by_url(healthy: Lab, clean_journal: Path) -> None:
    """With --node NAME=URL only, the primary is the one writable node; the summary says VALID."""
    lab = healthy
    nodes = []
    for name in ("mysql-0", "mysql-1", "mysql-2"):
        ep = lab.endpoint(name)
        nodes += ["--node", f"{name}=mysql://checker@{ep.host}:{ep.port}/integrity"]
    password = lab.secret("checker").reveal()
    done = cli(
        "verify",
        *nodes,
        "--journal",
        str(clean_journal),
        "--tls",
        "disabled",
        env={"CHECKER_PASSWORD": password},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("VALID: run "), done.stdout
    assert "primary mysql-0" in done.stdout.splitlines()[0]
    assert password not in done.stdout + done.stderr


def test_a_replica_that_cannot_catch_up_is_unknown_with_a_reason(
    healthy: Lab, clean_journal: Path
) -> None:
    """mysql-2 lagging past --timeout: exit 2, mysql-2 unknown saying why, the others valid."""
    lab = healthy
    lab.fault("lag", "mysql-2")
    root(lab, "mysql-0", "CREATE TABLE IF NOT EXISTS scratch (id INT PRIMARY KEY)")
    root(lab, "mysql-0", "REPLACE INTO scratch VALUES (2)")
    done = cli(
        "verify", "--lab", str(lab.dir), "--journal", str(clean_journal), "--json", "--timeout", "1"
    )
    assert done.returncode == 2, done.stderr
    v, _ = verdict_of(done.stdout)
    assert v.valid is Validity.UNKNOWN and not any(v.anomaly_counts.values())
    node = v.nodes["mysql-2"]
    assert node.valid is Validity.UNKNOWN
    assert node.reason is not None
    assert "not caught up" in node.reason and "SQL thread not running" in node.reason
    assert v.nodes["mysql-0"].valid is v.nodes["mysql-1"].valid is Validity.VALID


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        ("missing", [], "does not exist"),
        ("text", [], "not a checker journal"),
        ("journal", ["--node", "mysql-0=http://127.0.0.1:1"], "unsupported scheme"),
        ("journal", ["--node", "mysql-0=mysql://checker@127.0.0.1:1/integrity"], "cannot"),
    ],
    ids=["journal-missing", "not-a-journal", "bad-node-url", "unreachable-node"],
)
def test_bad_input_is_one_error_line_and_exit_2(
    tmp_path: Path, clean_journal: Path, make: str, args: list[str], message: str
) -> None:
    """A missing or foreign journal file, a malformed or dead node URL: one line, exit 2."""
    path = {"missing": tmp_path / "nope.sqlite", "text": tmp_path / "notes.txt"}.get(
        make, clean_journal
    )
    if make == "text":
        path.write_text("not a journal\n" * 100)
    target = args or ["--node", "mysql-0=mysql://checker@127.0.0.1:1/integrity"]
    done = cli("verify", *target, "--journal", str(path), env={"CHECKER_PASSWORD": "pw-x-123"})
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert message in line
    assert "pw-x-123" not in done.stderr + done.stdout
    assert done.stdout == ""


def test_run_ends_with_a_full_verification(healthy: Lab, tmp_path: Path) -> None:
    """`checker run --duration` verifies in full at the end and reports VALID (exit 0)."""
    journal = tmp_path / "j.sqlite"
    done = cli(
        "run", "--lab", str(healthy.dir), "--journal", str(journal), "--duration", "3",
        "--log-format", "json",
    )  # fmt: skip
    why = f"exit {done.returncode}\nstdout: {done.stdout[-1500:]}\nstderr: {done.stderr[-3000:]}"
    assert done.returncode == 0, why
    assert json.loads(done.stdout.splitlines()[-1])["valid"] is True, why
    j = Journal.open_readonly(journal)
    verifications = j.rows("verifications")
    assert len(verifications) == 1 and json.loads(verifications[0]["valid"]) is True
    assert json.loads(verifications[0]["verdict"])["counts"]["ok"] == len(acked(journal)) > 0


def test_progress_goes_to_stderr_only_on_a_terminal(healthy: Lab, clean_journal: Path) -> None:
    """On a terminal, stderr shows progress lines; stdout keeps the JSON alone."""
    master, slave = pty.openpty()
    try:
        args = ["--lab", str(healthy.dir), "--journal", str(clean_journal), "--json"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "checker.cli", "verify", *args, "--log-level", "warning"],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
        )
        os.close(slave)
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert b"verify: barrier" in seen and b"verify: checked ids" in seen
    assert json.loads(out)["valid"] is True
