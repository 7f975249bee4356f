"""The models an evaluation asks: each behind vLLM's OpenAI-compatible server, reached through
the SDG client (batching, concurrency, retries, context limits).

A model is either served elsewhere (configured URLs) or served here: the worker starts
``eval_vllm_command`` for the checkpoint on a free local port, on the worker's own GPU (its
``CUDA_VISIBLE_DEVICES``), waits until ``/v1/models`` answers and stops the whole process group
when the evaluation is done with it. One model at a time, so one GPU is enough."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.config import Settings
from workers.processes import stop_process_group
from workers.sdg.teacher import HttpTeacher, open_client

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
LOG_TAIL_BYTES = 2000


class ServingError(Exception):
    """A model server could not be started; the message says why (with its log's tail)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(settings: Settings, model_dir: Path, name: str, port: int) -> list[str]:
    return [
        *settings.eval_vllm_command,
        "--model",
        str(model_dir),
        "--served-model-name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *settings.eval_vllm_args,
    ]


@contextmanager
def local_server(
    settings: Settings,
    model_dir: Path,
    name: str,
    log_path: Path,
    waiting: Callable[[], None] = lambda: None,
) -> Iterator[str]:
    """A vLLM server for ``model_dir`` while the block runs; yields its base URL.
    ``waiting()`` is called while it loads (a cancelled job raises there)."""
    port = _free_port()
    command = server_command(settings, model_dir, name, port)
    # The worker's own virtualenv must not leak into an interpreter the command names.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.setdefault("HF_HUB_OFFLINE", "1")  # checkpoints are local; never download
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting a model server: %s", " ".join(command))
    with log_path.open("ab") as out:
        try:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own group: the engine's processes stop with it
            )
        except OSError as exc:
            raise ServingError(f"cannot run {command[0]!r}: {exc.strerror}") from None
    url = f"http://127.0.0.1:{port}/v1"
    try:
        started = time.monotonic()
        timeout = settings.eval_server_start_timeout_seconds
        _wait_until_ready(process, url, timeout, log_path, waiting)
        log.info("model server for %s ready in %.0f s", name, time.monotonic() - started)
        yield url
    finally:
        stop_process_group(process)


def _wait_until_ready(
    process: subprocess.Popen[bytes],
    url: str,
    timeout: float,
    log_path: Path,
    waiting: Callable[[], None],
) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServingError(
                    f"the model server exited with {process.returncode} while loading:\n"
                    f"{_tail(log_path)}"
                )
            try:
                if client.get(f"{url}/models").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            waiting()
            time.sleep(POLL_SECONDS)
    raise ServingError(
        f"the model server did not answer within {timeout:.0f} s:\n{_tail(log_path)}"
    )


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(path.stat().st_size - LOG_TAIL_BYTES, 0))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


@contextmanager
def model_client(
    settings: Settings,
    name: str,
    model_dir: Path,
    urls: Sequence[str],
    log_path: Path,
    waiting: Callable[[], None] = lambda: None,
) -> Iterator[HttpTeacher]:
    """A client for the model in ``model_dir``: at ``urls`` when given, else on a server started
    here for the block. The tokenizer (for context limits) is read from ``model_dir``."""
    if urls:
        yield from _closing(open_client(settings, urls, tokenizer=model_dir))
        return
    with local_server(settings, model_dir, name, log_path, waiting) as url:
        yield from _closing(open_client(settings, [url], model=name, tokenizer=model_dir))


def _closing(client: HttpTeacher) -> Iterator[HttpTeacher]:
    try:
        yield client
    finally:
        client.close()
