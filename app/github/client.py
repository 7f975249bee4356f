"""The production ``GitHubPort``: PyGithub behind labbot's retry, throttle and re-auth rules.

Every HTTP call goes through one ``Transport.run``, which is the only place that decides whether a
failed request is waited out (rate limits), retried (server errors on safe requests, an expired
installation token) or surfaced as ``GitHubError``. PyGithub's own retries and request spacing are
switched off so that nothing is retried twice or slept twice.
"""

from __future__ import annotations

import base64
import enum
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import requests
from cachetools import LRUCache
from github import Github, GithubException
from github.IssueComment import IssueComment
from github.Repository import Repository

from app.config import Settings
from app.github.port import (
    ANNOTATIONS_PER_REQUEST,
    CHECK_TEXT_MAX,
    COMMENT_BODY_MAX,
    Annotation,
    ChangedFile,
    CheckRunOutput,
    FileMode,
    GitHubError,
    GitHubPort,
    Permission,
    PullRequestInfo,
    Reaction,
    TreeEntry,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

PER_PAGE = 100
# GitHub stops listing a pull request's files here; more are silently left out.
PR_FILES_LIMIT = 3000
ANNOTATION_TITLE_MAX = 255
ANNOTATION_MESSAGE_MAX_BYTES = 64 * 1024
PURPOSE_RE = re.compile(r"^[a-z0-9][a-z0-9_.:/-]{0,63}$")
FULL_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

_ROLES: dict[str, Permission] = {
    "admin": "admin",
    "maintain": "maintain",
    "write": "write",
    "triage": "triage",
    "read": "read",
    "none": "none",
}


# --- retry policy ------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """How long and how often to wait. Tests inject short delays and a recording ``sleep``."""

    max_wait: float = 120.0  # longest single wait for a rate limit; beyond it the call fails
    secondary_wait: float = 60.0  # first wait for a secondary limit that gives no retry-after
    max_rate_limit_attempts: int = 4  # tries in all while rate limited
    server_error_attempts: int = 3  # tries in all on 5xx or no response (safe requests only)
    server_error_backoff: float = 1.0  # first 5xx backoff; doubles on each further failure
    reset_skew: float = 1.0  # the reset second is not exact; wait this much past it
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(max_wait=settings.github_max_rate_limit_wait_seconds)

    def rate_limit_wait(
        self, status: int, headers: Mapping[str, Any], message: str, secondary_hits: int
    ) -> tuple[float, bool] | None:
        """Seconds to wait before retrying, and whether it was a secondary limit without a hint;
        None when the response is not a rate limit (a permissions 403 is final)."""
        if status not in (403, 429):
            return None
        lower = {k.lower(): str(v) for k, v in headers.items()}
        retry_after = lower.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after)), False
            except ValueError:
                pass  # an HTTP date is not what GitHub sends; fall through to the backoff
        if lower.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lower:
            try:
                reset = float(lower["x-ratelimit-reset"])
            except ValueError:
                reset = self.clock()
            return max(0.0, reset - self.clock()) + self.reset_skew, False
        text = message.lower()
        if status == 429 or "rate limit" in text or "abuse" in text:
            return self.secondary_wait * (2**secondary_hits), True
        return None


class Kind(enum.Enum):
    read = "read"  # GET: safe to repeat
    write = "write"  # idempotent write (PATCH same body, PUT, DELETE, add label): safe to repeat
    create = "create"  # not idempotent (POST comment, POST check run, PATCH adding annotations)


