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


def test_concurrent_upgrades_on_postgres_take_turns() -> None:
    """Pods run `labbot db upgrade` as they start (deploy/k8s): upgrades started together wait
    for the advisory lock, then the first migrates and the others find the schema at head."""
    import os
    import subprocess
    import sys
    import time
    import uuid

    import psycopg
    from alembic.script import ScriptDirectory

    from app.db.migrate import MIGRATION_LOCK_KEY, alembic_config
    from tests.conftest import POSTGRES_ADMIN_URL, REPO_ROOT

    name = f"labbot_lock_{uuid.uuid4().hex[:10]}"
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOT_")}
    env["LABBOT_DATABASE_URL"] = url
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with psycopg.connect(f"{base}/{name}", autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "app.cli", "db", "upgrade"],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                for _ in range(2)
            ]
            deadline = time.monotonic() + 60
            waiting = 0
            while waiting < 2 and time.monotonic() < deadline:
                row = holder.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s",
                    (name,),
                ).fetchone()
                waiting = int(row[0]) if row else 0
                time.sleep(0.1)
            assert waiting == 2, "both upgrades should wait for the migration lock"
            tables = holder.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'jobs'"
            ).fetchone()
            assert tables == (0,), "nothing is migrated while the lock is held"
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        outputs = [proc.communicate(timeout=120)[0].decode() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], outputs
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        with psycopg.connect(f"{base}/{name}") as conn:
            versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        assert versions == [(head,)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
