"""Jobs in the database, the source of truth for what runs; the broker only carries job ids.

A job is queued once per (PR, kind, head SHA) while active, claimed by exactly one run (the
``attempts`` counter is the fencing token), kept alive by a heartbeat, and ended by the run that
holds it, by a cancellation, or by the reconciler when its worker is gone."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db.models import Job, JobKind, JobState, WorkerSeen, utcnow
from app.db.session import get_engine, session_scope
from bots import messages

log = logging.getLogger(__name__)

ACTIVE_STATES = (JobState.queued, JobState.running)

# The queue each kind runs on: triage on CPU workers, the rest on GPU workers that subscribe to
# only what they can run. Precheck asks the base model, so it runs where evaluation does.
QUEUE_OF: dict[JobKind, str] = {
    JobKind.triage: "triage",
    JobKind.precheck: "eval",
    JobKind.sdg: "sdg",
    JobKind.train: "train",
    JobKind.bench: "eval",
    # A build trains and then serves its model for evaluation: both need the training GPUs.
    JobKind.build: "train",
}
GPU_KINDS = frozenset(kind for kind, queue in QUEUE_OF.items() if queue != "triage")


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
    trigger: str | None = None,
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
        trigger=trigger,
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


def active_jobs(
    session: Session,
    pull_request_id: int,
    *,
    kinds: Iterable[JobKind] | None = None,
    trigger: str | None = None,
    not_sha: str | None = None,
) -> list[Job]:
    query = select(Job).where(Job.pull_request_id == pull_request_id, Job.state.in_(ACTIVE_STATES))
    if kinds is not None:
        query = query.where(Job.kind.in_(list(kinds)))
    if trigger is not None:
        query = query.where(Job.trigger == trigger)
    if not_sha is not None:
        query = query.where(Job.head_sha != not_sha)
    return list(session.scalars(query.order_by(Job.id).with_for_update()).all())


def cancel_jobs(session: Session, jobs: Iterable[Job], state: JobState, reason: str) -> list[Job]:
    """End queued jobs now; ask running ones to stop (their stage stops at its next step, or
    the reconciler stops them after the grace period). Returns the jobs ended now."""
    if state not in (JobState.cancelled, JobState.superseded):
        raise ValueError(f"cannot cancel into {state}")
    ended = []
    now = utcnow()
    for job in jobs:
        if job.state is JobState.queued:
            job.state = state
            job.finished_at = now
            job.error = reason
            ended.append(job)
        elif job.state is JobState.running and job.cancel_requested_at is None:
            job.cancel_requested_at = now
            job.cancel_state = state
            job.error = reason
    return ended


def fail_job_now(session: Session, job: Job, reason: str) -> None:
    """End a queued job that cannot run at all (no worker serves its queue)."""
    job.state = JobState.failed
    job.finished_at = utcnow()
    job.error = reason


def claim_job(
    job_id: int, worker: str, *, log_path: Path | None = None, session: Session | None = None
) -> Job | None:
    """Mark a queued job running, once, and start its lease. None when it is not queued any
    more (cancelled, done, running elsewhere, or a second copy of the message). ``job.attempts``
    afterwards is the fencing token for this run: only the run holding it may finish the job.
    Given a ``session``, the claim is part of the caller's transaction (one round of commits
    per job start)."""
    if session is None:
        with session_scope() as own:
            return claim_job(job_id, worker, log_path=log_path, session=own)
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
    job.progress = {"stage": "starting", "updated_at": now.isoformat()}
    if log_path is not None:
        job.log_path = str(log_path)
        job.artifacts_path = str(log_path.parent)
    return job


@contextmanager
def job_lease(job: Job, interval: float, on_cancel: Callable[[], None]) -> Iterator[None]:
    """Renew the job's heartbeat every ``interval`` seconds while the body runs, so the
    reconciler can tell a long job from one whose worker died; call ``on_cancel`` once when
    someone asked the job to stop."""
    stop = threading.Event()
    cancel_seen = False

    def beat() -> None:
        nonlocal cancel_seen
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
                    asked = conn.execute(
                        select(Job.cancel_requested_at).where(Job.id == job.id)
                    ).scalar_one_or_none()
            except Exception as exc:  # the next beat retries; the lease is longer than a beat
                log.warning("heartbeat of job %s failed: %s", job.id, type(exc).__name__)
                continue
            if asked is not None and not cancel_seen:
                cancel_seen = True
                on_cancel()

    beater = threading.Thread(target=beat, name=f"job-{job.id}-heartbeat", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join()


def finish_job(
    job: Job, state: JobState, error: str | None = None, result: dict[str, Any] | None = None
) -> bool:
    """Record the outcome of the run holding ``job.attempts``. False when the job was handed
    out again or stopped meanwhile (this run lost its lease): then nothing is written."""
    with get_engine().begin() as conn:
        finished = conn.execute(
            update(Job)
            .where(Job.id == job.id, Job.attempts == job.attempts, Job.state == JobState.running)
            .values(
                state=state,
                error=error[:2000] if error else None,
                result=result,
                finished_at=utcnow(),
            )
        ).rowcount
    return finished == 1


def save_progress(job: Job, progress: dict[str, object]) -> None:
    with get_engine().begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == job.id, Job.attempts == job.attempts, Job.state == JobState.running)
            .values(progress=progress)
        )


@dataclass
class Reconciled:
    requeued: int = 0
    failed: int = 0
    republished: int = 0
    stopped: list[int] | None = None  # jobs ended here whose check runs need the news

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.republished or self.stopped)


def reconcile_jobs(settings: Settings | None = None, limit: int = 100) -> Reconciled:
    """One round of housekeeping, safe in several processes at once (SKIP LOCKED):
    - running jobs whose worker stopped renewing the lease are handed out again, or failed once
      they have used up their attempts;
    - running jobs asked to stop that did not within the grace period, or past their time
      limit, are ended (and their task killed where the pool allows);
    - queued jobs whose message never reached the broker, or whose broker lost its memory, are
      published again (a second copy is harmless: only one claim succeeds)."""
    settings = settings or get_settings()
    now = utcnow()
    result = Reconciled(stopped=[])
    assert result.stopped is not None
    to_publish: list[Job] = []
    to_kill: list[str] = []
    with session_scope() as session:
        lease_cutoff = now - timedelta(seconds=settings.job_lease_seconds)
        for job in _locked(
            session, Job.state == JobState.running, Job.heartbeat_at < lease_cutoff, limit=limit
        ):
            if job.cancel_requested_at is not None:
                job.state = job.cancel_state or JobState.cancelled
                job.finished_at = now
                result.stopped.append(job.id)
            elif job.attempts >= settings.job_max_attempts:
                job.state = JobState.failed
                job.finished_at = now
                job.error = messages.JOB_WORKER_LOST.format(attempts=job.attempts)
                result.failed += 1
                result.stopped.append(job.id)
            else:
                job.state = JobState.queued
                job.worker = None
                job.error = messages.JOB_REQUEUED.format(attempts=job.attempts)
                to_publish.append(job)
                result.requeued += 1

        grace_cutoff = now - timedelta(seconds=settings.job_cancel_grace_seconds)
        for job in _locked(
            session,
            Job.state == JobState.running,
            Job.cancel_requested_at < grace_cutoff,
            limit=limit,
        ):
            job.state = job.cancel_state or JobState.cancelled
            job.finished_at = now
            to_kill.append(task_id(job))
            result.stopped.append(job.id)

        for job in _locked(session, Job.state == JobState.running, limit=limit):
            limit_s = time_limit(settings, job.kind)
            if job.started_at is not None and _aware(job.started_at) < now - timedelta(
                seconds=limit_s + settings.job_cancel_grace_seconds
            ):
                job.state = JobState.failed
                job.finished_at = now
                job.error = messages.JOB_TIME_LIMIT.format(limit=_duration(limit_s))
                to_kill.append(task_id(job))
                result.failed += 1
                result.stopped.append(job.id)

        unpublished = [
            Job.state == JobState.queued,
            Job.published_at.is_(None),
            Job.queued_at < now - timedelta(seconds=settings.sweep_grace_seconds),
        ]
        if broker_forgot(settings):
            unpublished = [Job.state == JobState.queued]
        chosen = {job.id for job in to_publish}
        to_publish += [j for j in _locked(session, *unpublished, limit=limit) if j.id not in chosen]
        result.republished = len(to_publish) - result.requeued

    for job in to_publish:
        try:
            publish_job(job, settings)
        except Exception as exc:  # still queued in the database; the next round publishes
            log.warning("could not publish job %s: %s", job.id, type(exc).__name__)
    if to_kill:
        _kill_tasks(to_kill)
    for job_id in result.stopped:
        _announce(job_id)
    if result:
        log.warning(
            "reconciler: %d handed out again, %d failed, %d republished, %d stopped",
            result.requeued,
            result.failed,
            result.republished,
            len(result.stopped),
        )
    return result


def _locked(session: Session, *where: object, limit: int) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(*where)  # type: ignore[arg-type]
            .order_by(Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def time_limit(settings: Settings, kind: JobKind) -> float:
    return settings.job_time_limit_seconds.get(kind.value, 24 * 3600.0)


def task_id(job: Job) -> str:
    return f"job-{job.id}-{job.attempts}"


def publish_job(job: Job, settings: Settings | None = None) -> None:
    """Hand a committed job to its stage's queue. Only the id travels. The soft time limit
    raises in the task so it can record why it stopped; the hard one kills it."""
    from workers.tasks import JOB_TASKS

    settings = settings or get_settings()
    limit = time_limit(settings, job.kind)
    JOB_TASKS[job.kind].apply_async(
        args=[job.id],
        task_id=task_id(job),
        queue=QUEUE_OF[job.kind],
        soft_time_limit=limit,
        time_limit=limit + settings.job_cancel_grace_seconds,
    )
    with get_engine().begin() as conn:
        conn.execute(update(Job).where(Job.id == job.id).values(published_at=utcnow()))


def _announce(job_id: int) -> None:
    """Have a worker bring the job's check run in line with its state."""
    from workers.tasks import sync_job_check

    try:
        sync_job_check.apply_async(args=[job_id])
    except Exception as exc:  # the check run stays behind; the job's state is right
        log.warning("could not announce job %s: %s", job_id, type(exc).__name__)


