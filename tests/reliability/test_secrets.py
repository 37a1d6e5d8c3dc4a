"""No secret leaks: the whole flow runs with a recognisable password and token, and no output,
log, journal, report or HTTP answer contains either."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

from checker.lab.topology import Lab
from tests._flavor import monitor_grant, server_flavor
from tests._wait import wait_for
from tests.lab._sql import query

CHECKER = [sys.executable, "-m", "checker.cli"]
PASSWORD = "Canary-Pw-7f3e9d1a"
TOKEN = "Canary-Token-c4b2a8e6"
WRONG = "Canary-Wrong-55aa11"
ADMIN_NEW = "Canary-Setup-0b9c"


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHECKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _all_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def test_the_whole_flow_leaks_no_secret(lab: Lab, tmp_path: Path) -> None:
    """Password and token never appear in stdout, stderr, logs, journal, report or HTTP bodies."""
    outputs: list[str] = []
    pw, tok, wrong = tmp_path / "pw", tmp_path / "token", tmp_path / "wrong"
    pw.write_text(PASSWORD + "\n")
    tok.write_text(TOKEN + "\n")
    wrong.write_text(WRONG + "\n")

    # `checker setup` creating a user with a recognisable password, as an admin would.
    root_pw = tmp_path / "root"
    root_pw.write_text(lab.secret("root").reveal())
    writer = lab.info()["writer"]
    setup_pw = tmp_path / "setup-pw"
    setup_pw.write_text(ADMIN_NEW)
    proc = _run(
        "setup",
        "--writer",
        f"mysql://{writer}",
        "--admin-password-file",
        str(root_pw),
        "--create-user",
        "canary2",
        "--user-host",
        "127.0.0.1",
        "--password-file",
        str(setup_pw),
    )
    assert proc.returncode == 0, proc.stderr
    outputs += [proc.stdout, proc.stderr]
    query(lab, "writer", "DROP USER IF EXISTS 'canary'@'127.0.0.1'", user="root")
    query(
        lab, "writer", f"CREATE USER 'canary'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'", user="root"
    )
    query(
        lab,
        "writer",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON integrity.* TO 'canary'@'127.0.0.1'",
        user="root",
    )
    query(
        lab,
        "writer",
        f"GRANT {monitor_grant(server_flavor(lab))} ON *.* TO 'canary'@'127.0.0.1'",
        user="root",
    )

    journal, ready, report = tmp_path / "j.sqlite", tmp_path / "ready.json", tmp_path / "report"
    checker = subprocess.Popen(
        [
            *CHECKER,
            "run",
            "--lab",
            str(lab.dir),
            "--user",
            "canary",
            "--password-file",
            str(pw),
            "--api-token-file",
            str(tok),
            "--journal",
            str(journal),
            "--http",
            "127.0.0.1:0",
            "--ready-file",
            str(ready),
            "--log-format",
            "json",
            "--workload",
            "ledger,bank",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: ready.exists() or checker.poll() is not None, timeout=60, what="the checker"
        )
        assert checker.poll() is None
        url = json.loads(ready.read_text())["url"]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        wait_for(
            lambda: (
                requests.get(url + "/status", headers=auth, timeout=5).json()["writes"]["ok"] > 100
            ),
            timeout=60,
            what="writes",
        )
        lab.fault("kill", "mysql-0")
        lab.fault("start", "mysql-0")
        bodies = [
            requests.post(
                url + "/annotations",
                json={"name": "kill", "phase": "start"},
                headers=auth,
                timeout=10,
            ),
            requests.post(
                url + "/annotations",
                json={"name": "x", "phase": "start"},
                headers={"Authorization": "Bearer wrong"},
                timeout=10,
            ),
            requests.post(url + "/verify", headers=auth, timeout=180),
            requests.get(url + "/status", headers=auth, timeout=10),
            requests.get(url + "/verdict", headers=auth, timeout=10),
            requests.get(url + "/metrics", timeout=10),
            requests.get(url + "/annotations", headers=auth, timeout=10),
            requests.get(url + "/openapi.json", timeout=10),
            requests.get(url + "/journal", headers=auth, timeout=60),
        ]
        assert [b.status_code for b in bodies[:3]] == [201, 401, 200]
        outputs += [b.content.decode(errors="replace") for b in bodies]
    finally:
        checker.send_signal(signal.SIGTERM)
        out, err = checker.communicate(timeout=180)
        outputs += [out, err]

    proc = _run(
        "verify",
        "--lab",
        str(lab.dir),
        "--user",
        "canary",
        "--password-file",
        str(pw),
        "--journal",
        str(journal),
        "--json",
    )
    outputs += [proc.stdout, proc.stderr]
    proc = _run("report", "--journal", str(journal), "--out", str(report))
    assert proc.returncode == 0, proc.stderr
    outputs += [proc.stdout, proc.stderr]
    proc = _run(
        "run",
        "--lab",
        str(lab.dir),
        "--user",
        "canary",
        "--password-file",
        str(wrong),
        "--journal",
        str(tmp_path / "j2.sqlite"),
        "--duration",
        "1",
    )
    assert proc.returncode == 2 and "refused user 'canary'" in proc.stderr
    outputs += [proc.stdout, proc.stderr]

    files = (
        _all_bytes(tmp_path / "report")
        + [(p, p.read_bytes()) for p in tmp_path.glob("j*.sqlite*")]
        + _all_bytes(lab.dir / "logs")
    )
    assert any(p.name == "index.html" for p, _ in files)
    for secret in (PASSWORD, TOKEN, WRONG, ADMIN_NEW):
        for text in outputs:
            assert secret not in text
        for path, data in files:
            assert secret.encode() not in data, f"{secret} found in {path}"
