"""Durable webhook deliveries: record, publish after commit, claim once, finish, sweep.

The lifecycle is received -> queued -> processing -> processed | ignored | failed. A delivery is
committed before its id is published, so a worker always finds the row; the worker's claim is a
conditional UPDATE, so a message delivered twice is handled once; a row left 'received'
(broker down at the time) is published again by the sweeper.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from app.db.models import Delivery, DeliveryStatus
from app.db.session import get_engine

log = logging.getLogger(__name__)
ERROR_MAX_CHARS = 2000


class Outcome(enum.StrEnum):
    queued = "queued"  # recorded and published
    received = "received"  # recorded; the broker did not take it, the sweeper will
    duplicate = "duplicate"  # this GUID was already taken in; nothing to do
    ignored = "ignored"  # recorded as ignored (not an event labbot acts on)
    processed = "processed"  # handled inline (ping)


@dataclass(frozen=True)
class Incoming:
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    repository: str | None
    body: bytes | None


@dataclass(frozen=True)
class Claimed:
    id: int
    guid: str
    event: str
    action: str | None
    body: bytes | None
    attempts: int


def _now() -> datetime:
    return datetime.now(UTC)


def _insert_ignoring_duplicates(conn: Connection, values: dict[str, Any]) -> int | None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(Delivery)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["guid"])
        .returning(Delivery.id)
    )
    return conn.execute(stmt).scalar_one_or_none()


def record(incoming: Incoming, status: DeliveryStatus) -> tuple[int, bool]:
    """Store a delivery. Returns (id, needs_publish). A GUID seen before is not stored again;
    it needs publishing only when its earlier attempt failed (a redelivery retries it)."""
    now = _now()
    with get_engine().begin() as conn:
        new_id = _insert_ignoring_duplicates(
            conn,
            {
                "guid": incoming.guid,
                "event": incoming.event,
                "action": incoming.action,
                "installation_id": incoming.installation_id,
                "repository": incoming.repository,
                "status": status,
                "attempts": 0,
                "body": incoming.body,
                "received_at": now,
                "updated_at": now,
                "finished_at": now if status is not DeliveryStatus.received else None,
            },
        )
        if new_id is not None:
            return new_id, status is DeliveryStatus.received
        existing_id, existing_status = conn.execute(
            select(Delivery.id, Delivery.status).where(Delivery.guid == incoming.guid)
        ).one()
        if existing_status is DeliveryStatus.failed:
            retried = conn.execute(
                update(Delivery)
                .where(Delivery.id == existing_id, Delivery.status == DeliveryStatus.failed)
                .values(status=DeliveryStatus.received, updated_at=now)
            ).rowcount
            return existing_id, retried == 1
        return existing_id, False


def publish(delivery_id: int, guid: str) -> bool:
    """Hand the id to the broker. False when the broker did not take it (the row stays
    'received' and the sweeper publishes it later): an outage never loses a delivery."""
    from workers.tasks import process_delivery

    try:
        process_delivery.apply_async(args=[delivery_id], task_id=guid, retry=False)
    except Exception as exc:  # any broker failure: the row is safe, the sweeper retries
        log.warning("broker did not take delivery %s: %s", delivery_id, type(exc).__name__)
        return False
    return True


def mark_queued(delivery_id: int) -> None:
    with get_engine().begin() as conn:
        if conn.dialect.name == "postgresql":
            # Losing this update in a crash only means the sweeper publishes again, which the
            # claim makes harmless; so it need not wait for a disk flush.
            conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
        conn.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.received)
            .values(status=DeliveryStatus.queued, updated_at=_now())
        )


def take_in(incoming: Incoming, status: DeliveryStatus) -> tuple[int, Outcome]:
    """Record, then publish after the commit. The whole acknowledgement path of the webhook."""
    delivery_id, needs_publish = record(incoming, status)
    if not needs_publish:
        if status is DeliveryStatus.received:
            return delivery_id, Outcome.duplicate
        return delivery_id, Outcome(status.value)
    if publish(delivery_id, incoming.guid):
        mark_queued(delivery_id)
        return delivery_id, Outcome.queued
    return delivery_id, Outcome.received


def claim(delivery_id: int) -> Claimed | None:
    """Take a delivery for processing, once. None when another worker has it or it is done."""
    now = _now()
    with get_engine().begin() as conn:
        claimed = conn.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.status.in_([DeliveryStatus.received, DeliveryStatus.queued]),
            )
            .values(
                status=DeliveryStatus.processing,
                attempts=Delivery.attempts + 1,
                started_at=now,
                updated_at=now,
                error=None,
            )
            .returning(
                Delivery.id,
                Delivery.guid,
                Delivery.event,
                Delivery.action,
                Delivery.body,
                Delivery.attempts,
            )
        ).one_or_none()
    if claimed is None:
        return None
    return Claimed(*claimed)


def finish(
    delivery_id: int, status: DeliveryStatus, error: str | None, handler_seconds: float
) -> None:
    with get_engine().begin() as conn:
        conn.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(
                status=status,
                error=error[:ERROR_MAX_CHARS] if error else None,
                finished_at=_now(),
                updated_at=_now(),
                handler_seconds=handler_seconds,
            )
        )


def sweep(grace_seconds: float, lease_seconds: float, limit: int = 500) -> int:
    """Publish deliveries the broker never took, and release ones whose worker vanished.
    Safe to run from several processes at once: rows are locked with SKIP LOCKED."""
    now = _now()
    with get_engine().begin() as conn:
        conn.execute(
            update(Delivery)
            .where(
                Delivery.status == DeliveryStatus.processing,
                Delivery.started_at < now - timedelta(seconds=lease_seconds),
            )
            .values(status=DeliveryStatus.received, updated_at=now)
        )
        stale = conn.execute(
            select(Delivery.id, Delivery.guid)
            .where(
                Delivery.status == DeliveryStatus.received,
                Delivery.updated_at < now - timedelta(seconds=grace_seconds),
            )
            .order_by(Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        published = []
        for delivery_id, guid in stale:
            if not publish(delivery_id, guid):
                break  # broker still down: try again next round
            published.append(delivery_id)
        if published:
            conn.execute(
                update(Delivery)
                .where(Delivery.id.in_(published), Delivery.status == DeliveryStatus.received)
                .values(status=DeliveryStatus.queued, updated_at=now)
            )
    if published:
        log.info("sweeper published %d deliveries", len(published))
    return len(published)


def get_by_guid(guid: str) -> dict[str, Any] | None:
    with get_engine().connect() as conn:
        row = conn.execute(
            select(
                Delivery.guid,
                Delivery.event,
                Delivery.action,
                Delivery.status,
                Delivery.attempts,
                Delivery.error,
                Delivery.installation_id,
                Delivery.repository,
                Delivery.received_at,
                Delivery.updated_at,
                Delivery.started_at,
                Delivery.finished_at,
                Delivery.handler_seconds,
            ).where(Delivery.guid == guid)
        ).one_or_none()
    return dict(row._mapping) if row is not None else None


def counts_by_status() -> list[tuple[str, str | None, str, int]]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            select(Delivery.event, Delivery.action, Delivery.status, func.count()).group_by(
                Delivery.event, Delivery.action, Delivery.status
            )
        ).all()
    return [(event, action, str(status), count) for event, action, status, count in rows]
