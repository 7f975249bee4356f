"""A labbot worker for bench/job_pipeline.py: `labbot worker` as it is, except that every job
kind runs a no-op stage, so the benchmark measures the pipeline around a stage (claim, lease,
per-job log, progress, check run, fenced finish) and not a stage.

    python bench/job_worker.py --hostname bench-1@%h [--concurrency 1] [--pool prefork]

Settings come from LABBOT_* as for `labbot worker`. Besides them:

    LABBOT_BENCH_WORK_MS     the stage's own work: it sleeps this long (default 0), then reports
                             `run.progress("bench", 1.0)`
    LABBOT_BENCH_RECORD_URL  Redis URL where every run of `labbot.run_job` is recorded (default
                             LABBOT_BROKER_URL): the job id, when the task began and ended, and
                             how long each stage execution worked, as one JSON line per task on
                             the list `labbot-bench:runs` (pushed after the task, so it is not
                             part of any figure)

The stage is replaced here only (the module attribute `workers.tasks.stage_for`, before the
prefork pool forks), never in labbot itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from celery.signals import task_postrun, task_prerun  # noqa: E402

import workers.tasks  # noqa: E402
from app.config import get_settings  # noqa: E402
from app.db.models import JobKind, JobState  # noqa: E402
from workers.celery_app import ALL_QUEUES, celery_app  # noqa: E402
from workers.harness import JobRun, Stage  # noqa: E402

RUNS_KEY = "labbot-bench:runs"
WORK_SECONDS = float(os.environ.get("LABBOT_BENCH_WORK_MS", "0")) / 1000
RECORD_URL = os.environ.get("LABBOT_BENCH_RECORD_URL") or get_settings().broker_url

# Per process (the prefork children each have their own) and per thread (the threads pool):
# the task running here, and what its stage did; sent to Redis by the task_postrun handler.
_task_started: dict[str, float] = {}
_stage_runs: dict[str, list[float]] = {}
_here = threading.local()
_client: dict[int, redis.Redis] = {}


def _redis() -> redis.Redis:
    """One client per process: a forked child must not share its parent's socket."""
    pid = os.getpid()
    if pid not in _client:
        _client.clear()
        _client[pid] = redis.Redis.from_url(RECORD_URL)
    return _client[pid]


def noop_stage(run: JobRun) -> JobState | None:
    started = time.perf_counter()
    if WORK_SECONDS > 0:
        time.sleep(WORK_SECONDS)
    worked = time.perf_counter() - started
    task_id = getattr(_here, "task_id", None)
    if task_id is not None:
        _stage_runs.setdefault(task_id, []).append(worked)
    run.progress("bench", 1.0)
    return JobState.succeeded


def bench_stage_for(kind: JobKind) -> Stage | None:
    return noop_stage


workers.tasks.stage_for = bench_stage_for


def _task_began(task_id: str = "", task: Any = None, **_: Any) -> None:
    if task is not None and task.name == "labbot.run_job":
        _task_started[task_id] = time.time()
        _here.task_id = task_id


def _task_ended(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
    if task is None or task.name != "labbot.run_job":
        return
    ended = time.time()
    _here.task_id = None
    record = {
        "job": int(args[0]) if args else None,
        "task_id": task_id,
        "start": _task_started.pop(task_id, ended),
        "end": ended,
        "stage": _stage_runs.pop(task_id, []),
        "process": os.getpid(),
    }
    _redis().rpush(RUNS_KEY, json.dumps(record))


task_prerun.connect(_task_began, weak=False)
task_postrun.connect(_task_ended, weak=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--hostname", required=True, help="Celery node name, e.g. bench-1@%%h")
    parser.add_argument("--queues", default=",".join(ALL_QUEUES))
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--pool", choices=["prefork", "solo", "threads"], default="prefork")
    args = parser.parse_args()

    settings = get_settings()
    settings.check_safe_to_start()
    # The argv `labbot worker` builds (app/cli.py), with this process's stage.
    celery_app.worker_main(
        argv=[
            "worker",
            "--queues",
            args.queues,
            "--pool",
            args.pool,
            "--hostname",
            args.hostname,
            "--loglevel",
            settings.log_level,
            "--without-gossip",
            "--without-mingle",
            "--concurrency",
            str(args.concurrency),
        ]
    )


if __name__ == "__main__":
    main()
