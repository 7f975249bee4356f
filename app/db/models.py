"""SQLAlchemy 2.0 typed models. The database is the source of truth for deliveries and jobs;
the broker only carries ids. Alembic migrations in ``migrations/`` must match these models
(``tests/test_migrations.py`` fails on drift).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[str]: JSON}


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as strings (no native PG enum): adding a state later is a plain migration.
    return Enum(
        cls, name=name, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]
    )


class DeliveryStatus(enum.StrEnum):
    received = "received"  # recorded; not yet handed to the broker (the sweeper retries these)
    queued = "queued"  # published to the broker
    processing = "processing"  # claimed by a worker
    processed = "processed"
    ignored = "ignored"  # known event we do not act on, or an unknown one
    failed = "failed"  # a handler raised; a redelivery of the same GUID retries it


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    guid: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64))
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    repository: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus, "delivery_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # The raw signed body, kept as received: handlers parse only the fields they use.
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    handler_seconds: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_deliveries_status_received_at", "status", "received_at"),)


class Installation(Base):
    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_login: Mapped[str] = mapped_column(String(100))
    account_type: Mapped[str] = mapped_column(String(20), default="User")
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    full_name: Mapped[str] = mapped_column(String(200), unique=True)
    installation_id: Mapped[int | None] = mapped_column(ForeignKey("installations.id"))
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PullRequest(Base):
    __tablename__ = "pull_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300), default="")
    author: Mapped[str] = mapped_column(String(100))
    author_association: Mapped[str | None] = mapped_column(String(40))
    head_sha: Mapped[str] = mapped_column(String(40))
    base_ref: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(10), default="open")
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    merged: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_at: Mapped[datetime | None]
    labels: Mapped[list[str]] = mapped_column(default=list)
    # What its qna.yaml files teach, as triage last saw them: knowledge, skill, mixed, or
    # none (no taxonomy file); None before the first triage.
    kind: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    repository: Mapped[Repository] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("repository_id", "number", name="uq_pull_requests_repo_number"),
        Index("ix_pull_requests_state_updated_at", "state", "updated_at"),
        Index("ix_pull_requests_author", "author"),
        Index("ix_pull_requests_repo_merged_at", "repository_id", "merged_at"),
    )


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    superseded = "superseded"  # a newer head SHA arrived; never posted as current


class TriageRun(Base):
    __tablename__ = "triage_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pull_request_id: Mapped[int] = mapped_column(ForeignKey("pull_requests.id"))
    head_sha: Mapped[str] = mapped_column(String(40))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"))
    conclusion: Mapped[str | None] = mapped_column(String(20))
    check_run_id: Mapped[int | None] = mapped_column(BigInteger)
    summary: Mapped[str | None] = mapped_column(Text)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    findings: Mapped[list[TriageFinding]] = relationship(
        back_populates="run", cascade="all, delete-orphan", lazy="raise"
    )

    __table_args__ = (Index("ix_triage_runs_pr_sha", "pull_request_id", "head_sha"),)


class TriageFinding(Base):
    __tablename__ = "triage_findings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    triage_run_id: Mapped[int] = mapped_column(ForeignKey("triage_runs.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1000))
    rule: Mapped[str] = mapped_column(String(80))
    severity: Mapped[str] = mapped_column(String(10))
    line: Mapped[int] = mapped_column(Integer, default=1)
    column: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str] = mapped_column(Text)
    hint: Mapped[str | None] = mapped_column(Text)

    run: Mapped[TriageRun] = relationship(back_populates="findings", lazy="raise")

    __table_args__ = (Index("ix_triage_findings_run", "triage_run_id"),)


class JobKind(enum.StrEnum):
    triage = "triage"
    precheck = "precheck"
    sdg = "sdg"
    train = "train"
    bench = "bench"
    build = "build"  # a model build: data for its merged PRs, training, evaluation


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    superseded = "superseded"  # a newer push made it moot; its results are never current


FINAL_JOB_STATES = (
    JobState.succeeded,
    JobState.failed,
    JobState.cancelled,
    JobState.superseded,
)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind, "job_kind"))
    state: Mapped[JobState] = mapped_column(_enum(JobState, "job_state"))
    repository_id: Mapped[int | None] = mapped_column(ForeignKey("repositories.id"))
    pull_request_id: Mapped[int | None] = mapped_column(ForeignKey("pull_requests.id"))
    build_id: Mapped[int | None] = mapped_column(ForeignKey("builds.id"))
    head_sha: Mapped[str | None] = mapped_column(String(40))
    requested_by: Mapped[str | None] = mapped_column(String(100))
    # What asked for it: "label:<name>", "command:<verb>", "event:<event>", "after:<kind>".
    # Removing a label cancels exactly the jobs that label started.
    trigger: Mapped[str | None] = mapped_column(String(120))
    # The attempt number of the run that holds the job; a finishing run must still hold it.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    log_path: Mapped[str | None] = mapped_column(String(1000))
    artifacts_path: Mapped[str | None] = mapped_column(String(1000))
    error: Mapped[str | None] = mapped_column(Text)
    # What a finished job found, for pages and check runs (evaluation: scores and the check
    # run's conclusion); details stay in the job's artifacts.
    result: Mapped[dict[str, Any] | None]
    check_run_id: Mapped[int | None] = mapped_column(BigInteger)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set once the broker took the message; a queued job without it is published again.
    published_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    # A running job asked to stop: the stage stops at its next step, or the reconciler stops
    # it after the grace period. cancel_state is where it ends (cancelled or superseded).
    cancel_requested_at: Mapped[datetime | None]
    cancel_state: Mapped[JobState | None] = mapped_column(_enum(JobState, "job_state"))
    # Renewed while the job runs; a running job whose heartbeat is older than the lease has lost
    # its worker and is handed out again by the reconciler.
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_jobs_state_kind", "state", "kind"),
        Index("ix_jobs_pull_request_id", "pull_request_id", "id"),
        Index("ix_jobs_repository_id", "repository_id", "id"),
        Index("ix_jobs_build_id", "build_id"),
        Index("ix_jobs_queued_at", "queued_at"),
        Index("ix_jobs_finished_at", "finished_at"),
        # At most one active job per (PR, kind, head SHA): the same intent arriving twice
        # (a label re-added, a command repeated) finds the existing job instead of a new one.
        Index(
            "uq_jobs_active_per_pr_kind_sha",
            "pull_request_id",
            "kind",
            "head_sha",
            unique=True,
            postgresql_where=text("state IN ('queued', 'running')"),
            sqlite_where=text("state IN ('queued', 'running')"),
        ),
    )


class BuildState(enum.StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Build(Base):
    """One model build: the leaves of the PRs merged since the previous build of the same
    repository, trained on top of that build's model. Its ``build`` job does the work; the
    row keeps what the dashboard shows."""

    __tablename__ = "builds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    state: Mapped[BuildState] = mapped_column(_enum(BuildState, "build_state"))
    repository_id: Mapped[int | None] = mapped_column(ForeignKey("repositories.id"))
    previous_build_id: Mapped[int | None] = mapped_column(ForeignKey("builds.id"))
    # "schedule", or who started it by hand ("cli", "dashboard:<login>").
    trigger: Mapped[str | None] = mapped_column(String(120))
    base_model: Mapped[str | None] = mapped_column(String(500))
    output_model: Mapped[str | None] = mapped_column(String(500))
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # [{"name", "started_at", "finished_at"}] in order, as the build job reaches them.
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_builds_repository_id", "repository_id", "id"),)


class BuildPullRequest(Base):
    """The merged PRs a build contains."""

    __tablename__ = "build_pull_requests"

    build_id: Mapped[int] = mapped_column(
        ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    )
    pull_request_id: Mapped[int] = mapped_column(ForeignKey("pull_requests.id"), primary_key=True)

    __table_args__ = (Index("ix_build_pull_requests_pull", "pull_request_id"),)


class BotComment(Base):
    """The id of labbot's one sticky comment per (PR, purpose), so edits never duplicate it."""

    __tablename__ = "bot_comments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id"))
    pr_number: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(50))
    comment_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("repository_id", "pr_number", "purpose", name="uq_bot_comments_purpose"),
    )


