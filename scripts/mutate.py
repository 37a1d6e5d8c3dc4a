"""A short mutation run: break one detector or probe at a time, run the tests named for it.

Each mutation makes one function return a constant (the answer that would hide a failure:
no anomaly, healthy, valid, exactly one primary...) by inserting `return <constant>` right
after its docstring. The file is changed in place (the chaos CLI imports the installed,
editable package, so a copy elsewhere would not be seen), the named tests run, and the file is
restored in a `finally`. A mutant is *caught* when the tests fail.

    .venv/bin/python scripts/mutate.py                # every mutation, a Markdown table
    .venv/bin/python scripts/mutate.py stale writable # only those whose name contains a word

Refuses to touch a file with uncommitted changes, so `git checkout FILE` is always a safe undo.
The Kubernetes activities run against the fake API (tests/k8s); the last two mutations are
the ones that once passed every Kubernetes test, now run through a real `chaos run`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
CORE = ["tests/core"]
# tests/k8s without the slow end-to-end `chaos run`s of tests/k8s/test_experiments.py.
K8S = ["tests/k8s", "-k", "not runs_on and not refused_while_mysqld and not lets"]
K8S_RUN = ["tests/k8s/test_experiments.py", "-k", "test_kubelet_stop_runs_on_a_cluster_twice"]


@dataclass(frozen=True)
class Mutation:
    """`module`.`function` made to return `constant`; `tests` are pytest arguments."""

    module: str  # path relative to the repository
    function: str
    constant: str
    tests: tuple[str, ...]
    public: str = ""  # the module experiments name, when `function` is defined behind it

    @property
    def name(self) -> str:
        return f"{self.public or Path(self.module).stem}.{self.function}"


def m(module: str, function: str, constant: str, *tests: str) -> Mutation:
    return Mutation(module, function, constant, tests)


def k8s(module: str, function: str, constant: str) -> Mutation:
    """An activity of `probes.kubernetes`, defined in probes/k8s/`module`."""
    return Mutation(f"probes/k8s/{module}", function, constant, tuple(K8S), "kubernetes")


MATCH_NOTHING_MISSING = "Match(node, lo, hi, len(rows), (), (), (), ())"
MUTATIONS = [
    # checker/core detectors: the pure unit tests catch them in seconds.
    m("checker/core/ledger.py", "match_rows", MATCH_NOTHING_MISSING, *CORE),
    m("checker/core/ledger.py", "lost", "[]", *CORE),
    m("checker/core/ledger.py", "duplicated", "[]", *CORE),
    m("checker/core/ledger.py", "corrupted", "[]", *CORE),
    m("checker/core/ledger.py", "unexpected", "[]", *CORE),
    m("checker/core/ledger.py", "recovered", "[]", *CORE),
    m("checker/core/replicas.py", "errant", "[]", *CORE),
    m("checker/core/replicas.py", "divergent_rows", "[]", *CORE),
    m("checker/core/replicas.py", "divergent_chunks", "[]", *CORE),
    m("checker/core/replicas.py", "stale", "[]", *CORE),
    m("checker/core/replicas.py", "non_monotonic", "[]", *CORE),
    m("checker/core/primaries.py", "split_brain", "[]", *CORE),
    m("checker/core/bank.py", "bank_total", "[]", *CORE),
    m("checker/core/gtid.py", "gtid_contains", "True", *CORE),
    m("checker/core/chunks.py", "diff_chunks", "[]", *CORE),
    # probes/mysql.py: the steady-state probes, against a real lab.
    m("probes/mysql.py", "marker_write_read", "True", "tests/probes/test_mysql.py", "-k", "marker"),
    m(
        "probes/mysql.py",
        "replication_healthy",
        "True",
        "tests/probes/test_mysql.py",
        "-k",
        "replication",
    ),
    m(
        "probes/mysql.py",
        "replication_lag_seconds",
        "0.0",
        "tests/probes/test_mysql.py",
        "-k",
        "replication",
    ),
    m("probes/mysql.py", "writable_primaries", "1", "tests/probes/test_mysql.py", "-k", "writable"),
    # probes/checker.py: the probes that ask the checker, against a real checker on a lab.
    m("probes/checker.py", "verdict_valid", "True", "tests/chaos/test_checker.py", "-k", "verdict"),
    m(
        "probes/checker.py",
        "anomaly_counts",
        '{"total": 0}',
        "tests/chaos/test_checker.py",
        "-k",
        "anomaly",
    ),
    m(
        "probes/checker.py",
        "wait_for_new_writes",
        "True",
        "tests/chaos/test_checker.py",
        "-k",
        "wait_for_new_writes",
    ),
    m(
        "probes/checker.py",
        "write_outcomes_during",
        '{"seconds": seconds, "ok": 1, "failed": 0, "indeterminate": 0}',
        "tests/chaos/test_checker.py",
        "-k",
        "write_outcomes",
    ),
    m(
        "probes/checker.py",
        "checker_healthy",
        "True",
        "tests/chaos/test_checker.py",
        "-k",
        "healthy or unreachable",
    ),
    # probes/lab.py: the lab's probes and the faults the local experiments apply.
    m("probes/lab.py", "primary_node", '"mysql-0"', "tests/probes/test_mysql.py", "-k", "promote"),
    m("probes/lab.py", "node_state", '"running"', "tests/probes/test_lab.py"),
    m("probes/lab.py", "lab_running", "True", "tests/probes/test_lab.py"),
    m("probes/lab.py", "endpoint_loss", "{}", "tests/probes/test_lab.py", "-k", "endpoint"),
    m("probes/lab.py", "kill_node", "{}", "tests/probes/test_lab.py", "-k", "kill"),
    m("probes/lab.py", "pause_node", "{}", "tests/probes/test_lab.py", "-k", "pause"),
    m("probes/lab.py", "partition_node", "{}", "tests/probes/test_lab.py", "-k", "partition"),
    m("probes/lab.py", "lag_replica", "{}", "tests/probes/test_lab.py", "-k", "lag"),
    m(
        "probes/lab.py",
        "double_start",
        '{"refused": True, "original_serving": True}',
        "tests/probes/test_lab.py",
        "-k",
        "double_start",
    ),
    m(
        "probes/lab.py",
        "heal_all",
        '{"undone": [], "count": 0}',
        "tests/probes/test_lab.py",
        "-k",
        "heal_all",
    ),
    # probes.kubernetes (defined in probes/k8s): each activity the real-cluster experiments rely on.
    k8s("pod/probes.py", "node_of_pod", '"checker-e2e-worker"'),
    k8s("pod/probes.py", "wait_pod_status", "True"),
    k8s("pod/probes.py", "pod_not_replaced", "True"),
    k8s("pod/probes.py", "wait_pod_replaced", "True"),
    k8s("node/probes.py", "wait_kubelet_restored", "True"),
    k8s("statefulset/probes.py", "wait_statefulset_ready", "True"),
    k8s(
        "node/actions.py",
        "stop_kubelet",
        '{"node": "", "pod": "", "method": method, "restore_after_seconds": 0}',
    ),
    k8s(
        "node/actions.py",
        "restore_kubelet",
        '{"node": "", "method": "", "ready": True, "helper_pod_deleted": False}',
    ),
    k8s(
        "node/actions.py",
        "taint_out_of_service",
        '{"node": "", "tainted": True, "changed": True}',
    ),
    k8s("node/actions.py", "remove_out_of_service_taint", '{"nodes": "", "changed": ""}'),
    k8s("pod/actions.py", "force_delete_pod", '{"pod": pod, "deleted": True}'),
    k8s("pod/actions.py", "delete_pod", '{"pod": pod, "deleted": True}'),
    k8s("network/actions.py", "partition_pod", '{"pod": pod, "created": True}'),
    k8s("network/actions.py", "heal_partition", '{"pod": pod, "deleted": True}'),
    # The two mutants that once left every Kubernetes experiment test green.
    m("probes/mysql.py", "writable_primaries", "2", *K8S_RUN),
    m("probes/checker.py", "verdict_valid", "False", *K8S_RUN),
]


def mutated(source: str, function: str, constant: str) -> str:
    """`source` with `return constant` as the first statement of module-level `function`."""
    tree = ast.parse(source)
    (fn,) = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == function
    ]
    first = fn.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    after = (first.end_lineno if has_doc else fn.body[0].lineno - 1) or 0
    indent = " " * (fn.body[-1].col_offset)
    lines = source.splitlines(keepends=True)
    lines.insert(after, f"{indent}return {constant}  # MUTANT\n")
    return "".join(lines)


def dirty(path: Path) -> bool:
    return (
        subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", str(path)], cwd=ROOT, check=False
        ).returncode
        != 0
    )


def run(mutation: Mutation) -> tuple[bool, str, float]:
    """Apply, test, restore. (caught, first failing test or why not, seconds)."""
    path = ROOT / mutation.module
    if dirty(path):
        sys.exit(f"mutate: {mutation.module} has uncommitted changes: commit or stash them first")
    original = path.read_text()
    path.write_text(mutated(original, mutation.function, mutation.constant))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [
                str(PYTHON),
                "-m",
                "pytest",
                "-x",
                "-q",
                "-p",
                "no:cacheprovider",
                "-rf",
                *mutation.tests,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    finally:
        path.write_text(original)
    seconds = time.monotonic() - started
    failed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("FAILED ")]
    if proc.returncode == 1 and failed:
        return True, failed[0], seconds
    if proc.returncode == 0:
        return False, "all selected tests passed", seconds
    tail = proc.stdout.strip().splitlines()[-1:] or ["no output"]
    return proc.returncode != 5, f"exit {proc.returncode}: {tail[0]}", seconds


def main(words: list[str]) -> int:
    chosen = [x for x in MUTATIONS if not words or any(w in x.name for w in words)]
    print("| mutant | returns | tests run | caught by |")
    print("| --- | --- | --- | --- |")
    survivors = 0
    for mutation in chosen:
        caught, what, seconds = run(mutation)
        survivors += not caught
        verdict = f"`{what}`" if caught else f"**NOT CAUGHT** ({what})"
        tests = f"`{' '.join(mutation.tests)}` ({seconds:.0f} s)"
        print(f"| `{mutation.name}` | `{mutation.constant}` | {tests} | {verdict} |", flush=True)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
