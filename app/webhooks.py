"""POST /webhooks/github: verify, record, enqueue, answer. Nothing else happens on the request
path: GitHub gives a webhook 10 seconds, and the work is done by the worker."""

from __future__ import annotations

import logging
import time

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import signatures
from app.config import Settings, get_settings
from app.db.models import DeliveryStatus
from app.deliveries import Incoming, Outcome
from app.logs import bound_delivery
from app.metrics import WEBHOOK_ACK_SECONDS, WEBHOOKS_TAKEN_IN
from bots import messages
from bots.payloads import envelope_fields
from bots.router import router as bot_router

log = logging.getLogger(__name__)
PATH = "/webhooks/github"
MAX_HEADER_CHARS = 64


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def _reject(status: int, message: str) -> JSONResponse:
    # Counted without the event header: before the signature is checked it is anyone's text,
    # and metric labels taken from it would grow without bound.
    WEBHOOKS_TAKEN_IN.labels("-", "-", f"rejected_{status}").inc()
    return JSONResponse({"error": message}, status_code=status)


async def _read_capped(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _Rejected(413, messages.WEBHOOK_TOO_LARGE.format(cap=cap))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:  # a lying or absent Content-Length: stop reading at the cap
            raise _Rejected(413, messages.WEBHOOK_TOO_LARGE.format(cap=cap))
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_github_webhook(request: Request) -> Response:
    started = time.perf_counter()
    try:
        return await _receive(request, get_settings())
    finally:
        WEBHOOK_ACK_SECONDS.observe(time.perf_counter() - started)


async def _receive(request: Request, settings: Settings) -> JSONResponse:
    event = request.headers.get("x-github-event", "")
    guid = request.headers.get("x-github-delivery", "")
    if not event or not guid:
        return _reject(400, messages.WEBHOOK_MISSING_HEADERS)
    if len(event) > MAX_HEADER_CHARS or len(guid) > MAX_HEADER_CHARS:
        return _reject(400, messages.WEBHOOK_BAD_HEADERS)
    content_type = request.headers.get("content-type", "")
    if not content_type:
        return _reject(400, messages.WEBHOOK_MISSING_CONTENT_TYPE)
    if content_type.split(";")[0].strip().lower() != "application/json":
        return _reject(415, messages.WEBHOOK_NOT_JSON)
    signature = request.headers.get("x-hub-signature-256")
    if not signature:
        # Checked before the body is read: an unsigned request costs us nothing.
        return _reject(401, messages.WEBHOOK_UNSIGNED)
    try:
        body = await _read_capped(request, settings.webhook_max_body_bytes)
    except _Rejected as rejected:
        return _reject(rejected.status, rejected.message)
    if not signatures.verify(body, signature, settings.effective_webhook_secrets()):
        return _reject(403, messages.WEBHOOK_BAD_SIGNATURE)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _reject(400, messages.WEBHOOK_BAD_JSON)

    action, installation_id, repository = envelope_fields(payload)
    with bound_delivery(guid):
        if event == "ping":
            status = DeliveryStatus.processed
        elif bot_router.handles(event, action):
            status = DeliveryStatus.received
        else:
            status = DeliveryStatus.ignored
        incoming = Incoming(
            guid=guid,
            event=event,
            action=action,
            installation_id=installation_id,
            repository=repository,
            # Only deliveries a handler will read need their body kept.
            body=body if status is DeliveryStatus.received else None,
        )
        try:
            outcome = await request.app.state.intake.submit(incoming, status)
        except Exception:
            return _reject(503, messages.WEBHOOK_NOT_RECORDED)
        # The signature covers the body, not the event header: only known names become labels.
        known = event == "ping" or bot_router.knows_event(event)
        WEBHOOKS_TAKEN_IN.labels(
            event if known else "other", (action or "") if known else "-", outcome.value
        ).inc()
        if outcome is Outcome.received:
            log.warning("delivery recorded; broker unavailable, the sweeper will enqueue it")
    if event == "ping":
        return JSONResponse({"msg": "pong", "delivery": guid}, status_code=200)
    code = 200 if outcome is Outcome.duplicate else 202
    return JSONResponse({"delivery": guid, "status": outcome.value}, status_code=code)
