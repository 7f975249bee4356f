"""The dashboard's JSON API under /api: the same queries as the HTML pages, with pydantic
response models, so /openapi.json (and /api/docs) describe every field. Filters are validated
strictly here: a bad value is a 422 with the reason, where a page ignores it with a message."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from app.dashboard.common import MAX_FILTER_LENGTH, PER_PAGE, Paging, reading, utc
from app.dashboard.deliveries import DeliveryFilters, list_deliveries
from app.dashboard.jobs import (
    LOG_TAIL_BYTES,
    MAX_LOG_BYTES,
    JobFilters,
    get_job,
    job_log,
    list_jobs,
)
from app.dashboard.overview import overview
from app.dashboard.pulls import PullFilters, get_pull, list_pulls
from app.dashboard.schemas import (
    DeliveryPage,
    JobDetail,
    JobLog,
    JobPage,
    Overview,
    PullDetail,
    PullPage,
)
from app.db.models import DeliveryStatus, JobKind, JobState
from bots import messages

router = APIRouter(prefix="/api", tags=["dashboard"])


class Problem(BaseModel):
    detail: str = Field(description="What was not found.")


def _json(model: BaseModel) -> Response:
    """The model as JSON, serialized once (FastAPI would validate it again first); the
    route's response_model still documents it."""
    return Response(model.model_dump_json(), media_type="application/json")


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "Not found."}}

PageNumber = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")]
PerPage = Annotated[int, Query(ge=1, le=PER_PAGE, description="Rows per page (at most 50).")]


def text_query(description: str) -> Any:
    return Query(min_length=1, max_length=MAX_FILTER_LENGTH, description=description)


@router.get("/overview", response_model=Overview)
def api_overview() -> Response:
    """Queue depth per queue, running jobs with progress, workers and the queues they serve,
    recent failed jobs and deliveries, the latest deliveries and the last build."""
    with reading() as conn:
        return _json(overview(conn))


@router.get("/pulls", response_model=PullPage)
def api_pulls(
    state: Annotated[
        Literal["open", "closed", "merged", "all"],
        Query(description="open, closed (not merged), merged, or all."),
    ] = "open",
    kind: Annotated[
        Literal["knowledge", "skill", "mixed", "none"] | None,
        Query(description="What its qna.yaml files teach, as triage last saw them."),
    ] = None,
    author: Annotated[str | None, text_query("The author's GitHub login.")] = None,
    label: Annotated[str | None, text_query("A label the pull request carries.")] = None,
    repository: Annotated[str | None, text_query("owner/name of the repository.")] = None,
    page: PageNumber = 1,
    per_page: PerPage = PER_PAGE,
) -> Response:
    """Taxonomy pull requests, last updated first, each with its triage state, latest jobs
    and one sentence saying what it waits for."""
    filters = PullFilters(state=state, kind=kind, author=author, label=label, repository=repository)
    with reading() as conn:
        return _json(list_pulls(conn, filters, Paging(page, per_page)))


@router.get("/pulls/{owner}/{name}/{number}", response_model=PullDetail, responses=NOT_FOUND)
def api_pull(
    owner: Annotated[str, Path(description="The repository's owner.")],
    name: Annotated[str, Path(description="The repository's name.")],
    number: Annotated[int, Path(description="The pull request's number.")],
) -> Response:
    """One pull request: its state, the findings of its latest triage run and every job."""
    with reading() as conn:
        found = get_pull(conn, f"{owner}/{name}", number)
    if found is None:
        raise HTTPException(status_code=404, detail=messages.PULL_NOT_FOUND)
    return _json(found.detail)


@router.get("/jobs", response_model=JobPage)
def api_jobs(
    state: Annotated[JobState | None, Query(description="The jobs' state.")] = None,
    kind: Annotated[JobKind | None, Query(description="The jobs' kind.")] = None,
    repository: Annotated[str | None, text_query("owner/name of the repository.")] = None,
    author: Annotated[
        str | None, text_query("The pull request's author, or whoever asked for the job.")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Queued at or after (ISO 8601; UTC by default).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Queued before (ISO 8601; UTC by default).")
    ] = None,
    page: PageNumber = 1,
    per_page: PerPage = PER_PAGE,
) -> Response:
    """Jobs, newest first."""
    filters = JobFilters(
        state=state,
        kind=kind,
        repository=repository,
        author=author,
        since=utc(since) if since else None,
        until=utc(until) if until else None,
    )
    with reading() as conn:
        return _json(list_jobs(conn, filters, Paging(page, per_page)))


@router.get("/jobs/{job_id}", response_model=JobDetail, responses=NOT_FOUND)
def api_job(job_id: Annotated[int, Path(description="The job's id.")]) -> Response:
    """One job: state, progress, timing, error, result, and its PR or build."""
    with reading() as conn:
        found = get_job(conn, job_id)
    if found is None:
        raise HTTPException(status_code=404, detail=messages.JOB_NOT_FOUND)
    return _json(found[0])


@router.get("/jobs/{job_id}/log", response_model=JobLog, responses=NOT_FOUND)
def api_job_log(
    job_id: Annotated[int, Path(description="The job's id.")],
    tail: Annotated[
        int, Query(ge=1, le=MAX_LOG_BYTES, description="How many bytes of the end to return.")
    ] = LOG_TAIL_BYTES,
) -> Response:
    """The end of a job's log; poll it until `final` is true."""
    with reading() as conn:
        found = get_job(conn, job_id)
    if found is None:
        raise HTTPException(status_code=404, detail=messages.JOB_NOT_FOUND)
    return _json(job_log(*found, tail_bytes=tail))


@router.get("/deliveries", response_model=DeliveryPage)
def api_deliveries(
    status: Annotated[DeliveryStatus | None, Query(description="The deliveries' status.")] = None,
    event: Annotated[str | None, text_query('An event ("pull_request") or event.action.')] = None,
    page: PageNumber = 1,
    per_page: PerPage = PER_PAGE,
) -> Response:
    """Webhook deliveries, newest first (one delivery's record: /api/deliveries/{guid})."""
    with reading() as conn:
        found = list_deliveries(
            conn, DeliveryFilters(status=status, event=event), Paging(page, per_page)
        )
    return _json(found)
