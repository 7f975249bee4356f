"""Installation events: which accounts and repositories labbot is installed on."""

from __future__ import annotations

from sqlalchemy import update

from app.db.models import Repository
from app.db.records import upsert_installation, upsert_repository
from app.db.session import session_scope
from bots.payloads import InstallationEvent
from bots.registry import EventContext, Router

router = Router()


@router.on("installation", "created", "deleted", "suspend", "unsuspend", "new_permissions_accepted")
def record_installation(ctx: EventContext) -> None:
    event = InstallationEvent.model_validate(ctx.raw)
    with session_scope() as session:
        installation = upsert_installation(session, event.installation)
        installation.suspended = event.action == "suspend"
        installation.removed = event.action == "deleted"
        session.flush()
        for repository in event.repositories:
            upsert_repository(session, repository, installation.id)
        if event.action == "deleted":
            session.execute(
                update(Repository)
                .where(Repository.installation_id == installation.id)
                .values(removed=True)
            )


@router.on("installation_repositories", "added", "removed")
def record_installation_repositories(ctx: EventContext) -> None:
    event = InstallationEvent.model_validate(ctx.raw)
    with session_scope() as session:
        installation = upsert_installation(session, event.installation)
        session.flush()
        for repository in event.repositories_added:
            upsert_repository(session, repository, installation.id)
        for ref in event.repositories_removed:
            removed = session.get(Repository, ref.id)
            if removed is not None:
                removed.removed = True