class WriteThrottle:
    """One per process: writes go out one at a time from a bucket of ``burst`` tokens refilled
    at one per ``interval`` seconds. One PR's few writes go at once; a burst of PRs is held to
    one write per interval, under GitHub's secondary limit (about 80 content-creating requests a
    minute: at most burst + 60 here). ``burst=1`` spaces every write by the interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._stamp = 0.0

    @contextmanager
    def turn(self, interval: float, burst: int = 1) -> Iterator[None]:
        with self._lock:
            now = time.monotonic()
            if self._tokens is None or interval <= 0:
                self._tokens = float(burst)
            else:
                self._tokens = min(float(burst), self._tokens + (now - self._stamp) / interval)
            self._stamp = now
            if self._tokens < 1:
                time.sleep((1 - self._tokens) * interval)
                self._tokens = 1.0
            try:
                yield
            finally:
                # Refill counts from the end of this write, as GitHub counts requests it finished.
                self._tokens -= 1
                self._stamp = time.monotonic()


WRITER = WriteThrottle()


def _reset_writer_after_fork() -> None:
    # A lock held by another thread at fork time would stay held forever in the child.
    global WRITER
    WRITER = WriteThrottle()


os.register_at_fork(after_in_child=_reset_writer_after_fork)


def _error_message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict):
        message = str(data.get("message") or "")
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            details = "; ".join(
                str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e)
                for e in errors[:5]
            )
            message = f"{message} ({details})" if message else details
        return message or "no message"
    return str(exc.message or data or "no message")


def _is_ambiguous(exc: GitHubError) -> bool:
    """The request may have been carried out although it failed (5xx, or no response at all)."""
    return exc.status == 0 or exc.status >= 500


class Transport:
    """Runs PyGithub calls under labbot's rules; the one place where waits and retries happen."""

    def __init__(
        self,
        policy: RetryPolicy,
        write_interval: float,
        reauth: Callable[[], bool] | None = None,
        writer: WriteThrottle | None = None,
        write_burst: int = 1,
    ) -> None:
        self.policy = policy
        self.write_interval = write_interval
        self.write_burst = write_burst
        self._reauth = reauth
        self._writer = writer

    def run_read(self, call: Callable[[], T], what: str) -> T:
        return self.run(Kind.read, call, what)

    def run(self, kind: Kind, call: Callable[[], T], what: str) -> T:
        reauthed = False
        rate_limited = 0
        secondary_hits = 0
        server_errors = 0
        while True:
            try:
                if kind is Kind.read:
                    return call()
                with (self._writer or WRITER).turn(self.write_interval, self.write_burst):
                    return call()
            except GitHubError:
                raise  # already final (a token that could not be minted)
            except GithubException as exc:
                status, headers, message = exc.status, exc.headers or {}, _error_message(exc)
            except requests.RequestException as exc:
                status, headers, message = 0, {}, f"no response from GitHub ({type(exc).__name__})"

            if status == 401 and not reauthed and self._reauth is not None and self._reauth():
                # An installation token can expire mid-job: mint a new one, once, and retry.
                reauthed = True
                log.info("GitHub refused the installation token for %s; re-minting once", what)
                continue
            wait = self.policy.rate_limit_wait(status, headers, message, secondary_hits)
            if wait is not None:
                seconds, secondary = wait
                rate_limited += 1
                if rate_limited >= self.policy.max_rate_limit_attempts:
                    raise GitHubError(
                        status, f"still rate limited after {rate_limited} tries ({what}): {message}"
                    )
                if seconds > self.policy.max_wait:
                    raise GitHubError(
                        status,
                        f"rate limited ({what}); GitHub asks for a {seconds:.0f}s wait, "
                        f"longer than the {self.policy.max_wait:.0f}s allowed: {message}",
                    )
                secondary_hits += 1 if secondary else 0
                log.warning("GitHub rate limit on %s; waiting %.1fs", what, seconds)
                self.policy.sleep(seconds)
                continue
            if (status == 0 or status >= 500) and kind is not Kind.create:
                server_errors += 1
                if server_errors < self.policy.server_error_attempts:
                    delay = self.policy.server_error_backoff * (2 ** (server_errors - 1))
                    log.warning("GitHub answered %s on %s; retrying in %.1fs", status, what, delay)
                    self.policy.sleep(delay)
                    continue
            raise GitHubError(status, f"{what}: {message}")


# --- text limits -------------------------------------------------------------------------------


def fit_text(text: str, limit: int, link: str | None) -> str:
    """Cut ``text`` to ``limit`` characters, saying so and where the full details are."""
    if len(text) <= limit:
        return text
    where = f": {link}" if link else ""
    note = f"\n\n… truncated — see details{where}"
    kept = text[: max(0, limit - len(note) - 4)]
    # An open code fence would swallow the note; close it.
    if kept.count("```") % 2 == 1:
        kept += "\n```"
    return (kept + note)[:limit]


