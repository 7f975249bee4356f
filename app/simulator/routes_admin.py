"""The admin API under `/_sim/` (JSON, no auth): set up the world, act as people on GitHub, inject
faults, and look at what labbot did.

Every action that GitHub would announce to the App sends labbot that webhook, signed, before the
action returns; the answer carries the delivery GUID and labbot's HTTP status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.simulator.errors import ApiError
from app.simulator.models import AppConfig, DeliveryRecord, Fault, Issue, OAuthApp, Repo, iso
from app.simulator.render import Renderer, Urls
from app.simulator.state import FileChangeSpec, SimulatorState
from app.simulator.webhooks import Events, WebhookSender

FileChanges = dict[str, FileChangeSpec]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppBody(_Body):
    id: int | None = None
    slug: str | None = None
    name: str | None = None
    owner: str | None = None
    permissions: dict[str, str] | None = None
    events: list[str] | None = None
    public_key_pem: str | None = None


class ConfigBody(_Body):
    webhook_url: str | None = None
    webhook_secret: str | None = None
    app: AppBody | None = None
    plain_token: str | None = None
    plain_token_user: str | None = None
    rate_limit: int | None = Field(None, ge=0)
    send_bot_events: bool | None = None
    html_url: str | None = None


class RepoBody(_Body):
    owner: str
    name: str
    files: FileChanges = {}
    org: bool = False
    private: bool = False
    default_branch: str = "main"
    install: bool = True


class InstallationBody(_Body):
    account: str
    repos: list[str]
    sender: str | None = None


class PullBody(_Body):
    author: str
    title: str = "Add a taxonomy contribution"
    body: str | None = None
    draft: bool = False
    head_ref: str | None = None
    base: str | None = None
    fork: bool = False
    files: FileChanges = {}


class PushBody(_Body):
    files: FileChanges
    message: str = "Update the contribution"


class LabelsBody(_Body):
    user: str
    add: list[str] = []
    remove: list[str] = []


class CommentBody(_Body):
    user: str
    body: str


class EditCommentBody(_Body):
    body: str
    user: str | None = None  # who edits; the author by default


class IssueBody(_Body):
    author: str
    title: str
    body: str | None = None


class ActorBody(_Body):
    user: str | None = None


class RoleBody(_Body):
    permission: str


class TeamMemberBody(_Body):
    role: Literal["member", "maintainer"] = "member"


class OAuthAppBody(_Body):
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    name: str = "labbot"
    callback_url: str | None = None  # None: any redirect_uri is accepted


class SignedInBody(_Body):
    user: str | None  # None: nobody; the authorize page asks


class FaultBody(_Body):
    method: str = "*"
    path: str
    status: int
    headers: dict[str, str] = {}
    body: Any = None
    times: int = Field(1, ge=1)
    mode: Literal["before", "after", "delay"] = "before"
    delay_seconds: float = Field(0.0, ge=0, le=300)


def delivery_json(record: DeliveryRecord, *, payload: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": record.id,
        "guid": record.guid,
        "event": record.event,
        "action": record.action,
        "status": record.status_code,
        "status_text": record.status,
        "redelivery": record.redelivery,
        "delivered_at": iso(record.delivered_at),
        "installation_id": record.installation_id,
        "repository_id": record.repository_id,
        "payload_problem": record.payload_problem,
    }
    if payload:
        out["payload"] = json.loads(record.body)
        out["headers"] = record.headers
        out["response_body"] = record.response_body
    return out


def _result(records: list[DeliveryRecord], **ids: Any) -> dict[str, Any]:
    """`{"delivery", "status"}` of the last delivery, all of them, and the ids the action made."""
    last = records[-1] if records else None
    return {
        **ids,
        "delivery": last.guid if last else None,
        "status": last.status_code if last else None,
        "deliveries": [delivery_json(r) for r in records],
    }


def admin_router(state: SimulatorState, sender: WebhookSender) -> APIRouter:
    router = APIRouter(prefix="/_sim", tags=["simulator admin"])

    @contextmanager
    def acting(request: Request) -> Iterator[Events]:
        """Hold the lock while the action changes the world and builds its webhooks (sent once
        the lock is released); simulator errors become HTTP errors."""
        renderer = Renderer(state, Urls(str(request.base_url).rstrip("/"), state.config.html_url))
        events = Events(sender, renderer)
        try:
            with state.lock:
                yield events
        except ApiError as exc:
            raise HTTPException(exc.status, exc.message) from exc

    def pull_of(owner: str, name: str, number: int) -> tuple[Repo, Issue]:
        repo = state.repo(owner, name)
        return repo, state.pull(repo, number)

    # -- world ------------------------------------------------------------------------------

    @router.post("/reset")
    def reset() -> dict[str, Any]:
        state.reset()
        return {"reset": True}

    @router.get("/config")
    def get_config() -> dict[str, Any]:
        c = state.config
        return {
            "webhook_url": c.webhook_url,
            "webhook_secret_set": bool(c.webhook_secret),
            "app": {
                "id": c.app.id,
                "slug": c.app.slug,
                "name": c.app.name,
                "owner": c.app.owner,
                "permissions": c.app.permissions,
                "events": c.app.events,
                "public_key_set": bool(c.app.public_key_pem),
            },
            "plain_token_set": bool(c.plain_token),
            "plain_token_user": c.plain_token_user,
            "rate_limit": c.rate_limit,
            "send_bot_events": c.send_bot_events,
            "html_url": c.html_url,
        }

    @router.post("/config")
    def set_config(body: ConfigBody) -> dict[str, Any]:
        with state.lock:
            for name in body.model_fields_set - {"app"}:
                setattr(state.config, name, getattr(body, name))
            if body.app is not None:
                app: AppConfig = state.config.app
                for name in body.app.model_fields_set:
                    setattr(app, name, getattr(body.app, name))
        return get_config()

    @router.post("/repos", status_code=201)
    def create_repo(body: RepoBody, request: Request) -> dict[str, Any]:
        with acting(request):
            repo = state.create_repo(
                body.owner,
                body.name,
                body.files,
                org=body.org,
                private=body.private,
                default_branch=body.default_branch,
                install=body.install,
            )
            inst = state.installation_for(repo)
            return {
                "id": repo.id,
                "full_name": repo.full_name,
                "default_branch": repo.default_branch,
                "head_sha": repo.branches[repo.default_branch],
                "installation_id": inst.id if inst else None,
            }

    @router.post("/installations", status_code=201)
    def create_installation(body: InstallationBody, request: Request) -> dict[str, Any]:
        with acting(request) as events:
            inst = state.create_installation(body.account, body.repos)
            events.installation(inst, "created", body.sender or inst.account)
        return _result(events.send_now(), installation_id=inst.id)

    # -- pull requests and issues -----------------------------------------------------------

    @router.post("/repos/{owner}/{name}/pulls", status_code=201)
    def open_pull(owner: str, name: str, body: PullBody, request: Request) -> dict[str, Any]:
        with acting(request) as events:
            repo = state.repo(owner, name)
            issue = state.open_pull(
                repo,
                body.author,
                body.title,
                body.body,
                body.files,
                draft=body.draft,
                head_ref=body.head_ref,
                base_ref=body.base,
                fork=body.fork,
            )
            assert issue.pull is not None
            events.pull_request(repo, issue, "opened", body.author)
            ids = {
                "number": issue.number,
                "head_sha": issue.pull.head_sha,
                "base_sha": issue.pull.merge_base,
            }
        return _result(events.send_now(), **ids)

    @router.post("/repos/{owner}/{name}/pulls/{number}/push")
    def push(
        owner: str, name: str, number: int, body: PushBody, request: Request
    ) -> dict[str, Any]:
        with acting(request) as events:
            repo, issue = pull_of(owner, name, number)
            before, after = state.push(repo, issue, body.files, body.message)
            events.pull_request(repo, issue, "synchronize", issue.user, before=before, after=after)
        return _result(events.send_now(), head_sha=after, before=before)

    @router.post("/repos/{owner}/{name}/issues", status_code=201)
    def open_issue(owner: str, name: str, body: IssueBody, request: Request) -> dict[str, Any]:
        with acting(request) as events:
            repo = state.repo(owner, name)
            issue = state.open_issue(repo, body.author, body.title, body.body)
            events.issues(repo, issue, "opened", body.author)
        return _result(events.send_now(), number=issue.number)

    @router.post("/repos/{owner}/{name}/pulls/{number}/labels")
    @router.post("/repos/{owner}/{name}/issues/{number}/labels")
    def label(
        owner: str, name: str, number: int, body: LabelsBody, request: Request
    ) -> dict[str, Any]:
        with acting(request) as events:
            repo = state.repo(owner, name)
            issue = state.issue(repo, number)
            for added in state.add_labels(repo, issue, body.add):
                events.labeled(repo, issue, added, "labeled", body.user)
            for label_name in body.remove:
                removed = state.remove_label(repo, issue, label_name)
                if removed is not None:
                    events.labeled(repo, issue, removed, "unlabeled", body.user)
            labels = list(issue.labels)
        return _result(events.send_now(), labels=labels)

    @router.post("/repos/{owner}/{name}/pulls/{number}/comments", status_code=201)
    @router.post("/repos/{owner}/{name}/issues/{number}/comments", status_code=201)
    def comment(
        owner: str, name: str, number: int, body: CommentBody, request: Request
    ) -> dict[str, Any]:
        with acting(request) as events:
            repo = state.repo(owner, name)
            issue = state.issue(repo, number)
            created = state.add_comment(repo, issue, body.user, body.body)
            events.issue_comment(repo, issue, created, "created", body.user)
        return _result(events.send_now(), comment_id=created.id)

    @router.patch("/repos/{owner}/{name}/comments/{comment_id}")
    @router.patch("/repos/{owner}/{name}/issues/comments/{comment_id}")
    def edit_comment(
        owner: str, name: str, comment_id: int, body: EditCommentBody, request: Request
    ) -> dict[str, Any]:
        with acting(request) as events:
            repo = state.repo(owner, name)
            found = state.comment(repo, comment_id)
            old = state.edit_comment(found, body.body)
            issue = repo.issues[found.issue_number]
            events.issue_comment(
                repo, issue, found, "edited", body.user or found.user, old_body=old
            )
        return _result(events.send_now(), comment_id=comment_id)

    @router.delete("/repos/{owner}/{name}/comments/{comment_id}")
    @router.delete("/repos/{owner}/{name}/issues/comments/{comment_id}")
    def delete_comment(
        owner: str, name: str, comment_id: int, request: Request, user: str | None = None
    ) -> dict[str, Any]:
        with acting(request) as events:
            repo = state.repo(owner, name)
            found = state.comment(repo, comment_id)
            issue = repo.issues[found.issue_number]
            events.issue_comment(repo, issue, found, "deleted", user or found.user)
            state.delete_comment(repo, found)
        return _result(events.send_now(), comment_id=comment_id)

    def transition(
        owner: str, name: str, number: int, actor: str | None, request: Request, what: str
    ) -> dict[str, Any]:
        with acting(request) as events:
            repo, issue = pull_of(owner, name, number)
            pull = issue.pull
            assert pull is not None
            who = actor or (repo.owner if what == "merge" else issue.user)
            extra: dict[str, Any] = {}
            if what == "close":
                state.set_state(issue, "closed", who)
                action = "closed"
            elif what == "reopen":
                state.set_state(issue, "open", who)
                action = "reopened"
            elif what == "merge":
                extra["merge_commit_sha"] = state.merge(repo, issue, who)
                action = "closed"
            elif what == "ready_for_review":
                pull.draft = False
                action = "ready_for_review"
            else:
                pull.draft = True
                action = "converted_to_draft"
            events.pull_request(repo, issue, action, who)
        return _result(events.send_now(), number=number, **extra)

    for what in ("close", "reopen", "merge", "ready_for_review", "convert_to_draft"):

        def endpoint(
            owner: str,
            name: str,
            number: int,
            request: Request,
            body: Annotated[ActorBody | None, Body()] = None,
            what: str = what,
        ) -> dict[str, Any]:
            return transition(owner, name, number, body.user if body else None, request, what)

        router.add_api_route(
            f"/repos/{{owner}}/{{name}}/pulls/{{number}}/{what}", endpoint, methods=["POST"]
        )

    # -- people -----------------------------------------------------------------------------

    @router.put("/repos/{owner}/{name}/permissions/{user}")
    def set_permission(
        owner: str, name: str, user: str, body: RoleBody, request: Request
    ) -> dict[str, Any]:
        with acting(request):
            repo = state.repo(owner, name)
            state.set_role(repo, user, body.permission)
            return {"user": user, "role_name": state.role_of(repo, user)}

    @router.delete("/repos/{owner}/{name}/permissions/{user}")
    def remove_permission(owner: str, name: str, user: str, request: Request) -> dict[str, Any]:
        with acting(request):
            repo = state.repo(owner, name)
            state.set_role(repo, user, None)
            return {"user": user, "role_name": state.role_of(repo, user)}

    @router.put("/orgs/{org}/teams/{team}/members/{user}")
    def add_team_member(
        org: str,
        team: str,
        user: str,
        request: Request,
        body: Annotated[TeamMemberBody | None, Body()] = None,
    ) -> dict[str, Any]:
        with acting(request):
            found = state.set_team_member(org, team, user, (body or TeamMemberBody()).role)
            return {"team_id": found.id, "team": found.slug, "members": sorted(found.members)}

    @router.delete("/orgs/{org}/teams/{team}/members/{user}")
    def remove_team_member(org: str, team: str, user: str, request: Request) -> dict[str, Any]:
        with acting(request):
            found = state.set_team_member(org, team, user, None)
            return {"team_id": found.id, "team": found.slug, "members": sorted(found.members)}

    @router.put("/orgs/{org}/members/{user}")
    def add_org_member(org: str, user: str, request: Request) -> dict[str, Any]:
        with acting(request):
            state.set_org_member(org, user, True)
            return {"org": org, "user": user, "member": True}

    @router.delete("/orgs/{org}/members/{user}")
    def remove_org_member(org: str, user: str, request: Request) -> dict[str, Any]:
        with acting(request):
            state.set_org_member(org, user, False)
            return {"org": org, "user": user, "member": False}

    # -- checks, faults, tokens -------------------------------------------------------------

    @router.post("/check_runs/{check_run_id}/rerequest")
    def rerequest(
        check_run_id: int, request: Request, body: Annotated[ActorBody | None, Body()] = None
    ) -> dict[str, Any]:
        with acting(request) as events:
            run = state.check_runs.get(check_run_id)
            if run is None:
                raise ApiError(404, f"No check run {check_run_id}")
            repo = state.repo_by_full_name(run.repo)
            events.check_run(
                repo, run, "rerequested", (body.user if body and body.user else repo.owner)
            )
        return _result(events.send_now(), check_run_id=check_run_id)

    @router.post("/faults", status_code=201)
    def add_fault(body: FaultBody) -> dict[str, Any]:
        try:
            pattern = re.compile(body.path)
        except re.error as exc:
            raise HTTPException(422, f"path is not a regular expression: {exc}") from exc
        with state.lock:
            fault = Fault(
                state.next_id("fault"),
                body.method.upper(),
                pattern,
                body.status,
                dict(body.headers),
                body.body,
                body.times,
                body.mode,
                body.delay_seconds,
            )
            state.faults.append(fault)
        return {"fault_id": fault.id}

    @router.delete("/faults")
    def clear_faults() -> dict[str, Any]:
        with state.lock:
            count = len(state.faults)
            state.faults.clear()
        return {"cleared": count}

    @router.post("/tokens/expire")
    def expire_tokens() -> dict[str, Any]:
        with state.lock:
            return {"expired": state.expire_tokens()}

    # -- the OAuth web flow (github.com/login/oauth/...) -------------------------------------

    @router.post("/oauth/apps", status_code=201)
    def register_oauth_app(body: OAuthAppBody) -> dict[str, Any]:
        """Register an application that signs people in (its secret is never shown again)."""
        with state.lock:
            registered = state.register_oauth_app(
                OAuthApp(body.client_id, body.client_secret, body.name, body.callback_url)
            )
        return {
            "client_id": registered.client_id,
            "name": registered.name,
            "callback_url": registered.callback_url,
        }

    @router.put("/oauth/signed-in")
    def set_signed_in(body: SignedInBody) -> dict[str, Any]:
        """Who is signed in on "github.com" in the browser: the authorize page then redirects
        at once, as GitHub does for an app already authorized. None: the page asks."""
        with state.lock:
            if body.user is not None:
                account = state.account(body.user)
                if account.type != "User":
                    raise HTTPException(422, f"{body.user} is not a person's account")
            state.signed_in = body.user
        return {"user": body.user}

    @router.post("/oauth/codes/expire")
    def expire_oauth_codes() -> dict[str, Any]:
        with state.lock:
            return {"expired": state.expire_oauth_codes()}

    @router.get("/oauth/tokens")
    def list_user_tokens() -> list[dict[str, Any]]:
        """User tokens minted so far (who and for which app; never the token itself)."""
        with state.lock:
            return [
                {
                    "login": t.login,
                    "client_id": t.client_id,
                    "scopes": sorted(t.scopes),
                    "created_at": iso(t.created_at),
                }
                for t in state.user_tokens.values()
            ]

    # -- introspection ----------------------------------------------------------------------

    @router.get("/requests")
    def list_requests(invalid: bool = False, operation: str | None = None) -> list[dict[str, Any]]:
        with state.lock:
            records = list(state.requests)
        return [
            {
                "id": r.id,
                "at": iso(r.at),
                "method": r.method,
                "path": r.path,
                "query": r.query,
                "operation": r.operation,
                "status": r.status,
                "invalid": r.invalid,
                "fault": r.fault,
                "response_problem": r.response_problem,
                "body": r.body,
            }
            for r in records
            if (not invalid or r.invalid) and (operation is None or r.operation == operation)
        ]

    @router.delete("/requests")
    def clear_requests() -> dict[str, Any]:
        with state.lock:
            count = len(state.requests)
            state.requests.clear()
        return {"cleared": count}

    @router.get("/deliveries")
    def list_deliveries(
        event: str | None = None, payload: bool = False, wait: bool = Query(False)
    ) -> list[dict[str, Any]]:
        if wait:
            sender.wait_idle()
        with state.lock:
            records = [d for d in state.deliveries if event is None or d.event == event]
            return [delivery_json(d, payload=payload) for d in records]

    @router.post("/deliveries/flush")
    def flush_deliveries(timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the background deliveries (the App's own events, redeliveries) are sent."""
        return {"idle": sender.wait_idle(timeout)}

    @router.get("/state")
    def summary() -> dict[str, Any]:
        with state.lock:
            return {
                "repos": {
                    repo.full_name: {
                        "branches": dict(repo.branches),
                        "labels": sorted(lb.name for lb in repo.labels.values()),
                        "issues": {
                            str(i.number): {
                                "title": i.title,
                                "state": i.state,
                                "pull": i.pull is not None,
                                "head_sha": i.pull.head_sha if i.pull else None,
                                "labels": list(i.labels),
                                "comments": [
                                    {
                                        "id": c,
                                        "user": repo.comments[c].user,
                                        "body": repo.comments[c].body,
                                    }
                                    for c in i.comments
                                ],
                            }
                            for i in repo.issues.values()
                        },
                    }
                    for repo in state.repos.values()
                    if repo.fork_of is None
                },
                "check_runs": [
                    {
                        "id": r.id,
                        "repo": r.repo,
                        "name": r.name,
                        "head_sha": r.head_sha,
                        "status": r.status,
                        "conclusion": r.conclusion,
                        "title": r.title,
                        "annotations": len(r.annotations),
                    }
                    for r in state.check_runs.values()
                ],
                "installations": [
                    {"id": i.id, "account": i.account, "repos": sorted(i.repos)}
                    for i in state.installations.values()
                ],
            }

    return router


def error_handler(_: Request, exc: Exception) -> JSONResponse:
    """An ApiError raised outside `acting` (the admin API answers `{"message": ...}`)."""
    assert isinstance(exc, ApiError)
    return JSONResponse({"message": exc.message}, exc.status)
