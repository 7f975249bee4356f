"""Each job's check run (``labbot/<kind>``): created when the job is queued, then updated in
place from the job's row: progress while it runs, and on failure what happened and exactly how
to run it again. Triage keeps its own check run with annotations (``bots.triage``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import update

from app.config import Settings
from app.db.models import Job, JobKind, JobState
from app.db.session import get_engine
from app.github.port import CheckRunOutput, GitHubPort
from app.jobs import QUEUE_OF
from bots import messages

CHECK_NAMES = {kind: f"labbot/{kind.value}" for kind in JobKind}
RETRY_COMMANDS = {
    JobKind.triage: "/lab retest",
    JobKind.precheck: "/lab precheck",
    JobKind.sdg: "/lab generate",
    JobKind.train: "/lab train",
    JobKind.bench: "/lab bench",
}
CONCLUSIONS = {
    JobState.succeeded: "success",
    JobState.failed: "failure",
    JobState.cancelled: "cancelled",
    JobState.superseded: "cancelled",  # only GitHub may set "stale"
}
# What a stage may conclude for a job that ran to its end (``JobRun.result["conclusion"]``).
REPORTED_CONCLUSIONS = frozenset({"success", "neutral", "failure"})
Status = Literal["queued", "in_progress", "completed"]


@dataclass(frozen=True)
class CheckView:
    status: Status
    conclusion: str | None
    output: CheckRunOutput


def details_url(settings: Settings, job_id: int) -> str:
    return f"{settings.public_url.rstrip('/')}/jobs/{job_id}"


def render(job: Job, settings: Settings) -> CheckView:
    """What the check run says for the job as it is now."""
    link = messages.JOB_CHECK_DETAILS.format(url=details_url(settings, job.id))
    title = messages.JOB_CHECK_TITLE[job.state.value]
    if job.state is JobState.queued:
        summary = messages.JOB_CHECK_QUEUED.format(
            queue=QUEUE_OF[job.kind], who=job.requested_by or "labbot"
        )
        return CheckView("queued", None, CheckRunOutput(title, f"{summary}\n\n{link}"))
    if job.state is JobState.running:
        line = progress_line(job.progress)
        if line:
            title = line
        return CheckView("in_progress", None, CheckRunOutput(title, f"{line}\n\n{link}".strip()))
    conclusion = CONCLUSIONS[job.state]
    if job.error and job.error.startswith("The job ran past its time limit"):
        conclusion = "timed_out"
    result = job.result or {}
    if job.state is JobState.succeeded and result.get("conclusion") in REPORTED_CONCLUSIONS:
        # The job ran to its end; what it found decides the check (evaluation thresholds).
        conclusion = str(result["conclusion"])
        title = str(result.get("title") or title)
    parts = [job.error or "", str(result.get("summary") or "")]
    if job.state is JobState.failed:
        parts.append(messages.JOB_CHECK_RETRY.format(command=RETRY_COMMANDS[job.kind]))
    parts.append(link)
    summary = "\n\n".join(p for p in parts if p)
    return CheckView("completed", conclusion, CheckRunOutput(title, summary))


def progress_line(progress: dict[str, Any]) -> str:
    stage = str(progress.get("stage") or "")
    if not stage:
        return ""
    percent = progress.get("percent")
    line = messages.JOB_CHECK_PROGRESS.format(
        stage=stage, percent=f"{percent:.0f}%" if isinstance(percent, int | float) else "…"
    )
    eta = progress.get("eta_seconds")
    if isinstance(eta, int | float) and eta > 0:
        line += messages.JOB_CHECK_ETA.format(eta=_human(eta))
    return line


def _human(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def sync_check(github: GitHubPort, repo: str, job: Job, settings: Settings) -> None:
    """Bring the job's check run in line with the job; creates it the first time."""
    if job.head_sha is None:
        return
    view = render(job, settings)
    if job.check_run_id is None:
        job.check_run_id = github.create_check_run(
            repo,
            CHECK_NAMES[job.kind],
            job.head_sha,
            status=view.status,
            conclusion=view.conclusion,
            details_url=details_url(settings, job.id),
            external_id=f"job-{job.id}",
            output=view.output,
        )
        with get_engine().begin() as conn:
            conn.execute(update(Job).where(Job.id == job.id).values(check_run_id=job.check_run_id))
        return
    github.update_check_run(
        repo,
        job.check_run_id,
        status=view.status,
        conclusion=view.conclusion,
        output=view.output,
    )
