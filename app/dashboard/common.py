"""What the dashboard's pages share: filter parsing (lenient on pages, where a bad value is
ignored with a message; the JSON API validates strictly instead), pagination, links that keep
the filters, the HTML error page and the template filters for times and durations."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from sqlalchemy import Connection, Row, Select
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.dashboard.schemas import aware
from app.dashboard.templating import templates
from app.db.models import utcnow
from app.db.session import get_engine
from bots import messages

# Rows and statements of any shape (the dashboard selects columns, not entities).
AnyRow: TypeAlias = Row[*tuple[Any, ...]]
AnySelect: TypeAlias = Select[*tuple[Any, ...]]

PER_PAGE = 50  # the most rows a page or an API call returns
MAX_FILTER_LENGTH = 200  # longer free-text filter values are ignored (no column is wider)


@contextmanager
def reading() -> Iterator[Connection]:
    """A connection for a page's reads, in autocommit: no BEGIN and ROLLBACK round trips
    around them. Each statement sees what was committed when it started, as it would in a
    READ COMMITTED transaction anyway."""
    with get_engine().connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


@dataclass(frozen=True)
class Paging:
    page: int = 1
    per_page: int = PER_PAGE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def read(
        self, conn: Connection, count: AnySelect, rows: AnySelect
    ) -> tuple[int, list[AnyRow], bool]:
        """The total, this page's rows and whether a next page follows: two queries, the
        second asking for one row more than a page holds."""
        total = conn.execute(count).scalar_one()
        found = conn.execute(rows.limit(self.per_page + 1).offset(self.offset)).all()
        return total, list(found[: self.per_page]), len(found) > self.per_page


class Problems(list[str]):
    """Messages about filter values a page ignored (shown above its table)."""


def choice(
    params: QueryParams | Mapping[str, str],
    name: str,
    choices: Iterable[str],
    problems: Problems,
    default: str | None = None,
) -> str | None:
    value = (params.get(name) or "").strip()
    if not value:
        return default
    allowed = list(choices)
    if value in allowed:
        return value
    problems.append(
        messages.DASHBOARD_FILTER_UNKNOWN.format(
            name=name, value=value[:MAX_FILTER_LENGTH], choices=", ".join(allowed)
        )
    )
    return default


def text(params: QueryParams | Mapping[str, str], name: str, problems: Problems) -> str | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    if len(value) > MAX_FILTER_LENGTH:
        problems.append(messages.DASHBOARD_FILTER_TOO_LONG.format(name=name))
        return None
    return value


def moment(
    params: QueryParams | Mapping[str, str], name: str, problems: Problems
) -> datetime | None:
    """A date or date and time (ISO 8601, as a datetime-local input sends it); UTC unless it
    carries an offset."""
    value = (params.get(name) or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        problems.append(
            messages.DASHBOARD_FILTER_BAD_TIME.format(name=name, value=value[:MAX_FILTER_LENGTH])
        )
        return None
    return utc(parsed)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def paging(params: QueryParams | Mapping[str, str], problems: Problems) -> Paging:
    value = (params.get("page") or "").strip()
    if not value:
        return Paging()
    if value.isdigit() and 1 <= int(value) <= 1_000_000:
        return Paging(int(value))
    problems.append(messages.DASHBOARD_FILTER_BAD_PAGE.format(value=value[:MAX_FILTER_LENGTH]))
    return Paging()


def link(path: str, params: Mapping[str, Any], **changes: Any) -> str:
    """``path`` with the page's filters (empty ones left out), some of them changed."""
    merged = {**params, **changes}
    query = {k: _param(v) for k, v in merged.items() if v not in (None, "")}
    if query.get("page") == "1":
        del query["page"]
    return f"{path}?{urlencode(query)}" if query else path


def _param(value: Any) -> str:
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%dT%H:%M:%S")
    return str(value)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    end_at = aware(end) or utcnow()
    start_at = aware(start)
    assert start_at is not None
    return max((end_at - start_at).total_seconds(), 0.0)


def not_found(request: Request, message: str) -> HTMLResponse:
    """The plain 404 page of the dashboard (the JSON API answers 404 with a detail)."""
    return templates.TemplateResponse(request, "error.html", {"message": message}, status_code=404)


def _is_api(request: Request) -> bool:
    return request.url.path == "/api" or request.url.path.startswith("/api/")


async def _page_not_found(request: Request, exc: Exception) -> Response:
    """An address no page serves gets the dashboard's 404 page; the JSON API keeps FastAPI's
    JSON answers (`{"detail": ...}`)."""
    if isinstance(exc, RequestValidationError):
        if _is_api(request):
            return await request_validation_exception_handler(request, exc)
        # A page's query values are read leniently by the page itself, so what fails here is
        # the path (/jobs/not-a-number): no such page.
        return not_found(request, messages.PAGE_NOT_FOUND)
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 404 or _is_api(request):
        return await http_exception_handler(request, exc)
    said = exc.detail if isinstance(exc.detail, str) and exc.detail != "Not Found" else None
    return not_found(request, said or messages.PAGE_NOT_FOUND)


def install_error_pages(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _page_not_found)
    app.add_exception_handler(RequestValidationError, _page_not_found)


def when(value: datetime | None) -> str:
    """A time as the pages show it: UTC, to the second."""
    if value is None:
        return ""
    return utc(value).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """3 s, 4m 05s, 2h 03m, 3d 04h."""
    if seconds is None:
        return ""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def plain(value: Any) -> str:
    """A score or any other JSON value as short text (builds' scores are free-form)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "–"
    return str(value)


def ticks(value: str | None) -> Markup:
    """A sentence from bots.messages with its `code` spans as <code>: escaped first, so
    whatever the sentence carries (a stage name, a label) stays text."""
    escaped = str(escape(value or ""))
    return Markup(_TICKS.sub(r"<code>\1</code>", escaped))


_TICKS = re.compile(r"`([^`<>]+)`")

templates.env.filters["when"] = when
templates.env.filters["ticks"] = ticks
templates.env.filters["duration"] = duration
templates.env.filters["plain"] = plain
templates.env.globals["messages"] = messages
templates.env.globals["link"] = link
