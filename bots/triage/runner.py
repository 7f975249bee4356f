"""The triage job: fetch the PR's files at its head SHA through the GitHub port, run the
engine, record the run, then post the check run (with annotations), the sticky comment and the
labels. Results for a SHA that is no longer the PR's head are recorded but never posted as
current."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import (
    BotComment,
    Job,
    JobState,
    PullRequest,
    RunStatus,
    TriageFinding,
    TriageRun,
    utcnow,
)
from app.db.session import session_scope
from app.github.port import FileMode as GitMode
from app.github.port import GitHubPort, PullRequestInfo
from bots.commands import welcome_text
from bots.triage import (
    FileMode,
    InputFile,
    RepoConfig,
    TriageReport,
    layout,
    load_repo_config,
    triage_files,
)
from bots.triage.bot import CHECK_NAME
from bots.triage.report import check_run_output, comment_body, wanted_labels
from bots.trust import author_cleared
from workers.harness import JobRun, JobTarget

log = logging.getLogger(__name__)
REPO_CONFIG_PATH = ".github/labbot.yml"
COMMENT_PURPOSE = "triage"
# Categories whose content the engine reads; every other file is judged by its path and mode.
READ_CATEGORIES = ("qna", "attribution", "config")


def triage_stage(run: JobRun) -> JobState:
    """The triage job's stage (run by ``workers.harness``); it posts its own check run."""
    run.posts_own_check = True
    return _triage(run.settings, run.github, run.target, run)


def _triage(settings: Settings, github: GitHubPort, target: JobTarget, run: JobRun) -> JobState:
    fresh = github.get_pull_request(target.repo, target.number)
    if fresh.head_sha != target.head_sha or fresh.state != "open":
        return JobState.cancelled  # a newer push has its own job; a closed PR needs none
    check_run_id = _own_check_run(github, target, run)
    config_bytes = github.get_file_content(target.repo, REPO_CONFIG_PATH, fresh.base_sha)
    config, config_findings = load_repo_config(config_bytes)
    report = triage_files(
        read_pull_request_files(github, target, config, run),
        config,
        lookup=lambda path: github.get_file_content(target.repo, path, target.head_sha),
    )
    run_id = _record(target, report, check_run_id)

    # The verdict belongs to this SHA whatever happens next, so the check run is completed.
    output = check_run_output(report, config_findings, _details_url(settings, target, run_id))
    github.update_check_run(
        target.repo,
        check_run_id,
        status="completed",
        conclusion="failure" if report.errors else "success",
        output=output,
    )
    current = github.get_pull_request(target.repo, target.number)
    if current.head_sha != target.head_sha:
        _mark_run(run_id, RunStatus.superseded)
        return JobState.succeeded
    _post_comment(
        github,
        target,
        comment_body(report, target.head_sha, _details_url(settings, target, run_id))
        + "\n\n"
        + welcome_text(config.labels),
    )
    _set_labels(github, target, config, report, current)
    _mark_run(run_id, RunStatus.completed)
    return JobState.succeeded


def _own_check_run(github: GitHubPort, target: JobTarget, run: JobRun) -> int:
    """The job's triage check run: made by its first attempt, taken over by a later one (a
    worker killed mid-run must not leave a second run spinning forever)."""
    if run.job.check_run_id is not None:
        github.update_check_run(target.repo, run.job.check_run_id, status="in_progress")
        return run.job.check_run_id
    check_run_id = github.create_check_run(
        target.repo,
        CHECK_NAME,
        target.head_sha,
        status="in_progress",
        external_id=f"triage-job-{target.job_id}",
        details_url=_details_url(run.settings, target),
    )
    with session_scope() as session:
        job = session.get(Job, target.job_id)
        if job is not None:
            job.check_run_id = check_run_id
    return check_run_id


