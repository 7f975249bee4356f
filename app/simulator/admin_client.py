"""A small typed client for the simulator's admin API (`/_sim/...`), for tests and benchmarks.

Repositories are named "owner/name". Actions that send labbot a webhook return a `Delivered`
(or a subclass carrying the ids the action made) with the delivery GUID and labbot's HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import httpx

# A file change: text, {"base64": ...}, {"symlink": target}, {"submodule": sha},
# {"executable": text}, or None to delete.
FileChange = str | dict[str, str] | None


class SimulatorError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"simulator answered {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Delivered:
    delivery: str | None  # GUID of the (last) webhook sent; None when none was sent
    status: int | None  # labbot's HTTP status for it; None when nothing answered
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # the whole answer

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Delivered:
        return cls(
            delivery=data.get("delivery"),
            status=data.get("status"),
            deliveries=data.get("deliveries", []),
            data=data,
        )


@dataclass(frozen=True, kw_only=True)
class PullOpened(Delivered):
    number: int
    head_sha: str
    base_sha: str


@dataclass(frozen=True, kw_only=True)
class Pushed(Delivered):
    head_sha: str
    before: str


@dataclass(frozen=True, kw_only=True)
class CommentPosted(Delivered):
    comment_id: int


@dataclass(frozen=True, kw_only=True)
class IssueOpened(Delivered):
    number: int


@dataclass(frozen=True, kw_only=True)
class InstallationCreated(Delivered):
    installation_id: int


@dataclass(frozen=True)
class RepoCreated:
    id: int
    full_name: str
    default_branch: str
    head_sha: str
    installation_id: int | None


class _Unset:
    pass


UNSET: Any = _Unset()


class SimulatorAdmin:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.base_url}/_sim", timeout=timeout)

    @property
    def api_url(self) -> str:
        """What to give PyGithub as `base_url` (the REST API is served at the root)."""
        return self.base_url

    # -- plumbing ---------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        response = self._http.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            try:
                detail = response.json()
                message = str(detail.get("detail") or detail.get("message") or detail)
            except ValueError:
                message = response.text
            raise SimulatorError(response.status_code, message)
        return response.json()

    def _delivered(self, method: str, path: str, body: Any = None) -> Delivered:
        return Delivered.from_json(self._call(method, path, body))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimulatorAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- world ------------------------------------------------------------------------------

    def reset(self) -> None:
        self._call("POST", "/reset")

    def configure(
        self,
        *,
        webhook_url: str | None = UNSET,
        webhook_secret: str | None = UNSET,
        app: Mapping[str, Any] | None = UNSET,
        plain_token: str | None = UNSET,
        plain_token_user: str = UNSET,
        rate_limit: int = UNSET,
        send_bot_events: bool = UNSET,
        html_url: str = UNSET,
    ) -> dict[str, Any]:
        """Change only the settings given. `app` takes id, slug, name, owner, permissions,
        events, public_key_pem."""
        given = {
            "webhook_url": webhook_url,
            "webhook_secret": webhook_secret,
            "app": dict(app) if isinstance(app, Mapping) else app,
            "plain_token": plain_token,
            "plain_token_user": plain_token_user,
            "rate_limit": rate_limit,
            "send_bot_events": send_bot_events,
            "html_url": html_url,
        }
        result: dict[str, Any] = self._call(
            "POST", "/config", {k: v for k, v in given.items() if v is not UNSET}
        )
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/config")
        return result

    def create_repo(
        self,
        full_name: str,
        files: Mapping[str, FileChange] | None = None,
        *,
        org: bool = False,
        private: bool = False,
        default_branch: str = "main",
        install: bool = True,
    ) -> RepoCreated:
        """Create a repository silently (no webhook); by default the App is installed on it."""
        owner, name = full_name.split("/", 1)
        body = {
            "owner": owner,
            "name": name,
            "files": dict(files or {}),
            "org": org,
            "private": private,
            "default_branch": default_branch,
            "install": install,
        }
        return RepoCreated(**self._call("POST", "/repos", body))

    def create_installation(
        self, account: str, repos: Iterable[str], *, sender: str | None = None
    ) -> InstallationCreated:
        """(Re)install the App on `account`'s `repos` and send `installation.created`."""
        data = self._call(
            "POST", "/installations", {"account": account, "repos": list(repos), "sender": sender}
        )
        base = Delivered.from_json(data)
        return InstallationCreated(**vars(base), installation_id=data["installation_id"])

    # -- pull requests and issues -----------------------------------------------------------

    def open_pr(
        self,
        repo: str,
        *,
        author: str,
        files: Mapping[str, FileChange],
        title: str = "Add a taxonomy contribution",
        body: str | None = None,
        draft: bool = False,
        head_ref: str | None = None,
        base: str | None = None,
        fork: bool = False,
    ) -> PullOpened:
        """Open a pull request (sends `pull_request.opened`)."""
        payload = {
            "author": author,
            "title": title,
            "body": body,
            "draft": draft,
            "head_ref": head_ref,
            "base": base,
            "fork": fork,
            "files": dict(files),
        }
        data = self._call("POST", f"/repos/{repo}/pulls", payload)
        return PullOpened(
            **vars(Delivered.from_json(data)),
            number=data["number"],
            head_sha=data["head_sha"],
            base_sha=data["base_sha"],
        )

    def push(
        self, repo: str, number: int, files: Mapping[str, FileChange], *, message: str = "Update"
    ) -> Pushed:
        """Push a commit to the pull request's head (sends `pull_request.synchronize`)."""
        data = self._call(
            "POST", f"/repos/{repo}/pulls/{number}/push", {"files": dict(files), "message": message}
        )
        return Pushed(
            **vars(Delivered.from_json(data)), head_sha=data["head_sha"], before=data["before"]
        )

    def label(
        self,
        repo: str,
        number: int,
        *,
        user: str,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> Delivered:
        """A person adds/removes labels (one `labeled`/`unlabeled` delivery per label)."""
        body = {"user": user, "add": list(add), "remove": list(remove)}
        return self._delivered("POST", f"/repos/{repo}/issues/{number}/labels", body)

    def comment(self, repo: str, number: int, *, user: str, body: str) -> CommentPosted:
        """A person comments on a pull request or issue (sends `issue_comment.created`)."""
        data = self._call(
            "POST", f"/repos/{repo}/issues/{number}/comments", {"user": user, "body": body}
        )
        return CommentPosted(**vars(Delivered.from_json(data)), comment_id=data["comment_id"])

    def edit_comment(
        self, repo: str, comment_id: int, body: str, *, user: str | None = None
    ) -> Delivered:
        return self._delivered(
            "PATCH", f"/repos/{repo}/comments/{comment_id}", {"body": body, "user": user}
        )

    def delete_comment(self, repo: str, comment_id: int, *, user: str | None = None) -> Delivered:
        params = {"user": user} if user else None
        return Delivered.from_json(
            self._call("DELETE", f"/repos/{repo}/comments/{comment_id}", params=params)
        )

    def open_issue(
        self, repo: str, *, author: str, title: str, body: str | None = None
    ) -> IssueOpened:
        data = self._call(
            "POST", f"/repos/{repo}/issues", {"author": author, "title": title, "body": body}
        )
        return IssueOpened(**vars(Delivered.from_json(data)), number=data["number"])

    def _transition(self, repo: str, number: int, what: str, user: str | None) -> Delivered:
        return self._delivered("POST", f"/repos/{repo}/pulls/{number}/{what}", {"user": user})

    def close_pr(self, repo: str, number: int, *, user: str | None = None) -> Delivered:
        return self._transition(repo, number, "close", user)

    def reopen_pr(self, repo: str, number: int, *, user: str | None = None) -> Delivered:
        return self._transition(repo, number, "reopen", user)

    def merge_pr(self, repo: str, number: int, *, user: str | None = None) -> Delivered:
        """Merge (sends `pull_request.closed`, `merged: true`); the owner merges by default."""
        return self._transition(repo, number, "merge", user)

    def ready_for_review(self, repo: str, number: int, *, user: str | None = None) -> Delivered:
        return self._transition(repo, number, "ready_for_review", user)

    def convert_to_draft(self, repo: str, number: int, *, user: str | None = None) -> Delivered:
        return self._transition(repo, number, "convert_to_draft", user)

    # -- people -----------------------------------------------------------------------------

    def set_permission(
        self,
        repo: str,
        user: str,
        permission: Literal["admin", "maintain", "write", "triage", "read", "none"],
    ) -> None:
        self._call("PUT", f"/repos/{repo}/permissions/{user}", {"permission": permission})

    def remove_permission(self, repo: str, user: str) -> None:
        self._call("DELETE", f"/repos/{repo}/permissions/{user}")

    def add_team_member(
        self, org: str, team: str, user: str, *, role: Literal["member", "maintainer"] = "member"
    ) -> None:
        self._call("PUT", f"/orgs/{org}/teams/{team}/members/{user}", {"role": role})

    def remove_team_member(self, org: str, team: str, user: str) -> None:
        self._call("DELETE", f"/orgs/{org}/teams/{team}/members/{user}")

    def add_org_member(self, org: str, user: str) -> None:
        self._call("PUT", f"/orgs/{org}/members/{user}")

    def remove_org_member(self, org: str, user: str) -> None:
        self._call("DELETE", f"/orgs/{org}/members/{user}")

    # -- checks, faults, tokens -------------------------------------------------------------

    def rerequest_check_run(self, check_run_id: int, *, user: str | None = None) -> Delivered:
        """A person clicks "Re-run" (sends `check_run.rerequested`)."""
        return self._delivered("POST", f"/check_runs/{check_run_id}/rerequest", {"user": user})

    def fault(
        self,
        path: str,
        status: int,
        *,
        method: str = "*",
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        times: int = 1,
        mode: Literal["before", "after", "delay"] = "before",
        delay_seconds: float = 0.0,
    ) -> int:
        """Answer the next `times` requests whose path fully matches the regex `path` with
        `status`; `mode="after"` lets the request take effect first; `mode="delay"` answers
        them as usual after `delay_seconds` (a slow GitHub; `status` is then unused)."""
        payload = {
            "method": method,
            "path": path,
            "status": status,
            "headers": dict(headers or {}),
            "body": body,
            "times": times,
            "mode": mode,
            "delay_seconds": delay_seconds,
        }
        fault_id: int = self._call("POST", "/faults", payload)["fault_id"]
        return fault_id

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_tokens(self) -> int:
        """Make every installation token issued so far expire now."""
        expired: int = self._call("POST", "/tokens/expire")["expired"]
        return expired

    # -- the OAuth web flow -----------------------------------------------------------------

    def register_oauth_app(
        self,
        client_id: str,
        client_secret: str,
        *,
        name: str = "labbot",
        callback_url: str | None = None,
    ) -> None:
        """Register an application for `/login/oauth/...` (without `callback_url` any
        redirect_uri is accepted)."""
        body = {
            "client_id": client_id,
            "client_secret": client_secret,
            "name": name,
            "callback_url": callback_url,
        }
        self._call("POST", "/oauth/apps", body)

    def sign_in(self, user: str | None) -> None:
        """Who the browser is signed in as on the simulator: `/login/oauth/authorize` then
        redirects back at once. None: the authorize page shows a button per known user."""
        self._call("PUT", "/oauth/signed-in", {"user": user})

    def expire_oauth_codes(self) -> int:
        expired: int = self._call("POST", "/oauth/codes/expire")["expired"]
        return expired

    def oauth_tokens(self) -> list[dict[str, Any]]:
        """User tokens minted (login, client_id, scopes; never the token)."""
        result: list[dict[str, Any]] = self._call("GET", "/oauth/tokens")
        return result

    # -- introspection ----------------------------------------------------------------------

    def requests(
        self, *, invalid: bool = False, operation: str | None = None
    ) -> list[dict[str, Any]]:
        """Every REST request received (`invalid=True`: only those GitHub would refuse)."""
        params: dict[str, Any] = {"invalid": invalid}
        if operation:
            params["operation"] = operation
        result: list[dict[str, Any]] = self._call("GET", "/requests", params=params)
        return result

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def deliveries(
        self, *, event: str | None = None, payload: bool = False, wait: bool = False
    ) -> list[dict[str, Any]]:
        """Webhooks sent; `wait=True` first waits for background deliveries to go out."""
        params: dict[str, Any] = {"payload": payload, "wait": wait}
        if event:
            params["event"] = event
        result: list[dict[str, Any]] = self._call("GET", "/deliveries", params=params)
        return result

    def flush_deliveries(self, timeout: float = 30.0) -> bool:
        idle: bool = self._call("POST", "/deliveries/flush", params={"timeout": timeout})["idle"]
        return idle

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/state")
        return result
