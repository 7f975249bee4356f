"""What every job runs inside: claim, lease with heartbeat, cancellation, progress, the job's
own log, its check run, and a fenced finish. A stage is a function of a :class:`JobRun`; it
calls ``run.progress(...)`` between steps, which is also where a cancelled job stops."""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select

from app.artifacts import JOB_LOG, artifact_store, job_dir
from app.config import Settings, get_settings
from app.db.models import Job, JobKind, JobState, PullRequest, Repository, utcnow
from app.db.session import session_scope
from app.github.factory import github_port
from app.github.port import GitHubPort
from app.jobs import claim_job, finish_job, job_lease, save_progress, time_limit
from bots import messages
from bots.job_checks import sync_check

log = logging.getLogger(__name__)
_current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "labbot_job", default=None
)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PROGRESS_SAVE_INTERVAL = 1.0  # seconds between progress writes to the database
CHECK_POST_DELAY = 0.5  # seconds a progress update waits before it is posted to GitHub


class JobCancelled(Exception):  # noqa: N818 - an outcome the stage is asked to reach
    """Raised inside a stage at its next step once the job was asked to stop."""


class JobFailed(Exception):  # noqa: N818 - an outcome, not a crash
    """A stage ends the job as failed with this message for the PR (what happened and what to
    do about it); unlike a crash, the message is shown as it is."""


class StageUnavailable(Exception):  # noqa: N818
    """This worker has no implementation for the job's kind."""


@dataclass(frozen=True)
class JobTarget:
    """The job's pull request, by value: stages never hold ORM objects across steps."""

    job_id: int
    repo: str
    repository_id: int
    installation_id: int | None
    number: int
    head_sha: str
    pull_request_id: int
    # A build's job has no pull request: number, head_sha and pull_request_id are empty.
    build_id: int | None = None


def latest_succeeded_job(target: JobTarget, kind: JobKind) -> int | None:
    """The id of the newest job of ``kind`` that succeeded for the target's PR at its head
    commit: the data a train job trains on, the model a bench job evaluates, the data a build
    reuses."""
    with session_scope() as session:
        return session.scalars(
            select(Job.id)
            .where(
                Job.pull_request_id == target.pull_request_id,
                Job.kind == kind,
                Job.head_sha == target.head_sha,
                Job.state == JobState.succeeded,
            )
            .order_by(Job.id.desc())
            .limit(1)
        ).first()


class JobRun:
    def __init__(self, job: Job, target: JobTarget, settings: Settings, github: GitHubPort):
        self.job = job
        self.target = target
        self.settings = settings
        self.github = github
        self.artifacts = job_dir(settings, job.id)
        self.cancel_requested = threading.Event()
        self.posts_own_check = False  # a stage that reports in its own check run sets this
        # What the stage found, stored with the outcome (``Job.result``); a "conclusion" and
        # "summary" in it are what the job's check run shows when the job succeeds.
        self.result: dict[str, Any] | None = None
        self._stage = ""
        self._stage_started = time.monotonic()
        self._saved_at = 0.0
        self._posted_at = 0.0
        self._poster = CheckPoster(self)

    def on_pull(self, target: JobTarget) -> JobRun:
        """This run seen from one of its build's pull requests: progress, cancellation and
        artifacts stay the build job's own; no check run is posted on the PR."""
        view = JobRun(self.job, target, self.settings, self.github)
        view.cancel_requested = self.cancel_requested
        view.posts_own_check = True
        view._poster = self._poster
        return view

    def check_cancelled(self) -> None:
        if self.cancel_requested.is_set():
            raise JobCancelled()

    def progress(self, stage: str, fraction: float | None = None) -> None:
        """Report where the job is (``fraction`` of ``stage`` done, 0..1). Stops the job here
        if it was cancelled. Written to the database at most every second and to the check
        run at most every ``job_progress_interval_seconds``, and at once when the stage
        changes."""
        self.check_cancelled()
        now = time.monotonic()
        changed = stage != self._stage
        if changed:
            self._stage, self._stage_started = stage, now
        progress: dict[str, Any] = {"stage": stage, "updated_at": utcnow().isoformat()}
        if fraction is not None:
            fraction = min(max(fraction, 0.0), 1.0)
            progress["percent"] = round(100 * fraction, 1)
            elapsed = now - self._stage_started
            if 0 < fraction < 1 and elapsed > 0:
                progress["eta_seconds"] = round(elapsed * (1 - fraction) / fraction)
        if changed or now - self._saved_at >= PROGRESS_SAVE_INTERVAL:
            self._saved_at = now
            self.job.progress = progress
            save_progress(self.job, progress)
        if changed or now - self._posted_at >= self.settings.job_progress_interval_seconds:
            self._posted_at = now
            self._poster.post()

    def _sync_check(self) -> None:
        try:
            sync_check(self.github, self.target.repo, self.job, self.settings)
        except Exception as exc:  # progress is best effort; the outcome is posted at the end
            log.warning("could not update the check run: %s", type(exc).__name__)


