"""What the dashboard shows, as pydantic models: the query functions return them, the HTML
pages render them and the JSON API (``app.dashboard.api``) returns them as they are, so the
OpenAPI schema documents exactly what the pages show."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.db.models import BuildState, DeliveryStatus, JobKind, JobState


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything labbot stores is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def first_line(text: str | None, limit: int = 200) -> str | None:
    """The first line of an error, cut to ``limit`` characters (tables show one line)."""
    if not text:
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class PageInfo(_Model):
    page: int = Field(description="This page's number, from 1.")
    per_page: int = Field(description="Rows per page (at most 50).")
    total: int = Field(description="Rows matching the filters, on every page.")
    has_next: bool = Field(description="Whether a next page exists.")


# --- jobs -----------------------------------------------------------------------------------


class JobRow(_Model):
    id: int = Field(description="The job's id; its page is /jobs/{id}.")
    kind: JobKind = Field(description="What the job does.")
    state: JobState = Field(description="Where the job is in its life.")
    queue: str = Field(description="The broker queue its kind runs on.")
    repository: str | None = Field(description="owner/name of the taxonomy repository.")
    pull_number: int | None = Field(description="Number of the pull request it is for.")
    pull_title: str | None = Field(description="Title of that pull request (contributor text).")
    pull_author: str | None = Field(description="GitHub login of the pull request's author.")
    build_id: int | None = Field(description="The build it belongs to (build jobs).")
    head_sha: str | None = Field(description="The commit it runs on.")
    requested_by: str | None = Field(description="Who asked for it.")
    trigger: str | None = Field(description='What asked for it, e.g. "label:<name>".')
    attempts: int = Field(description="Runs started so far (a lost worker's job runs again).")
    worker: str | None = Field(description="The worker holding or last holding it.")
    progress: dict[str, Any] = Field(description="Stage, percent and eta_seconds while running.")
    progress_line: str = Field(description="The progress in one line, as on the check run.")
    error_line: str | None = Field(description="First line of its error or stop reason.")
    queued_at: datetime = Field(description="When it was queued (UTC).")
    started_at: datetime | None = Field(description="When its current run started (UTC).")
    finished_at: datetime | None = Field(description="When it ended (UTC).")
    wait_seconds: float | None = Field(description="Time queued before it started (so far).")
    run_seconds: float | None = Field(description="Time running, until it ended or now.")

    @property
    def active(self) -> bool:
        return self.state in (JobState.queued, JobState.running)

    @property
    def percent(self) -> float | None:
        value = self.progress.get("percent")
        return float(value) if isinstance(value, int | float) else None


class JobPage(PageInfo):
    items: list[JobRow] = Field(description="The jobs on this page, newest first.")


class ArtifactLink(_Model):
    name: str = Field(description="Path inside the job's artifacts.")
    url: str = Field(description="Where to download it as plain text.")


class JobDetail(JobRow):
    error: str | None = Field(description="The whole error or stop reason.")
    result: dict[str, Any] | None = Field(description="What the finished job found.")
    published_at: datetime | None = Field(description="When the broker took its message.")
    heartbeat_at: datetime | None = Field(description="The running job's last heartbeat.")
    cancel_requested_at: datetime | None = Field(description="When someone asked it to stop.")
    build_name: str | None = Field(description="Name of the build it belongs to.")
    final: bool = Field(description="True once the job has ended (nothing will change).")


class JobLog(_Model):
    job_id: int = Field(description="The job's id.")
    state: JobState = Field(description="The job's state when the log was read.")
    final: bool = Field(description="True once the job has ended: the log is complete.")
    available: bool = Field(description="False when the artifact store did not answer.")
    text: str = Field(description="The end of job.log (at most `bytes` bytes, UTF-8).")


# --- pull requests --------------------------------------------------------------------------


class TriageSummary(_Model):
    id: int = Field(description="The triage run's id; every finding: /api/triage-runs/{id}.")
    head_sha: str = Field(description="The commit it triaged (the PR's head).")
    status: str = Field(description="queued, running, completed, failed or superseded.")
    conclusion: str | None = Field(description="success or failure.")
    errors: int = Field(description="Findings that block the pull request.")
    warnings: int = Field(description="Findings that do not block it.")
    summary: str | None = Field(description="The check run's one-sentence summary.")
    created_at: datetime = Field(description="When it ran (UTC).")


class JobBadge(_Model):
    id: int = Field(description="The job's id.")
    kind: JobKind = Field(description="What the job does.")
    state: JobState = Field(description="Its state.")
    head_sha: str | None = Field(description="The commit it ran on.")
    current: bool = Field(description="Whether it ran on the pull request's current head.")


class PullRow(_Model):
    id: int = Field(description="labbot's id for the pull request.")
    repository: str = Field(description="owner/name of the taxonomy repository.")
    number: int = Field(description="The pull request's number.")
    title: str = Field(description="Its title (contributor text).")
    author: str = Field(description="GitHub login of its author.")
    state: str = Field(description="open, closed or merged.")
    draft: bool = Field(description="Whether it is a draft.")
    merged_at: datetime | None = Field(description="When it was merged (UTC).")
    head_sha: str = Field(description="Its current head commit.")
    labels: list[str] = Field(description="Its labels.")
    kind: str | None = Field(description="knowledge, skill, mixed or none; null before triage.")
    updated_at: datetime = Field(description="Last change on GitHub (UTC).")
    triage: TriageSummary | None = Field(description="The latest triage run for its head.")
    jobs: list[JobBadge] = Field(description="The latest job of each kind, in pipeline order.")
    blocking: str = Field(description="One sentence: what the pull request is waiting for.")
    url: str = Field(description="Its dashboard page.")


class PullPage(PageInfo):
    items: list[PullRow] = Field(description="The pull requests on this page.")


class FindingRow(_Model):
    path: str = Field(description="The file.")
    line: int = Field(description="1-based line.")
    column: int = Field(description="1-based column.")
    severity: str = Field(description="error or warning.")
    rule: str = Field(description="The rule's stable id.")
    message: str = Field(description="What is wrong.")
    hint: str | None = Field(description="How to fix it.")


class PullDetail(PullRow):
    findings: list[FindingRow] = Field(description="Findings of the latest triage run.")
    findings_total: int = Field(description="All findings of that run (the list is capped).")
    timeline: list[JobRow] = Field(description="Every job of the pull request, newest first.")


# --- deliveries -----------------------------------------------------------------------------


class DeliveryRow(_Model):
    id: int = Field(description="labbot's id for the delivery.")
    guid: str = Field(description="GitHub's X-GitHub-Delivery GUID.")
    event: str = Field(description="The webhook event.")
    action: str | None = Field(description="The event's action.")
    repository: str | None = Field(description="owner/name it came from.")
    status: DeliveryStatus = Field(description="Where its handling is.")
    attempts: int = Field(description="Times a worker took it.")
    received_at: datetime = Field(description="When it arrived (UTC).")
    handler_seconds: float | None = Field(description="Time its handlers took.")
    error_line: str | None = Field(description="First line of the handler's error.")


class DeliveryPage(PageInfo):
    items: list[DeliveryRow] = Field(description="The deliveries on this page, newest first.")


# --- overview -------------------------------------------------------------------------------


class QueueDepth(_Model):
    queue: str = Field(description="The broker queue.")
    kinds: list[str] = Field(description="Job kinds that run on it.")
    queued: int = Field(description="Jobs waiting.")
    running: int = Field(description="Jobs running.")
    live_workers: int = Field(description="Live workers consuming it.")


class WorkerRow(_Model):
    hostname: str = Field(description="The worker's Celery hostname.")
    queues: list[str] = Field(description="The queues it consumes.")
    started_at: datetime = Field(description="When it started (UTC).")
    last_seen_at: datetime = Field(description="Its last heartbeat (UTC).")
    live: bool = Field(description="Whether its heartbeat is recent enough to count it.")


class BuildSummary(_Model):
    id: int = Field(description="The build's id; its page is /builds/{id}.")
    name: str = Field(description="The build's name.")
    state: BuildState = Field(description="Where the build is.")
    scores: dict[str, Any] = Field(description="What evaluating the built model found.")
    created_at: datetime = Field(description="When it was created (UTC).")
    finished_at: datetime | None = Field(description="When it ended (UTC).")
    error_line: str | None = Field(description="First line of its error.")


class Overview(_Model):
    queues: list[QueueDepth] = Field(description="Queued and running jobs per queue.")
    running: list[JobRow] = Field(description="Running jobs with their progress (up to 50).")
    workers: list[WorkerRow] = Field(description="Workers seen, live ones first.")
    failed_jobs: list[JobRow] = Field(description="The latest failed jobs.")
    failed_deliveries: list[DeliveryRow] = Field(description="The latest failed deliveries.")
    recent_deliveries: list[DeliveryRow] = Field(description="The latest deliveries.")
    last_build: BuildSummary | None = Field(description="The newest build.")
