"""Every bot behaviour's router, composed in one place. The webhook endpoint uses it as the
allow-list of implemented (event, action) pairs; the worker uses it to dispatch."""

from __future__ import annotations

from bots import cancellation, commands, installations, labels, pull_requests
from bots.registry import Router
from bots.triage import bot as triage

# Order matters within an event: the PR is recorded first, then the jobs of its old head are
# stopped, before anything new is started for it.
router = Router(
    pull_requests.router,
    installations.router,
    cancellation.router,
    triage.router,
    labels.router,
    commands.router,
)
