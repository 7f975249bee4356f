"""Pull request events: keep labbot's record of each PR (number, head, author, state, labels)."""

from __future__ import annotations

from datetime import datetime

from app.db.records import upsert_pull_request, upsert_repository
from app.db.session import session_scope
from bots.payloads import PullRequestEvent
from bots.registry import EventContext, Router

router = Router()


@router.on(
    "pull_request",
    "opened",
    "reopened",
    "synchronize",
    "edited",
    "closed",
    "ready_for_review",
    "converted_to_draft",
    "labeled",
    "unlabeled",
)
def record_pull_request(ctx: EventContext) -> None:
    event = PullRequestEvent.model_validate(ctx.raw)
    installation_id = ctx.payload.installation.id if ctx.payload.installation else None
    with session_scope() as session:
        repository = upsert_repository(session, event.repository, installation_id)
        session.flush()
        upsert_pull_request(session, repository, event.pull_request, _updated_at(ctx.raw))


def _updated_at(raw: dict[str, object]) -> datetime | None:
    pull = raw.get("pull_request")
    value = pull.get("updated_at") if isinstance(pull, dict) else None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None
