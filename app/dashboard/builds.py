"""Build pages: each build's merged PRs, stages, artifacts and scores, and the scores across
builds as server-side SVG charts; the same data as JSON under /api/builds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from app.artifacts import artifact_store, read_artifact
from app.config import get_settings
from app.dashboard.common import Paging, Problems, not_found, paging, seconds_between
from app.dashboard.schemas import PageInfo, aware
from app.dashboard.templating import templates
from app.db.models import Build, BuildPullRequest, BuildState, Job, JobKind, PullRequest, Repository
from app.db.session import get_engine
from bots import messages
from workers.eval.report import anchor
from workers.eval.results import BenchResults

router = APIRouter()

EVAL_RESULTS = "eval/results.json"  # written by workers/build/stage.py
TRAIN_METRICS = "train/output/metrics.jsonl"
# The scores charted across builds: (key in Build.scores, title, axis top).
TRENDS = (
    ("guard_trained", "Regression guard (judge, 1-10)", 10.0),
    ("trained_mean", "New leaves' seed questions (judge, 1-10)", 10.0),
    ("mmlu_trained", "PR-MMLU accuracy (0-1)", 1.0),
)
TREND_BUILDS = 50
CHART_WIDTH, CHART_HEIGHT = 480, 120
# Results and logs a build's page links to (the job page lists everything else).
BUILD_ARTIFACTS = (
    "job.log",
    "training.log",
    "train/plan.json",
    TRAIN_METRICS,
    EVAL_RESULTS,
    "eval/answers.jsonl",
    "eval/judgments.jsonl",
    "eval/mmlu.jsonl",
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class BuildRow(_Model):
    id: int = Field(description="The build's id; its page is /builds/{id}.")
    name: str = Field(description="The build's name: repository and start time.")
    repository: str | None = Field(description="owner/name of the taxonomy repository.")
    state: BuildState = Field(description="pending, running, succeeded, failed or cancelled.")
    trigger: str | None = Field(description='"schedule", "cli" or "dashboard:<login>".')
    pulls: int = Field(description="Merged pull requests it contains.")
    base_model: str | None = Field(description="The model it trained from.")
    output_model: str | None = Field(description="Where its trained model is (job artifacts).")
    scores: dict[str, Any] = Field(
        description="Headline scores: guard_base/guard_trained and base_mean/trained_mean "
        "(judge ratings 1-10), mmlu_base/mmlu_trained (0-1), improved/regressed leaves."
    )
    error: str | None = Field(description="Why it failed, when it did.")
    created_at: datetime = Field(description="When it was composed (UTC).")
    started_at: datetime | None = Field(description="When its job started (UTC).")
    finished_at: datetime | None = Field(description="When it ended (UTC).")


class BuildStage(_Model):
    name: str = Field(description="data, train or evaluate.")
    started_at: str | None = Field(description="ISO 8601 start (UTC).")
    finished_at: str | None = Field(description="ISO 8601 end (UTC); null while running.")


class BuildPull(_Model):
    number: int = Field(description="The pull request's number.")
    title: str = Field(description="Its title (contributor text).")
    author: str = Field(description="Its author's GitHub login.")
    kind: str | None = Field(description="knowledge, skill, mixed or none.")
    head_sha: str = Field(description="The merged head commit.")
    merged_at: datetime | None = Field(description="When it was merged (UTC).")


class BuildJob(_Model):
    id: int = Field(description="The build job's id; its page is /jobs/{id}.")
    state: str = Field(description="The job's state.")
    progress: dict[str, Any] = Field(description="Stage, percent and eta while running.")
    result: dict[str, Any] | None = Field(description="What it found (scores, skipped PRs).")
    artifacts_path: str | None = Field(None, exclude=True)


class BuildDetail(BuildRow):
    previous_build_id: int | None = Field(description="The build it started from.")
    stages: list[BuildStage] = Field(description="The stages it reached, in order.")
    pull_requests: list[BuildPull] = Field(description="The merged PRs it contains.")
    job: BuildJob | None = Field(description="The job doing the work.")


class BuildPage(_Model):
    builds: list[BuildRow] = Field(description="Builds, newest first.")
    page: PageInfo


class TrendPoint(_Model):
    build_id: int
    name: str
    value: float


class Trend(_Model):
    key: str = Field(description="The score's key in each build's scores.")
    title: str
    points: list[TrendPoint] = Field(description="Succeeded builds, oldest first.")


# --- queries ----------------------------------------------------------------------------------


def _rows(where: Any, page: Paging | None) -> tuple[list[BuildRow], int]:
    """Builds matching ``where``, newest first, with their repository and PR count: one
    query (two with the total for paging)."""
    pulls = (
        select(BuildPullRequest.build_id, func.count().label("pulls"))
        .group_by(BuildPullRequest.build_id)
        .subquery()
    )
    query = (
        select(
            Build.id,
            Build.name,
            Build.state,
            Build.trigger,
            Build.base_model,
            Build.output_model,
            Build.scores,
            Build.error,
            Build.created_at,
            Build.started_at,
            Build.finished_at,
            Repository.full_name.label("repository"),
            func.coalesce(pulls.c.pulls, 0).label("pulls"),
        )
        .outerjoin(Repository, Repository.id == Build.repository_id)
        .outerjoin(pulls, pulls.c.build_id == Build.id)
        .where(where)
        .order_by(Build.id.desc())
    )
    total = 0
    with get_engine().connect() as conn:
        if page is not None:
            total = conn.execute(select(func.count()).select_from(Build).where(where)).scalar_one()
            query = query.limit(page.per_page).offset(page.offset)
        result = conn.execute(query).all()
    rows = [
        BuildRow(
            id=r.id,
            name=r.name,
            repository=r.repository,
            state=r.state,
            trigger=r.trigger,
            pulls=int(r.pulls),
            base_model=r.base_model,
            output_model=r.output_model,
            scores=r.scores or {},
            error=r.error,
            created_at=aware(r.created_at) or r.created_at,
            started_at=aware(r.started_at),
            finished_at=aware(r.finished_at),
        )
        for r in result
    ]
    return rows, total if page is not None else len(rows)


def list_builds(page: Paging) -> BuildPage:
    rows, total = _rows(Build.id.isnot(None), page)
    return BuildPage(
        builds=rows,
        page=PageInfo(
            page=page.page,
            per_page=page.per_page,
            total=total,
            has_next=page.offset + len(rows) < total,
        ),
    )


def build_detail(build_id: int) -> BuildDetail | None:
    rows, _ = _rows(Build.id == build_id, None)
    if not rows:
        return None
    with get_engine().connect() as conn:
        extra = conn.execute(
            select(Build.previous_build_id, Build.stages).where(Build.id == build_id)
        ).one()
        pulls = conn.execute(
            select(
                PullRequest.number,
                PullRequest.title,
                PullRequest.author,
                PullRequest.kind,
                PullRequest.head_sha,
                PullRequest.merged_at,
            )
            .join(BuildPullRequest, BuildPullRequest.pull_request_id == PullRequest.id)
            .where(BuildPullRequest.build_id == build_id)
            .order_by(PullRequest.merged_at, PullRequest.number)
        ).all()
        job = conn.execute(
            select(Job.id, Job.state, Job.progress, Job.result, Job.artifacts_path)
            .where(Job.build_id == build_id, Job.kind == JobKind.build)
            .order_by(Job.id.desc())
            .limit(1)
        ).one_or_none()
    return BuildDetail(
        **rows[0].model_dump(),
        previous_build_id=extra.previous_build_id,
        stages=[BuildStage.model_validate(stage) for stage in extra.stages or []],
        pull_requests=[
            BuildPull(
                number=p.number,
                title=p.title,
                author=p.author,
                kind=p.kind,
                head_sha=p.head_sha,
                merged_at=aware(p.merged_at),
            )
            for p in pulls
        ],
        job=BuildJob(
            id=job.id,
            state=job.state.value,
            progress=job.progress or {},
            result=job.result,
            artifacts_path=job.artifacts_path,
        )
        if job
        else None,
    )


def trends() -> list[Trend]:
    """The charted scores of the last succeeded builds, oldest first."""
    with get_engine().connect() as conn:
        rows = conn.execute(
            select(Build.id, Build.name, Build.scores)
            .where(Build.state == BuildState.succeeded)
            .order_by(Build.id.desc())
            .limit(TREND_BUILDS)
        ).all()
    rows = list(reversed(rows))
    charts = []
    for key, title, _ in TRENDS:
        points = [
            TrendPoint(build_id=r.id, name=r.name, value=float(r.scores[key]))
            for r in rows
            if isinstance((r.scores or {}).get(key), int | float)
        ]
        charts.append(Trend(key=key, title=title, points=points))
    return charts


def _svg(trend: Trend, top: float) -> dict[str, Any]:
    """Polyline points on a fixed 0..top scale (scores stay comparable across pages)."""
    count = len(trend.points)
    step = CHART_WIDTH / max(count - 1, 1)
    coords = [
        (i * step, CHART_HEIGHT - min(max(p.value / top, 0.0), 1.0) * CHART_HEIGHT)
        for i, p in enumerate(trend.points)
    ]
    return {
        "title": trend.title,
        "top": top,
        "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in coords),
        "dots": [
            {"x": x, "y": y, "label": f"{p.name}: {p.value:.3g}", "id": p.build_id}
            for (x, y), p in zip(coords, trend.points, strict=True)
        ],
        "last": trend.points[-1].value if trend.points else None,
    }


def _bench_results(job: BuildJob) -> BenchResults | None:
    data = read_artifact(get_settings(), job.id, job.artifacts_path, EVAL_RESULTS)
    try:
        return BenchResults.model_validate_json(data) if data else None
    except ValueError:
        return None


def _present_artifacts(job: BuildJob) -> list[str]:
    """The build's result files its job actually wrote (a failed build has no eval/)."""
    if job.artifacts_path and Path(job.artifacts_path).is_dir():
        root = Path(job.artifacts_path)
        return [name for name in BUILD_ARTIFACTS if (root / name).is_file()]
    try:
        stored = set(artifact_store(get_settings()).names(job.id))
    except Exception:  # the store is away: link nothing rather than dead links
        return []
    return [name for name in BUILD_ARTIFACTS if name in stored]


