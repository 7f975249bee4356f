"""The simulator's in-memory records: what GitHub stores, reduced to what labbot can observe."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from app.simulator.gitstore import GitStore

# Repository roles from most to least powerful, and how GitHub folds them into the legacy
# `permission` field of the collaborator-permission endpoint.
ROLES = ("admin", "maintain", "write", "triage", "read", "none")
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")

DEFAULT_APP_PERMISSIONS = {
    "checks": "write",
    "contents": "read",
    "issues": "write",
    "members": "read",
    "metadata": "read",
    "pull_requests": "write",
}
DEFAULT_APP_EVENTS = ["check_run", "check_suite", "issue_comment", "issues", "pull_request"]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Team:
    id: int
    slug: str
    name: str
    members: dict[str, str] = field(default_factory=dict)  # login -> member | maintainer


@dataclass
class Account:
    """A user, an organization or a bot."""

    login: str
    id: int
    type: Literal["User", "Organization", "Bot"]
    members: set[str] = field(default_factory=set)  # organizations only
    teams: dict[str, Team] = field(default_factory=dict)  # organizations only, by slug


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


@dataclass
class Reaction:
    id: int
    user: str
    content: str
    created_at: datetime


@dataclass
class Comment:
    id: int
    issue_number: int
    user: str
    body: str
    created_at: datetime
    updated_at: datetime
    via_app: bool = False
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class PullData:
    """What a pull request adds to its issue."""

    id: int
    head_ref: str
    head_sha: str
    head_repo: str  # full name; a fork when the author is not working in the base repository
    base_ref: str
    merge_base: str  # the base commit the head was branched from; "files changed" diff against it
    commits: list[str]
    draft: bool = False
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None


@dataclass
class Issue:
    """An issue or a pull request: they share numbers, labels and comments as on GitHub."""

    number: int
    id: int
    title: str
    body: str | None
    user: str
    created_at: datetime
    updated_at: datetime
    state: Literal["open", "closed"] = "open"
    closed_at: datetime | None = None
    closed_by: str | None = None
    labels: list[str] = field(default_factory=list)  # names, in the order they were added
    comments: list[int] = field(default_factory=list)
    pull: PullData | None = None


@dataclass
class CheckRun:
    id: int
    repo: str
    name: str
    head_sha: str
    suite_id: int
    app_id: int
    status: str = "queued"
    conclusion: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    details_url: str | None = None
    external_id: str | None = None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    created_at: datetime
    private: bool = False
    default_branch: str = "main"
    fork_of: str | None = None
    git: GitStore = field(default_factory=GitStore)
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit sha
    labels: dict[str, Label] = field(default_factory=dict)  # lower-case name -> label
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)  # issue comments by id
    roles: dict[str, str] = field(default_factory=dict)  # explicit collaborator roles

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Installation:
    id: int
    account: str
    repos: set[str]  # full names
    created_at: datetime


@dataclass
class Token:
    value: str
    installation_id: int
    expires_at: datetime
    permissions: dict[str, str]
    repos: frozenset[str] | None  # None: every repository of the installation


@dataclass
class OAuthApp:
    """An application that signs people in with GitHub's OAuth web flow (an OAuth app, or a
    GitHub App's client id and secret)."""

    client_id: str
    client_secret: str
    name: str = "labbot"
    callback_url: str | None = None  # None: any redirect_uri is accepted (a simulator leniency)


@dataclass
class OAuthCode:
    """A code handed to the browser on authorization: single use, short-lived."""

    code: str
    client_id: str
    login: str
    redirect_uri: str
    scope: str
    expires_at: datetime


@dataclass
class UserToken:
    """A user access token minted for an OAuth app (`gho_...`): acts as the user."""

    value: str
    login: str
    client_id: str
    scopes: frozenset[str]
    created_at: datetime


@dataclass
class AppConfig:
    id: int = 1
    slug: str = "labbot"
    name: str = "labbot"
    owner: str = "labbot-dev"
    permissions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_APP_PERMISSIONS))
    events: list[str] = field(default_factory=lambda: list(DEFAULT_APP_EVENTS))
    public_key_pem: str | None = None

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"


@dataclass
class SimConfig:
    webhook_url: str | None = None
    webhook_secret: str | None = None
    app: AppConfig = field(default_factory=AppConfig)
    plain_token: str | None = None
    plain_token_user: str = "labbot-dev"
    hook_id: int = 4242
    rate_limit: int = 5000
    # GitHub also tells the App about what the App did itself (its labels, comments, check runs).
    send_bot_events: bool = True
    html_url: str = "https://github.com"
    # OAuth apps by client id (the web flow at /login/oauth/...); they survive a reset.
    oauth_apps: dict[str, OAuthApp] = field(default_factory=dict)


@dataclass
class DeliveryRecord:
    id: int
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    url: str | None
    headers: dict[str, str]
    body: bytes
    delivered_at: datetime
    redelivery: bool = False
    status_code: int | None = None  # None until sent, or when nothing could be sent
    status: str = "pending"
    duration: float = 0.0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    payload_problem: str | None = None  # the payload does not match GitHub's x-webhooks schema


@dataclass
class RequestRecord:
    id: int
    at: datetime
    method: str
    path: str
    query: dict[str, str]
    operation: str | None
    body: Any
    status: int = 0
    invalid: str | None = None
    fault: bool = False
    response_problem: str | None = (
        None  # the simulator's own response did not match the description
    )


@dataclass
class Fault:
    id: int
    method: str  # upper case, or "*"
    path: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: Any
    remaining: int
    mode: Literal["before", "after", "delay"]
    delay_seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in ("*", method)
            and self.path.fullmatch(path) is not None
        )


@dataclass
class RateBucket:
    limit: int
    reset_at: datetime
    used: int = 0
