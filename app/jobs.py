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
