"""Operator endpoints: delivery records, triage runs, health, readiness, metrics. (The
dashboard's JSON API, /api/jobs/{id} included, is in app/dashboard/api.py.)"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select, text

from app import deliveries
from app.db.models import TriageFinding, TriageRun
from app.db.session import get_engine
from bots import messages

log = logging.getLogger(__name__)
router = APIRouter()
service_router = APIRouter()


@router.get("/api/deliveries/{guid}")
def get_delivery(guid: str) -> dict[str, Any]:
    record = deliveries.get_by_guid(guid)
    if record is None:
        raise HTTPException(status_code=404, detail=messages.DELIVERY_NOT_FOUND)
    return record


@router.get("/api/triage-runs/{run_id}")
def get_triage_run(run_id: int) -> dict[str, Any]:
    """Every finding of a triage run (the check run shows at most a few hundred)."""
    with get_engine().connect() as conn:
        run = conn.execute(
            select(
                TriageRun.id,
                TriageRun.head_sha,
                TriageRun.status,
                TriageRun.conclusion,
                TriageRun.summary,
                TriageRun.errors,
                TriageRun.warnings,
                TriageRun.created_at,
            ).where(TriageRun.id == run_id)
        ).one_or_none()
        if run is None:
            raise HTTPException(status_code=404, detail=messages.TRIAGE_RUN_NOT_FOUND)
        findings = conn.execute(
            select(
                TriageFinding.path,
                TriageFinding.line,
                TriageFinding.column,
                TriageFinding.severity,
                TriageFinding.rule,
                TriageFinding.message,
                TriageFinding.hint,
            )
            .where(TriageFinding.triage_run_id == run_id)
            .order_by(TriageFinding.path, TriageFinding.line, TriageFinding.column)
        ).all()
    return {**dict(run._mapping), "findings": [dict(f._mapping) for f in findings]}


@service_router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@service_router.get("/readyz")
def readyz(response: Response) -> dict[str, str]:
    checks = {"database": _database_ready(), "broker": _broker_ready()}
    if not all(value == "ok" for value in checks.values()):
        response.status_code = 503
    return checks


def _database_ready() -> str:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        return "unreachable"
    return "ok"


def _broker_ready() -> str:
    from workers.celery_app import celery_app

    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        log.warning("readiness: broker unreachable: %s", type(exc).__name__)
        return "unreachable"
    return "ok"


@service_router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
