"""Jobs in the database, the source of truth for what runs; the broker only carries job ids."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import Job, JobKind, JobState, utcnow
from app.db.session import get_engine, session_scope
from bots import messages

log = logging.getLogger(__name__)

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
    """Mark a queued job running, once, and start its lease. None when it is not queued any
    more (cancelled, done, or a second copy of the message). ``job.attempts`` afterwards is the
    fencing token for this run: only the run holding it may finish the job."""
    with session_scope() as session:
        job = session.scalars(
            select(Job).where(Job.id == job_id, Job.state == JobState.queued).with_for_update()
        ).one_or_none()
        if job is None:
            return None
        now = utcnow()
        job.state = JobState.running
        job.attempts += 1
        job.started_at = now
        job.heartbeat_at = now
        job.worker = worker
        return job


@contextmanager
def job_lease(job: Job, interval: float) -> Iterator[None]:
    """Renew the job's heartbeat every ``interval`` seconds while the body runs, so the
    reconciler can tell a long job from one whose worker died."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                with get_engine().begin() as conn:
                    conn.execute(
                        update(Job)
                        .where(
                            Job.id == job.id,
                            Job.attempts == job.attempts,
                            Job.state == JobState.running,
                        )
                        .values(heartbeat_at=utcnow())
                    )
            except Exception as exc:  # the next beat retries; the lease is longer than a beat
                log.warning("heartbeat of job %s failed: %s", job.id, type(exc).__name__)

    beater = threading.Thread(target=beat, name=f"job-{job.id}-heartbeat", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join()


def finish_job(job: Job, state: JobState, error: str | None = None) -> bool:
    """Record the outcome of the run holding ``job.attempts``. False when the job was handed
    out again meanwhile (this run lost its lease): then nothing is written."""
    with get_engine().begin() as conn:
        finished = conn.execute(
            update(Job)
            .where(Job.id == job.id, Job.attempts == job.attempts, Job.state == JobState.running)
            .values(state=state, error=error[:2000] if error else None, finished_at=utcnow())
        ).rowcount
    return finished == 1


def reconcile_jobs(lease_seconds: float, max_attempts: int, limit: int = 100) -> tuple[int, int]:
    """Hand out again the running jobs whose worker stopped renewing the lease (killed,
    out of memory, host lost), and fail those that have used up their attempts.
    Returns (requeued, failed). Safe in several processes at once (SKIP LOCKED)."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    requeued: list[Job] = []
    failed = 0
    with session_scope() as session:
        stale = session.scalars(
            select(Job)
            .where(Job.state == JobState.running, Job.heartbeat_at < cutoff)
            .order_by(Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for job in stale:
            if job.attempts >= max_attempts:
                job.state = JobState.failed
                job.finished_at = utcnow()
                job.error = messages.JOB_WORKER_LOST.format(attempts=job.attempts)
                failed += 1
            else:
                job.state = JobState.queued
                job.worker = None
                job.error = messages.JOB_REQUEUED.format(attempts=job.attempts)
                requeued.append(job)
    for job in requeued:
        try:
            publish_job(job)
        except Exception as exc:  # still queued in the database; the next round publishes
            log.warning("could not publish job %s: %s", job.id, type(exc).__name__)
    if requeued or failed:
        log.warning("reconciler: %d job(s) handed out again, %d failed", len(requeued), failed)
    return len(requeued), failed


def publish_job(job: Job) -> None:
    """Hand a committed job to its stage's queue. Only the id travels."""
    from workers.tasks import JOB_TASKS

    task = JOB_TASKS[job.kind]
    task.apply_async(args=[job.id], task_id=f"job-{job.id}-{job.attempts}")
