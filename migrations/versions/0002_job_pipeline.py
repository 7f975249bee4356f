"""job pipeline: cancellation, approvals, audit, workers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 09:40:34.163207
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("hostname", sa.String(length=200), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hostname"),
    )
    op.create_table(
        "test_approvals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "pull_request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("head_sha", sa.String(length=40), nullable=False),
        sa.Column("approved_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pull_request_id"],
            ["pull_requests.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pull_request_id", "head_sha", name="uq_test_approvals_pr_sha"),
    )
    op.create_table(
        "command_audits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("repository_id", sa.BigInteger(), nullable=False),
        sa.Column("pr_number", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=120), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum("accepted", "refused", name="command_outcome", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_command_audits_repo_pr", "command_audits", ["repository_id", "pr_number"], unique=False
    )
    op.add_column("jobs", sa.Column("trigger", sa.String(length=120), nullable=True))
    op.add_column("jobs", sa.Column("check_run_id", sa.BigInteger(), nullable=True))
    op.add_column("jobs", sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "jobs", sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "jobs",
        sa.Column(
            "cancel_state",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                "superseded",
                name="job_state",
                native_enum=False,
                length=20,
            ),
            nullable=True,
        ),
    )


def downgrade() -> None:
    op.drop_column("jobs", "cancel_state")
    op.drop_column("jobs", "cancel_requested_at")
    op.drop_column("jobs", "published_at")
    op.drop_column("jobs", "check_run_id")
    op.drop_column("jobs", "trigger")
    op.drop_index("ix_command_audits_repo_pr", table_name="command_audits")
    op.drop_table("command_audits")
    op.drop_table("test_approvals")
    op.drop_table("workers")
