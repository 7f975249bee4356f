"""Starting and stopping a PR's GPU jobs, whichever way they were asked for (a label or a
command): the gates (open, not a draft, a trusted requester, a cleared author, the stage before
it done), one job per (PR, kind, head SHA), its check run, and the labels labbot keeps in step
(``sdg-unsuccessful``, ``cmb-running``). Training that succeeds queues evaluation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.models import (
    CommandAudit,
    CommandOutcome,
    Job,
    JobKind,
    JobState,
    PullRequest,
    Repository,
)
from app.db.session import session_scope
from app.github.factory import github_port
from app.github.port import GitHubPort, PullRequestInfo
from app.jobs import (
    QUEUE_OF,
    Submitted,
    active_jobs,
    cancel_jobs,
    fail_job_now,
    publish_job,
    queue_is_served,
    submit_job,
)
from bots import messages
from bots.job_checks import sync_check
from bots.registry import Ignore
from bots.repo_config import repo_config
from bots.trust import TrustUnknown, author_cleared, is_trusted

log = logging.getLogger(__name__)
NOTICE = "notice"  # the purpose of labbot's one sticky notice comment per PR
PREREQUISITE = {JobKind.train: JobKind.sdg, JobKind.bench: JobKind.train}
NEXT_STAGE = {JobKind.train: JobKind.bench}


@dataclass(frozen=True)
class Request:
    """Someone asked for a job on a PR."""

    github: GitHubPort
    repo: str
    repository_id: int
    number: int
    user: str
    action: str  # how people see it: "/lab generate", "label precheck-generate-ready"
    trigger: str  # stored on the job: "command:generate", "label:<name>"


@dataclass(frozen=True)
class Outcome:
    started: bool
    job_id: int | None = None
    notice: str | None = None


def request_job(request: Request, kind: JobKind, *, requester_checked: bool = False) -> Outcome:
    """Start ``kind`` on the PR's current head if every gate passes; otherwise say why.
    ``requester_checked``: the caller already established that the requester is trusted."""
    pull = request.github.get_pull_request(request.repo, request.number)
    refusal = _refusal(request, kind, pull, requester_checked)
    if refusal is not None:
        _audit(request, CommandOutcome.refused, refusal)
        notify(request.github, request.repo, request.number, refusal)
        return Outcome(False, notice=refusal)
    submitted, served = _enqueue(
        request.github,
        request.repo,
        request.repository_id,
        request.number,
        kind,
        pull.head_sha,
        request.user,
        request.trigger,
    )
    job_id = submitted.job.id
    if not submitted.created:
        _audit(request, CommandOutcome.accepted, "an active job already existed", job_id)
        return Outcome(False, job_id)
    _audit(request, CommandOutcome.accepted, None, job_id)
    if not served:
        notice = messages.NOTICE_NO_WORKER.format(action=request.action, queue=QUEUE_OF[kind])
        notify(request.github, request.repo, request.number, notice)
        return Outcome(False, job_id, notice)
    if kind is JobKind.train:
        labels = repo_config(request.github, request.repo, pull.base_sha).labels
        request.github.add_labels(request.repo, request.number, [labels.build_running])
    return Outcome(True, job_id)


def _refusal(
    request: Request, kind: JobKind, pull: PullRequestInfo, requester_checked: bool
) -> str | None:
    action = request.action
    if pull.state != "open":
        return messages.REFUSED_CLOSED.format(action=action)
    if pull.draft:
        return messages.REFUSED_DRAFT.format(action=action)
    if not requester_checked:
        try:
            trusted = is_trusted(request.github, request.repo, request.user, get_settings())
        except TrustUnknown:
            return messages.REFUSED_PERMISSION_UNKNOWN.format(user=request.user, action=action)
        if not trusted:
            return untrusted_refusal(request.user, action, request.repo)
    with session_scope() as session:
        pull_row = _pull_row(session, request.repository_id, request.number)
        pull_id = pull_row.id
        needed = PREREQUISITE.get(kind)
        has_input = needed is None or _succeeded(session, pull_id, needed, pull.head_sha)
    if not author_cleared(request.github, request.repo, pull.author, pull_id, pull.head_sha):
        return messages.REFUSED_NEEDS_OK_TO_TEST.format(action=action, sha=pull.head_sha[:7])
    if not has_input:
        template = messages.REFUSED_NO_DATA if needed is JobKind.sdg else messages.REFUSED_NO_MODEL
        return template.format(action=action, sha=pull.head_sha[:7])
    return None


def untrusted_refusal(user: str, action: str, repo: str) -> str:
    teams = get_settings().trusted_teams
    listed = messages.REFUSED_TEAMS.format(teams=", ".join(teams)) if teams else ""
    return messages.REFUSED_UNTRUSTED.format(user=user, action=action, repo=repo, teams=listed)


def _succeeded(session: Session, pull_id: int, kind: JobKind, head_sha: str) -> bool:
    return (
        session.scalars(
            select(Job.id).where(
                Job.pull_request_id == pull_id,
                Job.kind == kind,
                Job.head_sha == head_sha,
                Job.state == JobState.succeeded,
            )
        ).first()
        is not None
    )


def _pull_row(session: Session, repository_id: int, number: int) -> PullRequest:
    row = session.scalars(
        select(PullRequest).where(
            PullRequest.repository_id == repository_id, PullRequest.number == number
        )
    ).one_or_none()
    if row is None:
        raise Ignore("pull request not recorded yet")
    return row


def _audit(
    request: Request, outcome: CommandOutcome, reason: str | None, job_id: int | None = None
) -> None:
    with session_scope() as session:
        session.add(
            CommandAudit(
                repository_id=request.repository_id,
                pr_number=request.number,
                user=request.user,
                action=request.trigger,
                outcome=outcome,
                reason=reason,
                job_id=job_id,
            )
        )


def audit_refusal(request: Request, reason: str) -> None:
    _audit(request, CommandOutcome.refused, reason)


def notify(github: GitHubPort, repo: str, number: int, text: str) -> None:
    """labbot's one notice comment per PR, replaced by the latest notice."""
    github.upsert_comment(repo, number, NOTICE, text)


