"""The launcher's command line, read back by the installed DeepSpeed's own argument parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deepspeed.launcher.runner import parse_args

from app.config import Settings
from workers.train.launch import LOOP_MODULE, launch_command


def _runner_args(command: list[str]) -> dict[str, Any]:
    module = command.index("deepspeed.launcher.runner")
    return vars(parse_args(command[module + 1 :]))


@pytest.mark.parametrize("hostfile", [None, Path("/etc/labbot/train/hostfile")])
def test_the_runner_accepts_the_command(tmp_path: Path, hostfile: Path | None) -> None:
    settings = Settings(data_dir=tmp_path, train_processes_per_node=8, train_hostfile=hostfile)
    plan = tmp_path / "plan.json"
    args = _runner_args(launch_command(plan, settings, master_port=29555))
    assert args["num_gpus"] == 8
    assert args["master_port"] == 29555
    assert args["module"] is True
    assert args["user_script"] == LOOP_MODULE
    assert args["user_args"] == ["--plan", str(plan)]
    # With a hostfile the run goes to the listed nodes over SSH, even a single one.
    assert args["hostfile"] == (str(hostfile) if hostfile else "/job/hostfile")
    assert args["force_multi"] is (hostfile is not None)
