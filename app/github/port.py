"""The narrow GitHub port every handler uses. The production adapter wraps PyGithub
(``app.github.client.PyGithubPort``); nothing outside ``app.github`` imports PyGithub.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Protocol

# GitHub's documented limits on check runs and comments.
ANNOTATIONS_PER_REQUEST = 50
CHECK_TEXT_MAX = 65_535
COMMENT_BODY_MAX = 65_536


class GitHubError(Exception):
    """A GitHub request failed for good (after the retries that were allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"GitHub answered {status}: {message}")
        self.status = status


class FileMode(enum.StrEnum):
    file = "100644"
    executable = "100755"
    symlink = "120000"
    submodule = "160000"
    tree = "040000"


@dataclass(frozen=True)
class PullRequestInfo:
    number: int
    title: str
    author: str
    head_sha: str
    base_ref: str
    base_sha: str
    state: Literal["open", "closed"]
    draft: bool
    merged: bool
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ChangedFile:
    path: str
    status: str  # added, modified, removed, renamed, copied, changed, unchanged
    additions: int
    deletions: int
    previous_path: str | None = None


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: FileMode
    type: str  # blob, tree, commit
    sha: str
    size: int | None


@dataclass(frozen=True)
class Annotation:
    path: str
    start_line: int
    end_line: int
    level: Literal["notice", "warning", "failure"]
    message: str
    title: str | None = None
    start_column: int | None = None
    end_column: int | None = None


@dataclass
class CheckRunOutput:
    title: str
    summary: str
    text: str | None = None
    annotations: list[Annotation] = field(default_factory=list)


Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]
Reaction = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


class GitHubPort(Protocol):
    """What labbot does on GitHub, for one repository ("owner/name") at a time."""

    def get_pull_request(self, repo: str, number: int) -> PullRequestInfo: ...

    def list_changed_files(self, repo: str, number: int) -> list[ChangedFile]:
        """All changed files, every page (GitHub stops at 3,000)."""
        ...

    def get_file_content(self, repo: str, path: str, ref: str) -> bytes | None:
        """Raw bytes of a file at a ref (files over 1 MB included); None when absent."""
        ...

    def list_tree(self, repo: str, ref: str, paths: list[str] | None = None) -> list[TreeEntry]:
        """Recursive tree entries with modes: symlinks and submodules are seen, never followed."""
        ...

    def add_labels(self, repo: str, number: int, labels: list[str]) -> None: ...

    def remove_label(self, repo: str, number: int, label: str) -> None:
        """Removing a label that is not there is not an error."""
        ...

    def upsert_comment(
        self, repo: str, number: int, purpose: str, body: str, known_comment_id: int | None = None
    ) -> int:
        """One sticky comment per purpose, found by stored id or a hidden marker; unchanged bodies
        are not re-sent. Returns the comment id to store."""
        ...

    def create_check_run(
        self,
        repo: str,
        name: str,
        head_sha: str,
        *,
        status: Literal["queued", "in_progress", "completed"] = "in_progress",
        conclusion: str | None = None,
        details_url: str | None = None,
        external_id: str | None = None,
        output: CheckRunOutput | None = None,
    ) -> int:
        """Annotations beyond 50 are sent in follow-up updates of the same run."""
        ...

    def update_check_run(
        self,
        repo: str,
        check_run_id: int,
        *,
        status: Literal["queued", "in_progress", "completed"] | None = None,
        conclusion: str | None = None,
        details_url: str | None = None,
        output: CheckRunOutput | None = None,
    ) -> None: ...

    def add_reaction(self, repo: str, comment_id: int, reaction: Reaction) -> None: ...

    def get_permission(self, repo: str, user: str) -> Permission: ...

    def is_team_member(self, org: str, team_slug: str, user: str) -> bool: ...
