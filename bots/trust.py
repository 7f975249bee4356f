"""Who may start expensive jobs, and whose pull requests may run them.

A person is trusted with triage permission or higher on the repository, or as a member of a
configured team, both asked of the API at the time (``author_association`` under-reports private
org members). Any API error counts as "not known": callers refuse, they never assume trust.
A PR by an untrusted author runs triage only and carries ``needs-ok-to-test`` until a trusted
person comments ``/lab ok-to-test``; that approval holds for the head SHA it was given for.
(The triage job sets and clears that label with the others, on every new head.)"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db.models import TestApproval
from app.db.session import session_scope
from app.github.port import GitHubError, GitHubPort

log = logging.getLogger(__name__)
TRUSTED_PERMISSIONS = frozenset({"triage", "write", "maintain", "admin"})


class TrustUnknown(Exception):  # noqa: N818
    """GitHub could not say whether the person is trusted."""


def is_trusted(github: GitHubPort, repo: str, user: str, settings: Settings) -> bool:
    try:
        if github.get_permission(repo, user) in TRUSTED_PERMISSIONS:
            return True
        for team in settings.trusted_teams:
            org, _, slug = team.partition("/")
            if slug and github.is_team_member(org, slug, user):
                return True
    except GitHubError as exc:
        raise TrustUnknown(str(exc)) from exc
    return False


def approved(session: Session, pull_request_id: int, head_sha: str) -> bool:
    return (
        session.scalars(
            select(TestApproval.id).where(
                TestApproval.pull_request_id == pull_request_id,
                TestApproval.head_sha == head_sha,
            )
        ).first()
        is not None
    )


def author_cleared(
    github: GitHubPort, repo: str, author: str, pull_request_id: int, head_sha: str
) -> bool:
    """May jobs run on this PR at this SHA? Its author is trusted, or a trusted person said
    ok-to-test for exactly this SHA. Fails closed."""
    with session_scope() as session:
        if approved(session, pull_request_id, head_sha):
            return True
    try:
        return is_trusted(github, repo, author, get_settings())
    except TrustUnknown:
        return False
