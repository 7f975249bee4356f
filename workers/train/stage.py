"""The ``train`` job: the PR's generated data (its latest successful ``sdg`` job at the same
head) turned into a training plan, run by the DeepSpeed launcher as a child process group of
the worker, followed through the progress file the training processes write. A cancel stops
the group; a job handed out again relaunches, and the training resumes from its last full
checkpoint."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

from app.artifacts import artifact_store
from app.db.models import JobKind, JobState
from bots import messages
from workers.harness import JobFailed, JobRun, latest_succeeded_job
from workers.processes import stop_process_group
from workers.train.launch import launch_command, launch_env
from workers.train.plan import HF_DIR, OUTPUT_DIR, PlanError, build_plan

log = logging.getLogger(__name__)

WORK_DIR = "train"
PLAN_FILE = "plan.json"
PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.jsonl"
POLL_SECONDS = 1.0


def train_stage(run: JobRun) -> JobState:
    settings = run.settings
    if settings.train_base_model is None:
        raise JobFailed(messages.TRAIN_NO_BASE_MODEL)
    run.progress("finding the generated data")
    dataset = _generated_data(run)
    work = run.artifacts / WORK_DIR
    knowledge = dataset / "knowledge.jsonl"
    run.progress("preparing the data")
    try:
        plan = build_plan(
            settings,
            knowledge if knowledge.is_file() and knowledge.stat().st_size else None,
            dataset / "skills.jsonl",
            work,
        )
    except PlanError as exc:
        raise JobFailed(messages.TRAIN_PLAN.format(error=exc)) from exc
    plan_path = work / PLAN_FILE
    plan_path.write_text(plan.model_dump_json(indent=2))
    for phase in plan.phases:
        log.info(
            "phase %s: %d samples, %d tokens (%d with loss), %d dropped as too long",
            phase.name,
            phase.samples,
            phase.tokens,
            phase.loss_tokens,
            phase.dropped,
        )
    run_training(run, plan_path, plan.output_dir)
    return JobState.succeeded


def _generated_data(run: JobRun) -> Path:
    """The dataset directory of the PR's newest successful sdg job for this head commit."""
    sdg_job_id = latest_succeeded_job(run.target, JobKind.sdg)
    if sdg_job_id is None:
        raise JobFailed(messages.TRAIN_NO_DATA.format(sha=run.target.head_sha[:12]))
    local = artifact_store(run.settings).download(sdg_job_id, run.artifacts / "generated")
    dataset = local / "dataset"
    if not (dataset / "skills.jsonl").is_file():
        raise JobFailed(messages.TRAIN_NO_DATA.format(sha=run.target.head_sha[:12]))
    return dataset


def final_checkpoint(artifacts: Path) -> Path | None:
    """The Hugging Face checkpoint of the last phase in a train (or build) job's artifacts,
    None when the job left none."""
    try:
        plan = json.loads((artifacts / WORK_DIR / PLAN_FILE).read_text())
        final = artifacts / WORK_DIR / OUTPUT_DIR / str(plan["phases"][-1]["name"]) / HF_DIR
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return final if (final / "config.json").is_file() else None


def run_training(run: JobRun, plan_path: Path, output: Path) -> None:
    """The DeepSpeed launcher on the plan, followed until it ends (a stop ends the group)."""
    command = launch_command(plan_path, run.settings)
    log.info("launching: %s", " ".join(command))
    with (run.artifacts / "training.log").open("ab") as out:
        child = subprocess.Popen(
            command,
            env=launch_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a stop reaches every rank
        )
        try:
            while child.poll() is None:
                _report(run, output / PROGRESS_FILE)
                time.sleep(POLL_SECONDS)
        except BaseException:
            stop_process_group(child)
            raise
    if child.returncode != 0:
        raise JobFailed(messages.TRAIN_CRASHED.format(code=child.returncode))
    _report(run, output / PROGRESS_FILE)


def _report(run: JobRun, progress_file: Path) -> None:
    try:
        progress = json.loads(progress_file.read_text())
    except (OSError, ValueError):
        run.progress("starting the training processes")
        return
    phase = progress.get("phase", "")
    step, total = progress.get("step", 0), progress.get("total_steps") or 0
    fraction = step / total if total else None
    run.progress(f"{phase}: step {step} of {total}", fraction)
