"""Child process groups the GPU stages start (DeepSpeed's launcher, vLLM servers)."""

from __future__ import annotations

import os
import signal
import subprocess

STOP_GRACE_SECONDS = 30.0  # time to save, flush and free the GPUs before SIGKILL


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's whole group (started with start_new_session=True), SIGKILL
    after a grace period: a stop reaches every rank or server process it spawned."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
