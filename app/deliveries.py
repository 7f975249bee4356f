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

from sqlalchemy import Connection, select, text, update
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


def _insert_ignoring_duplicates(conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert rows whose GUID is new; returns {guid: id} of those inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # One statement compiled once; SQLAlchemy's "insertmanyvalues" sends the rows in batches.
    stmt = (
        dialect.insert(Delivery)
        .on_conflict_do_nothing(index_elements=["guid"])
        .returning(Delivery.guid, Delivery.id)
    )
    return {row.guid: row.id for row in conn.execute(stmt, rows)}


def _retry_if_failed(conn: Connection, guid: str, now: datetime) -> tuple[int, bool]:
    """A GUID seen before: (id, whether to publish it again). Only a delivery whose earlier
    attempt failed is tried again (GitHub's redelivery keeps the GUID)."""
    existing_id, existing_status = conn.execute(
        select(Delivery.id, Delivery.status).where(Delivery.guid == guid)
    ).one()
    if existing_status is not DeliveryStatus.failed:
        return existing_id, False
    retried = conn.execute(
        update(Delivery)
        .where(Delivery.id == existing_id, Delivery.status == DeliveryStatus.failed)
        .values(status=DeliveryStatus.received, updated_at=now)
    ).rowcount
    return existing_id, retried == 1


def record_batch(items: list[tuple[Incoming, DeliveryStatus]]) -> list[tuple[int, bool]]:
    """Store deliveries in one transaction. Returns (id, needs_publish) per item."""
    now = _now()
    rows = [
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
        }
        for incoming, status in items
    ]
    results: list[tuple[int, bool]] = []
    with get_engine().begin() as conn:
        inserted = _insert_ignoring_duplicates(conn, rows)
        for incoming, status in items:
            new_id = inserted.pop(incoming.guid, None)  # pop: a GUID twice in one batch
            if new_id is not None:
                results.append((new_id, status is DeliveryStatus.received))
            else:
                results.append(_retry_if_failed(conn, incoming.guid, now))
    return results


def publish(deliveries: list[tuple[int, str]]) -> list[int]:
    """Hand ids to the broker, in order, through one producer. Returns the ids the broker
    took; on a broker failure the rest stay 'received' and the sweeper publishes them later,
    so an outage never loses a delivery."""
    from workers.celery_app import celery_app
    from workers.tasks import process_delivery

    published: list[int] = []
    try:
        with celery_app.producer_or_acquire() as producer:
            for delivery_id, guid in deliveries:
                process_delivery.apply_async(
                    args=[delivery_id], task_id=guid, retry=False, producer=producer
                )
                published.append(delivery_id)
    except Exception as exc:  # any broker failure: the rows are safe, the sweeper retries
        log.warning(
            "broker took %d of %d deliveries: %s",
            len(published),
            len(deliveries),
            type(exc).__name__,
        )
    return published


def mark_queued(delivery_ids: list[int]) -> None:
    if not delivery_ids:
        return
    with get_engine().begin() as conn:
        if conn.dialect.name == "postgresql":
            # Losing this update in a crash only means the sweeper publishes again, which the
            # claim makes harmless; so it need not wait for a disk flush.
            conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
        conn.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.received)
            .values(status=DeliveryStatus.queued, updated_at=_now())
        )


def take_in_batch(items: list[tuple[Incoming, DeliveryStatus]]) -> list[tuple[int, Outcome]]:
    """The acknowledgement path: record in one commit, then publish what needs it."""
    recorded = record_batch(items)
    to_publish = [
        (delivery_id, incoming.guid)
        for (incoming, _), (delivery_id, needs_publish) in zip(items, recorded, strict=True)
        if needs_publish
    ]
    published = set(publish(to_publish))
    mark_queued(sorted(published))
    outcomes: list[tuple[int, Outcome]] = []
    for (_, status), (delivery_id, needs_publish) in zip(items, recorded, strict=True):
        if needs_publish:
            outcome = Outcome.queued if delivery_id in published else Outcome.received
        elif status is DeliveryStatus.received:
            outcome = Outcome.duplicate
        else:
            outcome = Outcome(status.value)
        outcomes.append((delivery_id, outcome))
    return outcomes


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
        published = publish([(delivery_id, guid) for delivery_id, guid in stale])
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
