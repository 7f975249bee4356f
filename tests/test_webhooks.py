"""POST /webhooks/github against real payloads, on SQLite + SQLAlchemy broker and on
PostgreSQL + Redis (bad-inputs rows 1-12 and 17-20)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app import signatures
from app.db.models import Delivery, DeliveryStatus
from app.db.session import get_engine
from tests.conftest import TEST_SECRET, Backend, payload, webhook_headers
from workers.celery_app import EVENTS_QUEUE, celery_app

URL = "/webhooks/github"
PR_OPENED = payload("pull_request", "opened.payload.json")


def queued_messages() -> int:
    with celery_app.connection_for_read() as conn:
        try:
            return int(conn.default_channel.queue_declare(EVENTS_QUEUE, passive=True).message_count)
        except conn.channel_errors:
            return 0


def delivery_count() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Delivery)).scalar_one())


def stored(guid: str) -> dict[str, Any]:
    with get_engine().connect() as conn:
        row = conn.execute(select(Delivery).where(Delivery.guid == guid)).one()
    return dict(row._mapping)


def test_signed_real_payload_is_recorded_enqueued_and_acknowledged(client: Any) -> None:
    headers = webhook_headers(PR_OPENED, "pull_request")
    before = queued_messages()
    response = client.post(URL, content=PR_OPENED, headers=headers)
    assert response.status_code == 202
    assert response.json() == {"delivery": headers["X-GitHub-Delivery"], "status": "queued"}
    record = client.get(f"/api/deliveries/{headers['X-GitHub-Delivery']}").json()
    assert record["status"] == "queued"
    assert (record["event"], record["action"]) == ("pull_request", "opened")
    assert record["repository"] == "Codertocat/Hello-World"
    assert record["installation_id"] == 1
    assert queued_messages() == before + 1


def test_unknown_delivery_guid_is_404(client: Any) -> None:
    response = client.get(f"/api/deliveries/{uuid.uuid4()}")
    assert response.status_code == 404


def test_missing_signature_is_401_and_nothing_is_stored(client: Any) -> None:
    # Row 1.
    headers = webhook_headers(PR_OPENED, "pull_request")
    del headers["X-Hub-Signature-256"]
    response = client.post(URL, content=PR_OPENED, headers=headers)
    assert response.status_code == 401
    assert delivery_count() == 0
    assert queued_messages() == 0


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(signatures.sign(PR_OPENED, b"another-secret"), id="other-secret"),
        pytest.param(signatures.sign(PR_OPENED + b" ", TEST_SECRET.encode()), id="changed-body"),
        pytest.param(signatures.sign(PR_OPENED, TEST_SECRET.encode())[7:], id="bare-hex"),
        pytest.param("sha256=not-hex-at-all", id="garbage"),
        pytest.param("sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", id="sha1-only"),
    ],
)
def test_wrong_signature_is_403_and_nothing_is_stored(client: Any, signature: str) -> None:
    # Rows 2, 3, 4.
    headers = webhook_headers(PR_OPENED, "pull_request")
    headers["X-Hub-Signature-256"] = signature
    assert client.post(URL, content=PR_OPENED, headers=headers).status_code == 403
    assert delivery_count() == 0


def test_unicode_and_control_characters_verify_over_raw_bytes(client: Any) -> None:
    # Row 6: a body no JSON serialiser would reproduce byte for byte.
    body = json.loads(PR_OPENED)
    body["pull_request"]["title"] = "caf\u00e9 \u2603 \u0007 \U0001f600"
    raw = json.dumps(body, ensure_ascii=True, indent=3).encode()
    response = client.post(URL, content=raw, headers=webhook_headers(raw, "pull_request"))
    assert response.status_code == 202


def test_rotation_accepts_old_and_new_secret(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Row 7.
    from fastapi.testclient import TestClient

    from app.config import get_settings
    from app.main import create_app

    monkeypatch.setenv("LABBOT_WEBHOOK_SECRET", "new-secret-2")
    monkeypatch.setenv("LABBOT_WEBHOOK_SECRET_PREVIOUS", TEST_SECRET)
    get_settings.cache_clear()
    with TestClient(create_app()) as rotated:
        for secret in ("new-secret-2", TEST_SECRET):
            headers = webhook_headers(PR_OPENED, "pull_request", secret=secret)
            assert rotated.post(URL, content=PR_OPENED, headers=headers).status_code == 202
    monkeypatch.delenv("LABBOT_WEBHOOK_SECRET_PREVIOUS")
    get_settings.cache_clear()
    with TestClient(create_app()) as after:
        headers = webhook_headers(PR_OPENED, "pull_request", secret=TEST_SECRET)
        assert after.post(URL, content=PR_OPENED, headers=headers).status_code == 403


@pytest.mark.parametrize(
    ("drop", "status"),
    [("X-GitHub-Event", 400), ("X-GitHub-Delivery", 400), ("Content-Type", 400)],
)
def test_missing_required_headers_are_400(client: Any, drop: str, status: int) -> None:
    # Row 8.
    headers = webhook_headers(PR_OPENED, "pull_request")
    del headers[drop]
    assert client.post(URL, content=PR_OPENED, headers=headers).status_code == status
    assert delivery_count() == 0


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH"])
def test_other_methods_are_405(client: Any, method: str) -> None:
    # Row 8.
    assert client.request(method, URL).status_code == 405


def test_form_encoded_real_sample_is_refused(client: Any) -> None:
    # Row 9: JSON-only policy; the sample is gidgethub's recorded urlencoded ping.
    from tests.conftest import SHARED

    sample = SHARED / "data" / "github-http" / "gidgethub-samples" / "ping_urlencoded"
    body = (sample / "body").read_bytes()
    headers = webhook_headers(body, "ping")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert client.post(URL, content=body, headers=headers).status_code == 415
    assert delivery_count() == 0


def test_unknown_event_and_unknown_action_are_2xx_recorded_ignored_and_counted(client: Any) -> None:
    # Row 10.
    for event, body in [
        ("label", payload("label", "created.payload.json")),
        ("pull_request", json.dumps({**json.loads(PR_OPENED), "action": "teleported"}).encode()),
        ("made_up_event", b'{"zen": "anything"}'),
    ]:
        headers = webhook_headers(body, event)
        response = client.post(URL, content=body, headers=headers)
        assert response.status_code == 202
        assert response.json()["status"] == "ignored"
        assert stored(headers["X-GitHub-Delivery"])["status"] is DeliveryStatus.ignored
    assert queued_messages() == 0
    metrics = client.get("/metrics").text
    # Events labbot does not handle are counted under one label: the event header is not
    # covered by the signature, so its values must not become metric labels.
    assert 'labbot_webhooks_received_total{action="-",event="other",outcome="ignored"}' in metrics
    assert 'event="made_up_event"' not in metrics.split("labbot_deliveries")[0]
    assert (
        'labbot_deliveries{action="teleported",event="pull_request",status="ignored"} 1.0'
        in metrics
    )


def test_ping_is_answered_without_a_job(client: Any) -> None:
    # Row 11.
    body = payload("ping", "payload.json")
    response = client.post(URL, content=body, headers=webhook_headers(body, "ping"))
    assert response.status_code == 200
    assert response.json()["msg"] == "pong"
    assert queued_messages() == 0


def test_duplicate_guid_is_taken_in_once(client: Any) -> None:
    # Row 12.
    headers = webhook_headers(PR_OPENED, "pull_request")
    first = client.post(URL, content=PR_OPENED, headers=headers)
    second = client.post(URL, content=PR_OPENED, headers=headers)
    assert (first.status_code, first.json()["status"]) == (202, "queued")
    assert (second.status_code, second.json()["status"]) == (200, "duplicate")
    assert delivery_count() == 1
    assert queued_messages() == 1


def test_redelivery_of_a_failed_delivery_is_retried(client: Any) -> None:
    # Row 12, second half: a failed GUID may be retried.
    from sqlalchemy import update

    headers = webhook_headers(PR_OPENED, "pull_request")
    client.post(URL, content=PR_OPENED, headers=headers)
    with get_engine().begin() as conn:
        conn.execute(
            update(Delivery)
            .where(Delivery.guid == headers["X-GitHub-Delivery"])
            .values(status=DeliveryStatus.failed, error="boom")
        )
    again = client.post(URL, content=PR_OPENED, headers=headers)
    assert (again.status_code, again.json()["status"]) == (202, "queued")
    assert stored(headers["X-GitHub-Delivery"])["status"] is DeliveryStatus.queued
    assert queued_messages() == 2


def test_body_over_the_cap_is_413_from_content_length(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Row 17.
    from fastapi.testclient import TestClient

    from app.config import get_settings
    from app.main import create_app

    monkeypatch.setenv("LABBOT_WEBHOOK_MAX_BODY_BYTES", "4096")
    get_settings.cache_clear()
    big = b'{"pad": "' + b"x" * 10_000 + b'"}'
    with TestClient(create_app()) as small_cap:
        response = small_cap.post(URL, content=big, headers=webhook_headers(big, "pull_request"))
        assert response.status_code == 413

        # No Content-Length (chunked): reading stops at the cap.
        def chunks() -> Any:
            for _ in range(100):
                yield b"x" * 1000

        headers = webhook_headers(b"", "pull_request")
        response = small_cap.post(URL, content=chunks(), headers=headers)
        assert response.status_code == 413
    assert delivery_count() == 0


def test_default_cap_is_25_megabytes() -> None:
    from app.config import Settings

    assert Settings(_env_file=None).webhook_max_body_bytes == 25 * 1024 * 1024  # type: ignore[call-arg]


def test_payload_drift_is_parsed_leniently(client: Any) -> None:
    # Row 18: extra fields, integer timestamps, missing optional fields are fine at intake.
    body = json.loads(PR_OPENED)
    body["pull_request"]["created_at"] = 1700000000
    body["brand_new_field"] = {"nested": [1, 2, 3]}
    del body["pull_request"]["body"]
    raw = json.dumps(body).encode()
    response = client.post(URL, content=raw, headers=webhook_headers(raw, "pull_request"))
    assert response.status_code == 202


def test_non_object_json_is_accepted_and_ignored(client: Any) -> None:
    raw = b"[1, 2, 3]"
    response = client.post(URL, content=raw, headers=webhook_headers(raw, "pull_request"))
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"


def test_invalid_json_is_400(client: Any) -> None:
    raw = b'{"action": "opened",'
    assert (
        client.post(URL, content=raw, headers=webhook_headers(raw, "pull_request")).status_code
        == 400
    )


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_comment_edits_and_deletions_are_ignored(client: Any, action: str) -> None:
    # Row 20: only `created` comments count.
    body = payload("issue_comment", f"{action}.payload.json")
    response = client.post(URL, content=body, headers=webhook_headers(body, "issue_comment"))
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert queued_messages() == 0
