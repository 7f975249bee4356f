"""The maintainers' dashboard (server-rendered). For now: the service overview and recent
deliveries; later issues add PRs, jobs and builds."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from app.db.models import Delivery
from app.db.session import get_engine

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