def _kill_tasks(task_ids: list[str]) -> None:
    """Stop tasks that would not stop by themselves. Only a prefork pool can be told to kill a
    task; elsewhere the fenced finish makes sure a late result is never recorded."""
    from workers.celery_app import celery_app

    try:
        for tid in task_ids:
            celery_app.control.revoke(tid, terminate=True, signal="SIGKILL")
    except Exception as exc:
        log.warning("could not send the stop to the workers: %s", type(exc).__name__)


# --- the broker's memory ---------------------------------------------------------------------

BROKER_MARK = "labbot:broker-alive"


def broker_forgot(settings: Settings) -> bool:
    """True when the Redis broker lost its data since the last look (restarted without
    persistence, flushed, failed over): the mark set beside the messages is gone with them, so
    every queued job must be published again. The SQL broker keeps its messages in the
    database and never forgets."""
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return False
    import redis

    try:
        client = redis.Redis.from_url(
            settings.broker_url, socket_timeout=settings.enqueue_timeout_seconds
        )
        with client:
            return bool(client.set(BROKER_MARK, "1", nx=True))
    except Exception as exc:  # broker down: nothing can be published this round anyway
        log.warning("broker unreachable: %s", type(exc).__name__)
        return False


# --- who serves which queue ------------------------------------------------------------------


def record_worker(hostname: str, queues: list[str]) -> None:
    """A worker's beat: it is alive and consumes these queues."""
    now = utcnow()
    with session_scope() as session:
        seen = session.get(WorkerSeen, hostname)
        if seen is None:
            session.add(WorkerSeen(hostname=hostname, queues=queues, started_at=now))
        else:
            seen.queues = queues
            seen.last_seen_at = now


def forget_worker(hostname: str) -> None:
    with session_scope() as session:
        seen = session.get(WorkerSeen, hostname)
        if seen is not None:
            session.delete(seen)


def live_workers(session: Session, settings: Settings) -> list[WorkerSeen]:
    cutoff = utcnow() - timedelta(seconds=3 * settings.worker_heartbeat_seconds)
    return list(session.scalars(select(WorkerSeen).where(WorkerSeen.last_seen_at >= cutoff)).all())


def queue_is_served(session: Session, settings: Settings, queue: str) -> bool:
    return any(queue in worker.queues for worker in live_workers(session, settings))
