"""Triager labels that start jobs: ``precheck-generate-ready`` starts data generation,
``community-build-ready`` (or the configured ``build_ready``) starts training and then
evaluation. Removing the label cancels what it started. Labels set by bots (labbot's own
included) are ignored, so labbot never reacts to itself."""

from __future__ import annotations

from sqlalchemy import select

from app.config import get_settings
from app.db.models import JobKind, JobState, PullRequest
from app.db.session import session_scope
from app.github.factory import github_port
from bots import messages
from bots.payloads import PullRequestEvent
from bots.pipeline import Request, cancel, request_job
from bots.registry import EventContext, Ignore, Router
from bots.repo_config import repo_config

router = Router()


@router.on("pull_request", "labeled", "unlabeled")
def start_or_cancel_on_label(ctx: EventContext) -> None:
    event = PullRequestEvent.model_validate(ctx.raw)
    sender = ctx.payload.sender
    if event.label is None or sender is None:
        raise Ignore("no label or sender in the payload")
    if sender.is_bot:
        raise Ignore("label changed by a bot")
    settings = get_settings()
    installation_id = ctx.payload.installation.id if ctx.payload.installation else None
    github = github_port(settings, installation_id)
    repo = event.repository.full_name
    names = repo_config(github, repo, event.pull_request.base.sha).labels
    kinds = {names.generate_ready: JobKind.sdg, names.build_ready: JobKind.train}
    kind = kinds.get(event.label.name)
    if kind is None:
        raise Ignore("not a label that starts jobs")
    trigger = f"label:{event.label.name}"
    if event.action == "unlabeled":
        with session_scope() as session:
            pull_id = session.scalars(
                select(PullRequest.id).where(
                    PullRequest.repository_id == event.repository.id,
                    PullRequest.number == event.number,
                )
            ).first()
        if pull_id is None:
            raise Ignore("pull request not recorded yet")
        reason = messages.JOB_CANCELLED_LABEL.format(label=event.label.name)
        cancel(github, repo, pull_id, JobState.cancelled, reason, trigger=trigger)
        return
    request = Request(
        github,
        repo,
        event.repository.id,
        event.number,
        sender.login,
        f"label {event.label.name}",
        trigger,
    )
    request_job(request, kind)
