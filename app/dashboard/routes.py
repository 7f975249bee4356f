"""The maintainers' dashboard (server-rendered, no front-end build): the overview, pull
requests, jobs, deliveries, builds and help pages, the HTML fragments live.js refreshes, and
the JSON API under /api. ``router`` gathers them all; app/main.py includes it."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.dashboard import api, builds, deliveries, jobs, overview, pulls
from app.dashboard.templating import templates
from bots import messages
from bots.commands import COMMANDS, label_rows
from bots.triage.config import LabelNames

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)

router = APIRouter()


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


@router.get("/static/live.js", include_in_schema=False)
def live_js() -> Response:
    """The dashboard's only script: refreshes elements marked data-live (see the file)."""
    script = _static(STATIC / "live.js")
    if script is None:
        return Response(status_code=404)
    return Response(
        script,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@lru_cache(maxsize=4)
def _static(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as exc:  # pages work without it, only without live updates
        log.warning("dashboard: %s not readable: %s", path.name, exc)
        return None


router.include_router(overview.router)
router.include_router(pulls.router)
router.include_router(jobs.router)
router.include_router(deliveries.router)
router.include_router(builds.router)
router.include_router(api.router)
