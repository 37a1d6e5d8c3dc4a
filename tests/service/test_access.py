"""Credentials and grants: the documented minimal grants suffice; anything less is named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from checker.errors import AuthError, GrantError
from checker.lab.topology import Lab
from checker.service import Service
from tests._flavor import monitor_grant, server_flavor
from tests.lab._sql import query
from tests.service._run import settings_for

CHECKER = [sys.executable, "-m", "checker.cli"]


def _make_user(lab: Lab, name: str, password: str, grants: list[str]) -> None:
    query(lab, "writer", f"DROP USER IF EXISTS '{name}'@'127.0.0.1'", user="root")
    query(
        lab, "writer", f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'", user="root"
    )
    for g in grants:
        query(lab, "writer", f"GRANT {g} TO '{name}'@'127.0.0.1'", user="root")


def test_minimal_grants_from_setup_are_enough(lab: Lab, tmp_path: Path) -> None:
    """A user with exactly the documented grants passes the preflight checks."""
    service = Service(settings_for(lab, tmp_path / "j.sqlite"))
    try:
        assert service.preflight() is True
        assert service.flavor == server_flavor(lab)
    finally:
        service.journal.close()


@pytest.mark.parametrize(
    ("grants", "needle"),
    [
        (["SELECT ON integrity.*", "{monitor} ON *.*"], "INSERT"),
        (["SELECT, INSERT ON integrity.*", "{monitor} ON *.*"], "UPDATE"),
        (["SELECT, INSERT, UPDATE, DELETE ON integrity.*"], "{monitor}"),
    ],
)
def test_a_missing_grant_is_named(lab: Lab, tmp_path: Path, grants: list[str], needle: str) -> None:
    """Without one of the grants the preflight fails with a GrantError naming it (the
    replication-status privilege by the name the server's flavor uses)."""
    monitor = monitor_grant(server_flavor(lab))
    grants = [g.format(monitor=monitor) for g in grants]
    needle = needle.format(monitor=monitor)
    pw_file = tmp_path / "pw"
    pw_file.write_text("limited-pass-1\n")
    _make_user(lab, "limited", "limited-pass-1", grants)
    service = Service(
        settings_for(lab, tmp_path / "j.sqlite", user="limited", password_file=str(pw_file))
    )
    try:
        with pytest.raises(GrantError, match=needle):
            service.preflight()
    finally:
        service.journal.close()


def test_wrong_password_is_one_clear_line(lab: Lab, tmp_path: Path) -> None:
    """`checker run` with a wrong password exits non-zero with one line and no password in it."""
    pw_file = tmp_path / "pw"
    pw_file.write_text("certainly-wrong-pass\n")
    proc = subprocess.run(
        [
            *CHECKER,
            "run",
            "--lab",
            str(lab.dir),
            "--journal",
            str(tmp_path / "j.sqlite"),
            "--password-file",
            str(pw_file),
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if "checker: error:" in line]
    assert len(lines) == 1, proc.stderr
    assert "refused user 'checker'" in lines[0]
    assert "Traceback" not in proc.stderr
    assert "certainly-wrong-pass" not in proc.stderr + proc.stdout


def test_auth_error_raised_by_preflight(lab: Lab, tmp_path: Path) -> None:
    """Preflight raises AuthError (not a retry loop) for a wrong password."""
    pw_file = tmp_path / "pw"
    pw_file.write_text("nope-nope-nope\n")
    service = Service(settings_for(lab, tmp_path / "j.sqlite", password_file=str(pw_file)))
    try:
        with pytest.raises(AuthError):
            service.preflight()
    finally:
        service.journal.close()