def read_pull_request_files(
    github: GitHubPort, target: JobTarget, config: RepoConfig, run: JobRun
) -> list[InputFile]:
    changed = github.list_changed_files(target.repo, target.number)
    tree = {entry.path: entry for entry in github.list_tree(target.repo, target.head_sha)}
    files = []
    for done, change in enumerate(changed):
        run.progress("reading files", done / len(changed))
        if change.status == "removed":
            files.append(InputFile(change.path, None, deleted=True))
            continue
        entry = tree.get(change.path)
        mode = FileMode.parse(entry.mode.value) if entry else FileMode.regular
        size = entry.size if entry else None
        category = layout.classify(change.path, config.triage).category
        needs_content = (
            mode in (FileMode.regular, FileMode.executable)
            and category in READ_CATEGORIES
            and (size is None or size <= config.triage.limits.max_file_bytes)
        )
        content = (
            github.get_file_content(target.repo, change.path, target.head_sha)
            if needs_content
            else None
        )
        if entry is not None and entry.mode in (GitMode.symlink, GitMode.submodule):
            content = None  # seen as what it is; never read, never followed
        files.append(
            InputFile(change.path, content, mode=mode, size=size if content is None else None)
        )
    return files


def _record(target: JobTarget, report: TriageReport, check_run_id: int) -> int:
    with session_scope() as session:
        run = TriageRun(
            pull_request_id=target.pull_request_id,
            head_sha=target.head_sha,
            status=RunStatus.running,
            conclusion="failure" if report.errors else "success",
            check_run_id=check_run_id,
            summary=report.blocking_sentence(),
            errors=report.errors,
            warnings=report.warnings,
            finished_at=utcnow(),
        )
        session.add(run)
        # What the PR teaches, for the dashboard's filter; updated_at stays GitHub's time (it
        # orders the PR's deliveries).
        session.execute(
            update(PullRequest)
            .where(
                PullRequest.id == target.pull_request_id,
                PullRequest.head_sha == target.head_sha,
            )
            .values(kind=pull_kind(report.kinds), updated_at=PullRequest.updated_at)
        )
        session.flush()
        for result in report.files:
            for finding in result.findings:
                session.add(
                    TriageFinding(
                        triage_run_id=run.id,
                        path=result.path,
                        rule=finding.rule,
                        severity=finding.severity.value,
                        line=finding.line,
                        column=finding.column,
                        message=finding.message,
                        hint=finding.hint or None,
                    )
                )
        return run.id


def pull_kind(kinds: Iterable[str]) -> str:
    """What a PR's taxonomy files teach: knowledge, skill, mixed (both), or none."""
    found = set(kinds)
    if len(found) > 1:
        return "mixed"
    return next(iter(found), "none")


def _mark_run(run_id: int, status: RunStatus) -> None:
    with session_scope() as session:
        run = session.get(TriageRun, run_id)
        if run is not None:
            run.status = status


def _post_comment(github: GitHubPort, target: JobTarget, body: str) -> None:
    with session_scope() as session:
        stored = _stored_comment(session, target)
        known = stored.comment_id if stored else None
    comment_id = github.upsert_comment(target.repo, target.number, COMMENT_PURPOSE, body, known)
    if comment_id == known:
        return
    with session_scope() as session:
        stored = _stored_comment(session, target)
        if stored is None:
            session.add(
                BotComment(
                    repository_id=target.repository_id,
                    pr_number=target.number,
                    purpose=COMMENT_PURPOSE,
                    comment_id=comment_id,
                )
            )
        else:
            stored.comment_id = comment_id


def _stored_comment(session: Session, target: JobTarget) -> BotComment | None:
    return session.scalars(
        select(BotComment).where(
            BotComment.repository_id == target.repository_id,
            BotComment.pr_number == target.number,
            BotComment.purpose == COMMENT_PURPOSE,
        )
    ).one_or_none()


def _set_labels(
    github: GitHubPort,
    target: JobTarget,
    config: RepoConfig,
    report: TriageReport,
    current: PullRequestInfo,
) -> None:
    add, remove = wanted_labels(config.labels, report, set(current.labels))
    # GPU jobs wait for a triager's ok-to-test on heads of authors not trusted here.
    cleared = author_cleared(
        github, target.repo, current.author, target.pull_request_id, target.head_sha
    )
    gate = config.labels.needs_ok_to_test
    if not cleared and gate not in current.labels:
        add.add(gate)
    if cleared and gate in current.labels:
        remove.add(gate)
    if add:
        github.add_labels(target.repo, target.number, sorted(add))
    for label in sorted(remove):
        github.remove_label(target.repo, target.number, label)


def _details_url(settings: Settings, target: JobTarget, run_id: int | None = None) -> str:
    base = settings.public_url.rstrip("/")
    if run_id is None:
        return f"{base}/api/jobs/{target.job_id}"
    return f"{base}/api/triage-runs/{run_id}"