# --- pages ------------------------------------------------------------------------------------


@router.get("/builds", response_class=HTMLResponse)
def builds_page(request: Request) -> HTMLResponse:
    problems = Problems()
    page = list_builds(paging(request.query_params, problems))
    charts = [_svg(t, top) for t, (_, _, top) in zip(trends(), TRENDS, strict=True)]
    took = {b.id: seconds_between(b.started_at, b.finished_at) for b in page.builds}
    with get_engine().connect() as conn:
        repositories = conn.scalars(
            select(Repository.full_name).where(~Repository.removed).order_by(Repository.full_name)
        ).all()
    context = {
        "page": page,
        "charts": charts,
        "problems": problems,
        "took": took,
        "repositories": repositories,
    }
    return templates.TemplateResponse(request, "builds.html", context)


@router.get("/builds/{build_id}", response_class=HTMLResponse)
def build_page(request: Request, build_id: int) -> Response:
    build = build_detail(build_id)
    if build is None:
        return not_found(request, messages.BUILD_NOT_FOUND)
    bench = None
    if build.job is not None and build.state is BuildState.succeeded:
        bench = _bench_results(build.job)
    context = {
        "build": build,
        "bench": bench,
        "bench_job": build.job,
        "anchor": anchor,
        "artifacts": _present_artifacts(build.job) if build.job else [],
        "skipped": (build.job.result or {}).get("skipped", []) if build.job else [],
    }
    return templates.TemplateResponse(request, "build.html", context)


# --- JSON -------------------------------------------------------------------------------------


@router.get("/api/builds", response_model=BuildPage)
def api_builds(page: int = Query(1, ge=1, le=1_000_000)) -> BuildPage:
    """Builds, newest first, 50 per page, with their headline scores."""
    return list_builds(Paging(page))


@router.get("/api/builds/trends", response_model=list[Trend])
def api_build_trends() -> list[Trend]:
    """The scores the builds page charts, for the last 50 succeeded builds."""
    return trends()


@router.get("/api/builds/{build_id}", response_model=BuildDetail)
def api_build(build_id: int) -> BuildDetail:
    """One build: its merged PRs, stages, job and scores."""
    build = build_detail(build_id)
    if build is None:
        raise HTTPException(status_code=404, detail=messages.BUILD_NOT_FOUND)
    return build