def _sync(github: GitHubPort, repo: str, job: Job) -> None:
    try:
        sync_check(github, repo, job, get_settings())
    except Exception as exc:  # the job runs whatever the check run says
        log.warning("could not update the check run of job %s: %s", job.id, type(exc).__name__)


def cancel(
    github: GitHubPort,
    repo: str,
    pull_request_id: int,
    state: JobState,
    reason: str,
    **which: Any,
) -> int:
    """Cancel (or supersede) the PR's active jobs selected by ``which`` (see
    :func:`app.jobs.active_jobs`): queued ones end now and their check runs say so, running
    ones stop at their next step. Returns how many were asked to stop."""
    with session_scope() as session:
        jobs = active_jobs(session, pull_request_id, **which)
        ended = cancel_jobs(session, jobs, state, reason)
    for job in ended:
        _sync(github, repo, job)
        after_job(job.id)
    return len(jobs)


def after_job(job_id: int) -> None:
    """A job reached its final state: keep labbot's labels in step and queue what follows."""
    from app.builds import finish_build

    finish_build(job_id)  # a build's job: the build takes its outcome
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.pull_request_id is None or job.head_sha is None:
            return
        repository = session.get(Repository, job.repository_id)
        pull = session.get(PullRequest, job.pull_request_id)
        if repository is None or pull is None:
            return
        kind, state, head_sha, trigger = job.kind, job.state, job.head_sha, job.trigger
        repo, number, requested_by = repository.full_name, pull.number, job.requested_by
        installation_id, repository_id = repository.installation_id, repository.id
    if kind not in (JobKind.sdg, JobKind.train, JobKind.bench):
        return
    github = github_port(get_settings(), installation_id)
    current = github.get_pull_request(repo, number)
    if current.head_sha != head_sha:
        return  # the labels belong to the PR's current head
    labels = repo_config(github, repo, current.base_sha).labels
    if kind is JobKind.sdg and state is JobState.failed:
        github.add_labels(repo, number, [labels.sdg_unsuccessful])
    elif kind is JobKind.sdg and state is JobState.succeeded:
        github.remove_label(repo, number, labels.sdg_unsuccessful)
    next_kind = NEXT_STAGE.get(kind)
    if next_kind is not None and state is JobState.succeeded:
        _start_next(github, repo, repository_id, number, head_sha, next_kind, requested_by, trigger)
        return
    if kind in (JobKind.train, JobKind.bench):
        github.remove_label(repo, number, labels.build_running)


def _enqueue(
    github: GitHubPort,
    repo: str,
    repository_id: int,
    number: int,
    kind: JobKind,
    head_sha: str,
    requested_by: str | None,
    trigger: str | None,
) -> tuple[Submitted, bool]:
    """Submit the job; a new one gets its check run, then goes to its queue, or fails at once
    when no live worker serves that queue. Returns (submitted, queue served)."""
    settings = get_settings()
    with session_scope() as session:
        pull_row = _pull_row(session, repository_id, number)
        submitted = submit_job(
            session,
            kind,
            repository_id=repository_id,
            pull_request_id=pull_row.id,
            head_sha=head_sha,
            requested_by=requested_by,
            trigger=trigger,
        )
        served = queue_is_served(session, settings, QUEUE_OF[kind])
        if submitted.created and not served:
            reason = messages.JOB_NO_WORKER.format(queue=QUEUE_OF[kind])
            fail_job_now(session, submitted.job, reason)
    if submitted.created:
        _sync(github, repo, submitted.job)
        if served:
            publish_job(submitted.job, settings)
        else:
            after_job(submitted.job.id)
    return submitted, served


def _start_next(
    github: GitHubPort,
    repo: str,
    repository_id: int,
    number: int,
    head_sha: str,
    kind: JobKind,
    requested_by: str | None,
    trigger: str | None,
) -> None:
    """The stage after a successful one, for the same head, asked for by the same request
    (so removing the label that started training cancels evaluation too)."""
    _enqueue(github, repo, repository_id, number, kind, head_sha, requested_by, trigger)
