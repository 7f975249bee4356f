"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.db.migrate import upgrade
from app.db.models import Base
from app.db.session import engine_for


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_models_and_migrations_do_not_drift(
    database: str, migrated_databases: dict[str, str]
) -> None:
    url = migrated_databases[database]
    upgrade(url)  # idempotent at head
    with engine_for(url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    assert diff == [], f"models and migrations differ: {diff}"
    assert {"deliveries", "pull_requests", "jobs", "builds", "triage_runs"} <= tables
