"""The Celery application. Messages carry ids only; the database holds the state."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_process_init, worker_ready, worker_shutdown

from app.config import Settings, get_settings
from app.logs import configure_logging

log = logging.getLogger(__name__)

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
        broker_transport_options=_transport_options(settings),
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        beat_schedule=_beat_schedule(settings),
    )
    # Connection and producer pools are bound to the broker they were made for.
    celery._pool = None
    celery.amqp._producer_pool = None


def _beat_schedule(settings: Settings) -> dict[str, Any]:
    """What `labbot beat` starts: the scheduled model builds."""
    from app.builds import schedule

    when = schedule(settings)
    if when is None:
        return {}
    return {
        "scheduled-builds": {
            "task": "labbot.start_scheduled_builds",
            "schedule": when,
            "options": {"queue": EVENTS_QUEUE},
        }
    }


def _transport_options(settings: Settings) -> dict[str, Any]:
    broker_url = settings.broker_url
    if broker_url.startswith(("redis://", "rediss://")):
        return {
            # Longer than the longest job (checked in Settings), or Redis would hand a running
            # job to a second worker; the job's lease in the database guards that case anyway.
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            # Look for messages past their timeout every 5 s (kombu's default works out at
            # 100 s); one small Redis query per worker.
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
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


_beating = threading.Event()


@worker_ready.connect
def _report_queues(sender: Any = None, **_: Any) -> None:
    """Tell the database, while this worker runs, which queues it serves (a job for a queue
    nobody serves fails at once instead of waiting forever)."""
    from app.jobs import record_worker

    hostname = str(sender.hostname)
    queues = sorted(sender.app.amqp.queues.consume_from)
    interval = get_settings().worker_heartbeat_seconds

    def beat() -> None:
        while True:
            try:
                record_worker(hostname, queues)
            except Exception as exc:  # the database may be briefly away; the next beat retries
                log.warning("could not report worker %s: %s", hostname, type(exc).__name__)
            if _beating.wait(interval):
                return

    threading.Thread(target=beat, name="labbot-worker-beat", daemon=True).start()


@worker_shutdown.connect
def _forget_queues(sender: Any = None, **_: Any) -> None:
    from app.jobs import forget_worker

    _beating.set()
    try:
        forget_worker(str(sender.hostname))
    except Exception as exc:
        log.warning("could not remove worker record: %s", type(exc).__name__)
