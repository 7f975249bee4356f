"""Triage on GitHub: a PR opened or pushed to, or its check run re-requested, gets a triage job
for its head SHA; the job (``bots.triage.runner``) posts the check run, comment and labels."""

from __future__ import annotations

from sqlalchemy import select

from app.config import get_settings
from app.db.models import JobKind, JobState, PullRequest, Repository
from app.db.session import session_scope
from app.jobs import publish_job, submit_job
from bots.registry import EventContext, Ignore, Router

router = Router()
CHECK_NAME = "labbot/triage"


@router.on("pull_request", "opened", "reopened", "synchronize", "ready_for_review")
def triage_pull_request(ctx: EventContext) -> None:
    pull = ctx.raw.get("pull_request") or {}
    if pull.get("state") != "open":
        raise Ignore("pull request is not open")
    _request_triage(ctx, int(ctx.raw["number"]), str(pull["head"]["sha"]))


@router.on("check_run", "rerequested")
def retriage_on_rerequest(ctx: EventContext) -> None:
    check_run = ctx.raw.get("check_run") or {}
    app = check_run.get("app") or {}
    if check_run.get("name") != CHECK_NAME or app.get("slug") != get_settings().github_app_slug:
        raise Ignore("not labbot's triage check")
    pulls = check_run.get("pull_requests") or []
    if not pulls:
        raise Ignore("check run is not attached to a pull request")
    _request_triage(ctx, int(pulls[0]["number"]), str(check_run["head_sha"]))


def _request_triage(ctx: EventContext, number: int, head_sha: str) -> None:
    repository = ctx.payload.repository
    if repository is None:
        raise Ignore("no repository in the payload")
    with session_scope() as session:
        repo = session.get(Repository, repository.id)
        pull = session.scalars(
            select(PullRequest).where(
                PullRequest.repository_id == repository.id, PullRequest.number == number
            )
        ).one_or_none()
        if repo is None or pull is None:
            raise Ignore("pull request not recorded yet")
        submitted = submit_job(
            session,
            JobKind.triage,
            repository_id=repo.id,
            pull_request_id=pull.id,
            head_sha=head_sha,
            requested_by=ctx.payload.sender.login if ctx.payload.sender else None,
        )
        job = submitted.job
    # After the commit, so the worker finds the job; a job still queued is published again
    # (the claim makes a second copy a no-op) so a lost message cannot strand it.
    if job.state is JobState.queued:
        publish_job(job)
