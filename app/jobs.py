"""Jobs in the database, the source of truth for what runs; the broker only carries job ids."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import Job, JobKind, JobState

ACTIVE_STATES = (JobState.queued, JobState.running)


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool  # False: an active job for the same intent already existed


def submit_job(
    session: Session,
    kind: JobKind,
    *,
    repository_id: int,
    pull_request_id: int,
    head_sha: str,
    requested_by: str | None = None,
) -> Submitted:
    """Create the job for (PR, kind, head SHA) unless one is already queued or running.
    The partial unique index makes this hold across processes, not only within one."""
    existing = _active(session, kind, pull_request_id, head_sha)
    if existing is not None:
        return Submitted(existing, created=False)
    job = Job(
        kind=kind,
        state=JobState.queued,
        repository_id=repository_id,
        pull_request_id=pull_request_id,
        head_sha=head_sha,
        requested_by=requested_by,
        progress={},
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        # Another process created it between our look and our insert.
        raced = _active(session, kind, pull_request_id, head_sha)
        if raced is None:
            raise
        return Submitted(raced, created=False)
    return Submitted(job, created=True)


def _active(session: Session, kind: JobKind, pull_request_id: int, head_sha: str) -> Job | None:
    return session.scalars(
        select(Job).where(
            Job.kind == kind,
            Job.pull_request_id == pull_request_id,
            Job.head_sha == head_sha,
            Job.state.in_(ACTIVE_STATES),
        )
    ).first()


def claim_job(job_id: int, worker: str) -> Job | None:
    """Mark a queued job running, once. None when it is not queued any more (cancelled, or a
    second copy of the message)."""
    from app.db.models import utcnow
    from app.db.session import session_scope

    with session_scope() as session:
        job = session.scalars(
            select(Job).where(Job.id == job_id, Job.state == JobState.queued).with_for_update()
        ).one_or_none()
        if job is None:
            return None
        job.state = JobState.running
        job.attempts += 1
        job.started_at = utcnow()
        job.worker = worker
        return job


def finish_job(job_id: int, state: JobState, error: str | None = None) -> None:
    from app.db.models import utcnow
    from app.db.session import session_scope

    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is not None:
            job.state = state
            job.error = error[:2000] if error else None
            job.finished_at = utcnow()


def publish_job(job: Job) -> None:
    """Hand a committed job to its stage's queue. Only the id travels."""
    from workers.tasks import JOB_TASKS

    task = JOB_TASKS[job.kind]
    task.apply_async(args=[job.id], task_id=f"job-{job.id}-{job.attempts}")
