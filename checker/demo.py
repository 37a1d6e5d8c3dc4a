"""`checker demo`: the README's first command, the whole job end to end on a fresh local lab.

lab up -> checker run (ledger + bank, HTTP API) -> chaos run experiments/local/kubelet-stop.json
-> full verification -> HTML report -> lab down. Prints the verdict and where the report is;
exits 0 (VALID), 1 (INVALID) or 2 (UNKNOWN or a failed step).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import requests

from checker._spawn import Spawned, spawn_checker
from checker.errors import CheckerError
from checker.lab.topology import Lab

EXIT_FOR = {"True": 0, "False": 1, "unknown": 2}


def _step(text: str) -> None:
    click.secho(f"==> {text}", err=True, bold=True)


def _find_experiment(name: str) -> Path:
    """experiments/local/<name> from the working directory, the source tree or the image."""
    here = Path(__file__).resolve().parents[1]
    for base in (Path.cwd(), here, Path("/app")):
        candidate = base / "experiments" / "local" / name
        if candidate.is_file():
            return candidate
    raise CheckerError(
        f"experiments/local/{name} not found: run the demo from the project's directory"
    )


def _chaos() -> str:
    found = shutil.which("chaos", path=str(Path(sys.executable).parent)) or shutil.which("chaos")
    if not found:
        raise CheckerError("the `chaos` command is missing: pip install chaostoolkit")
    return found


def _wait_writes(url: str, count: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = int(requests.get(url + "/status", timeout=10).json()["writes"]["ok"])
        if ok >= count:
            return ok
        time.sleep(0.2)
    raise CheckerError(f"the checker did not reach {count} acknowledged writes in {timeout:.0f} s")


@click.command()
@click.option(
    "--dir",
    "directory",
    default=".lab/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo lab lives.",
)
@click.option(
    "--out",
    default="out/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the journal, the chaos journal, the verdict and the report go.",
)
@click.option(
    "--experiment",
    default="kubelet-stop.json",
    show_default=True,
    help="Which experiments/local/ experiment to run.",
)
@click.option("--keep", is_flag=True, help="Leave the lab running afterwards.")
def demo(directory: str, out: str, experiment: str, keep: bool) -> int:
    """The whole job on a fresh local lab: lab, checker, chaos experiment, verdict, report."""
    path = _find_experiment(experiment)
    chaos = _chaos()
    out_dir = Path(out).resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    lab = Lab(directory)
    if lab.exists():
        lab.down(purge=True)  # a fresh lab every time: the demo must not inherit faults
    _step(f"1/6 starting the lab in {lab.dir}: mysql-0 (primary), mysql-1..2 (replicas), endpoints")
    info = lab.up(replicas=2)
    click.echo(
        f"    writer {info['writer']}  reader {info['reader']}  "
        f"({info['flavor']} {info['version']})",
        err=True,
    )
    checker: Spawned | None = None
    journal, ready, log = (
        out_dir / "checker-journal.sqlite",
        out_dir / "ready.json",
        out_dir / "checker.log",
    )
    try:
        _step("2/6 starting the checker: 4 ledger writers, bank, readers, heartbeat, HTTP API")
        checker = spawn_checker(
            [
                "--lab",
                str(lab.dir),
                "--journal",
                str(journal),
                "--workload",
                "ledger,bank",
                "--log-format",
                "json",
            ],
            ready=ready,
            log=log,
            stdout=subprocess.PIPE,
        )
        url = checker.url
        ok = _wait_writes(url, 300)
        click.echo(f"    {url}  ({ok} writes acknowledged so far; log: {log})", err=True)

        shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
        _step(f"3/6 chaos run {shown}")
        chaos_journal = out_dir / "chaos-journal.json"
        proc = subprocess.run(
            [
                chaos,
                "run",
                str(path),
                "--journal-path",
                str(chaos_journal),
                "--rollback-strategy",
                "always",
                "--var",
                f"lab_dir={lab.dir}",
                "--var",
                f"checker_url={url}",
            ],
            cwd=out_dir,
            check=False,
        )
        status = (
            json.loads(chaos_journal.read_text()).get("status") if chaos_journal.exists() else None
        )
        click.echo(f"    chaos run finished: {status} (exit {proc.returncode})", err=True)

        _step("4/6 stopping the writers and verifying every node (GTID barrier, chunk checksums)")
        summary_line = checker.stop(timeout=300)
        summary = json.loads(summary_line.decode().strip().splitlines()[-1])
        checker = None
        verdict_path = out_dir / "verdict.json"
        verify = subprocess.run(
            [
                sys.executable,
                "-m",
                "checker.cli",
                "verify",
                "--lab",
                str(lab.dir),
                "--journal",
                str(journal),
                "--json",
            ],
            capture_output=True,
            check=False,
        )
        verdict_path.write_bytes(verify.stdout)
        verdict: dict[str, Any] = (
            json.loads(verify.stdout) if verify.stdout.strip() else {"valid": "unknown"}
        )

        _step("5/6 writing the HTML report")
        report = subprocess.run(
            [
                sys.executable,
                "-m",
                "checker.cli",
                "report",
                "--journal",
                str(journal),
                "--chaos-journal",
                str(chaos_journal),
                "--verdict",
                str(verdict_path),
                "--out",
                str(out_dir / "report"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if report.returncode != 0:
            click.echo(f"    report failed: {report.stderr.strip()}", err=True)
    finally:
        if checker is not None:
            checker.stop(timeout=120)
        if keep:
            _step(f"6/6 lab left running: `checker lab down --dir {lab.dir}` stops it")
        else:
            _step("6/6 stopping the lab")
            lab.down(purge=True)

    counts = summary["counts"]
    valid = verdict.get("valid")
    anomalies = {k: v for k, v in (verdict.get("anomaly_counts") or {}).items() if v}
    click.echo(
        f"\nverdict: {'VALID' if valid is True else 'INVALID' if valid is False else 'UNKNOWN'}"
        f" — {counts['attempted']} writes ({counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['indeterminate']} indeterminate, {counts['recovered']} recovered), "
        f"chaos run {status}, anomalies: {anomalies or 'none'}"
    )
    click.echo(f"report:  {out_dir / 'report' / 'index.html'}")
    click.echo(f"verdict: {verdict_path}")
    return EXIT_FOR.get(str(valid), 2)
