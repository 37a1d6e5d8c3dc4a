"""Recording stand-ins for the host programs the kubelet fault runs: a model of a node's systemd.

No systemd runs here (no pid 1 of ours, no kubelet), so the kubelet commands run against these
programs instead: `ssh`, `sudo`, `docker`, `nsenter`, `systemd-run` and `systemctl`. Every call is
recorded (argv, one JSON line) and the few systemd behaviours the fault relies on are modelled
from systemd's documentation, so a command line that misuses them fails here as on a node:

- `systemd-run --on-active=Ns --unit=U CMD` loads a transient `U.timer` and `U.service`; a unit of
  that name that is still loaded makes it fail ("Unit U.timer was already loaded").
- The timer elapses `AccuracySec=` late at worst (systemd.timer(5): "Defaults to 1min"), modelled
  as the worst case, so a missing `--timer-property=AccuracySec=1s` shows as a late restore.
- An elapsed timer stays loaded unless `RemainAfterElapse=no` (systemd.timer(5): "Defaults to
  true"); a transient service unloads once it ends, or stays loaded as failed without `--collect`.
- `systemctl stop U.timer` unloads a transient timer (a disarm); `reset-failed` unloads failed
  units; `start/stop kubelet` flips the node's kubelet, kept in the `kubelet` file.

Each node has its own state folder: `$HOSTSTUB_ROOT/<node>`. `ssh` maps the host it is given
(an InternalIP or a name) to a node through `$HOSTSTUB_ROOT/hosts.json`; `docker exec NODE` uses
the container's name. Timers fire from a detached process that sleeps until they are due.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT_VARIABLE = "HOSTSTUB_ROOT"
NODE_VARIABLE = "HOSTSTUB_NODE"
PROGRAMS = ("ssh", "sudo", "docker", "nsenter", "systemd-run", "systemctl")
DEFAULT_ACCURACY = 60.0  # systemd.timer(5), AccuracySec=


def install(bin_dir: Path, root: Path) -> dict[str, str]:
    """Write one wrapper per program into `bin_dir`; the environment that puts them first."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    for program in PROGRAMS:
        wrapper = bin_dir / program
        command = f"{shlex.quote(sys.executable)} {shlex.quote(__file__)} {program}"
        wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        wrapper.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        ROOT_VARIABLE: str(root),
    }


