"""The maintainers' dashboard (server-rendered). For now: the service overview and recent
deliveries; later issues add PRs, jobs and builds."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from app.db.models import Delivery, Job
from app.db.session import get_engine, session_scope
from bots import messages
from bots.commands import COMMANDS, label_rows
from bots.job_checks import progress_line
from bots.triage.config import LabelNames

LOG_TAIL_BYTES = 64 * 1024

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
    context = {"job": job, "progress": progress_line(job.progress), "log": _log_tail(job)}
    return templates.TemplateResponse(request, "job.html", context)


def _log_tail(job: Job) -> str:
    if not job.log_path:
        return ""
    path = Path(job.log_path)
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(path.stat().st_size - LOG_TAIL_BYTES, 0))
        return handle.read().decode("utf-8", errors="replace")
