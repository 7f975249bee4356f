"""Lenient views of webhook payloads: only the fields labbot uses are validated, everything else
is ignored, because real payloads drift (integer vs string timestamps, new required keys...)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(_Lenient):
    login: str
    id: int | None = None
    type: str = "User"

    @property
    def is_bot(self) -> bool:
        """GitHub Apps (labbot included) act as ``<slug>[bot]`` accounts of type Bot."""
        return self.type == "Bot" or self.login.endswith("[bot]")


class Label(_Lenient):
    name: str


class RepositoryRef(_Lenient):
    id: int
    full_name: str
    private: bool = False
    owner: Account | None = None


class InstallationRef(_Lenient):
    id: int
    account: Account | None = None


class GitRef(_Lenient):
    sha: str
    ref: str | None = None


class PullRequestData(_Lenient):
    number: int
    title: str = ""
    state: str = "open"
    draft: bool = False
    merged: bool = False
    merged_at: datetime | None = None
    user: Account
    head: GitRef
    base: GitRef
    labels: list[Label] = Field(default_factory=list)
    author_association: str | None = None


class CommentData(_Lenient):
    id: int
    body: str = ""
    user: Account
    author_association: str | None = None


class IssueData(_Lenient):
    number: int
    user: Account
    # Present (as an object) only when the issue is a pull request.
    pull_request: dict[str, Any] | None = None
    labels: list[Label] = Field(default_factory=list)
    state: str = "open"


class Payload(_Lenient):
    """Common envelope. `raw` keeps the whole parsed body for handlers that need more."""

    action: str | None = None
    sender: Account | None = None
    repository: RepositoryRef | None = None
    installation: InstallationRef | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Payload:
        return cls.model_validate({**body, "raw": body})


class PullRequestEvent(_Lenient):
    action: str
    number: int
    pull_request: PullRequestData
    repository: RepositoryRef
    label: Label | None = None
    before: str | None = None
    after: str | None = None


class IssueCommentEvent(_Lenient):
    action: str
    issue: IssueData
    comment: CommentData
    repository: RepositoryRef


class InstallationEvent(_Lenient):
    action: str
    installation: InstallationRef
    repositories: list[RepositoryRef] = Field(default_factory=list)
    repositories_added: list[RepositoryRef] = Field(default_factory=list)
    repositories_removed: list[RepositoryRef] = Field(default_factory=list)


def envelope_fields(body: Any) -> tuple[str | None, int | None, str | None]:
    """(action, installation id, repository full name), tolerating any shape."""
    if not isinstance(body, dict):
        return None, None, None
    action = body.get("action")
    installation = body.get("installation")
    repository = body.get("repository")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    full_name = repository.get("full_name") if isinstance(repository, dict) else None
    return (
        action if isinstance(action, str) else None,
        installation_id if isinstance(installation_id, int) else None,
        full_name if isinstance(full_name, str) else None,
    )
