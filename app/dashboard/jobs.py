"""Jobs: the filterable list (refreshed live), each job's page with its live progress and log
tail, and its downloadable result files. The query functions here serve the pages and the
JSON API alike."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.artifacts import JOB_LOG, artifact_store
from app.config import get_settings
from app.dashboard.common import (
    AnyRow,
    AnySelect,
    Paging,
    Problems,
    choice,
    link,
    moment,
    not_found,
    paging,
    reading,
    seconds_between,
    text,
)
from app.dashboard.schemas import (
    ArtifactLink,
    JobDetail,
    JobLog,
    JobPage,
    JobRow,
    aware,
    first_line,
)
from app.dashboard.templating import templates
from app.db.models import (
    FINAL_JOB_STATES,
    Build,
    Job,
    JobKind,
    JobState,
    PullRequest,
    Repository,
)
from app.jobs import QUEUE_OF
from bots import messages
from bots.job_checks import progress_line

log = logging.getLogger(__name__)
router = APIRouter()

LOG_TAIL_BYTES = 64 * 1024
MAX_LOG_BYTES = 1024 * 1024
MAX_ARTIFACTS_LISTED = 200
# Artifacts offered for download: results and logs as text, never checkpoints or datasets'
# bulk, and never rendered as HTML (they hold PR and model text).
DOWNLOADABLE = (".json", ".jsonl", ".log", ".txt")
FINAL_HEADER = {"X-Live-Final": "1"}  # tells live.js to stop refreshing the element


@dataclass(frozen=True)
class JobFiles:
    """Where a job's artifacts are (internal: never shown)."""

    id: int
    artifacts_path: str | None
    log_path: str | None