class TestApproval(Base):
    """`/lab ok-to-test` from a trusted user: GPU jobs may run for this PR at this head SHA.
    Bound to the SHA, so a later push needs a new approval."""

    __tablename__ = "test_approvals"
    __test__ = False  # not a pytest class, whatever its name

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pull_request_id: Mapped[int] = mapped_column(ForeignKey("pull_requests.id"))
    head_sha: Mapped[str] = mapped_column(String(40))
    approved_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("pull_request_id", "head_sha", name="uq_test_approvals_pr_sha"),
    )


class CommandOutcome(enum.StrEnum):
    accepted = "accepted"
    refused = "refused"


class CommandAudit(Base):
    """Who asked labbot for what on which PR, and what came of it (refusals included)."""

    __tablename__ = "command_audits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id"))
    pr_number: Mapped[int] = mapped_column(Integer)
    user: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(120))  # "command:generate", "label:<name>"
    outcome: Mapped[CommandOutcome] = mapped_column(_enum(CommandOutcome, "command_outcome"))
    reason: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_command_audits_repo_pr", "repository_id", "pr_number"),)


class WorkerSeen(Base):
    """Workers report here while they run, with the queues they consume: a job for a queue
    nobody serves fails at once instead of waiting forever."""

    __tablename__ = "workers"

    hostname: Mapped[str] = mapped_column(String(200), primary_key=True)
    queues: Mapped[list[str]] = mapped_column(default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
