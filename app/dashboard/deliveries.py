"""Webhook deliveries: what GitHub sent, how handling it went, filterable by status and event.
The query functions serve the pages and the JSON API alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection, func, select
from sqlalchemy.sql.elements import ColumnElement

from app.dashboard.common import AnyRow, AnySelect, Paging, Problems, choice, paging, reading, text
from app.dashboard.schemas import DeliveryPage, DeliveryRow, aware, first_line
from app.dashboard.templating import templates
from app.db.models import Delivery, DeliveryStatus

router = APIRouter()


@dataclass(frozen=True)
class DeliveryFilters:
    status: DeliveryStatus | None = None
    event: str | None = None  # "pull_request" or "pull_request.opened"

    @classmethod
    def parse(cls, params: Mapping[str, str], problems: Problems) -> DeliveryFilters:
        status = choice(params, "status", [s.value for s in DeliveryStatus], problems)
        return cls(
            status=DeliveryStatus(status) if status else None,
            event=text(params, "event", problems),
        )

    def params(self) -> dict[str, Any]:
        return {"status": self.status.value if self.status else None, "event": self.event}

    def where(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.status is not None:
            conditions.append(Delivery.status == self.status)
        if self.event is not None:
            event, dot, action = self.event.partition(".")
            conditions.append(Delivery.event == event)
            if dot:
                conditions.append(Delivery.action == action)
        return conditions


def delivery_select() -> AnySelect:
    # Never the body: it is the sender's text, and large.
    return select(
        Delivery.id,
        Delivery.guid,
        Delivery.event,
        Delivery.action,
        Delivery.repository,
        Delivery.status,
        Delivery.attempts,
        Delivery.received_at,
        Delivery.handler_seconds,
        Delivery.error,
    )


def delivery_row(row: AnyRow) -> DeliveryRow:
    return DeliveryRow(
        id=row.id,
        guid=row.guid,
        event=row.event,
        action=row.action,
        repository=row.repository,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        received_at=aware(row.received_at),
        handler_seconds=row.handler_seconds,
        error_line=first_line(row.error),
    )


def list_deliveries(conn: Connection, filters: DeliveryFilters, page: Paging) -> DeliveryPage:
    """A page of deliveries, newest first: two queries (the count and the rows)."""
    where = filters.where()
    # With a status, the (status, received_at) index gives the order; without, the id does.
    order = (
        (Delivery.received_at.desc(), Delivery.id.desc())
        if filters.status is not None
        else (Delivery.id.desc(),)
    )
    total, rows, has_next = page.read(
        conn,
        select(func.count(Delivery.id)).where(*where),
        delivery_select().where(*where).order_by(*order),
    )
    return DeliveryPage(
        page=page.page,
        per_page=page.per_page,
        total=total,
        has_next=has_next,
        items=[delivery_row(row) for row in rows],
    )


def recent_deliveries(
    conn: Connection, status: DeliveryStatus | None = None, limit: int = 10
) -> list[DeliveryRow]:
    """The latest deliveries (of one status): one query."""
    return [delivery_row(row) for row in conn.execute(_recent(status, limit))]


@lru_cache(maxsize=16)
def _recent(status: DeliveryStatus | None, limit: int) -> AnySelect:
    """Built once per (status, limit): the overview runs these every few seconds."""
    query = delivery_select()
    if status is not None:
        query = query.where(Delivery.status == status).order_by(
            Delivery.received_at.desc(), Delivery.id.desc()
        )
    else:
        query = query.order_by(Delivery.id.desc())
    return query.limit(limit)


@router.get("/deliveries", response_class=HTMLResponse)
def deliveries_page(request: Request) -> HTMLResponse:
    """Recent webhook deliveries, filterable by status and event."""
    problems = Problems()
    filters = DeliveryFilters.parse(request.query_params, problems)
    page = paging(request.query_params, problems)
    with reading() as conn:
        result = list_deliveries(conn, filters, page)
    context = {
        "result": result,
        "filters": filters,
        "params": filters.params(),
        "problems": problems,
        "statuses": [s.value for s in DeliveryStatus],
    }
    return templates.TemplateResponse(request, "deliveries.html", context)
