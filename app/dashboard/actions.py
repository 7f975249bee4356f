"""What maintainers can do from the dashboard: retry or cancel a job, process a failed webhook
delivery again, start a build. Every action is a POST from a signed-in maintainer with the
session's CSRF token; each answers 303 back to the page it came from with a message, and is
logged with who did it."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app import deliveries
from app.builds import BuildError
from app.builds import start_build as start
from app.config import get_settings
from app.dashboard.auth import (
    Refused,
    Viewer,
    flash,
    form_fields,
    referer_path,
    require_csrf,
    require_maintainer,
    safe_next,
)
from app.db.models import Delivery, DeliveryStatus, Job, JobState, PullRequest
from app.db.session import get_engine, session_scope
from app.jobs import (
    ACTIVE_STATES,
    GPU_KINDS,
    QUEUE_OF,
    cancel_jobs,
    publish_job,
    queue_is_served,
    submit_job,
)
from bots import messages

log = logging.getLogger(__name__)

RETRY_TRIGGER = "dashboard:retry"
RETRYABLE = (JobState.failed, JobState.cancelled)
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+")

Maintainer = Annotated[Viewer, Depends(require_maintainer)]
# The maintainer check runs first, so an anonymous POST is sent to sign in, not refused.
router = APIRouter(
    include_in_schema=False,
    dependencies=[Depends(require_maintainer), Depends(require_csrf)],
)


async def _next(request: Request) -> str | None:
    return safe_next((await form_fields(request)).get("next"), "") or None


def _back(request: Request, next_path: str | None, default: str) -> RedirectResponse:
    return RedirectResponse(next_path or referer_path(request) or default, 303)


def _record(viewer: Viewer, action: str, target: str, outcome: str, **extra: Any) -> None:
    log.info(
        "dashboard action by %s: %s %s: %s",
        viewer.login,
        action,
        target,
        outcome,
        extra={"actor": viewer.login, "dashboard_action": action, **extra},
    )


# --- jobs ----------------------------------------------------------------------------------


@router.post("/jobs/{job_id}/retry")
async def retry_job(request: Request, job_id: int, viewer: Maintainer) -> RedirectResponse:
    """A failed or cancelled job runs again as a new job: same kind, pull request and commit,
    asked for by the maintainer."""
    next_path = await _next(request)
    text, level = await run_in_threadpool(_retry, job_id, viewer)
    flash(request, text, level)
    return _back(request, next_path, f"/jobs/{job_id}")


def _retry(job_id: int, viewer: Viewer) -> tuple[str, str]:
    settings = get_settings()
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise Refused(404, messages.JOB_NOT_FOUND, messages.JOB_NOT_FOUND)
        refusal = _retry_refusal(job, session.get(PullRequest, job.pull_request_id or 0))
        if refusal is None and job.kind in GPU_KINDS:
            queue = QUEUE_OF[job.kind]
            if not queue_is_served(session, settings, queue):
                refusal = messages.ACTION_JOB_RETRY_NO_WORKER.format(job=job.id, queue=queue)
        if refusal is not None:
            _record(viewer, "retry", f"job {job.id}", f"refused: {refusal}", job_id=job.id)
            return refusal, "error"
        assert job.repository_id is not None
        assert job.pull_request_id is not None
        assert job.head_sha is not None
        submitted = submit_job(
            session,
            job.kind,
            repository_id=job.repository_id,
            pull_request_id=job.pull_request_id,
            head_sha=job.head_sha,
            requested_by=viewer.login,
            trigger=RETRY_TRIGGER,
        )
        new = submitted.job
        session.flush()
    if not submitted.created:
        text = messages.ACTION_JOB_RETRY_EXISTS.format(job=job_id, new=new.id)
        _record(viewer, "retry", f"job {job_id}", f"job {new.id} already active", job_id=job_id)
        return text, "error"
    try:
        publish_job(new, settings)
    except Exception as exc:  # still queued in the database: the reconciler publishes it
        log.warning("job %s: not published yet: %s", new.id, type(exc).__name__)
    _record(viewer, "retry", f"job {job_id}", f"queued as job {new.id}", job_id=job_id)
    return messages.ACTION_JOB_RETRIED.format(job=job_id, new=new.id), "info"


def _retry_refusal(job: Job, pull: PullRequest | None) -> str | None:
    if job.state in ACTIVE_STATES:
        return messages.ACTION_JOB_RETRY_ACTIVE.format(job=job.id, state=job.state.value)
    if job.state not in RETRYABLE:
        return messages.ACTION_JOB_RETRY_STATE.format(job=job.id, state=job.state.value)
    if pull is None or job.head_sha is None or job.repository_id is None:
        return messages.ACTION_JOB_RETRY_NO_PULL.format(job=job.id)
    if pull.state != "open":
        return messages.ACTION_JOB_RETRY_CLOSED.format(job=job.id)
    if pull.head_sha != job.head_sha:
        return messages.ACTION_JOB_RETRY_MOVED_ON.format(
            job=job.id, sha=job.head_sha[:7], head=pull.head_sha[:7]
        )
    if pull.draft and job.kind in GPU_KINDS:
        return messages.ACTION_JOB_RETRY_DRAFT.format(job=job.id)
    return None


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: int, viewer: Maintainer) -> RedirectResponse:
    """A queued job ends now; a running one is asked to stop at its next step."""
    next_path = await _next(request)
    text, level = await run_in_threadpool(_cancel, job_id, viewer)
    flash(request, text, level)
    return _back(request, next_path, f"/jobs/{job_id}")


def _cancel(job_id: int, viewer: Viewer) -> tuple[str, str]:
    with session_scope() as session:
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()
        if job is None:
            raise Refused(404, messages.JOB_NOT_FOUND, messages.JOB_NOT_FOUND)
        if job.state not in ACTIVE_STATES:
            text = messages.ACTION_JOB_NOT_ACTIVE.format(job=job_id, state=job.state.value)
            _record(viewer, "cancel", f"job {job_id}", f"refused: {job.state.value}", job_id=job_id)
            return text, "error"
        if job.cancel_requested_at is not None:
            return messages.ACTION_JOB_ALREADY_STOPPING.format(job=job_id), "info"
        reason = messages.JOB_CANCELLED_ON_DASHBOARD.format(user=viewer.login)
        ended = cancel_jobs(session, [job], JobState.cancelled, reason)
    for done in ended:
        _announce(done.id)
    outcome = "cancelled" if ended else "asked to stop"
    _record(viewer, "cancel", f"job {job_id}", outcome, job_id=job_id)
    if ended:
        return messages.ACTION_JOB_CANCELLED.format(job=job_id), "info"
    return messages.ACTION_JOB_STOPPING.format(job=job_id), "info"


def _announce(job_id: int) -> None:
    """Have a worker post the job's end to its check run and keep the labels in step."""
    from workers.tasks import sync_job_check

    try:
        sync_job_check.apply_async(args=[job_id])
    except Exception as exc:  # the check run stays behind; the job's state is right
        log.warning("could not announce job %s: %s", job_id, type(exc).__name__)


