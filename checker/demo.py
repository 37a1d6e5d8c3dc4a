"""`checker demo`: the README's first command, end to end on a fresh local lab."""

from __future__ import annotations

import time
import uuid

import click

from checker import mysql
from checker.errors import CheckerError
from checker.lab.topology import Lab


def _step(text: str) -> None:
    click.echo(f"==> {text}", err=True)


@click.command()
@click.option(
    "--dir",
    "directory",
    default=".lab/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo lab lives.",
)
@click.option("--keep", is_flag=True, help="Leave the lab running afterwards.")
def demo(directory: str, keep: bool) -> int:
    """Bring up the lab, write through mysql-0, read back through mysql-read, tear down."""
    lab = Lab(directory)
    _step(f"starting the lab in {lab.dir} (mysql-0 primary, mysql-1..2 replicas, endpoints)")
    info = lab.up(replicas=2)
    ok = False
    try:
        click.echo(
            f"    writer {info['writer']}  reader {info['reader']}  "
            f"({info['flavor']} {info['version']})",
            err=True,
        )
        root = mysql.connect(lab.endpoint("writer", user="root"))
        with root.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS integrity.demo "
                "(id BIGINT AUTO_INCREMENT PRIMARY KEY, marker VARCHAR(64))"
            )
        root.close()
        marker = uuid.uuid4().hex
        _step(f"writing marker {marker[:12]}... through mysql-0 as user {info['user']!r}")
        w = mysql.connect(lab.endpoint("writer"))
        with w.cursor() as cur:
            cur.execute("INSERT INTO demo (marker) VALUES (%s)", (marker,))
        w.close()
        _step("reading it back through mysql-read")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = mysql.connect(lab.endpoint("reader"))
            with r.cursor() as cur:
                cur.execute("SELECT @@server_id, COUNT(*) FROM demo WHERE marker = %s", (marker,))
                sid, found = cur.fetchone()
            r.close()
            if found:
                click.echo(f"    found on the replica with server_id {sid}", err=True)
                ok = True
                break
            time.sleep(0.1)
        if not ok:
            raise CheckerError(
                "the marker written on mysql-0 never became readable through mysql-read"
            )
    finally:
        if keep:
            _step(f"lab left running: `checker lab down --dir {lab.dir}` stops it")
        else:
            _step("stopping the lab")
            lab.down(purge=True)
    click.echo("demo: OK — a write acknowledged by mysql-0 was read back through mysql-read")
    return 0
