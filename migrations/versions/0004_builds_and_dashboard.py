"""builds and dashboard: build records with their repository, stages and error; when a PR
merged and what kind it is; indexes for the dashboard's filters

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 14:53:47.942817
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INDEXES = (
    ("ix_build_pull_requests_pull", "build_pull_requests", ["pull_request_id"]),
    ("ix_builds_repository_id", "builds", ["repository_id", "id"]),
    ("ix_jobs_build_id", "jobs", ["build_id"]),
    ("ix_jobs_finished_at", "jobs", ["finished_at"]),
    ("ix_jobs_pull_request_id", "jobs", ["pull_request_id", "id"]),
    ("ix_jobs_queued_at", "jobs", ["queued_at"]),
    ("ix_jobs_repository_id", "jobs", ["repository_id", "id"]),
    ("ix_pull_requests_author", "pull_requests", ["author"]),
    ("ix_pull_requests_repo_merged_at", "pull_requests", ["repository_id", "merged_at"]),
    ("ix_pull_requests_state_updated_at", "pull_requests", ["state", "updated_at"]),
    ("ix_triage_findings_run", "triage_findings", ["triage_run_id"]),
)


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch:
        batch.add_column(sa.Column("repository_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("previous_build_id", BigId, nullable=True))
        batch.add_column(sa.Column("trigger", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("stages", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.create_foreign_key(
            "fk_builds_repository_id", "repositories", ["repository_id"], ["id"]
        )
        batch.create_foreign_key(
            "fk_builds_previous_build_id", "builds", ["previous_build_id"], ["id"]
        )
    with op.batch_alter_table("pull_requests") as batch:
        batch.add_column(sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(length=20), nullable=True))
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("pull_requests") as batch:
        batch.drop_column("kind")
        batch.drop_column("merged_at")
    with op.batch_alter_table("builds") as batch:
        batch.drop_constraint("fk_builds_previous_build_id", type_="foreignkey")
        batch.drop_constraint("fk_builds_repository_id", type_="foreignkey")
        batch.drop_column("error")
        batch.drop_column("stages")
        batch.drop_column("trigger")
        batch.drop_column("previous_build_id")
        batch.drop_column("repository_id")
