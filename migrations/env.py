"""Alembic environment: the URL comes from the caller's config or from labbot's settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from app.config import get_settings
from app.db.migrate import MIGRATION_LOCK_KEY
from app.db.models import Base
from app.db.session import engine_for

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with engine_for(url).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            # Upgrades started together (every pod runs one as it starts, deploy/k8s) take
            # turns; each reads the version after the previous one committed.
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
