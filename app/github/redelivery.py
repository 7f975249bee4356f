"""Recover deliveries GitHub could not hand over (labbot down, network cut). GitHub does not
retry on its own; it keeps three days of delivery attempts for the App. This lists them and asks
GitHub to redeliver every GUID that never got a 2xx and that labbot has no record of. The
redelivery keeps its GUID, so the webhook endpoint's de-duplication makes a repeat harmless."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from sqlalchemy import select

from app.config import Settings
from app.db.models import Delivery
from app.db.session import get_engine
from app.github.auth import app_context
from app.github.client import Kind, RetryPolicy, Transport

log = logging.getLogger(__name__)
GITHUB_KEEPS = timedelta(days=3)
PAGE_SIZE = 100


@dataclass
class RedeliveryReport:
    examined: int = 0
    redelivered: list[str] = field(default_factory=list)  # GUIDs


def redeliver_missed(settings: Settings, window: timedelta = GITHUB_KEEPS) -> RedeliveryReport:
    """App mode only: the hook deliveries API needs the App's JWT."""
    context = app_context(settings)
    requester = context.integration.requester
    transport = Transport(
        RetryPolicy.from_settings(settings), settings.github_write_interval_seconds
    )
    cutoff = datetime.now(UTC) - window

    attempts = _attempts_since(transport, requester, cutoff)
    report = RedeliveryReport(examined=len(attempts))
    never_ok = _guids_never_delivered(attempts)
    known = _guids_on_record(list(never_ok))
    for guid, attempt_id in never_ok.items():
        if guid in known:
            continue
        path = f"/app/hook/deliveries/{attempt_id}/attempts"

        def redeliver(path: str = path) -> Any:
            return requester.requestJsonAndCheck("POST", path)

        transport.run(Kind.create, redeliver, f"POST {path}")
        report.redelivered.append(guid)
    if report.redelivered:
        log.info("asked GitHub to redeliver %d missed deliveries", len(report.redelivered))
    return report


def _attempts_since(transport: Transport, requester: Any, cutoff: datetime) -> list[dict[str, Any]]:
    """Delivery attempts, newest first, until the cutoff (cursor pagination)."""
    attempts: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        parameters: dict[str, Any] = {"per_page": PAGE_SIZE}
        if cursor:
            parameters["cursor"] = cursor

        def list_page(parameters: dict[str, Any] = parameters) -> tuple[dict[str, Any], Any]:
            headers, data = requester.requestJsonAndCheck(
                "GET", "/app/hook/deliveries", parameters=parameters
            )
            return dict(headers), data

        headers, page = transport.run_read(list_page, "GET /app/hook/deliveries")
        if not isinstance(page, list) or not page:
            return attempts
        for attempt in page:
            delivered_at = _parse_time(attempt.get("delivered_at"))
            if delivered_at is not None and delivered_at < cutoff:
                return attempts
            attempts.append(attempt)
        cursor = _next_cursor(headers.get("link") or headers.get("Link") or "")
        if cursor is None:
            return attempts


def _guids_never_delivered(attempts: list[dict[str, Any]]) -> dict[str, int]:
    """GUID -> the newest attempt id, for GUIDs none of whose attempts got a 2xx."""
    ok: set[str] = set()
    newest: dict[str, int] = {}
    for attempt in attempts:
        guid = attempt.get("guid")
        if not isinstance(guid, str):
            continue
        status_code = attempt.get("status_code")
        if isinstance(status_code, int) and 200 <= status_code < 300:
            ok.add(guid)
        newest.setdefault(guid, int(attempt["id"]))
    return {guid: attempt_id for guid, attempt_id in newest.items() if guid not in ok}


def _guids_on_record(guids: list[str]) -> set[str]:
    if not guids:
        return set()
    with get_engine().connect() as conn:
        return set(conn.scalars(select(Delivery.guid).where(Delivery.guid.in_(guids))))


def _next_cursor(link: str) -> str | None:
    for part in link.split(","):
        if 'rel="next"' in part:
            url = part[part.find("<") + 1 : part.find(">")]
            values = parse_qs(urlparse(url).query).get("cursor")
            return values[0] if values else None
    return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
