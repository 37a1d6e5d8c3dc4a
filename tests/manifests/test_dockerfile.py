"""The Dockerfile, checked statically (no Docker engine here): pinned, multi-stage, non-root."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex

import pytest
from dockerfile_parse import DockerfileParser

from tests.manifests._k8s import BASE, REPO, containers, render, workloads

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYTHON_BASE = re.compile(r"python:3\.11\.\d+-slim-[a-z]+")

Instruction = dict[str, str]


def _instructions() -> list[Instruction]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for i in _instructions():
        if i["instruction"] == "FROM":
            stages.append([])
        assert stages, "instructions before the first FROM"
        stages[-1].append(i)
    return stages


def _from(stage: list[Instruction]) -> tuple[str, str | None]:
    words = stage[0]["value"].split()
    words = [w for w in words if not w.startswith("--platform")]
    alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
    return words[0], alias


def _copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY/ADD from the build context (not --from a stage)."""
    result = []
    for i in _instructions():
        if i["instruction"] not in {"COPY", "ADD"}:
            continue
        words = shlex.split(i["value"])
        if any(w.startswith("--from") for w in words):
            continue
        args = [w for w in words if not w.startswith("--")]
        result.append((args[:-1], args[-1]))
    return result


def _ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops `path` (or a directory above it) from the build context."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for raw in patterns:
        pattern = raw.strip("/")
        for candidate in prefixes:
            if fnmatch.fnmatchcase(candidate, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(
                candidate.split("/")[-1], pattern[3:]
            ):
                return True
    return False


def test_dockerfile_parses_into_build_and_runtime_stages() -> None:
    """The Dockerfile parses, and a build stage is followed by a separate runtime stage."""
    stages = _stages()
    assert len(stages) >= 2
    aliases = [_from(s)[1] for s in stages]
    assert aliases[0] is not None, "the build stage is named so the runtime stage can copy from it"
    runtime_copies = [i["value"] for i in stages[-1] if i["instruction"] == "COPY"]
    assert any(f"--from={aliases[0]}" in v for v in runtime_copies)


def test_base_images_are_a_pinned_slim_python_3_11() -> None:
    """Every external base image is python:3.11.<patch>-slim-<debian>, the same in each stage."""
    aliases = set()
    bases = set()
    for stage in _stages():
        image, alias = _from(stage)
        if image not in aliases:
            bases.add(image)
        if alias:
            aliases.add(alias)
    assert len(bases) == 1, bases
    (base,) = bases
    assert PYTHON_BASE.fullmatch(base.split("@")[0]), base
    assert "latest" not in base


def test_no_latest_tags_anywhere() -> None:
    """No instruction mentions a `latest` tag."""
    for i in _instructions():
        assert not re.search(r":latest\b", i["value"]), i["value"]


def test_dependencies_install_through_constraints() -> None:
    """pip installs the project with `-c constraints.txt`, which is copied in first."""
    runs = [i["value"] for i in _instructions() if i["instruction"] == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs
    for command in installs:
        assert "-c constraints.txt" in command, command
        assert " -e " not in command, "an editable install would need /src at runtime"
    copied = {s for sources, _ in _copies() for s in sources}
    assert "constraints.txt" in copied


def test_runtime_user_is_a_numeric_non_root_uid_matching_the_manifests() -> None:
    """The last USER is numeric and non-zero, and the manifests run the image as that UID."""
    runtime = _stages()[-1]
    users = [i["value"] for i in runtime if i["instruction"] == "USER"]
    assert users, "the runtime stage sets no USER (it would run as root)"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0), users[-1]
    uids = set()
    for _, spec in workloads(render(BASE)):
        for c in containers(spec):
            if c["image"].startswith("mysql-chaos-checker:"):
                uids.add(spec["securityContext"]["runAsUser"])
    assert uids == {int(uid)}


def test_entrypoint_is_the_checker() -> None:
    """The image's entrypoint is `checker` in exec form (signals reach it, no shell in between)."""
    (entrypoint,) = [i["value"] for i in _stages()[-1] if i["instruction"] == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["checker"]


def test_the_stop_signal_is_sigterm() -> None:
    """No STOPSIGNAL other than SIGTERM: the kubelet's runtime sends the image's STOPSIGNAL when
    the pod is terminated, and `checker gameday` turns SIGTERM (or SIGINT) into a graceful stop
    of the running experiment (checker.gameday.stop)."""
    signals = [i["value"].strip() for i in _instructions() if i["instruction"] == "STOPSIGNAL"]
    assert all(s in {"SIGTERM", "TERM", "15"} for s in signals), signals


@pytest.mark.parametrize(
    "source", sorted({s for sources, _ in _copies() for s in sources}), ids=str
)
def test_copy_sources_exist_and_are_not_ignored(source: str) -> None:
    """Each COPY source is in the repository and not excluded by .dockerignore."""
    assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
    assert not _ignored(source, _ignore_patterns()), f"COPY {source} is in .dockerignore"


def test_experiments_are_baked_in_at_app_experiments() -> None:
    """experiments/ is copied to /app/experiments, where the game-day plan looks for them."""
    assert (["experiments"], "/app/experiments") in _copies()


def test_dockerignore_keeps_local_state_out() -> None:
    """The build context excludes the virtualenv, the lab, git and tool caches."""
    patterns = _ignore_patterns()
    assert not [p for p in patterns if p.startswith("!")], "keep the ignore file simple"
    for path in (".venv", ".lab", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert _ignored(path, patterns), path
    assert _ignored("checker/__pycache__/x.pyc", patterns)
    assert not _ignored("checker/cli.py", patterns)