class CheckPoster:
    """Posts a job's progress to its check run from a thread of its own, so a slow GitHub
    never holds up the stage; only the latest progress is sent, and not before it is
    ``CHECK_POST_DELAY`` old, so a job that ends sooner is posted once, with its outcome (by
    the harness, after the poster has stopped)."""

    def __init__(self, run: JobRun) -> None:
        self.run = run
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def post(self) -> None:
        if self.run.posts_own_check:
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"job-{self.run.job.id}-check", daemon=True
            )
            self._thread.start()
        self._wanted.set()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping.wait(CHECK_POST_DELAY):
                return
            self._wanted.clear()
            self.run._sync_check()

    def stop(self) -> None:
        """Wait for an update in flight (it may be creating the check run), then stop."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wanted.set()
        self._thread.join()


Stage = Callable[[JobRun], JobState | None]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(job_id: int, stage_for: Callable[[JobKind], Stage | None]) -> None:
    """Run the job's stage once, if this is the run that claims it."""
    settings = get_settings()
    claimed = _claim(job_id, settings)
    if claimed is None:
        log.info("job %s is not queued any more; skipping", job_id)
        return
    job, target = claimed
    github = github_port(settings, target.installation_id)
    run = JobRun(job, target, settings, github)
    run.posts_own_check = target.build_id is not None  # a build has no PR to post a check on
    state, error = JobState.failed, None
    with (
        job_log(job, settings),
        job_lease(job, settings.job_lease_seconds / 3, run.cancel_requested.set),
    ):
        log.info(
            "job %s (%s) started on %s, attempt %s", job.id, job.kind, job.worker, job.attempts
        )
        try:
            stage = stage_for(job.kind)
            if stage is None:
                raise StageUnavailable()
            if job.kind is not JobKind.triage:  # triage posts its own check run
                run._poster.post()  # (a no-op for builds)  # "in progress" while the stage starts
            state = stage(run) or JobState.succeeded
        except JobCancelled:
            state, error = _cancel_outcome(job.id)
            log.info("job %s stopped: %s", job.id, error)
        except JobFailed as failed:
            error = str(failed)
            log.error("job %s failed: %s", job.id, error)
        except StageUnavailable:
            error = messages.JOB_STAGE_UNAVAILABLE.format(kind=job.kind.value)
            log.error("%s", error)
        except SoftTimeLimitExceeded:
            error = messages.JOB_TIME_LIMIT.format(limit=f"{time_limit(settings, job.kind):g} s")
            log.error("%s", error)
        except Exception as exc:
            log.exception("job %s failed", job.id)
            error = messages.JOB_CRASHED.format(error=type(exc).__name__)
        log.info("job %s finished: %s", job.id, state.value)
    try:
        artifact_store(settings).publish(job.id, run.artifacts)
    except Exception as exc:
        log.error("job %s: artifacts not stored: %s", job.id, type(exc).__name__)
        if state is JobState.succeeded:
            state, error = (
                JobState.failed,
                messages.JOB_ARTIFACTS_UNSTORED.format(error=type(exc).__name__),
            )
    result = run.result if state is JobState.succeeded else None
    finished = finish_job(job, state, error, result)
    run._poster.stop()
    if not finished:
        log.warning("job %s was ended elsewhere while it ran; its outcome is not recorded", job.id)
        return
    job.state, job.error, job.result = state, error, result
    if not run.posts_own_check:
        run._sync_check()
    from bots.pipeline import after_job

    after_job(job.id)


def _claim(job_id: int, settings: Settings) -> tuple[Job, JobTarget] | None:
    """Claim the job and read its pull request in one transaction."""
    with session_scope() as session:
        job = claim_job(job_id, worker_name(), log_path=log_path(settings, job_id), session=session)
        if job is None:
            return None
        pull = session.get(PullRequest, job.pull_request_id) if job.pull_request_id else None
        repository = session.get(Repository, job.repository_id) if job.repository_id else None
        if job.build_id is not None and repository is not None:
            return job, JobTarget(
                job.id,
                repository.full_name,
                repository.id,
                repository.installation_id,
                number=0,
                head_sha="",
                pull_request_id=0,
                build_id=job.build_id,
            )
        if pull is None or repository is None or job.head_sha is None:
            log.error("job %s has no pull request or head commit; failing it", job.id)
            job.state, job.error, job.finished_at = (
                JobState.failed,
                messages.JOB_NO_TARGET,
                utcnow(),
            )
            return None
        return job, JobTarget(
            job.id,
            repository.full_name,
            repository.id,
            repository.installation_id,
            pull.number,
            job.head_sha,
            pull.id,
        )


def _cancel_outcome(job_id: int) -> tuple[JobState, str | None]:
    with session_scope() as session:
        row = session.execute(
            select(Job.cancel_state, Job.error).where(Job.id == job_id)
        ).one_or_none()
    if row is None:
        return JobState.cancelled, None
    return row.cancel_state or JobState.cancelled, row.error


def log_path(settings: Settings, job_id: int) -> Path:
    return job_dir(settings, job_id) / JOB_LOG


class _ThisJob(logging.Filter):
    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id

    def filter(self, record: logging.LogRecord) -> bool:
        return _current_job.get() == self.job_id


@contextmanager
def job_log(job: Job, settings: Settings) -> Iterator[Path]:
    """Everything logged in this job's context goes to its own log file as well, so the
    dashboard can show one job's log (attempts append to the same file)."""
    path = log_path(settings, job.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_ThisJob(job.id))
    root = logging.getLogger()
    root.addHandler(handler)
    token = _current_job.set(job.id)
    try:
        yield path
    finally:
        _current_job.reset(token)
        root.removeHandler(handler)
        handler.close()
