"""Upserts of GitHub objects labbot keeps a record of. Callers own the transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Installation, PullRequest, Repository
from bots.payloads import InstallationRef, PullRequestData, RepositoryRef


def upsert_installation(session: Session, ref: InstallationRef) -> Installation:
    installation = session.get(Installation, ref.id)
    if installation is None:
        installation = Installation(
            id=ref.id, account_login=ref.account.login if ref.account else ""
        )
        session.add(installation)
    if ref.account is not None:
        installation.account_login = ref.account.login
        installation.account_type = ref.account.type
    return installation


def upsert_repository(
    session: Session, ref: RepositoryRef, installation_id: int | None
) -> Repository:
    repository = session.get(Repository, ref.id)
    if repository is None:
        repository = Repository(id=ref.id, full_name=ref.full_name)
        session.add(repository)
    repository.full_name = ref.full_name
    repository.private = ref.private
    repository.removed = False
    if installation_id is not None:
        if session.get(Installation, installation_id) is None:
            session.add(Installation(id=installation_id, account_login=ref.full_name.split("/")[0]))
            session.flush()
        repository.installation_id = installation_id
    return repository


def upsert_pull_request(
    session: Session, repository: Repository, data: PullRequestData, updated_at: datetime | None
) -> PullRequest:
    """Record the PR as the payload describes it, unless we already hold a newer state:
    deliveries can arrive out of order, and an old `synchronize` must not roll the head back."""
    pull = session.scalars(
        select(PullRequest)
        .where(PullRequest.repository_id == repository.id, PullRequest.number == data.number)
        .with_for_update()
    ).one_or_none()
    if pull is None:
        pull = PullRequest(repository_id=repository.id, number=data.number, author=data.user.login)
        session.add(pull)
    elif (
        updated_at is not None
        and pull.updated_at is not None
        and _aware(pull.updated_at) > updated_at
    ):
        return pull
    pull.title = data.title[:300]
    pull.author = data.user.login
    pull.author_association = data.author_association
    pull.head_sha = data.head.sha
    pull.base_ref = data.base.ref
    pull.state = data.state
    pull.draft = data.draft
    pull.merged = data.merged
    pull.labels = sorted(label.name for label in data.labels)
    if updated_at is not None:
        pull.updated_at = updated_at
    return pull


def _aware(value: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; everything labbot stores is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
