"""Jobs whose worker died (SIGKILL, out of memory, lost host) are handed out again from the
database, a bounded number of times; a run that lost its lease cannot overwrite a newer one."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from github import Auth, Github
from sqlalchemy import select, update

from app.config import get_settings
from app.db.models import Job, JobKind, JobState, PullRequest, Repository, utcnow
from app.db.session import get_engine, session_scope
from app.jobs import (
    Reconciled,
    cancel_jobs,
    claim_job,
    finish_job,
    publish_job,
    reconcile_jobs,
    submit_job,
)
from app.simulator.admin_client import SimulatorAdmin
from tests.conftest import READER_TOKEN, Backend, Labbot, wait_until
from tests.test_jobs import make_pull_request
from tests.test_triage_e2e import PR_1412, REPO, completed_run, files_of
from workers.celery_app import TRIAGE_QUEUE, celery_app


def reconcile(**overrides: object) -> Reconciled:
    settings = get_settings().model_copy(
        update={"job_lease_seconds": 60, "job_max_attempts": 3, **overrides}
    )
    return reconcile_jobs(settings)


def counts(result: Reconciled) -> tuple[int, int]:
    return result.requeued, result.failed


def triage_messages() -> int:
    with celery_app.connection_for_read() as conn:
        try:
            return int(conn.default_channel.queue_declare(TRIAGE_QUEUE, passive=True).message_count)
        except conn.channel_errors:
            return 0


def running_job(attempts: int, heartbeat_age: float) -> int:
    make_pull_request()
    with session_scope() as session:
        pull = session.scalars(select(PullRequest)).one()
        job = submit_job(
            session,
            JobKind.triage,
            repository_id=pull.repository_id,
            pull_request_id=pull.id,
            head_sha="a" * 40,
        ).job
        job.state = JobState.running
        job.attempts = attempts
        job.worker = "worker-that-was-killed"
        job.heartbeat_at = utcnow() - timedelta(seconds=heartbeat_age)
        return job.id


def active_triage_jobs() -> list[int]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(Job.id).where(
                    Job.kind == JobKind.triage,
                    Job.state.in_([JobState.queued, JobState.running]),
                )
            ).all()
        )


def job_row(job_id: int) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_a_job_whose_worker_died_is_handed_out_again(backend: Backend) -> None:
    job_id = running_job(attempts=1, heartbeat_age=120)
    assert counts(reconcile()) == (1, 0)
    job = job_row(job_id)
    assert job.state is JobState.queued
    assert job.worker is None
    assert "handed out again" in (job.error or "")
    assert triage_messages() == 1
    # Claimed again by a worker: the next attempt.
    claimed = claim_job(job_id, "healthy-worker")
    assert claimed is not None
    assert claimed.attempts == 2


def test_a_live_job_is_left_alone(backend: Backend) -> None:
    job_id = running_job(attempts=1, heartbeat_age=5)
    assert counts(reconcile()) == (0, 0)
    assert job_row(job_id).state is JobState.running


def test_attempts_are_bounded_then_the_job_fails_with_a_message(backend: Backend) -> None:
    job_id = running_job(attempts=3, heartbeat_age=120)
    assert counts(reconcile()) == (0, 1)
    job = job_row(job_id)
    assert job.state is JobState.failed
    assert "3 attempts" in (job.error or "")
    assert triage_messages() == 0


def test_a_run_that_lost_its_lease_cannot_finish_the_job(backend: Backend) -> None:
    job_id = running_job(attempts=0, heartbeat_age=0)
    with get_engine().begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(state=JobState.queued))
    first = claim_job(job_id, "slow-worker")
    assert first is not None
    with get_engine().begin() as conn:  # its lease expired and the job was handed out again
        conn.execute(update(Job).where(Job.id == job_id).values(state=JobState.queued))
    second = claim_job(job_id, "new-worker")
    assert second is not None
    assert not finish_job(first, JobState.succeeded)
    assert finish_job(second, JobState.succeeded)
    assert job_row(job_id).state is JobState.succeeded


def test_a_job_that_does_not_stop_when_cancelled_is_ended_after_the_grace(
    backend: Backend,
) -> None:
    job_id = running_job(attempts=1, heartbeat_age=0)
    with session_scope() as session:
        row = session.get(Job, job_id)
        assert row is not None
        cancel_jobs(session, [row], JobState.superseded, "moved on")
        assert row.state is JobState.running  # asked to stop, still running for now
    assert reconcile(job_cancel_grace_seconds=60).stopped == []
    with get_engine().begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(cancel_requested_at=utcnow() - timedelta(seconds=120))
        )
    assert reconcile(job_cancel_grace_seconds=60).stopped == [job_id]
    job = job_row(job_id)
    assert job.state is JobState.superseded
    assert job.error == "moved on"


def test_a_job_past_its_time_limit_is_failed_with_the_limit_named(backend: Backend) -> None:
    job_id = running_job(attempts=1, heartbeat_age=0)
    with get_engine().begin() as conn:
        conn.execute(
            update(Job).where(Job.id == job_id).values(started_at=utcnow() - timedelta(hours=2))
        )
    limits = {"triage": 1800.0}
    result = reconcile(job_time_limit_seconds=limits, job_cancel_grace_seconds=60)
    assert result.stopped == [job_id]
    job = job_row(job_id)
    assert job.state is JobState.failed
    assert job.error == "The job ran past its time limit of 30 min and was stopped."


def test_a_queued_job_the_broker_never_took_is_published_again(backend: Backend) -> None:
    make_pull_request()
    with session_scope() as session:
        pull = session.scalars(select(PullRequest)).one()
        job = submit_job(
            session,
            JobKind.triage,
            repository_id=pull.repository_id,
            pull_request_id=pull.id,
            head_sha="b" * 40,
        ).job
        job.queued_at = utcnow() - timedelta(seconds=60)
        job_id = job.id
    assert triage_messages() == 0
    result = reconcile(sweep_grace_seconds=10)
    assert result.republished == 1
    assert triage_messages() == 1
    assert job_row(job_id).published_at is not None
    assert reconcile(sweep_grace_seconds=10).republished == 0  # published: left alone


def test_queued_jobs_are_published_again_when_redis_forgot_everything(
    postgres_backend: Backend,
) -> None:
    make_pull_request()
    with session_scope() as session:
        pull = session.scalars(select(PullRequest)).one()
        job = submit_job(
            session,
            JobKind.triage,
            repository_id=pull.repository_id,
            pull_request_id=pull.id,
            head_sha="c" * 40,
        ).job
        job_id = job.id
    publish_job(job_row(job_id))
    reconcile()  # sets the mark beside the messages
    assert reconcile().republished == 0
    redis.Redis.from_url(get_settings().broker_url).flushdb()  # a restart without persistence
    assert triage_messages() == 0
    assert reconcile().republished == 1
    assert triage_messages() == 1


@pytest.mark.e2e
def test_a_triage_job_orphaned_mid_run_is_finished_by_a_live_worker(
    labbot: Labbot, sim: SimulatorAdmin
) -> None:
    """As if the worker was SIGKILLed after claiming it: the API's sweeper hands the job out
    again and the running worker completes it, once."""
    labbot.env.update(LABBOT_SWEEP_INTERVAL_SECONDS="0.5", LABBOT_JOB_LEASE_SECONDS="2")
    labbot.start_api()
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
    opened = sim.open_pr(REPO, author="contributor", title="t", files=files_of(PR_1412))
    first = completed_run(gh, opened.head_sha)
    # The first job posts its check run before its comment and labels: let it end, or the
    # "orphan" below would be that same active job.
    wait_until(lambda: not active_triage_jobs(), 30)

    with session_scope() as session:
        pull = session.scalars(select(PullRequest)).one()
        repository = session.scalars(select(Repository)).one()
        orphan = submit_job(
            session,
            JobKind.triage,
            repository_id=repository.id,
            pull_request_id=pull.id,
            head_sha=opened.head_sha,
        ).job
        orphan.state = JobState.running
        orphan.attempts = 1
        orphan.worker = "killed-worker"
        orphan.heartbeat_at = utcnow() - timedelta(seconds=30)
        orphan_id = orphan.id

    wait_until(lambda: job_row(orphan_id).state is JobState.succeeded, 60)
    assert job_row(orphan_id).attempts == 2
    completed_run(gh, opened.head_sha, after=first.id)
