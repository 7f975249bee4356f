"""Every bot behaviour's router, composed in one place. The webhook endpoint uses it as the
allow-list of implemented (event, action) pairs; the worker uses it to dispatch."""

from __future__ import annotations

from bots import commands, installations, pull_requests
from bots.registry import Router
from bots.triage import bot as triage

# Order matters within an event: the PR is recorded before triage is requested for it.
router = Router(pull_requests.router, installations.router, triage.router, commands.router)