def _cut_bytes(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "…"


def _same_body(a: str, b: str) -> bool:
    return a.replace("\r\n", "\n") == b.replace("\r\n", "\n")


# --- the adapter -------------------------------------------------------------------------------


def _file_mode(mode: str, kind: str) -> FileMode:
    normal = mode.zfill(6)
    try:
        return FileMode(normal)
    except ValueError:
        # Old repositories carry modes like 100664; classify by object type instead.
        return {"tree": FileMode.tree, "commit": FileMode.submodule}.get(kind, FileMode.file)


@dataclass
class _TreeIndex:
    entries: dict[str, TreeEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class _Comment:
    id: int
    body: str
    login: str | None
    issue_url: str

    @classmethod
    def of(cls, c: IssueComment) -> _Comment:
        return cls(
            id=int(c.id),
            body=c.body or "",
            login=c.user.login if c.user is not None else None,
            issue_url=c.issue_url or "",
        )


class PyGithubPort:
    """``GitHubPort`` on PyGithub. Build it with ``app.github.factory``; one per job is fine
    (tokens, the App integration and the write throttle are shared per process)."""

    def __init__(
        self,
        gh: Github,
        transport: Transport,
        *,
        public_url: str,
        bot_login: str | None = None,
    ) -> None:
        self._gh = gh
        self._transport = transport
        self._public_url = public_url.rstrip("/")
        self._bot_login = bot_login
        self._bot_login_known = bot_login is not None
        self._trees: LRUCache[tuple[str, str], _TreeIndex] = LRUCache(maxsize=4)
        self._lock = threading.Lock()

    # -- plumbing

    def close(self) -> None:
        self._gh.close()

    def __enter__(self) -> PyGithubPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, kind: Kind, call: Callable[[], T], what: str) -> T:
        return self._transport.run(kind, call, what)

    def _repo(self, repo: str) -> Repository:
        if not REPO_RE.match(repo):
            raise ValueError(f"repository must be 'owner/name', not {repo!r}")
        # Lazy (no request) with PyGithub >= 2.9 and Github(lazy=True); callers still build
        # PyGithub objects inside Transport.run so that nothing escapes its error handling.
        return self._gh.get_repo(repo)

    def _api(
        self, verb: str, url: str, *, input: Any | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        _, data = self._gh.requester.requestJsonAndCheck(verb, url, parameters=params, input=input)
        return data

    # -- pull requests and files

    def get_pull_request(self, repo: str, number: int) -> PullRequestInfo:
        def call() -> PullRequestInfo:
            pr = self._repo(repo).get_pull(number).complete()
            return PullRequestInfo(
                number=pr.number,
                title=pr.title,
                author=pr.user.login,
                head_sha=pr.head.sha,
                base_ref=pr.base.ref,
                base_sha=pr.base.sha,
                state="closed" if pr.state == "closed" else "open",
                draft=bool(pr.draft),
                merged=bool(pr.merged),
                labels=tuple(label.name for label in pr.labels),
            )

        return self._run(Kind.read, call, f"get pull request {repo}#{number}")

    def list_changed_files(self, repo: str, number: int) -> list[ChangedFile]:
        def call() -> list[ChangedFile]:
            files = self._repo(repo).get_pull(number).get_files()
            return [
                ChangedFile(
                    path=f.filename,
                    status=f.status,
                    additions=f.additions,
                    deletions=f.deletions,
                    previous_path=f.previous_filename or None,
                )
                for f in files
            ]

        changed = self._run(Kind.read, call, f"list files of {repo}#{number}")
        if len(changed) >= PR_FILES_LIMIT:
            log.warning(
                "%s#%s lists %d files, GitHub's limit; more may exist", repo, number, len(changed)
            )
        return changed

    def list_tree(self, repo: str, ref: str, paths: list[str] | None = None) -> list[TreeEntry]:
        index = self._tree(repo, ref, paths)
        if paths is None:
            return list(index.entries.values())
        wanted = [p.strip("/") for p in paths]
        return [
            e
            for e in index.entries.values()
            if any(e.path == w or e.path.startswith(w + "/") for w in wanted)
        ]

    def get_file_content(self, repo: str, path: str, ref: str) -> bytes | None:
        path = path.strip("/")
        try:
            entry = self._tree(repo, ref, [path]).entries.get(path)
        except GitHubError as exc:
            if exc.status in (404, 422):  # no such ref: the file is not there either
                return None
            raise
        if entry is None or entry.type != "blob":
            return None  # absent, a directory or a submodule: no file content
        # The blob API never follows symlinks (a link's blob is its target) and serves files up
        # to 100 MB, where the contents API stops inlining at 1 MB and resolves links.
        sha = entry.sha

        def call() -> bytes:
            blob = self._repo(repo).get_git_blob(sha)
            if blob.encoding == "base64":
                data = base64.b64decode(blob.content or "")
            else:
                data = (blob.content or "").encode()
            if blob.size is not None and blob.size != len(data):
                raise GitHubError(
                    502, f"blob for {path} came back with {len(data)} of {blob.size} bytes"
                )
            return data

        try:
            return self._run(Kind.read, call, f"read {repo}:{path}@{ref[:12]}")
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    def _tree(self, repo: str, ref: str, paths: list[str] | None) -> _TreeIndex:
        cacheable = bool(FULL_SHA_RE.match(ref))  # a commit SHA never changes; a branch does
        key = (repo, ref)
        if cacheable:
            with self._lock:
                cached = self._trees.get(key)
            if cached is not None:
                return cached

        def call() -> tuple[str, bool, list[TreeEntry]]:
            tree = self._repo(repo).get_git_tree(ref, recursive=True)
            entries = [
                TreeEntry(
                    path=e.path,
                    mode=_file_mode(e.mode, e.type),
                    type=e.type,
                    sha=e.sha,
                    size=e.size if e.type == "blob" else None,
                )
                for e in tree.tree
            ]
            return tree.sha, bool(tree.raw_data.get("truncated")), entries

        root_sha, truncated, entries = self._run(Kind.read, call, f"tree of {repo}@{ref[:12]}")
        index = _TreeIndex({e.path: e for e in entries})
        if truncated:
            # Over GitHub's recursive limit: walk the directories that matter one level at a time.
            index = _TreeIndex({e.path: e for e in self._walk(repo, root_sha, "", paths)})
            cacheable = cacheable and paths is None
        if cacheable:
            with self._lock:
                self._trees[key] = index
        return index

    def _walk(
        self, repo: str, tree_sha: str, prefix: str, paths: list[str] | None
    ) -> Iterator[TreeEntry]:
        def call() -> list[TreeEntry]:
            tree = self._repo(repo).get_git_tree(tree_sha)
            return [
                TreeEntry(
                    path=prefix + e.path,
                    mode=_file_mode(e.mode, e.type),
                    type=e.type,
                    sha=e.sha,
                    size=e.size if e.type == "blob" else None,
                )
                for e in tree.tree
            ]

        for entry in self._run(Kind.read, call, f"tree {tree_sha[:12]} of {repo}"):
            yield entry
            if entry.type == "tree" and (
                paths is None
                or any(
                    p == entry.path
                    or p.startswith(entry.path + "/")
                    or entry.path.startswith(p + "/")
                    for p in paths
                )
            ):
                yield from self._walk(repo, entry.sha, entry.path + "/", paths)

    # -- labels

    def add_labels(self, repo: str, number: int, labels: list[str]) -> None:
        if not labels:
            return
        url = f"/repos/{repo}/issues/{number}/labels"
        self._repo(repo)
        self._run(
            Kind.write,
            lambda: self._api("POST", url, input={"labels": labels}),
            f"label {repo}#{number}",
        )

    def remove_label(self, repo: str, number: int, label: str) -> None:
        self._repo(repo)
        url = f"/repos/{repo}/issues/{number}/labels/{urllib.parse.quote(label, safe='')}"
        try:
            self._run(Kind.write, lambda: self._api("DELETE", url), f"unlabel {repo}#{number}")
        except GitHubError as exc:
            if exc.status != 404:  # the label was not there: nothing to do
                raise

    # -- sticky comments

    def upsert_comment(
        self, repo: str, number: int, purpose: str, body: str, known_comment_id: int | None = None
    ) -> int:
        if not PURPOSE_RE.match(purpose):
            raise ValueError(f"comment purpose must match {PURPOSE_RE.pattern}, not {purpose!r}")
        marker = f"<!-- labbot:{purpose} -->"
        full = fit_text(f"{marker}\n{body}", COMMENT_BODY_MAX, self._public_url)
        where = f"{repo}#{number}"

        found = None
        if known_comment_id is not None:
            found = self._own_comment(repo, number, known_comment_id, marker)
        if found is None:
            found = self._find_marked(repo, number, marker)
        if found is not None:
            return self._update_if_changed(repo, number, found, full)

        policy = self._transport.policy
        for attempt in range(1, policy.server_error_attempts + 1):
            try:
                return self._run(
                    Kind.create,
                    lambda: int(self._repo(repo).get_issue(number).create_comment(full).id),
                    f"comment on {where}",
                )
            except GitHubError as exc:
                if not _is_ambiguous(exc) or attempt == policy.server_error_attempts:
                    raise
                log.warning(
                    "creating the %s comment on %s failed (%s); looking before retrying",
                    purpose,
                    where,
                    exc.status,
                )
                policy.sleep(policy.server_error_backoff * (2 ** (attempt - 1)))
                # GitHub may have created it before failing: look again rather than post twice.
                found = self._find_marked(repo, number, marker)
                if found is not None:
                    return self._update_if_changed(repo, number, found, full)
        raise AssertionError("unreachable")

    def _update_if_changed(self, repo: str, number: int, comment: _Comment, full: str) -> int:
        if not _same_body(comment.body, full):

            def call() -> None:
                self._repo(repo).get_issue(number).get_comment(comment.id).edit(full)

            self._run(Kind.write, call, f"edit comment {comment.id}")
        return comment.id

    def _is_ours(self, comment: _Comment, marker: str) -> bool:
        if marker not in comment.body:
            return False
        login = self._own_login()
        return login is None or comment.login == login

    def _own_comment(self, repo: str, number: int, comment_id: int, marker: str) -> _Comment | None:
        def call() -> _Comment:
            raw = self._repo(repo).get_issue(number).get_comment(comment_id).complete()
            return _Comment.of(raw)

        try:
            comment = self._run(Kind.read, call, f"read comment {comment_id}")
        except GitHubError as exc:
            if exc.status == 404:  # deleted by someone: find or create another
                return None
            raise
        same_issue = comment.issue_url.rstrip("/").endswith(f"/issues/{number}")
        return comment if same_issue and self._is_ours(comment, marker) else None

    def _find_marked(self, repo: str, number: int, marker: str) -> _Comment | None:
        def call() -> list[_Comment]:
            return [_Comment.of(c) for c in self._repo(repo).get_issue(number).get_comments()]

        comments = self._run(Kind.read, call, f"list comments of {repo}#{number}")
        # Oldest first, so the same comment keeps being edited even if a duplicate ever exists.
        return next((c for c in comments if self._is_ours(c, marker)), None)

    def _own_login(self) -> str | None:
        """Whose comments count as ours: ``<slug>[bot]`` for an App, the token's user otherwise."""
        if not self._bot_login_known:
            try:
                self._bot_login = self._run(
                    Kind.read, lambda: self._gh.get_user().complete().login, "who am I"
                )
            except GitHubError as exc:
                # Some tokens cannot read /user; then the marker alone identifies the comment.
                log.warning(
                    "cannot tell which login owns the token (%s); matching by marker only",
                    exc.status,
                )
                self._bot_login = None
            self._bot_login_known = True
        return self._bot_login

    # -- check runs

    def _annotation(self, a: Annotation) -> dict[str, str | int]:
        start = max(1, a.start_line)
        end = max(start, a.end_line)
        out: dict[str, str | int] = {
            "path": a.path,
            "start_line": start,
            "end_line": end,
            "annotation_level": a.level,
            "message": _cut_bytes(a.message, ANNOTATION_MESSAGE_MAX_BYTES) or a.level,
        }
        if a.title:
            out["title"] = a.title[:ANNOTATION_TITLE_MAX]
        # GitHub rejects columns on annotations that span lines.
        if start == end and a.start_column is not None:
            start_column = max(1, a.start_column)
            out["start_column"] = start_column
            if a.end_column is not None:
                out["end_column"] = max(start_column, a.end_column)
        return out

    def _outputs(self, output: CheckRunOutput, link: str | None) -> list[dict[str, Any]]:
        """The output split into requests: the first carries the text, every one its title and
        summary (GitHub requires them) and up to 50 annotations."""
        base: dict[str, Any] = {
            "title": output.title,
            "summary": fit_text(output.summary, CHECK_TEXT_MAX, link),
        }
        if output.text is not None:
            base["text"] = fit_text(output.text, CHECK_TEXT_MAX, link)
        annotations = [self._annotation(a) for a in output.annotations]
        batches = [
            annotations[i : i + ANNOTATIONS_PER_REQUEST]
            for i in range(0, len(annotations), ANNOTATIONS_PER_REQUEST)
        ] or [[]]
        outs = []
        for batch in batches:
            out = dict(base)
            if batch:
                out["annotations"] = batch
            outs.append(out)
        return outs

    def _patch_run(self, repo: str, run_id: int, fields: dict[str, Any], where: str) -> None:
        # PATCHes that add annotations append them, so repeating one would duplicate them.
        kind = Kind.create if fields.get("output", {}).get("annotations") else Kind.write
        self._run(kind, lambda: self._repo(repo).get_check_run(run_id).edit(**fields), where)

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
        self._repo(repo)
        outs = self._outputs(output, details_url or self._public_url) if output is not None else []
        fields: dict[str, Any] = {"name": name, "head_sha": head_sha, "status": status}
        if conclusion is not None:
            fields["conclusion"] = conclusion
        if details_url is not None:
            fields["details_url"] = details_url
        if external_id is not None:
            fields["external_id"] = external_id
        if outs:
            fields["output"] = outs[0]
        where = f"check run {name!r} on {repo}@{head_sha[:12]}"
        try:
            run_id = self._run(
                Kind.create, lambda: int(self._repo(repo).create_check_run(**fields).id), where
            )
        except GitHubError as exc:
            # GitHub may have created it before failing; with an external id we can tell.
            found = None
            if _is_ambiguous(exc) and external_id is not None:
                found = self._find_check_run(repo, head_sha, name, external_id)
            if found is None:
                raise
            run_id = found
        for out in outs[1:]:
            self._patch_run(repo, run_id, {"output": out}, where)
        return run_id

    def _find_check_run(self, repo: str, head_sha: str, name: str, external_id: str) -> int | None:
        policy = self._transport.policy
        policy.sleep(policy.server_error_backoff)

        def call() -> list[int]:
            runs = self._repo(repo).get_commit(head_sha).get_check_runs(check_name=name)
            return [int(r.id) for r in runs if r.external_id == external_id]

        ids = self._run(Kind.read, call, f"find check run {name!r} on {repo}@{head_sha[:12]}")
        return min(ids) if ids else None

    def update_check_run(
        self,
        repo: str,
        check_run_id: int,
        *,
        status: Literal["queued", "in_progress", "completed"] | None = None,
        conclusion: str | None = None,
        details_url: str | None = None,
        output: CheckRunOutput | None = None,
    ) -> None:
        self._repo(repo)
        outs = self._outputs(output, details_url or self._public_url) if output is not None else []
        final: dict[str, Any] = {}
        if status is not None:
            final["status"] = status
        if conclusion is not None:
            final["conclusion"] = conclusion
        if details_url is not None:
            final["details_url"] = details_url
        where = f"check run {check_run_id} on {repo}"
        # Annotations first, the verdict last: whoever reacts to "completed" sees them all.
        for out in outs[:-1]:
            self._patch_run(repo, check_run_id, {"output": out}, where)
        if outs:
            final["output"] = outs[-1]
        if final:
            self._patch_run(repo, check_run_id, final, where)

    # -- reactions, permissions, teams

    def add_reaction(self, repo: str, comment_id: int, reaction: Reaction) -> None:
        self._repo(repo)
        url = f"/repos/{repo}/issues/comments/{comment_id}/reactions"
        # Reacting twice is answered 200 with the existing reaction, so a repeat is harmless.
        self._run(
            Kind.write,
            lambda: self._api("POST", url, input={"content": reaction}),
            f"react on {comment_id}",
        )

    def get_permission(self, repo: str, user: str) -> Permission:
        self._repo(repo)
        url = f"/repos/{repo}/collaborators/{urllib.parse.quote(user, safe='')}/permission"
        try:
            data = self._run(
                Kind.read, lambda: self._api("GET", url), f"permission of {user} on {repo}"
            )
        except GitHubError as exc:
            if exc.status == 404:  # no such user
                return "none"
            raise
        role = str(data.get("role_name") or "")
        if role in _ROLES:
            return _ROLES[role]
        # A custom role: GitHub also reports the base permission it builds on.
        return _ROLES.get(str(data.get("permission") or "none"), "none")

    def is_team_member(self, org: str, team_slug: str, user: str) -> bool:
        parts = [urllib.parse.quote(p, safe="") for p in (org, team_slug, user)]
        url = "/orgs/{}/teams/{}/memberships/{}".format(*parts)
        try:
            data = self._run(
                Kind.read, lambda: self._api("GET", url), f"{user} in {org}/{team_slug}"
            )
        except GitHubError as exc:
            if exc.status == 404:  # not a member (or no such team): callers fail closed
                return False
            raise
        # An invitation not yet accepted is "pending" and grants nothing.
        return bool(isinstance(data, dict) and data.get("state") == "active")


def _conforms(port: PyGithubPort) -> GitHubPort:
    return port  # mypy proves PyGithubPort implements every method of the port
