"""labbot's API and a real Celery worker as separate processes on PostgreSQL and Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db.models import PullRequest
from app.db.session import get_engine
from tests.conftest import (
    Backend,
    Process,
    delivery_status,
    free_port,
    json_lines,
    payload,
    wait_http_ok,
    wait_until,
    webhook_headers,
)

pytestmark = pytest.mark.e2e

PR_OPENED = payload("pull_request", "opened.payload.json")
PR_SYNC = payload("pull_request", "synchronize.payload.json")


@pytest.fixture
def service(
    postgres_backend: Backend, start_process: Callable[..., Process]
) -> tuple[str, Process, Process]:
    port = free_port()
    api = start_process(["serve", "--port", str(port), "--no-worker"], postgres_backend.env, "api")
    worker = start_process(
        ["worker", "--queues", "events,triage", "--concurrency", "2"],
        postgres_backend.env,
        "worker",
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{base_url}/healthz", process=api)
    return base_url, api, worker


def post(base_url: str, body: bytes, event: str, guid: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{base_url}/webhooks/github", content=body, headers=webhook_headers(body, event, guid)
    )


def wait_status(base_url: str, guid: str, *wanted: str) -> dict[str, Any]:
    return wait_until(
        lambda: (
            (record := delivery_status(base_url, guid)) and record["status"] in wanted and record
        ),
        timeout=60,
    )


def test_delivery_reaches_processed_once_with_the_guid_in_both_logs(
    service: tuple[str, Process, Process],
) -> None:
    base_url, api, worker = service
    guid = str(uuid.uuid4())
    assert post(base_url, PR_OPENED, "pull_request", guid).status_code == 202
    record = wait_status(base_url, guid, "processed")
    assert record["attempts"] == 1
    assert record["error"] is None
    with get_engine().connect() as conn:
        pull = conn.execute(select(PullRequest)).one()
    assert (pull.number, pull.author, pull.head_sha) == (
        2,
        "Codertocat",
        "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    )
    # A redelivery of a processed GUID is not processed again.
    assert post(base_url, PR_OPENED, "pull_request", guid).json()["status"] == "duplicate"
    assert wait_status(base_url, guid, "processed")["attempts"] == 1
    # Structured JSON logs carry the GUID on both sides.
    wait_until(lambda: any(r.get("delivery") == guid for r in json_lines(worker.output())), 10)
    api_lines = [r for r in json_lines(api.output()) if r.get("delivery") == guid]
    worker_lines = [r for r in json_lines(worker.output()) if r.get("delivery") == guid]
    assert worker_lines, worker.output()[-2000:]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in worker_lines + api_lines)


def test_handler_error_marks_the_delivery_failed_and_a_redelivery_retries_it(
    service: tuple[str, Process, Process],
) -> None:
    base_url, _, _ = service
    body = json.loads(PR_OPENED)
    del body["pull_request"]["head"]  # a payload the handler cannot use
    raw = json.dumps(body).encode()
    guid = str(uuid.uuid4())
    assert post(base_url, raw, "pull_request", guid).status_code == 202
    failed = wait_status(base_url, guid, "failed")
    assert "pull_request.head" in failed["error"]
    assert "Traceback" not in failed["error"]
    assert failed["attempts"] == 1
    # GitHub's redelivery keeps the GUID: the failed delivery is tried again.
    assert post(base_url, raw, "pull_request", guid).json()["status"] == "queued"
    wait_until(lambda: (delivery_status(base_url, guid) or {}).get("attempts") == 2, 60)
    assert wait_status(base_url, guid, "failed")["attempts"] == 2


def test_out_of_order_synchronize_does_not_roll_the_head_back(
    service: tuple[str, Process, Process],
) -> None:
    # Row 14: the newer state wins whatever order deliveries are handled in.
    base_url, _, _ = service
    newer = json.loads(PR_SYNC)
    older = json.loads(PR_SYNC)
    newer["pull_request"]["head"]["sha"] = "b" * 40
    newer["pull_request"]["updated_at"] = "2030-01-02T00:00:00Z"
    older["pull_request"]["head"]["sha"] = "a" * 40
    older["pull_request"]["updated_at"] = "2030-01-01T00:00:00Z"
    for body in (newer, older):
        guid = str(uuid.uuid4())
        post(base_url, json.dumps(body).encode(), "pull_request", guid)
        wait_status(base_url, guid, "processed")
    with get_engine().connect() as conn:
        head = conn.execute(select(PullRequest.head_sha)).scalar_one()
    assert head == "b" * 40


def test_an_opened_handled_after_the_merge_of_the_same_second_does_not_unmerge(
    service: tuple[str, Process, Process],
) -> None:
    # GitHub's times have whole seconds: the opened and closed payloads of a PR merged at once
    # can carry the same updated_at, and workers may handle them in either order.
    base_url, _, _ = service
    opened = json.loads(PR_OPENED)
    closed = json.loads(PR_OPENED)
    closed["action"] = "closed"
    closed["pull_request"].update(
        state="closed",
        merged=True,
        merged_at="2030-01-01T00:00:00Z",
        closed_at="2030-01-01T00:00:00Z",
    )
    for body in (closed, opened):
        body["pull_request"]["updated_at"] = "2030-01-01T00:00:00Z"
        guid = str(uuid.uuid4())
        post(base_url, json.dumps(body).encode(), "pull_request", guid)
        wait_status(base_url, guid, "processed")
    with get_engine().connect() as conn:
        pull = conn.execute(select(PullRequest)).one()
    assert (pull.state, pull.merged, pull.merged_at is not None) == ("closed", True, True)


def test_plain_issue_comment_is_ignored(service: tuple[str, Process, Process]) -> None:
    # Row 19: a comment on an issue (no `issue.pull_request`) is not a PR command.
    base_url, _, _ = service
    body = payload("issue_comment", "created.with-installation.payload.json")
    assert "pull_request" not in json.loads(body)["issue"]
    guid = str(uuid.uuid4())
    assert post(base_url, body, "issue_comment", guid).status_code == 202
    assert wait_status(base_url, guid, "ignored", "processed", "failed")["status"] == "ignored"


def test_readiness_and_metrics(service: tuple[str, Process, Process]) -> None:
    base_url, _, _ = service
    guid = str(uuid.uuid4())
    post(base_url, PR_OPENED, "pull_request", guid)
    wait_status(base_url, guid, "processed")
    assert httpx.get(f"{base_url}/readyz").json() == {"database": "ok", "broker": "ok"}
    metrics = httpx.get(f"{base_url}/metrics").text
    assert (
        'labbot_deliveries{action="opened",event="pull_request",status="processed"} 1.0' in metrics
    )
    assert 'labbot_handler_seconds_count{event="pull_request"} 1.0' in metrics
    assert 'labbot_queue_depth{queue="events"}' in metrics
    assert "labbot_webhook_ack_seconds_bucket" in metrics
