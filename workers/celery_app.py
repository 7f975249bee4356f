"""The Celery application. Messages carry ids only; the database holds the state."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from app.config import Settings, get_settings
from app.logs import configure_logging

# Queues by stage, so GPU workers subscribe only to the stage they serve.
EVENTS_QUEUE = "events"
TRIAGE_QUEUE = "triage"
STAGE_QUEUES = ("sdg", "train", "eval")
CPU_QUEUES = (EVENTS_QUEUE, TRIAGE_QUEUE)
ALL_QUEUES = (*CPU_QUEUES, *STAGE_QUEUES)


def configure_celery(celery: Celery, settings: Settings) -> None:
    """Apply settings to the app; also used when settings change within a process (tests)."""
    celery.conf.update(
        broker_url=settings.broker_url,
        task_default_queue=EVENTS_QUEUE,
        task_ignore_result=True,
        # A task is acknowledged after it ran; a worker killed mid-task leaves it to be
        # redelivered, and the database claim makes sure it is not handled twice.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message at a time per process: no job waits behind a long one on the same worker.
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.enqueue_timeout_seconds,
        broker_transport_options=_transport_options(settings.broker_url),
        task_serializer="json",
        accept_content=["json"],
    )
    # Connection and producer pools are bound to the broker they were made for.
    celery._pool = None
    celery.amqp._producer_pool = None


def _transport_options(broker_url: str) -> dict[str, Any]:
    if broker_url.startswith(("redis://", "rediss://")):
        return {
            # Longer than the longest job, or Redis would hand a running job to a second worker.
            "visibility_timeout": 24 * 3600,
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        }
    if broker_url.startswith("sqla+"):
        # kombu's SQLAlchemy transport hands every transport option to create_engine, so the
        # polling interval (default 1 s) cannot be given here; it is set on the class instead.
        from kombu.transport import sqlalchemy as sqla_transport

        sqla_transport.Transport.polling_interval = 0.2
    return {}


@setup_logging.connect
def _configure_worker_logging(**_: Any) -> None:
    configure_logging(get_settings().log_level)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    # Forked children must not share the parent's database connections.
    from app.db.session import engine_for

    engine_for(get_settings().database_url).dispose(close=False)


celery_app = Celery("labbot", include=["workers.tasks"])
configure_celery(celery_app, get_settings())