@dataclass(frozen=True)
class JobFilters:
    state: JobState | None = None
    kind: JobKind | None = None
    repository: str | None = None
    author: str | None = None  # the PR's author or whoever asked for the job
    since: datetime | None = None  # queued at or after
    until: datetime | None = None  # queued before

    @classmethod
    def parse(cls, params: Mapping[str, str], problems: Problems) -> JobFilters:
        state = choice(params, "state", [s.value for s in JobState], problems)
        kind = choice(params, "kind", [k.value for k in JobKind], problems)
        return cls(
            state=JobState(state) if state else None,
            kind=JobKind(kind) if kind else None,
            repository=text(params, "repository", problems),
            author=text(params, "author", problems),
            since=moment(params, "since", problems),
            until=moment(params, "until", problems),
        )

    def params(self) -> dict[str, Any]:
        return {
            "state": self.state.value if self.state else None,
            "kind": self.kind.value if self.kind else None,
            "repository": self.repository,
            "author": self.author,
            "since": self.since,
            "until": self.until,
        }

    def where(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.state is not None:
            conditions.append(Job.state == self.state)
        if self.kind is not None:
            conditions.append(Job.kind == self.kind)
        if self.repository is not None:
            conditions.append(
                Job.repository_id.in_(
                    select(Repository.id).where(Repository.full_name == self.repository)
                )
            )
        if self.author is not None:
            conditions.append(
                or_(
                    Job.requested_by == self.author,
                    Job.pull_request_id.in_(
                        select(PullRequest.id).where(PullRequest.author == self.author)
                    ),
                )
            )
        if self.since is not None:
            conditions.append(Job.queued_at >= self.since)
        if self.until is not None:
            conditions.append(Job.queued_at < self.until)
        return conditions


# --- queries ----------------------------------------------------------------------------------


def job_select(*extra: Any) -> AnySelect:
    """A job's row with its PR and repository (one query whatever the row count)."""
    return (
        select(
            Job.id,
            Job.kind,
            Job.state,
            Job.build_id,
            Job.head_sha,
            Job.requested_by,
            Job.trigger,
            Job.attempts,
            Job.worker,
            Job.progress,
            Job.error,
            Job.queued_at,
            Job.started_at,
            Job.finished_at,
            Job.artifacts_path,
            Job.log_path,
            PullRequest.number.label("pull_number"),
            PullRequest.title.label("pull_title"),
            PullRequest.author.label("pull_author"),
            Repository.full_name.label("repository"),
            *extra,
        )
        .outerjoin(PullRequest, PullRequest.id == Job.pull_request_id)
        .outerjoin(Repository, Repository.id == Job.repository_id)
    )


def job_row(row: AnyRow) -> JobRow:
    return JobRow(**_row_fields(row))


def _row_fields(row: AnyRow) -> dict[str, Any]:
    kind = JobKind(row.kind)
    state = JobState(row.state)
    progress = row.progress if isinstance(row.progress, dict) else {}
    ended = row.finished_at
    # A job handed out again is queued with its last run's start: it is not running now.
    started = None if state is JobState.queued else row.started_at
    return {
        "id": row.id,
        "kind": kind,
        "state": state,
        "queue": QUEUE_OF.get(kind, kind.value),
        "repository": row.repository,
        "pull_number": row.pull_number,
        "pull_title": row.pull_title,
        "pull_author": row.pull_author,
        "build_id": row.build_id,
        "head_sha": row.head_sha,
        "requested_by": row.requested_by,
        "trigger": row.trigger,
        "attempts": row.attempts,
        "worker": row.worker,
        "progress": progress,
        "progress_line": progress_line(progress) if state is JobState.running else "",
        "error_line": first_line(row.error),
        "queued_at": aware(row.queued_at),
        "started_at": aware(row.started_at),
        "finished_at": aware(row.finished_at),
        "wait_seconds": seconds_between(row.queued_at, started or ended),
        "run_seconds": seconds_between(started, ended),
    }


def job_files(row: AnyRow) -> JobFiles:
    return JobFiles(row.id, row.artifacts_path, row.log_path)


def list_jobs(conn: Connection, filters: JobFilters, page: Paging) -> JobPage:
    """A page of jobs, newest first: two queries (the count and the rows)."""
    where = filters.where()
    total, rows, has_next = page.read(
        conn,
        select(func.count(Job.id)).where(*where),
        job_select().where(*where).order_by(Job.id.desc()),
    )
    return JobPage(
        page=page.page,
        per_page=page.per_page,
        total=total,
        has_next=has_next,
        items=[job_row(row) for row in rows],
    )


def get_job(conn: Connection, job_id: int) -> tuple[JobDetail, JobFiles] | None:
    """One job with its PR, repository and build: one query."""
    row = conn.execute(
        job_select(
            Job.result,
            Job.published_at,
            Job.heartbeat_at,
            Job.cancel_requested_at,
            Build.name.label("build_name"),
        )
        .outerjoin(Build, Build.id == Job.build_id)
        .where(Job.id == job_id)
    ).one_or_none()
    if row is None:
        return None
    state = JobState(row.state)
    detail = JobDetail(
        **_row_fields(row),
        error=row.error,
        result=row.result if isinstance(row.result, dict) else None,
        published_at=aware(row.published_at),
        heartbeat_at=aware(row.heartbeat_at),
        cancel_requested_at=aware(row.cancel_requested_at),
        build_name=row.build_name,
        final=state in FINAL_JOB_STATES,
    )
    return detail, job_files(row)


def read_log(files: JobFiles, tail_bytes: int = LOG_TAIL_BYTES) -> tuple[str, bool]:
    """(the end of the job's log, whether it could be read)."""
    data = artifact(files, JOB_LOG, tail_bytes)
    if data is None:
        return "", not files.log_path
    if len(data) >= tail_bytes:
        # Cut at a line start: the first line of a tail is usually a fragment.
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else data
    return data.decode("utf-8", errors="replace"), True


def job_log(job: JobDetail, files: JobFiles, tail_bytes: int = LOG_TAIL_BYTES) -> JobLog:
    text_, available = read_log(files, tail_bytes)
    return JobLog(job_id=job.id, state=job.state, final=job.final, available=available, text=text_)


def artifact_links(files: JobFiles) -> list[ArtifactLink]:
    """The job's downloadable result files (text kinds only)."""
    names: list[str] = []
    local = Path(files.artifacts_path) if files.artifacts_path else None
    if local is not None and local.is_dir():
        names = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    else:
        try:
            names = artifact_store(get_settings()).names(files.id)
        except Exception as exc:
            log.warning("job %s: artifacts not listed: %s", files.id, type(exc).__name__)
    wanted = [name for name in names if name.endswith(DOWNLOADABLE)][:MAX_ARTIFACTS_LISTED]
    return [ArtifactLink(name=name, url=f"/jobs/{files.id}/artifacts/{name}") for name in wanted]


def artifact(files: JobFiles, name: str, tail_bytes: int | None = None) -> bytes | None:
    """One of the job's artifacts: from this machine when the job ran here, else from the
    artifact store it was uploaded to (None when neither has it or the store is down).
    ``name`` never leaves the job's directory."""
    if files.artifacts_path:
        root = Path(files.artifacts_path).resolve()
        local = (root / name).resolve()
        if not local.is_relative_to(root):
            return None
        if local.is_file():
            with local.open("rb") as handle:
                if tail_bytes is not None:
                    handle.seek(max(local.stat().st_size - tail_bytes, 0))
                return handle.read()
    try:
        return artifact_store(get_settings()).read(files.id, name, tail_bytes)
    except Exception as exc:
        log.warning("job %s: %s not read from the artifact store: %s", files.id, name, exc)
        return None


def jsonl(data: bytes | None) -> list[dict[str, Any]]:
    records = []
    for line in (data or b"").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


# --- pages --------------------------------------------------------------------------------------


def repositories(conn: Connection) -> list[str]:
    """The repositories the filter forms offer: one query."""
    return list(
        conn.execute(
            select(Repository.full_name)
            .where(Repository.removed.is_(False))
            .order_by(Repository.full_name)
            .limit(200)
        ).scalars()
    )


def _jobs_context(request: Request, with_form: bool) -> dict[str, Any]:
    problems = Problems()
    filters = JobFilters.parse(request.query_params, problems)
    page = paging(request.query_params, problems)
    with reading() as conn:
        result = list_jobs(conn, filters, page)
        names = repositories(conn) if with_form else []
    params = filters.params()
    return {
        "result": result,
        "filters": filters,
        "params": params,
        "problems": problems,
        "repositories": names,
        "states": [s.value for s in JobState],
        "kinds": [k.value for k in JobKind],
        "live_url": link("/fragments/jobs", params, page=page.page),
    }


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    """Every job, filterable; the table refreshes itself while the page is open."""
    return templates.TemplateResponse(request, "jobs.html", _jobs_context(request, with_form=True))


@router.get("/fragments/jobs", response_class=HTMLResponse, include_in_schema=False)
def jobs_fragment(request: Request) -> HTMLResponse:
    """The jobs table alone, for live.js."""
    context = _jobs_context(request, with_form=False)
    return templates.TemplateResponse(request, "_jobs_table.html", context)


def _job_context(job: JobDetail, files: JobFiles) -> dict[str, Any]:
    log_text, available = read_log(files)
    return {
        "job": job,
        "log": log_text if available else messages.JOB_LOG_UNAVAILABLE,
        "log_available": available,
        "live_url": f"/fragments/jobs/{job.id}",
    }


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: int) -> HTMLResponse:
    """One job: its state, timeline, progress, result, files and the tail of its log, refreshed
    while it runs (the check run links here)."""
    with reading() as conn:
        found = get_job(conn, job_id)
    if found is None:
        return not_found(request, messages.JOB_NOT_FOUND)
    job, files = found
    context = _job_context(job, files)
    context["artifacts"] = artifact_links(files)
    context["preview"] = preview(files) if job.kind is JobKind.sdg else {}
    context["loss_charts"] = loss_charts(files) if job.kind is JobKind.train else []
    return templates.TemplateResponse(request, "job.html", context)


