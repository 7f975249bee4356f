"""Faults in the middle of a job (bad-inputs rows 62 to 66): a worker killed, a job outliving
the broker's visibility timeout, Redis restarted with jobs queued. Each job still runs to its
end exactly once. A slow GitHub (file contents answered after a delay) keeps the triage job
running long enough to be interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github
from sqlalchemy import func, select

from app.db.models import Job, JobKind, JobState, TriageRun
from app.db.session import session_scope
from app.simulator.admin_client import SimulatorAdmin
from tests.conftest import READER_TOKEN, Labbot, Process, free_port, wait_until
from tests.test_broker_outage import RedisServer
from tests.test_job_pipeline_e2e import job, jobs, running_triage, slow_github
from tests.test_triage_e2e import PR_1412, REPO, completed_run, files_of

pytestmark = pytest.mark.e2e
FAST_RECOVERY = {
    "LABBOT_JOB_LEASE_SECONDS": "3",
    "LABBOT_SWEEP_INTERVAL_SECONDS": "0.5",
    "LABBOT_SWEEP_GRACE_SECONDS": "1",
}


@pytest.fixture
def labbot_env() -> dict[str, str]:
    return dict(FAST_RECOVERY)


def open_slow_pr(labbot: Labbot, sim: SimulatorAdmin, delay: float) -> tuple[Github, Any, Job]:
    """A PR whose triage job is running, slowly, when this returns."""
    labbot.start_api()
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
    slow_github(sim, delay)
    pull = sim.open_pr(REPO, author="contributor", title="t", files=files_of(PR_1412))
    return gh, pull, running_triage()


def kill_tree(process: Process) -> None:
    """SIGKILL a worker and its pool children at once, as the OOM killer or a lost host would."""
    children = subprocess.run(
        ["pgrep", "-P", str(process.proc.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in [process.proc.pid, *map(int, children)]:
        os.kill(pid, signal.SIGKILL)
    process.proc.wait()


def pool_children(process: Process) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(process.proc.pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(pid) for pid in out.split()]


def triage_runs(head_sha: str) -> int:
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(TriageRun).where(TriageRun.head_sha == head_sha)
            )
            or 0
        )


def finished(job_id: int, timeout: float = 90) -> Job:
    done: Job = wait_until(
        lambda: (j := job(job_id)).state not in (JobState.queued, JobState.running) and j,
        timeout,
    )
    return done


def test_worker_killed_mid_job_is_picked_up_again_and_finishes_once(
    labbot: Labbot,
    sim: SimulatorAdmin,
    start_process: Callable[..., Process],
) -> None:
    """Rows 62 and 66: the whole worker dies (SIGKILL) while the job runs; a new worker starts.
    The reconciler sees the lease lapse and hands the job out again; it finishes once."""
    gh, pull, running = open_slow_pr(labbot, sim, 0.5)
    kill_tree(labbot.worker)
    start_process(["worker", "--concurrency", "2"], labbot.env, "worker-restarted")
    sim.clear_faults()

    done = finished(running.id)
    assert done.state is JobState.succeeded
    assert done.attempts == 2
    assert "handed out again" in (done.error or "") or done.error is None
    run = completed_run(gh, pull.head_sha)
    assert run.conclusion == "failure"  # PR 1412's real findings
    assert triage_runs(pull.head_sha) == 1
    # The killed attempt's check run was taken over, not left spinning beside a second one.
    runs = list(gh.get_repo(REPO).get_commit(pull.head_sha).get_check_runs(filter="all"))
    assert [(r.name, r.status) for r in runs] == [("labbot/triage", "completed")]


def test_pool_process_killed_mid_job_is_not_run_twice(labbot: Labbot, sim: SimulatorAdmin) -> None:
    """Row 62 with reject_on_worker_lost: the pool child dies, Celery requeues the message at
    once, and the redelivered copy must not start a second run beside the lapsing lease."""
    gh, pull, running = open_slow_pr(labbot, sim, 0.5)
    for pid in pool_children(labbot.worker):
        os.kill(pid, signal.SIGKILL)
    sim.clear_faults()
    done = finished(running.id)
    assert done.state is JobState.succeeded
    assert done.attempts == 2
    assert triage_runs(pull.head_sha) == 1
    assert completed_run(gh, pull.head_sha).conclusion == "failure"


class TestVisibilityTimeout:
    """Row 63: Redis hands out again a message unacknowledged past its visibility timeout.
    Here the timeout is 2 s and the job runs longer: the second copy is dropped, not run."""

    @pytest.fixture
    def labbot_env(self) -> dict[str, str]:
        return {**FAST_RECOVERY, "LABBOT_BROKER_VISIBILITY_TIMEOUT_SECONDS": "2"}

    def test_a_job_outliving_the_visibility_timeout_is_not_started_twice(
        self, labbot: Labbot, sim: SimulatorAdmin, start_process: Callable[..., Process]
    ) -> None:
        second = start_process(["worker", "--concurrency", "1"], labbot.env, "second-worker")
        # Long enough for kombu's restore cycle (every 10 s) to pass the timeout.
        gh, pull, running = open_slow_pr(labbot, sim, 9.0)
        skipped = f"job {running.id} is not queued any more; skipping"
        wait_until(lambda: skipped in labbot.worker.output() + second.output(), 60)
        sim.clear_faults()
        done = finished(running.id)
        assert done.state is JobState.succeeded
        assert done.attempts == 1
        assert triage_runs(pull.head_sha) == 1


class TestRedisRestart:
    """Row 64: Redis restarts without persistence while a job is queued; the message is gone.
    The reconciler notices the broker forgot (its mark is gone with the messages) and publishes
    the queued jobs again from the database."""

    @pytest.fixture
    def redis_server(self, tmp_path: Path) -> Iterator[RedisServer]:
        server = RedisServer(free_port(), tmp_path)
        server.start()
        yield server
        server.stop()

    @pytest.fixture
    def labbot_env(self, redis_server: RedisServer) -> dict[str, str]:
        return {**FAST_RECOVERY, "LABBOT_BROKER_URL": f"redis://127.0.0.1:{redis_server.port}/0"}

    def test_jobs_queued_when_redis_restarts_are_not_lost(
        self,
        labbot: Labbot,
        sim: SimulatorAdmin,
        redis_server: RedisServer,
        start_process: Callable[..., Process],
    ) -> None:
        labbot.start_api()
        labbot.worker.stop()
        start_process(["worker", "--queues", "events"], labbot.env, "events-worker")
        gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
        sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
        pull = sim.open_pr(REPO, author="contributor", title="t", files=files_of(PR_1412))
        queued = wait_until(
            lambda: [j for j in jobs(JobKind.triage) if j.published_at is not None], 30
        )[0]
        assert queued.state is JobState.queued  # nobody serves the triage queue yet

        redis_server.stop()
        redis_server.start()  # empty: the message went with the old process
        start_process(["worker", "--queues", "triage"], labbot.env, "triage-worker")

        done = finished(queued.id)
        assert done.state is JobState.succeeded
        assert done.attempts == 1
        assert completed_run(gh, pull.head_sha).conclusion == "failure"
