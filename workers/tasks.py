"""Celery tasks. Each receives a database id and reloads everything it needs."""

from __future__ import annotations

import json
import logging
import time

from pydantic import ValidationError

from app import deliveries
from app.db.models import DeliveryStatus, Job, JobKind, Repository
from app.db.session import session_scope
from app.logs import bound_delivery
from bots.payloads import Payload
from bots.registry import EventContext, Ignore
from bots.router import router
from workers.celery_app import EVENTS_QUEUE, TRIAGE_QUEUE, celery_app
from workers.harness import Stage

log = logging.getLogger(__name__)


@celery_app.task(name="labbot.process_delivery", queue=EVENTS_QUEUE)
def process_delivery(delivery_id: int) -> None:
    claimed = deliveries.claim(delivery_id)
    if claimed is None:
        log.info("delivery %s already taken or done; skipping", delivery_id)
        return
    with bound_delivery(claimed.guid):
        started = time.perf_counter()
        status, error = dispatch(claimed)
        deliveries.finish(claimed.id, status, error, time.perf_counter() - started)
        log.info("delivery %s %s.%s -> %s", claimed.id, claimed.event, claimed.action, status.value)


def dispatch(claimed: deliveries.Claimed) -> tuple[DeliveryStatus, str | None]:
    """Run every handler for the delivery. A handler's error marks the delivery failed with
    the error recorded (a redelivery retries it); nothing is dropped."""
    handlers = router.handlers_for(claimed.event, claimed.action)
    if not handlers:
        return DeliveryStatus.ignored, None
    try:
        body = json.loads(claimed.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError("payload is not a JSON object")
        payload = Payload.parse(body)
    except (ValueError, ValidationError) as exc:
        return DeliveryStatus.failed, f"unreadable payload: {_describe(exc)}"
    ctx = EventContext(claimed.id, claimed.guid, claimed.event, claimed.action, payload)
    errors: list[str] = []
    ignored: list[str] = []
    for handler in handlers:
        try:
            handler(ctx)
        except Ignore as reason:
            ignored.append(str(reason))
        except Exception as exc:
            log.exception("handler %s failed", handler.__name__)
            errors.append(f"{handler.__module__}.{handler.__name__}: {_describe(exc)}")
    if errors:
        return DeliveryStatus.failed, "; ".join(errors)
    if len(ignored) == len(handlers):
        return DeliveryStatus.ignored, "; ".join(ignored) or None
    return DeliveryStatus.processed, None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        # Field locations only: the values could be anything a sender put there.
        fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
        return f"missing or invalid fields: {fields}"
    return f"{type(exc).__name__}: {exc}"


@celery_app.task(name="labbot.run_job", queue=TRIAGE_QUEUE)
def run_job(job_id: int) -> None:
    """Every kind of job; it is published to its stage's queue (``app.jobs.QUEUE_OF``)."""
    from workers.harness import run_job as run_in_harness

    # stage_for is looked up here, not bound at import, so a benchmark can swap the stage.
    run_in_harness(job_id, lambda kind: stage_for(kind))


def stage_for(kind: JobKind) -> Stage | None:
    """The code that runs a kind of job; later stages add theirs."""
    if kind is JobKind.triage:
        from bots.triage.runner import triage_stage

        return triage_stage
    if kind is JobKind.sdg:
        from workers.sdg.stage import sdg_stage

        return sdg_stage
    if kind is JobKind.train:
        from workers.train.stage import train_stage

        return train_stage
    if kind is JobKind.bench:
        from workers.eval.stage import bench_stage

        return bench_stage
    if kind is JobKind.precheck:
        from workers.eval.stage import precheck_stage

        return precheck_stage
    if kind is JobKind.build:
        from workers.build.stage import build_stage

        return build_stage
    return None


@celery_app.task(name="labbot.start_scheduled_builds", queue=EVENTS_QUEUE)
def start_scheduled_builds() -> None:
    """Celery beat's turn (``LABBOT_BUILD_SCHEDULE``): build what was merged since last time."""
    from app.builds import start_scheduled_builds as start

    for started in start():
        log.info("scheduled build %s started (job %s)", started.name, started.job_id)


@celery_app.task(name="labbot.sync_job_check", queue=EVENTS_QUEUE)
def sync_job_check(job_id: int) -> None:
    """A job was ended outside its run (stopped by the reconciler): post what became of it."""
    from app.config import get_settings
    from app.github.factory import github_port
    from bots.job_checks import sync_check
    from bots.pipeline import after_job

    with session_scope() as session:
        job = session.get(Job, job_id)
        repository = session.get(Repository, job.repository_id) if job else None
    if job is None or repository is None:
        return
    if job.kind not in (JobKind.triage, JobKind.build):  # neither has a job check run
        settings = get_settings()
        sync_check(
            github_port(settings, repository.installation_id), repository.full_name, job, settings
        )
    after_job(job_id)


JOB_TASKS = dict.fromkeys(JobKind, run_job)
