"""The local GitHub simulator as a FastAPI application.

`/_sim/...` is the admin API; `/login/oauth/...` is github.com's OAuth web flow (not part of the
REST API's OpenAPI description); every other path is api.github.com, checked against GitHub's
OpenAPI description before it is served from the in-memory state.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from fastapi import FastAPI

from app.simulator.errors import ApiError
from app.simulator.openapi import DEFAULT_OPENAPI_PATH, OpenAPISpec
from app.simulator.routes_admin import admin_router, error_handler
from app.simulator.routes_oauth import oauth_router
from app.simulator.routes_rest import RestPipeline, rest_router
from app.simulator.state import SimulatorState
from app.simulator.webhooks import WebhookSender

log = logging.getLogger(__name__)

# Where GitHub's description is read from; the environment may point elsewhere (an installed
# package has no ../shared beside it).
OPENAPI_ENV = "LABBOT_SIM_OPENAPI_PATH"


def default_openapi_path() -> Path:
    return Path(os.environ.get(OPENAPI_ENV) or DEFAULT_OPENAPI_PATH)


def create_app(
    state: SimulatorState | None = None,
    *,
    openapi_path: Path | None = None,
    check_responses: bool = False,
) -> FastAPI:
    """The simulator app. `check_responses` also checks the simulator's own JSON answers and
    webhook payloads against GitHub's schemas (the test-suite turns it on; problems show as
    `response_problem` in `/_sim/requests` and `payload_problem` in `/_sim/deliveries`)."""
    state = state or SimulatorState()
    started = time.perf_counter()
    spec = OpenAPISpec(openapi_path or default_openapi_path())
    log.info("GitHub OpenAPI description loaded in %.2f s", time.perf_counter() - started)
    sender = WebhookSender(state, check_payloads=spec if check_responses else None)
    pipeline = RestPipeline(state, spec, sender, check_responses=check_responses)

    app = FastAPI(
        title="labbot GitHub simulator",
        description="A local stand-in for api.github.com; the admin API is under /_sim/.",
        docs_url="/_sim/docs",
        openapi_url="/_sim/openapi.json",
        redoc_url=None,
    )
    app.state.sim_state = state
    app.state.sim_sender = sender
    app.state.sim_spec = spec
    app.add_exception_handler(ApiError, error_handler)
    app.include_router(admin_router(state, sender))
    # github.com's sign-in pages: before the REST catch-all, and outside its OpenAPI checks.
    app.include_router(oauth_router(state))
    app.include_router(rest_router(pipeline))  # last: it catches every other path
    return app
