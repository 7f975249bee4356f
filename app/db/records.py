"""Upserts of GitHub objects labbot keeps a record of. Callers own the transaction.

Two deliveries about a new repository or PR can be handled at the same moment by two workers,
so a missing row is inserted with ON CONFLICT DO NOTHING and then read back locked: the second
worker waits for the first instead of failing on the unique key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db.models import Base, Installation, PullRequest, Repository
from bots.payloads import InstallationRef, PullRequestData, RepositoryRef

Row = TypeVar("Row", bound=Base)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _insert_missing(session: Session, model: type[Row], **values: Any) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(model).values(**values).on_conflict_do_nothing())


def upsert_installation(session: Session, ref: InstallationRef) -> Installation:
    installation = session.get(Installation, ref.id)
    if installation is None:
        login = ref.account.login if ref.account else ""
        _insert_missing(session, Installation, id=ref.id, account_login=login)
        installation = session.get(Installation, ref.id, with_for_update=True)
        assert installation is not None
    if ref.account is not None:
        installation.account_login = ref.account.login
        installation.account_type = ref.account.type
    return installation


def upsert_repository(
    session: Session, ref: RepositoryRef, installation_id: int | None
) -> Repository:
    repository = session.get(Repository, ref.id)
    if repository is None:
        _insert_missing(session, Repository, id=ref.id, full_name=ref.full_name)
        repository = session.get(Repository, ref.id, with_for_update=True)
        assert repository is not None
    repository.full_name = ref.full_name
    repository.private = ref.private
    repository.removed = False
    if installation_id is not None:
        if session.get(Installation, installation_id) is None:
            owner = ref.full_name.split("/")[0]
            _insert_missing(session, Installation, id=installation_id, account_login=owner)
        repository.installation_id = installation_id
    return repository


def upsert_pull_request(
    session: Session, repository: Repository, data: PullRequestData, updated_at: datetime | None
) -> PullRequest:
    """Record the PR as the payload describes it, unless we already hold a newer state:
    deliveries can arrive out of order, and an old `synchronize` must not roll the head back."""
    query = (
        select(PullRequest)
        .where(PullRequest.repository_id == repository.id, PullRequest.number == data.number)
        .with_for_update()
    )
    pull = session.scalars(query).one_or_none()
    if pull is None:
        session.flush()  # the repository row first
        # Dated the epoch: the check below lets this payload fill the row in, and a changed
        # time keeps the column's onupdate from stamping it with the clock instead.
        _insert_missing(
            session,
            PullRequest,
            repository_id=repository.id,
            number=data.number,
            author=data.user.login,
            head_sha=data.head.sha,
            updated_at=EPOCH,
        )
        pull = session.scalars(query).one()
    if (
        updated_at is not None
        and pull.updated_at is not None
        and _aware(pull.updated_at) > updated_at
    ):
        return pull
    # GitHub never unmerges a PR, so a payload that shows it unmerged is older than the row.
    # (Its times have whole seconds: an `opened` handled after the `closed` of the same
    # second would otherwise pass the check above and undo the merge.)
    if pull.merged and not data.merged:
        return pull
    pull.title = data.title[:300]
    pull.author = data.user.login
    pull.author_association = data.author_association
    pull.head_sha = data.head.sha
    pull.base_ref = data.base.ref
    pull.state = data.state
    pull.draft = data.draft
    pull.merged = data.merged
    pull.merged_at = data.merged_at
    pull.labels = sorted(label.name for label in data.labels)
    if updated_at is not None:
        pull.updated_at = updated_at
    return pull


def _aware(value: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; everything labbot stores is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
