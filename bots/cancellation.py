"""A PR that moves on takes its jobs with it: a push supersedes the jobs of older heads, closing
the PR cancels all of them, converting it to a draft cancels its GPU jobs. Running jobs stop
at their next step; their results are never posted as current."""

from __future__ import annotations

from sqlalchemy import select

from app.config import get_settings
from app.db.models import JobState, PullRequest
from app.db.session import session_scope
from app.github.factory import github_port
from app.jobs import GPU_KINDS
from bots import messages
from bots.payloads import PullRequestEvent
from bots.pipeline import cancel
from bots.registry import EventContext, Ignore, Router

router = Router()


@router.on("pull_request", "synchronize", "closed", "converted_to_draft")
def cancel_jobs_of_moved_pull_request(ctx: EventContext) -> None:
    event = PullRequestEvent.model_validate(ctx.raw)
    with session_scope() as session:
        pull_id = session.scalars(
            select(PullRequest.id).where(
                PullRequest.repository_id == event.repository.id,
                PullRequest.number == event.number,
            )
        ).first()
    if pull_id is None:
        raise Ignore("pull request not recorded yet")
    installation_id = ctx.payload.installation.id if ctx.payload.installation else None
    github = github_port(get_settings(), installation_id)
    repo = event.repository.full_name
    head = event.pull_request.head.sha
    if event.action == "synchronize":
        reason = messages.JOB_SUPERSEDED.format(sha=head[:7])
        asked = cancel(github, repo, pull_id, JobState.superseded, reason, not_sha=head)
    elif event.action == "closed":
        asked = cancel(github, repo, pull_id, JobState.cancelled, messages.JOB_CANCELLED_CLOSED)
    else:
        reason = messages.JOB_CANCELLED_DRAFT
        asked = cancel(github, repo, pull_id, JobState.cancelled, reason, kinds=GPU_KINDS)
    if not asked:
        raise Ignore("no active jobs to stop")
