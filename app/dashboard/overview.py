"""The overview: queue depth per stage, running jobs with their progress, the workers and the
queues they serve, recent failures, the last build and the latest deliveries. Seven queries
whatever the row counts; the page refreshes itself while open."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection, func, select

from app.config import Settings, get_settings
from app.dashboard.common import reading
from app.dashboard.deliveries import recent_deliveries
from app.dashboard.jobs import job_row, job_select
from app.dashboard.schemas import (
    BuildSummary,
    Overview,
    QueueDepth,
    WorkerRow,
    aware,
    first_line,
)
from app.dashboard.templating import templates
from app.db.models import (
    Build,
    BuildState,
    DeliveryStatus,
    Job,
    JobKind,
    JobState,
    WorkerSeen,
    utcnow,
)
from app.jobs import QUEUE_OF

router = APIRouter()

MAX_WORKERS = 100
RECENT = 10


# The overview's statements never change: built once, they run without being rebuilt.
QUEUE_COUNTS = (
    select(Job.kind, Job.state, func.count(Job.id))
    .where(Job.state.in_((JobState.queued, JobState.running)))
    .group_by(Job.kind, Job.state)
)
RUNNING = (
    job_select().where(Job.state == JobState.running).order_by(Job.started_at, Job.id).limit(50)
)
WORKERS = (
    select(WorkerSeen.hostname, WorkerSeen.queues, WorkerSeen.started_at, WorkerSeen.last_seen_at)
    .order_by(WorkerSeen.last_seen_at.desc())
    .limit(MAX_WORKERS)
)
FAILED_JOBS = job_select().where(Job.state == JobState.failed).order_by(Job.id.desc()).limit(RECENT)
LAST_BUILD = (
    select(
        Build.id,
        Build.name,
        Build.state,
        Build.scores,
        Build.created_at,
        Build.finished_at,
        Build.error,
    )
    .order_by(Build.id.desc())
    .limit(1)
)


def live_cutoff(settings: Settings) -> datetime:
    """Workers seen since then are live: the rule of app.jobs.live_workers (three missed
    heartbeats), applied to the rows the overview reads anyway."""
    return utcnow() - timedelta(seconds=3 * settings.worker_heartbeat_seconds)


def _seen_since(last_seen: datetime, cutoff: datetime) -> bool:
    seen = aware(last_seen)
    return seen is not None and seen >= cutoff


def overview(conn: Connection) -> Overview:
    """Seven queries, whatever the row counts."""
    counts = conn.execute(QUEUE_COUNTS).all()
    running = conn.execute(RUNNING).all()
    workers = conn.execute(WORKERS).all()
    failed_jobs = conn.execute(FAILED_JOBS).all()
    build = conn.execute(LAST_BUILD).one_or_none()
    cutoff = live_cutoff(get_settings())
    live = {w.hostname for w in workers if _seen_since(w.last_seen_at, cutoff)}

    worker_rows = sorted(
        (
            WorkerRow(
                hostname=w.hostname,
                queues=[str(q) for q in w.queues or []],
                started_at=aware(w.started_at),
                last_seen_at=aware(w.last_seen_at),
                live=w.hostname in live,
            )
            for w in workers
        ),
        key=lambda w: (not w.live, w.hostname),
    )
    return Overview(
        queues=_queues(counts, worker_rows),
        running=[job_row(row) for row in running],
        workers=worker_rows,
        failed_jobs=[job_row(row) for row in failed_jobs],
        failed_deliveries=recent_deliveries(conn, DeliveryStatus.failed, RECENT),
        recent_deliveries=recent_deliveries(conn, None, RECENT),
        last_build=(
            BuildSummary(
                id=build.id,
                name=build.name,
                state=BuildState(build.state),
                scores=build.scores if isinstance(build.scores, dict) else {},
                created_at=aware(build.created_at),
                finished_at=aware(build.finished_at),
                error_line=first_line(build.error),
            )
            if build is not None
            else None
        ),
    )


def _queues(counts: Any, workers: list[WorkerRow]) -> list[QueueDepth]:
    """Every queue a job kind runs on (or a live worker serves), with its depth."""
    depth: dict[str, dict[str, int]] = {}
    kinds: dict[str, list[str]] = {}
    for kind in JobKind:
        queue = QUEUE_OF.get(kind)
        if queue is not None:
            kinds.setdefault(queue, []).append(kind.value)
    for kind_value, state, count in counts:
        kind = JobKind(kind_value)
        queue = QUEUE_OF.get(kind, kind.value)
        kinds.setdefault(queue, [])
        if kind.value not in kinds[queue]:
            kinds[queue].append(kind.value)
        slot = depth.setdefault(queue, {"queued": 0, "running": 0})
        slot[JobState(state).value] += count
    serving: dict[str, int] = {}
    for worker in workers:
        if worker.live:
            for queue in worker.queues:
                serving[queue] = serving.get(queue, 0) + 1
                kinds.setdefault(queue, [])
    return [
        QueueDepth(
            queue=queue,
            kinds=kinds[queue],
            queued=depth.get(queue, {}).get("queued", 0),
            running=depth.get(queue, {}).get("running", 0),
            live_workers=serving.get(queue, 0),
        )
        for queue in sorted(kinds)
    ]


def _context() -> dict[str, Any]:
    with reading() as conn:
        return {"overview": overview(conn)}


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request) -> HTMLResponse:
    """What labbot is doing now; refreshed while open."""
    return templates.TemplateResponse(request, "overview.html", _context())


@router.get("/fragments/overview", response_class=HTMLResponse, include_in_schema=False)
def overview_fragment(request: Request) -> HTMLResponse:
    """The overview's body alone, for live.js."""
    return templates.TemplateResponse(request, "_overview_body.html", _context())
