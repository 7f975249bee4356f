"""How the job starts a training run: the DeepSpeed launcher as a child process group, one
training process (``workers.train.loop``) per GPU on each node.

The caller runs ``launch_command(...)`` with ``launch_env(...)`` in a new session
(``start_new_session=True``) and stops the run by signalling the whole group: the training
processes save nothing on SIGTERM, and a relaunch resumes from the last full checkpoint.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from app.config import Settings

LOOP_MODULE = "workers.train.loop"
# Where the project's packages are importable from: the launcher's children run ``-m``.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def launch_command(
    plan_path: Path, settings: Settings, *, master_port: int | None = None
) -> list[str]:
    """argv of the DeepSpeed launcher running the plan at ``plan_path``.

    The launcher is run as a module of this interpreter, not as the ``deepspeed`` script found
    on PATH, so that the training processes use the worker's own environment."""
    command = [
        sys.executable,
        "-u",
        "-m",
        "deepspeed.launcher.runner",
        f"--num_gpus={settings.train_processes_per_node}",
        f"--master_port={master_port if master_port is not None else free_port()}",
    ]
    if settings.train_hostfile is not None:
        # A hostfile means "run on these nodes over SSH", even when it lists one node: the
        # launch node need not be one of them (on Kubernetes the train worker launches onto
        # the GPU pods of deploy/k8s/train-nodes.yaml).
        command += [f"--hostfile={settings.train_hostfile}", "--force_multi"]
    command += ["--module", LOOP_MODULE, "--plan", str(plan_path)]
    return command


def launch_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the launcher and so of every local training process."""
    env = dict(os.environ if base is None else base)
    if not _has_cuda():
        # DeepSpeed's CPU accelerator (gloo); without it the launcher looks for GPUs or MPI.
        env.setdefault("DS_ACCELERATOR", "cpu")
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{PROJECT_ROOT}{os.pathsep}{path}" if path else str(PROJECT_ROOT)
    # Unbuffered, so that the job log shows each step as it happens.
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    """A TCP port free now on this host (the rendezvous of the training processes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())
