"""`checker lab up | status | down | fault`: the local lab from the command line."""

from __future__ import annotations

import json
from typing import Any

import click

from checker.lab.faults import FAULTS, PARTITION_MODES, REGISTRY
from checker.lab.state import DEFAULT_DIR
from checker.lab.topology import Lab

_dir_option = click.option(
    "--dir",
    "directory",
    default=DEFAULT_DIR,
    show_default=True,
    envvar="CHECKER_LAB_DIR",
    type=click.Path(file_okay=False),
    help="The lab's directory (state, datadirs, logs, generated passwords).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def _emit(data: dict[str, Any], as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


@click.group()
def lab() -> None:
    """Start, inspect, break and stop the local MySQL lab (a StatefulSet stand-in)."""


@lab.command()
@_dir_option
@click.option("--replicas", default=2, show_default=True, type=click.IntRange(0, 8))
@click.option("--semi-sync", is_flag=True, help="Enable semi-synchronous replication.")
@click.option(
    "--base-port",
    type=click.IntRange(1024, 65000),
    default=None,
    help="First of a block of loopback ports (default: free ports picked at random).",
)
@click.option("--buffer-pool-mb", default=128, show_default=True, type=click.IntRange(16, 65536))
@_json_option
def up(
    directory: str,
    replicas: int,
    semi_sync: bool,
    base_port: int | None,
    buffer_pool_mb: int,
    as_json: bool,
) -> None:
    """Start mysql-0 (primary), mysql-1..N (replicas) and their endpoints."""
    info = Lab(directory).up(
        replicas=replicas, semi_sync=semi_sync, base_port=base_port, buffer_pool_mb=buffer_pool_mb
    )
    lines = [
        f"lab {'already running' if info['already_running'] else 'up'} in {info['dir']} "
        f"({info['flavor']}: {info['version']})",
        f"  writer  mysql-0     {info['writer']}   (always the current primary: {info['primary']})",
        f"  reader  mysql-read  {info['reader']}   (round-robin over ready replicas)",
    ]
    for name, node in info["nodes"].items():
        lines.append(
            f"  node    {name:<10}  {node['endpoint']}   direct {node['direct']}  "
            f"{node['role']}  pid {node['pid']}"
        )
    lines.append(
        f"  user {info['user']!r}, database {info['database']!r}, "
        f"password in {info['password_file']}"
    )
    _emit(info, as_json, "\n".join(lines))


@lab.command()
@_dir_option
@_json_option
def status(directory: str, as_json: bool) -> None:
    """Roles, pids, replication state and lag per node, faults in force."""
    st = Lab(directory).status()
    lines = [
        f"lab {st['dir']} ({st['flavor']}), primary {st['primary']}, proxy "
        f"{'up' if st['proxy']['alive'] else 'DOWN'}"
    ]
    for name, node in st["nodes"].items():
        repl = node.get("replication") or {}
        rtext = (
            f" io={repl.get('io_running')} sql={repl.get('sql_running')} "
            f"lag={repl.get('seconds_behind')}"
            if repl
            else ""
        )
        err = repl.get("last_io_error") or repl.get("last_sql_error") or node.get("error")
        lines.append(
            f"  {name:<8} {node['role']:<8} {node['state']:<8} pid {node['pid']} "
            f"gtid={node.get('gtid', '-')}"
            f"{rtext}{' faults=' + ','.join(node['faults']) if node['faults'] else ''}"
            f"{' error: ' + str(err) if err else ''}"
        )
    _emit(st, as_json, "\n".join(lines))


@lab.command()
@_dir_option
@click.option("--purge", is_flag=True, help="Also delete datadirs, logs and generated passwords.")
@_json_option
def down(directory: str, purge: bool, as_json: bool) -> None:
    """Stop every process the lab started (data kept unless --purge)."""
    result = Lab(directory).down(purge=purge)
    text = "stopped: " + (", ".join(result["stopped"]) or "nothing was running")
    if purge:
        text += "; data purged"
    _emit(result, as_json, text)


@lab.command()
@click.argument("action", type=click.Choice(FAULTS), metavar="ACTION")
@click.argument("node")
@_dir_option
@click.option(
    "--keep-old-primary",
    is_flag=True,
    help="promote: leave the old primary running and writable (zombie primary).",
)
@click.option(
    "--mode",
    type=click.Choice(PARTITION_MODES),
    default="reset",
    show_default=True,
    help="partition: reset cuts connections at once; blackhole stalls them.",
)
@_json_option
def fault(
    action: str, node: str, directory: str, keep_old_primary: bool, mode: str, as_json: bool
) -> None:
    """Inject a fault on NODE (or undo one).

    \b
    ACTION (each with its undo):
      endpoint-loss / endpoint-restore   new connections refused, open ones keep working
      kill / start                       SIGKILL, then restart on the same datadir
      pause / resume                     SIGSTOP / SIGCONT
      partition / heal                   all traffic to and from NODE cut (replication too)
      promote [--keep-old-primary]       failover to replica NODE
      double-start                       a second server on NODE's datadir (should be refused)
      lag / unlag                        stop / restart a replica's SQL thread
      semi-sync-fallback / -restore      replicas stop acknowledging: primary NODE falls
                                         back to asynchronous replication (--semi-sync lab)
    """
    given = {"keep_old_primary": keep_old_primary, "mode": mode}
    options = {k: v for k, v in given.items() if k in REGISTRY[action].options}
    result = Lab(directory).fault(action, node, **options)
    text = f"{action} {node}: " + ", ".join(
        f"{k}={v}" for k, v in result.items() if k not in ("action", "node")
    )
    _emit(result, as_json, text)