@router.get("/fragments/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
def job_fragment(request: Request, job_id: int) -> HTMLResponse:
    """The live part of a job's page; the last one once the job has ended."""
    with reading() as conn:
        found = get_job(conn, job_id)
    if found is None:
        return not_found(request, messages.JOB_NOT_FOUND)
    job, files = found
    response = templates.TemplateResponse(request, "_job_live.html", _job_context(job, files))
    if job.final:
        response.headers.update(FINAL_HEADER)
    return response


@router.get("/jobs/{job_id}/artifacts/{name:path}", response_model=None)
def job_artifact(request: Request, job_id: int, name: str) -> Response:
    """One of a job's result files, as plain text (the results comment links here)."""
    with reading() as conn:
        found = get_job(conn, job_id)
    if found is None:
        return not_found(request, messages.JOB_NOT_FOUND)
    data = artifact(found[1], name) if name.endswith(DOWNLOADABLE) else None
    if data is None:
        return not_found(request, messages.ARTIFACT_NOT_FOUND)
    return Response(
        data,
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


# --- what the stages leave behind ---------------------------------------------------------------

PREVIEW_ARTIFACT = "dataset/preview.json"  # written by workers/sdg/stage.py
METRICS_ARTIFACT = "train/output/metrics.jsonl"  # written by workers/train/loop.py
CHART_WIDTH, CHART_HEIGHT = 480, 120


def preview(files: JobFiles) -> dict[str, list[dict[str, Any]]]:
    """A few generated samples per leaf (written by the sdg job beside its dataset)."""
    data = artifact(files, PREVIEW_ARTIFACT)
    if not data:
        return {}
    try:
        loaded = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {
        str(leaf): [s for s in samples if isinstance(s, dict)]
        for leaf, samples in loaded.items()
        if isinstance(samples, list)
    }


def loss_charts(files: JobFiles) -> list[dict[str, Any]]:
    """Training loss per phase as SVG polylines (from the train job's metrics.jsonl)."""
    data = artifact(files, METRICS_ARTIFACT)
    if not data:
        return []
    phases: dict[str, list[float]] = {}
    for line in data.splitlines():
        try:
            record = json.loads(line)
            phases.setdefault(str(record["phase"]), []).append(float(record["loss"]))
        except (ValueError, KeyError, TypeError):
            continue
    charts = []
    for phase, losses in phases.items():
        top, bottom = max(losses), min(losses)
        span = (top - bottom) or 1.0
        step = CHART_WIDTH / max(len(losses) - 1, 1)
        points = " ".join(
            f"{i * step:.1f},{CHART_HEIGHT - (loss - bottom) / span * CHART_HEIGHT:.1f}"
            for i, loss in enumerate(losses)
        )
        charts.append(
            {
                "phase": phase,
                "points": points,
                "first": losses[0],
                "last": losses[-1],
                "steps": len(losses),
                "top": top,
                "bottom": bottom,
            }
        )
    return charts
