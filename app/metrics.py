"""Prometheus metrics. Counters of what this API process took in, plus figures read from the
database and the broker at scrape time, so every process reports the same truth."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, case, func, select

from app.db.models import FINAL_JOB_STATES, Delivery, Job
from app.db.session import get_engine

log = logging.getLogger(__name__)

WEBHOOKS_TAKEN_IN = Counter(
    "labbot_webhooks_received_total",
    "Webhook requests answered by this process, by event, action and outcome.",
    ["event", "action", "outcome"],
)
WEBHOOK_ACK_SECONDS = Histogram(
    "labbot_webhook_ack_seconds",
    "Time from request to acknowledgement on the webhook endpoint.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)
HANDLER_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Jobs last from seconds (triage) to most of a day (training, builds).
JOB_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, *(3600.0 * h for h in (1, 2, 4, 8, 24)))


def _job_seconds(dialect: str) -> ColumnElement[Any]:
    """A finished job's run time in SQL, so a scrape aggregates in the database."""
    if dialect == "postgresql":
        return func.extract("epoch", Job.finished_at - Job.started_at)
    return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0


class DatabaseCollector(Collector):
    """Delivery counts by status, handler latency and job states, from the database."""

    def collect(self) -> Iterable[GaugeMetricFamily | HistogramMetricFamily]:
        try:
            yield from self._collect()
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("metrics: database unavailable: %s", type(exc).__name__)

    def _collect(self) -> Iterable[GaugeMetricFamily | HistogramMetricFamily]:
        deliveries = GaugeMetricFamily(
            "labbot_deliveries",
            "Recorded deliveries by event, action and status.",
            labels=["event", "action", "status"],
        )
        latency = HistogramMetricFamily(
            "labbot_handler_seconds",
            "Worker handler time per delivery, by event.",
            labels=["event"],
        )
        jobs = GaugeMetricFamily("labbot_jobs", "Jobs by kind and state.", labels=["kind", "state"])
        job_seconds = HistogramMetricFamily(
            "labbot_job_seconds",
            "Run time of finished jobs (started to finished), by kind and final state.",
            labels=["kind", "state"],
        )
        with get_engine().connect() as conn:
            for event, action, status, count in conn.execute(
                select(Delivery.event, Delivery.action, Delivery.status, func.count()).group_by(
                    Delivery.event, Delivery.action, Delivery.status
                )
            ):
                deliveries.add_metric([event, action or "", str(status)], count)
            bucket_columns = [
                func.sum(case((Delivery.handler_seconds <= b, 1), else_=0)) for b in HANDLER_BUCKETS
            ]
            for event, total, count, *buckets in conn.execute(
                select(
                    Delivery.event,
                    func.coalesce(func.sum(Delivery.handler_seconds), 0.0),
                    func.count(),
                    *bucket_columns,
                )
                .where(Delivery.handler_seconds.is_not(None))
                .group_by(Delivery.event)
            ):
                pairs = [
                    (str(b), int(n or 0)) for b, n in zip(HANDLER_BUCKETS, buckets, strict=True)
                ]
                latency.add_metric([event], [*pairs, ("+Inf", int(count))], float(total))
            for kind, state, count in conn.execute(
                select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
            ):
                jobs.add_metric([str(kind), str(state)], count)
            seconds = _job_seconds(conn.dialect.name)
            job_bucket_columns = [func.sum(case((seconds <= b, 1), else_=0)) for b in JOB_BUCKETS]
            for kind, state, total, count, *buckets in conn.execute(
                select(
                    Job.kind,
                    Job.state,
                    func.coalesce(func.sum(seconds), 0.0),
                    func.count(),
                    *job_bucket_columns,
                )
                .where(
                    Job.state.in_(FINAL_JOB_STATES),
                    Job.started_at.is_not(None),
                    Job.finished_at.is_not(None),
                )
                .group_by(Job.kind, Job.state)
            ):
                pairs = [(str(b), int(n or 0)) for b, n in zip(JOB_BUCKETS, buckets, strict=True)]
                job_seconds.add_metric(
                    [str(kind), str(state)], [*pairs, ("+Inf", int(count))], float(total)
                )
        yield deliveries
        yield latency
        yield jobs
        yield job_seconds


class QueueDepthCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        from workers.celery_app import ALL_QUEUES, celery_app

        depth = GaugeMetricFamily(
            "labbot_queue_depth", "Messages waiting per queue.", labels=["queue"]
        )
        try:
            with celery_app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1)
                channel = conn.default_channel
                for queue in ALL_QUEUES:
                    try:
                        declared = channel.queue_declare(queue=queue, passive=True)
                        depth.add_metric([queue], declared.message_count)
                    except conn.channel_errors:  # never declared yet: nothing waiting
                        depth.add_metric([queue], 0)
        except Exception as exc:
            log.warning("metrics: broker unavailable: %s", type(exc).__name__)
            return
        yield depth


_registered = False


def register_collectors() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(DatabaseCollector())
        REGISTRY.register(QueueDepthCollector())
        _registered = True