class Node:
    """The test's view of one node's modelled host: kubelet state, units, recorded calls."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def kubelet_active(self) -> bool:
        path = self.dir / "kubelet"
        return not path.exists() or path.read_text().strip() == "active"

    def kubelet_changes(self) -> list[tuple[float, str]]:
        """(wall time, "active"/"inactive") for each change, oldest first."""
        path = self.dir / "kubelet-history"
        if not path.exists():
            return []
        return [
            (float(t), state)
            for t, state in (line.split() for line in path.read_text().splitlines())
        ]

    def units(self) -> dict[str, Any]:
        return _load(self.dir / "units.json")

    def calls(self) -> list[list[str]]:
        path = self.dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["argv"] for line in path.read_text().splitlines()]


# == the programs ================================================================================
def main(argv: list[str]) -> int:
    program, args = argv[0], argv[1:]
    root = Path(os.environ[ROOT_VARIABLE])
    if program == "ssh":
        return _ssh(root, args)
    if program == "docker":
        return _docker(root, args)
    node = os.environ.get(NODE_VARIABLE, "")
    if not node:
        print(f"{program}: no node (the stub runs only under ssh, docker or a helper pod)")
        return 2
    _record(root / node, [program, *args])
    if program == "sudo":
        if args[:1] == ["-n"]:
            args = args[1:]
        return subprocess.call(args)
    if program == "nsenter":
        return subprocess.call(args[args.index("--") + 1 :]) if "--" in args else 1
    if program == "systemd-run":
        return _systemd_run(root / node, args)
    return _systemctl(root / node, args)


def _ssh(root: Path, args: list[str]) -> int:
    options = {"-o", "-i", "-p", "-l", "-F"}
    rest = list(args)
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag in options:
            rest.pop(0)
    if len(rest) != 2:
        print("ssh stub: expected `ssh [options] [user@]host 'script'`", file=sys.stderr)
        return 255
    target, script = rest
    host = target.rpartition("@")[2]
    node = _load(root / "hosts.json").get(host)
    if node is None:
        print(f"ssh: connect to host {host} port 22: No route to host", file=sys.stderr)
        return 255
    _record(root / node, ["ssh", *args])
    return _shell(root, node, script)


def _docker(root: Path, args: list[str]) -> int:
    if args[:1] != ["exec"] or len(args) < 3:
        print("docker stub: only `docker exec CONTAINER CMD...`", file=sys.stderr)
        return 125
    container, command = args[1], args[2:]
    if not (root / container).is_dir():
        print(f"Error response from daemon: No such container: {container}", file=sys.stderr)
        return 1
    _record(root / container, ["docker", *args])
    return subprocess.call(command, env={**os.environ, NODE_VARIABLE: container})


def run_on_node(root: Path, node: str, command: list[str], env: dict[str, str]) -> int:
    """Run a helper container's command on `node`'s modelled host (what kubelet would do)."""
    (root / node).mkdir(parents=True, exist_ok=True)
    return subprocess.call(command, env={**env, ROOT_VARIABLE: str(root), NODE_VARIABLE: node})


def _shell(root: Path, node: str, script: str) -> int:
    return subprocess.call(["sh", "-c", script], env={**os.environ, NODE_VARIABLE: node})


def _systemd_run(node_dir: Path, args: list[str]) -> int:
    options: dict[str, Any] = {"timer": {}, "collect": False}
    rest = list(args)
    while rest and rest[0].startswith("-"):
        arg = rest.pop(0)
        key, _, value = arg.partition("=")
        if key == "--on-active":
            options["on_active"] = _seconds(value)
        elif key == "--unit":
            options["unit"] = value
        elif key == "--timer-property":
            name, _, setting = value.partition("=")
            options["timer"][name] = setting
        elif key in ("--collect", "-G"):
            options["collect"] = True
        else:
            print(f"systemd-run stub: unsupported option {arg}", file=sys.stderr)
            return 1
    if "on_active" not in options or "unit" not in options or not rest:
        print("systemd-run stub: needs --on-active, --unit and a command", file=sys.stderr)
        return 1
    unit = options["unit"]
    timer = options["timer"]
    accuracy = _seconds(timer.get("AccuracySec", f"{DEFAULT_ACCURACY}s"))
    with _units(node_dir) as units:
        for name in (f"{unit}.timer", f"{unit}.service"):
            if name in units:
                print(
                    f"Failed to start transient timer unit: Unit {name} was already loaded "
                    "or has a fragment file.",
                    file=sys.stderr,
                )
                return 1
        due = time.time() + options["on_active"] + accuracy
        units[f"{unit}.timer"] = {
            "state": "waiting",
            "due": due,
            "remain_after_elapse": timer.get("RemainAfterElapse", "yes") not in ("no", "false"),
        }
        units[f"{unit}.service"] = {
            "state": "inactive",
            "command": rest,
            "collect": options["collect"],
        }
    subprocess.Popen(
        [sys.executable, __file__, "_fire", str(node_dir), unit, str(due)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    print(f"Running timer as unit: {unit}.timer")
    return 0


def _fire(node_dir: Path, unit: str, due: float) -> int:
    """The detached timer: at `due`, run the service if the timer is still armed."""
    time.sleep(max(0.0, due - time.time()))
    with _units(node_dir) as units:
        timer = units.get(f"{unit}.timer")
        if timer is None or timer.get("due") != due or timer["state"] != "waiting":
            return 0  # disarmed (stopped) or replaced meanwhile
        service = units.get(f"{unit}.service", {})
        timer["state"] = "elapsed"
        if not timer["remain_after_elapse"]:
            units.pop(f"{unit}.timer")
        service["state"] = "activating"
    code = subprocess.call(service.get("command", ["false"]))
    with _units(node_dir) as units:
        entry = units.get(f"{unit}.service")
        if entry is not None:
            if code == 0 or entry.get("collect"):
                units.pop(f"{unit}.service")
            else:
                entry["state"] = "failed"
    return 0


def _systemctl(node_dir: Path, args: list[str]) -> int:
    if not args:
        return 1
    verb, names = args[0], args[1:]
    code = 0
    for name in names:
        if name in ("kubelet", "kubelet.service"):
            if verb in ("start", "stop", "restart"):
                _set_kubelet(node_dir, "inactive" if verb == "stop" else "active")
            elif verb == "is-active":
                code = max(code, 0 if Node(node_dir.parent, node_dir.name).kubelet_active else 3)
            continue
        with _units(node_dir) as units:
            if name not in units:
                if verb != "stop":  # stopping a unit that is not loaded succeeds
                    print(f"Unit {name} not loaded.", file=sys.stderr)
                    code = 5
                continue
            if verb == "stop":
                units.pop(name)  # a stopped transient unit is unloaded
                service = name.removesuffix(".timer") + ".service"
                if name.endswith(".timer") and units.get(service, {}).get("state") == "inactive":
                    units.pop(service)  # unreferenced and inactive: garbage-collected
            elif verb == "reset-failed":
                if units[name].get("state") == "failed":
                    units.pop(name)
            elif verb == "is-active":
                code = max(code, 0 if units[name]["state"] in ("waiting", "activating") else 3)
            else:
                print(f"systemctl stub: unsupported verb {verb}", file=sys.stderr)
                code = 1
    return code


def _set_kubelet(node_dir: Path, state: str) -> None:
    with _locked(node_dir):
        (node_dir / "kubelet").write_text(state)
        with (node_dir / "kubelet-history").open("a") as history:
            history.write(f"{time.time():.3f} {state}\n")


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "": 1.0}
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * units[text[len(number) :]]


def _record(node_dir: Path, argv: list[str]) -> None:
    node_dir.mkdir(parents=True, exist_ok=True)
    with _locked(node_dir), (node_dir / "calls.jsonl").open("a") as calls:
        calls.write(json.dumps({"t": time.time(), "argv": argv}) + "\n")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


@contextmanager
def _locked(node_dir: Path) -> Iterator[None]:
    with (node_dir / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def _units(node_dir: Path) -> Iterator[dict[str, Any]]:
    with _locked(node_dir):
        units = _load(node_dir / "units.json")
        yield units
        (node_dir / "units.json").write_text(json.dumps(units))


if __name__ == "__main__":
    if sys.argv[1] == "_fire":
        sys.exit(_fire(Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])))
    sys.exit(main(sys.argv[1:]))
