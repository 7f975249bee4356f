"""Real vLLM servers for the SDG and evaluation tests, started once per session (imported by
tests/conftest.py so that every directory shares them).

Building the vLLM virtualenv (first run on a machine: about 90 s) or starting the server
(about 27 s) failing is an error, never a skip: the SDG tests mean nothing without them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sdg.formatted_data import FORMATTED_TEACHER_NAME, make_formatted_teacher
from tests.sdg.vllm import VllmServer, ensure_vllm_venv, make_tiny_model


@pytest.fixture(scope="session")
def vllm_venv() -> Path:
    return ensure_vllm_venv()


@pytest.fixture(scope="session")
def tiny_model_dir(vllm_venv: Path) -> Path:
    return make_tiny_model(venv=vllm_venv)


@pytest.fixture(scope="session")
def vllm_server(
    vllm_venv: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    server = VllmServer(tiny_model_dir, log_path, venv=vllm_venv)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def formatted_teacher_dir(vllm_venv: Path) -> Path:
    """The tiny model fine-tuned to answer every SDG prompt in its format (about 100 s on
    first use on a machine, then cached)."""
    return make_formatted_teacher(vllm_venv)


@pytest.fixture(scope="session")
def formatted_vllm_server(
    vllm_venv: Path, formatted_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    """A second vLLM server, on the formatted teacher: the pipelines keep samples with it."""
    log_path = tmp_path_factory.mktemp("vllm-formatted") / "server.log"
    server = VllmServer(
        formatted_teacher_dir, log_path, venv=vllm_venv, served_model_name=FORMATTED_TEACHER_NAME
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
