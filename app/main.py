"""The FastAPI application: webhook intake, operator API and the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse
from starlette.routing import request_response
from starlette.types import Receive, Scope, Send

from app import api, deliveries, webhooks
from app.builds import fail_unfinished_builds
from app.config import get_settings
from app.dashboard import actions, auth
from app.dashboard import routes as dashboard
from app.dashboard.common import install_error_pages
from app.intake import IntakeWriter
from app.jobs import reconcile_jobs
from app.logs import configure_logging
from app.metrics import register_collectors

log = logging.getLogger(__name__)


async def _sweep_forever(interval: float) -> None:
    """Re-publish deliveries the broker did not take (it was down), and hand out again jobs
    whose worker died: nothing is lost."""
    while True:
        await asyncio.sleep(interval)
        settings = get_settings()
        try:
            await run_in_threadpool(
                deliveries.sweep, settings.sweep_grace_seconds, settings.processing_lease_seconds
            )
            await run_in_threadpool(reconcile_jobs, settings)
            await run_in_threadpool(fail_unfinished_builds)
        except Exception as exc:  # the database may be briefly away; next round retries
            log.warning("sweeper round failed: %s", type(exc).__name__)


async def _redeliver_forever(interval: float) -> None:
    """Ask GitHub to redeliver what it could not hand over while labbot was unreachable."""
    from app.github.redelivery import redeliver_missed

    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(redeliver_missed, get_settings())
        except Exception as exc:  # GitHub or the database away: next round retries
            log.warning("redelivery round failed: %s", type(exc).__name__)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.intake = IntakeWriter(asyncio.get_running_loop())
    app.state.intake.start()
    sweeper = asyncio.create_task(_sweep_forever(settings.sweep_interval_seconds))
    loops = [sweeper]
    if settings.github_app_id is not None and settings.redeliver_interval_seconds > 0:
        loops.append(asyncio.create_task(_redeliver_forever(settings.redeliver_interval_seconds)))
    try:
        yield
    finally:
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        app.state.intake.stop()


class WebhookFirst:
    """Sends webhook deliveries straight to their endpoint, ahead of the middleware stack the
    dashboard and API need: the path GitHub hits hardest does the least work."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.state = app.state
        self._webhook = request_response(webhooks.receive_github_webhook)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != webhooks.PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            response = PlainTextResponse("Method Not Allowed", 405, headers={"Allow": "POST"})
            await response(scope, receive, send)
            return
        scope["app"] = self.app  # the endpoint finds the intake writer in the app's state
        await self._webhook(scope, receive, send)


def create_app() -> WebhookFirst:
    settings = get_settings()
    settings.check_safe_to_start()
    configure_logging(settings.log_level)
    register_collectors()
    app = FastAPI(title="labbot", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    # Probes and scrapers are never asked to sign in (nor is the webhook: WebhookFirst).
    app.include_router(api.service_router)
    # Pages and the JSON API: open when the dashboard is public, else for signed-in people.
    # (The dashboard's router gathers its pages, the builds pages included, and /api.)
    readers = [Depends(auth.require_reader)]
    app.include_router(api.router, dependencies=readers)
    app.include_router(dashboard.router, dependencies=readers)
    # Sign-in, sessions and the maintainers' actions.
    auth.install(app, settings)
    app.include_router(actions.router)
    install_error_pages(app)
    return WebhookFirst(app)
