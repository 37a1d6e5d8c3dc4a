"""TLS to MySQL on a real MariaDB with its own CA: what verify-ca and verify-identity accept."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from checker.errors import ConfigError, UnreachableError
from checker.lab import _server
from checker.mysql import Endpoint, connect
from checker.secrets import Secret
from checker.settings import parse_tls

ADMIN_PASSWORD = "tls-admin-pw-5c1"


@dataclass(frozen=True)
class TlsServer:
    port: int
    ca: Path  # the CA that signed the server's certificate (names 127.0.0.1 only)
    other_ca: Path  # a CA that signed nothing the server presents


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> Path:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem"


def _server_cert(directory: Path, ca: str) -> tuple[Path, Path]:
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mysql-tls-test",
        "-keyout", "server.key", "-out", "server.csr",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    return directory / "server.pem", directory / "server.key"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A MariaDB started like a lab node, plus --ssl-ca/--ssl-cert/--ssl-key from a test CA."""
    base = tmp_path_factory.mktemp("tls")
    certs = base / "certs"
    certs.mkdir()
    ca = _ca(certs, "right-ca")
    other_ca = _ca(certs, "other-ca")
    cert, key = _server_cert(certs, "right-ca")
    flavor = _server.detect()
    datadir, tmpdir, run = base / "data", base / "tmp", base / "run"
    run.mkdir()
    flavor.initialise(datadir, base / "init.log", tmpdir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = flavor.server_args(
        datadir=datadir,
        port=port,
        socket=run / "tls.sock",
        server_id=1,
        pid_file=datadir / "mysqld.pid",
        error_log=base / "server.err",
        read_only=False,
        semi_sync=False,
        buffer_pool_mb=32,
        tmpdir=tmpdir,
    )
    args += [f"--ssl-ca={ca}", f"--ssl-cert={cert}", f"--ssl-key={key}"]
    if flavor.mariadb:
        args.append("--require-secure-transport=ON")
    pid = _server.start(args, base / "server.out")
    try:
        _server.wait_ready(run / "tls.sock", pid, base / "server.err")
        _server.execute(
            run / "tls.sock",
            [
                f"CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY '{ADMIN_PASSWORD}'",
                "GRANT ALL PRIVILEGES ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION",
            ],
        )
        yield TlsServer(port, ca, other_ca)
    finally:
        _server.terminate(pid)


def _endpoint(server: TlsServer, mode: str, ca: Path | None, host: str = "127.0.0.1") -> Endpoint:
    return Endpoint(
        host=host,
        port=server.port,
        user="admin",
        password=Secret(ADMIN_PASSWORD),
        tls=mode,
        tls_ca=str(ca) if ca else None,
    )


def _cipher(endpoint: Endpoint) -> str:
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            row = cur.fetchone()
            return str(row[1]) if row else ""
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["verify-ca", "verify-identity"])
def test_the_right_ca_is_accepted_over_tls(tls_server: TlsServer, mode: str) -> None:
    """A server whose certificate chains to --tls-ca (and names 127.0.0.1) is reached over TLS."""
    assert _cipher(_endpoint(tls_server, mode, tls_server.ca)) != ""


@pytest.mark.parametrize("mode", ["verify-ca", "verify-identity"])
def test_a_certificate_from_another_ca_is_refused(tls_server: TlsServer, mode: str) -> None:
    """What a man in the middle would present (a certificate from another CA) is refused."""
    with pytest.raises(UnreachableError, match="certificate is not trusted"):
        _cipher(_endpoint(tls_server, mode, tls_server.other_ca))


def test_verify_identity_also_checks_the_name(tls_server: TlsServer) -> None:
    """The right CA but another name (localhost vs 127.0.0.1): verify-ca accepts, identity not."""
    assert _cipher(_endpoint(tls_server, "verify-ca", tls_server.ca, host="localhost")) != ""
    with pytest.raises(UnreachableError, match="certificate is not trusted"):
        _cipher(_endpoint(tls_server, "verify-identity", tls_server.ca, host="localhost"))


def test_required_encrypts_without_checking(tls_server: TlsServer) -> None:
    """`required` gets TLS from any server certificate: encrypted, not authenticated."""
    assert _cipher(_endpoint(tls_server, "required", None)) != ""


@pytest.mark.parametrize(
    ("mode", "ca", "needle"),
    [
        ("verify-ca", None, "--tls verify-ca needs --tls-ca FILE"),
        ("verify-identity", None, "--tls verify-identity needs --tls-ca FILE"),
        ("required", "ca.pem", "--tls-ca is only used by --tls verify-ca or verify-identity"),
        ("verify-ca", "missing.pem", "is not a file"),
        ("sometimes", None, "--tls must be one of"),
    ],
)
def test_tls_options_are_checked_at_start(
    tmp_path: Path, mode: str, ca: str | None, needle: str
) -> None:
    """A verifying mode without a CA, or a CA nobody would use, is one clear line at start."""
    (tmp_path / "ca.pem").write_text("not checked here")
    with pytest.raises(ConfigError, match=needle):
        parse_tls(mode, str(tmp_path / ca) if ca else None)


def test_checker_setup_takes_the_same_tls_options(tls_server: TlsServer, tmp_path: Path) -> None:
    """`checker setup --tls verify-ca` refuses the wrong CA in one line and works with the right."""
    (tmp_path / "admin-pw").write_text(ADMIN_PASSWORD + "\n")
    base = [
        sys.executable, "-m", "checker.cli", "setup",
        "--writer", f"mysql://admin@127.0.0.1:{tls_server.port}",
        "--admin-password-file", str(tmp_path / "admin-pw"),
        "--database", "tls_integrity", "--tls", "verify-ca",
    ]  # fmt: skip
    wrong = subprocess.run(
        [*base, "--tls-ca", str(tls_server.other_ca)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode != 0
    assert "certificate is not trusted" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    right = subprocess.run(
        [*base, "--tls-ca", str(tls_server.ca)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert right.returncode == 0, right.stderr
    assert "schema ready in 'tls_integrity'" in right.stdout
