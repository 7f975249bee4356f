"""The maintainers' dashboard (server-rendered). For now: the service overview and recent
deliveries; later issues add PRs, jobs and builds."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from app.artifacts import JOB_LOG, artifact_store
from app.config import get_settings
from app.db.models import Delivery, Job
from app.db.session import get_engine, session_scope
from bots import messages
from bots.commands import COMMANDS, label_rows
from bots.job_checks import progress_line
from bots.triage.config import LabelNames

LOG_TAIL_BYTES = 64 * 1024
PREVIEW_ARTIFACT = "dataset/preview.json"  # written by workers/sdg/stage.py
METRICS_ARTIFACT = "train/output/metrics.jsonl"  # written by workers/train/loop.py
CHART_WIDTH, CHART_HEIGHT = 480, 120
log = logging.getLogger(__name__)

router = APIRouter()
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


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
