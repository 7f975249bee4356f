"""Model builds: the leaves of the PRs merged into a taxonomy repository since its last good
build, composed into one ``build`` job (data, training on top of the last build's model with
replay, evaluation against it). The ``builds`` row is what the dashboard shows; the job does
the work and the row follows the job's outcome (:func:`finish_build`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery.schedules import crontab
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db.models import (
    Build,
    BuildPullRequest,
    BuildState,
    Job,
    JobKind,
    JobState,
    PullRequest,
    Repository,
    utcnow,
)
from app.db.session import session_scope
from app.jobs import QUEUE_OF, fail_job_now, publish_job, queue_is_served
from bots import messages

log = logging.getLogger(__name__)

ACTIVE_BUILD_STATES = (BuildState.pending, BuildState.running)
# A PR belongs to the build that contains it unless that build failed or was cancelled:
# then the next build takes it again.
HOLDING_BUILD_STATES = (*ACTIVE_BUILD_STATES, BuildState.succeeded)
BUILD_STATE_OF_JOB = {
    JobState.succeeded: BuildState.succeeded,
    JobState.failed: BuildState.failed,
    JobState.cancelled: BuildState.cancelled,
    JobState.superseded: BuildState.cancelled,
}


class BuildError(Exception):
    """A build cannot start; the message says why, for the person who asked."""


@dataclass(frozen=True)
class BuildStarted:
    build_id: int
    name: str
    job_id: int
    pulls: int
    queued: bool  # False: no live worker serves the build queue, the build failed at once


def start_build(
    session: Session, repository: str, trigger: str, settings: Settings | None = None
) -> BuildStarted:
    """Compose and queue a build of ``repository`` (owner/name). Commits, then publishes."""
    settings = settings or get_settings()
    repo = session.scalars(
        select(Repository).where(Repository.full_name == repository, ~Repository.removed)
    ).one_or_none()
    if repo is None:
        raise BuildError(messages.BUILD_UNKNOWN_REPOSITORY.format(repo=repository))
    # One build per repository at a time: each starts from the one before it.
    repo = session.scalars(
        select(Repository).where(Repository.id == repo.id).with_for_update()
    ).one()
    active = session.scalars(
        select(Build.name).where(
            Build.repository_id == repo.id, Build.state.in_(ACTIVE_BUILD_STATES)
        )
    ).first()
    if active is not None:
        raise BuildError(messages.BUILD_ALREADY_RUNNING.format(repo=repository, name=active))
    pulls = session.scalars(_unbuilt_pulls(repo.id)).all()
    if not pulls:
        raise BuildError(messages.BUILD_NOTHING_NEW.format(repo=repository))
    previous = last_good_build(session, repo.id)
    now = utcnow()
    number = session.scalar(select(func.count()).where(Build.repository_id == repo.id)) or 0
    build = Build(
        # owner-name-N: the repository's Nth build (the lock above keeps N unique).
        name=f"{repo.full_name.replace('/', '-')[:80]}-{number + 1}",
        state=BuildState.pending,
        repository_id=repo.id,
        previous_build_id=previous.id if previous else None,
        trigger=trigger,
        base_model=previous.output_model
        if previous
        else str(settings.train_base_model or "") or None,
        scores={},
        stages=[],
    )
    session.add(build)
    session.flush()
    session.add_all(BuildPullRequest(build_id=build.id, pull_request_id=p.id) for p in pulls)
    job = Job(
        kind=JobKind.build,
        state=JobState.queued,
        repository_id=repo.id,
        build_id=build.id,
        requested_by=trigger.partition(":")[2] or None,
        trigger=f"build:{trigger}",
        progress={},
    )
    session.add(job)
    session.flush()
    queued = queue_is_served(session, settings, QUEUE_OF[JobKind.build])
    if not queued:
        reason = messages.JOB_NO_WORKER.format(queue=QUEUE_OF[JobKind.build])
        fail_job_now(session, job, reason)
        build.state, build.error, build.finished_at = BuildState.failed, reason, now
    started = BuildStarted(build.id, build.name, job.id, len(pulls), queued)
    session.commit()
    if queued:
        publish_job(job, settings)
    log.info(
        "build %s of %s: %d merged PRs, trigger %s%s",
        started.name,
        repository,
        started.pulls,
        trigger,
        "" if queued else " (no worker serves the queue)",
    )
    return started


def _unbuilt_pulls(repository_id: Any) -> Any:
    """Merged PRs of the repository (an id, or a correlated column) that no good or active
    build holds, oldest merge first."""
    held = (
        select(BuildPullRequest.pull_request_id)
        .join(Build, Build.id == BuildPullRequest.build_id)
        .where(
            BuildPullRequest.pull_request_id == PullRequest.id,
            Build.state.in_(HOLDING_BUILD_STATES),
        )
    )
    return (
        select(PullRequest)
        .where(PullRequest.repository_id == repository_id, PullRequest.merged, ~exists(held))
        .order_by(PullRequest.merged_at, PullRequest.number)
    )


def last_good_build(session: Session, repository_id: int) -> Build | None:
    return session.scalars(
        select(Build)
        .where(Build.repository_id == repository_id, Build.state == BuildState.succeeded)
        .order_by(Build.id.desc())
        .limit(1)
    ).first()


def start_scheduled_builds(settings: Settings | None = None) -> list[BuildStarted]:
    """The schedule's turn: a build for every repository with PRs merged since its last one
    and no build under way. Repositories with nothing new are passed over quietly."""
    settings = settings or get_settings()
    with session_scope() as session:
        candidates = session.scalars(
            select(Repository.full_name)
            .where(~Repository.removed)
            .where(
                exists(
                    _unbuilt_pulls(Repository.id).with_only_columns(PullRequest.id).order_by(None)
                )
            )
            .order_by(Repository.full_name)
        ).all()
    started = []
    for repository in candidates:
        try:
            with session_scope() as session:
                started.append(start_build(session, repository, "schedule", settings))
        except BuildError as exc:
            log.info("scheduled build of %s not started: %s", repository, exc)
    return started


def schedule(settings: Settings) -> crontab | None:
    """The beat schedule from ``build_schedule`` (five cron fields, UTC); None when off."""
    line = settings.build_schedule.strip()
    if not line:
        return None
    minute, hour, day_of_month, month_of_year, day_of_week = line.split()
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


def mark_stage(build_id: int, name: str) -> None:
    """The build job reached ``name``: it closes the stage before and starts this one."""
    now = utcnow().isoformat()
    with session_scope() as session:
        build = session.scalars(select(Build).where(Build.id == build_id).with_for_update()).one()
        stages = [dict(stage) for stage in build.stages or []]
        if stages and stages[-1].get("finished_at") is None:
            stages[-1]["finished_at"] = now
        stages.append({"name": name, "started_at": now, "finished_at": None})
        build.stages = stages
        if build.state is BuildState.pending:
            build.state, build.started_at = BuildState.running, utcnow()


def finish_build(job_id: int) -> None:
    """The build job ended: the build takes its outcome, scores and model."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.build_id is None or job.state not in BUILD_STATE_OF_JOB:
            return
        build = session.scalars(
            select(Build).where(Build.id == job.build_id).with_for_update()
        ).one()
        now = utcnow()
        stages = [dict(stage) for stage in build.stages or []]
        if stages and stages[-1].get("finished_at") is None:
            stages[-1]["finished_at"] = now.isoformat()
        result = job.result or {}
        build.state = BUILD_STATE_OF_JOB[job.state]
        build.stages = stages
        build.error = job.error if build.state is not BuildState.succeeded else None
        build.finished_at = job.finished_at or now
        if build.state is BuildState.succeeded:
            build.scores = dict(result.get("scores") or {})
            build.output_model = result.get("output_model")
        log.info("build %s %s", build.name, build.state.value)


def fail_unfinished_builds() -> int:
    """Builds whose job ended without telling them (the process died between the job's end
    and the build's): the sweeper brings them in line."""
    with session_scope() as session:
        rows = session.execute(
            select(Build.id, Job.id)
            .join(Job, Job.build_id == Build.id)
            .where(
                Build.state.in_(ACTIVE_BUILD_STATES),
                Job.kind == JobKind.build,
                Job.state.in_(list(BUILD_STATE_OF_JOB)),
            )
        ).all()
    for _, job_id in rows:
        finish_build(job_id)
    return len(rows)