# --- deliveries ----------------------------------------------------------------------------


@router.post("/deliveries/{guid}/redeliver")
async def redeliver(request: Request, guid: str, viewer: Maintainer) -> RedirectResponse:
    """A failed delivery is processed again from its stored body (as when GitHub redelivers
    it with the same GUID)."""
    next_path = await _next(request)
    text, level = await run_in_threadpool(_redeliver, guid, viewer)
    flash(request, text, level)
    return _back(request, next_path, "/deliveries")


def _redeliver(guid: str, viewer: Viewer) -> tuple[str, str]:
    with get_engine().begin() as conn:
        row = conn.execute(
            select(Delivery.id, Delivery.status, Delivery.body.is_not(None)).where(
                Delivery.guid == guid
            )
        ).one_or_none()
        if row is None:
            raise Refused(404, messages.DELIVERY_NOT_FOUND, messages.DELIVERY_NOT_FOUND)
        delivery_id, status, has_body = row
        if status is not DeliveryStatus.failed:
            text = messages.ACTION_DELIVERY_NOT_FAILED.format(guid=guid, status=status.value)
            _record(viewer, "redeliver", f"delivery {guid}", f"refused: {status.value}")
            return text, "error"
        if not has_body:
            _record(viewer, "redeliver", f"delivery {guid}", "refused: no stored body")
            return messages.ACTION_DELIVERY_NO_BODY.format(guid=guid), "error"
        delivery_id, retried = deliveries._retry_if_failed(conn, guid, deliveries._now())
    if not retried:  # another redelivery took it between the look and the update
        text = messages.ACTION_DELIVERY_NOT_FAILED.format(guid=guid, status="being processed")
        return text, "error"
    published = deliveries.publish([(delivery_id, guid)])
    deliveries.mark_queued(published)
    _record(viewer, "redeliver", f"delivery {guid}", "queued" if published else "left to sweeper")
    if published:
        return messages.ACTION_DELIVERY_REDELIVERED.format(guid=guid), "info"
    return messages.ACTION_DELIVERY_REDELIVER_LATER.format(guid=guid), "info"


# --- builds --------------------------------------------------------------------------------


@router.post("/builds/start")
async def start_build(request: Request, viewer: Maintainer) -> RedirectResponse:
    """A build of the repository's pull requests merged since its last build."""
    fields = await form_fields(request)
    next_path = safe_next(fields.get("next"), "") or None
    repository = fields.get("repository", "").strip()
    text, level = await run_in_threadpool(_start_build, repository, viewer)
    flash(request, text, level)
    return _back(request, next_path, "/builds")


def _start_build(repository: str, viewer: Viewer) -> tuple[str, str]:
    if not _REPOSITORY.fullmatch(repository):
        return messages.ACTION_BUILD_BAD_REPOSITORY, "error"
    try:
        with session_scope() as session:
            started = start(session, repository, trigger=f"dashboard:{viewer.login}")
    except BuildError as refused:
        _record(viewer, "build", repository, f"refused: {refused}")
        return str(refused), "error"
    _record(viewer, "build", repository, f"build {started.name}, job {started.job_id}")
    if not started.queued:
        return messages.ACTION_BUILD_NO_WORKER.format(name=started.name), "error"
    return messages.ACTION_BUILD_STARTED.format(name=started.name, pulls=started.pulls), "info"
