"""The maintainers' dashboard (server-rendered). For now: the service overview and recent
deliveries; later issues add PRs, jobs and builds."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from app.artifacts import JOB_LOG, artifact_store
from app.config import get_settings
from app.db.models import Delivery, Job, JobKind, JobState, PullRequest, Repository
from app.db.session import get_engine, session_scope
from app.dashboard.templating import templates
from bots import messages
from bots.commands import COMMANDS, label_rows
from bots.job_checks import progress_line
from bots.triage.config import LabelNames
from workers.eval.report import anchor
from workers.eval.results import BenchResults

LOG_TAIL_BYTES = 64 * 1024
PREVIEW_ARTIFACT = "dataset/preview.json"  # written by workers/sdg/stage.py
METRICS_ARTIFACT = "train/output/metrics.jsonl"  # written by workers/train/loop.py
BENCH_ARTIFACT = "bench/results.json"  # written by workers/eval/stage.py
PRECHECK_ARTIFACT = "precheck/answers.jsonl"
# Artifacts offered for download: results and logs as text, never checkpoints or datasets'
# bulk, and never rendered as HTML (they hold PR and model text).
DOWNLOADABLE = (".json", ".jsonl", ".log", ".txt")
CHART_WIDTH, CHART_HEIGHT = 480, 120
log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    with get_engine().connect() as conn:
        recent = conn.execute(
            select(
                Delivery.guid,
                Delivery.event,
                Delivery.action,
                Delivery.status,
                Delivery.repository,
                Delivery.received_at,
                Delivery.error,
            )
            .order_by(Delivery.id.desc())
            .limit(50)
        ).all()
    return templates.TemplateResponse(request, "overview.html", {"deliveries": recent})


@router.get("/help", response_class=HTMLResponse)
def help_page(request: Request) -> HTMLResponse:
    """Commands and labels, from the same registry as the `/lab help` reply."""
    context = {
        "intro": messages.WELCOME_INTRO,
        "footer": messages.HELP_FOOTER,
        "commands": list(COMMANDS.values()),
        "labels": label_rows(LabelNames()),
    }
    return templates.TemplateResponse(request, "help.html", context)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: int) -> HTMLResponse:
    """One job: its state, progress, error and the tail of its log (the check run links here)."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=messages.JOB_NOT_FOUND)
    context = {
        "job": job,
        "progress": progress_line(job.progress),
        "log": _log_tail(job),
        "preview": _preview(job),
        "loss_charts": _loss_charts(job),
    }
    return templates.TemplateResponse(request, "job.html", context)


@router.get("/jobs/{job_id}/artifacts/{name:path}")
def job_artifact(job_id: int, name: str) -> Response:
    """One of a job's result files, as plain text (the results comment links here)."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=messages.JOB_NOT_FOUND)
    data = _artifact(job, name) if name.endswith(DOWNLOADABLE) else None
    if data is None:
        raise HTTPException(status_code=404, detail=messages.ARTIFACT_NOT_FOUND)
    return Response(
        data,
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


@router.get("/pulls/{owner}/{name}/{number}", response_class=HTMLResponse)
def pull_page(request: Request, owner: str, name: str, number: int) -> HTMLResponse:
    """One pull request: its jobs, and what evaluating it found (the same tables as the PR's
    results comment, with every question in full)."""
    with session_scope() as session:
        pull = session.scalars(
            select(PullRequest)
            .join(Repository, Repository.id == PullRequest.repository_id)
            .where(Repository.full_name == f"{owner}/{name}", PullRequest.number == number)
        ).first()
        if pull is None:
            raise HTTPException(status_code=404, detail=messages.PULL_NOT_FOUND)
        pull_jobs = session.scalars(
            select(Job).where(Job.pull_request_id == pull.id).order_by(Job.id.desc()).limit(100)
        ).all()
        session.expunge_all()
    bench_job = _latest(pull_jobs, JobKind.bench)
    precheck_job = _latest(pull_jobs, JobKind.precheck)
    context = {
        "repo": f"{owner}/{name}",
        "pull": pull,
        "jobs": pull_jobs,
        "bench_job": bench_job,
        "bench": _bench_results(bench_job) if bench_job else None,
        "precheck_job": precheck_job,
        "precheck": _jsonl(_artifact(precheck_job, PRECHECK_ARTIFACT)) if precheck_job else [],
        "anchor": anchor,
    }
    return templates.TemplateResponse(request, "pull.html", context)


def _latest(pull_jobs: Sequence[Job], kind: JobKind) -> Job | None:
    return next((j for j in pull_jobs if j.kind is kind and j.state is JobState.succeeded), None)


def _bench_results(job: Job) -> BenchResults | None:
    data = _artifact(job, BENCH_ARTIFACT)
    if not data:
        return None
    try:
        return BenchResults.model_validate_json(data)
    except ValueError:
        log.warning("job %s: unreadable %s", job.id, BENCH_ARTIFACT)
        return None


def _jsonl(data: bytes | None) -> list[dict[str, Any]]:
    records = []
    for line in (data or b"").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _log_tail(job: Job) -> str:
    data = _artifact(job, JOB_LOG, LOG_TAIL_BYTES)
    if data is None and job.log_path:
        return messages.JOB_LOG_UNAVAILABLE
    return data.decode("utf-8", errors="replace") if data else ""


def _preview(job: Job) -> dict[str, list[dict[str, Any]]]:
    """A few generated samples per leaf (written by the sdg job beside its dataset)."""
    data = _artifact(job, PREVIEW_ARTIFACT)
    if not data:
        return {}
    try:
        loaded = json.loads(data)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _loss_charts(job: Job) -> list[dict[str, Any]]:
    """Training loss per phase as SVG polylines (from the train job's metrics.jsonl)."""
    data = _artifact(job, METRICS_ARTIFACT)
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


def _artifact(job: Job, name: str, tail_bytes: int | None = None) -> bytes | None:
    """One of the job's artifacts: from this machine when the job ran here, else from the
    artifact store it was uploaded to (None when neither has it or the store is down)."""
    local = Path(job.artifacts_path) / name if job.artifacts_path else None
    if local is not None and local.is_file():
        with local.open("rb") as handle:
            if tail_bytes is not None:
                handle.seek(max(local.stat().st_size - tail_bytes, 0))
            return handle.read()
    try:
        return artifact_store(get_settings()).read(job.id, name, tail_bytes)
    except Exception as exc:
        log.warning("job %s: %s not read from the artifact store: %s", job.id, name, exc)
        return None
