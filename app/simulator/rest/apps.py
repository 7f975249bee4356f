"""The GitHub App surface (JWT-authenticated), installation tokens, webhook deliveries, and the
account lookups labbot makes: users, organizations, team memberships, rate limits."""

from __future__ import annotations

import json
from typing import Any

from app.simulator.errors import ApiError, not_found
from app.simulator.models import Account, DeliveryRecord, Installation, Team, iso
from app.simulator.render import JsonObj
from app.simulator.rest.context import MAX_PER_PAGE, Context, RestResponse, handles, json_body

# The OAuth scopes that reach an organization's teams (GitHub's docs for the team endpoints).
ORG_READ_SCOPES = frozenset({"read:org", "write:org", "admin:org"})
_NOT_ACCESSIBLE = (
    "There is at least one repository that does not exist or is not accessible to the parent "
    "installation."
)


@handles("apps/get-authenticated", auth="app")
def get_app(ctx: Context) -> RestResponse:
    return RestResponse(200, ctx.render.integration())


@handles("apps/list-installations", auth="app")
def list_installations(ctx: Context) -> RestResponse:
    installs = sorted(ctx.state.installations.values(), key=lambda i: i.id)
    return ctx.page(installs, ctx.render.installation)


def _installation(ctx: Context) -> Installation:
    inst = ctx.state.installations.get(ctx.int_param("installation_id"))
    if inst is None:
        raise not_found()
    return inst


@handles("apps/get-installation", auth="app")
def get_installation(ctx: Context) -> RestResponse:
    return RestResponse(200, ctx.render.installation(_installation(ctx)))


@handles("apps/get-repo-installation", auth="app")
def get_repo_installation(ctx: Context) -> RestResponse:
    repo = ctx.state.repo(ctx.params["owner"], ctx.params["repo"])
    inst = ctx.state.installation_for(repo)
    if inst is None:
        raise not_found()
    return RestResponse(200, ctx.render.installation(inst))


def _installation_of_account(ctx: Context, login: str) -> RestResponse:
    inst = next(
        (i for i in ctx.state.installations.values() if i.account.lower() == login.lower()), None
    )
    if inst is None:
        raise not_found()
    return RestResponse(200, ctx.render.installation(inst))


@handles("apps/get-org-installation", auth="app")
def get_org_installation(ctx: Context) -> RestResponse:
    return _installation_of_account(ctx, ctx.params["org"])


@handles("apps/get-user-installation", auth="app")
def get_user_installation(ctx: Context) -> RestResponse:
    return _installation_of_account(ctx, ctx.params["username"])


@handles("apps/create-installation-access-token", auth="app")
def create_access_token(ctx: Context) -> RestResponse:
    inst = _installation(ctx)
    body = json_body(ctx)
    granted = ctx.state.config.app.permissions
    requested: dict[str, str] = dict(body.get("permissions") or {})
    for name, level in requested.items():
        have = granted.get(name)
        if (
            have is None
            or (level == "write" and have == "read")
            or (level == "admin" and have != "admin")
        ):
            raise ApiError(422, "The permissions requested are not granted to this installation.")
    repos: frozenset[str] | None = None
    if body.get("repositories") or body.get("repository_ids"):
        by_name = {n.split("/")[1].lower(): n for n in inst.repos}
        by_id = {ctx.state.repo_by_full_name(n).id: n for n in inst.repos}
        chosen = set()
        for name in body.get("repositories") or []:
            if name.lower() not in by_name:
                raise ApiError(422, _NOT_ACCESSIBLE)
            chosen.add(by_name[name.lower()])
        for repo_id in body.get("repository_ids") or []:
            if repo_id not in by_id:
                raise ApiError(422, _NOT_ACCESSIBLE)
            chosen.add(by_id[repo_id])
        repos = frozenset(chosen)
    token = ctx.state.mint_token(inst, requested or dict(granted), repos)
    out: JsonObj = {
        "token": token.value,
        "expires_at": iso(token.expires_at),
        "permissions": token.permissions,
        "repository_selection": "selected",
    }
    if repos is not None:
        out["repositories"] = [
            ctx.render.repo(ctx.state.repo_by_full_name(n), full=False) for n in sorted(repos)
        ]
    return RestResponse(201, out)


@handles("apps/list-repos-accessible-to-installation")
def list_installation_repos(ctx: Context) -> RestResponse:
    if ctx.caller.installation is None or ctx.caller.repos is None:
        raise ApiError(403, "This endpoint needs an installation access token")
    repos = [ctx.state.repo_by_full_name(n) for n in sorted(ctx.caller.repos)]
    total = len(repos)
    return ctx.page(
        repos,
        lambda r: ctx.render.repo(r, full=False),
        wrap=lambda page: {
            "total_count": total,
            "repositories": page,
            "repository_selection": "selected",
        },
    )


# -- webhook deliveries ----------------------------------------------------------------------


def _delivery_item(record: DeliveryRecord) -> JsonObj:
    return {
        "id": record.id,
        "guid": record.guid,
        "delivered_at": iso(record.delivered_at),
        "redelivery": record.redelivery,
        "duration": record.duration,
        "status": record.status,
        "status_code": record.status_code or 0,
        "event": record.event,
        "action": record.action,
        "installation_id": record.installation_id,
        "repository_id": record.repository_id,
        "throttled_at": None,
    }


@handles("apps/list-webhook-deliveries", auth="app")
def list_deliveries(ctx: Context) -> RestResponse:
    """Newest first, with cursor pagination (`cursor` names the first delivery of a page)."""
    query = ctx.query
    per_page = min(max(int(query.get("per_page", 30)), 1), MAX_PER_PAGE)
    records = sorted(ctx.state.deliveries, key=lambda d: -d.id)
    if query.get("status") == "success":
        records = [d for d in records if d.status == "OK"]
    elif query.get("status") == "failure":
        records = [d for d in records if d.status != "OK"]
    cursor = query.get("cursor")
    if cursor:
        start = int(cursor.removeprefix("v1_")) if cursor.removeprefix("v1_").isdigit() else 0
        records = [d for d in records if d.id <= start]
    page, rest = records[:per_page], records[per_page:]
    headers = {}
    if rest:
        next_page = f"per_page={per_page}&cursor=v1_{rest[0].id}"
        url = f"{ctx.request.base_url}{ctx.request.raw_path}?{next_page}"
        headers["Link"] = f'<{url}>; rel="next"'
    return RestResponse(200, [_delivery_item(d) for d in page], headers)


@handles("apps/get-webhook-delivery", auth="app")
def get_delivery(ctx: Context) -> RestResponse:
    record = ctx.state.delivery(ctx.int_param("delivery_id"))
    out = _delivery_item(record)
    payload: Any = json.loads(record.body)
    out["url"] = record.url or ""
    out["request"] = {"headers": record.headers, "payload": payload}
    out["response"] = {
        "headers": record.response_headers or None,
        "payload": record.response_body or None,
    }
    return RestResponse(200, out)


@handles("apps/redeliver-webhook-delivery", auth="app")
def redeliver(ctx: Context) -> RestResponse:
    """Re-send a stored delivery with the same GUID (asynchronously, as GitHub does: 202)."""
    original = ctx.state.delivery(ctx.int_param("delivery_id"))
    ctx.events.records.append(ctx.events.sender.redelivery(original))
    return RestResponse(202, {})


# -- accounts and rate limits ----------------------------------------------------------------


@handles("rate-limit/get", auth="any")
def rate_limit(ctx: Context) -> RestResponse:
    bucket = ctx.state.rate.get(ctx.caller.rate_key)
    limit = ctx.state.config.rate_limit
    used = bucket.used if bucket else 0
    reset = int(bucket.reset_at.timestamp()) if bucket else 0
    core = {"limit": limit, "used": used, "remaining": max(0, limit - used), "reset": reset}
    idle = {"limit": 30, "used": 0, "remaining": 30, "reset": reset}
    resources = {"core": core, "search": idle, "graphql": {**core, "used": 0, "remaining": limit}}
    return RestResponse(200, {"resources": resources, "rate": core})


@handles("users/get-by-username", auth="any")
def get_user(ctx: Context) -> RestResponse:
    return RestResponse(200, _public_user(ctx, ctx.params["username"]))


@handles("users/get-authenticated")
def get_authenticated_user(ctx: Context) -> RestResponse:
    """A plain token's user. Installation tokens have no user: GitHub answers 403."""
    if ctx.caller.kind != "user":
        raise ApiError(403, "Resource not accessible by integration")
    return RestResponse(200, _public_user(ctx, ctx.caller.login))


def _public_user(ctx: Context, login: str) -> JsonObj:
    user = ctx.render.user(login)
    assert user is not None
    user.update(
        name=None,
        company=None,
        blog="",
        location=None,
        email=None,
        hireable=None,
        bio=None,
        twitter_username=None,
        public_repos=0,
        public_gists=0,
        followers=0,
        following=0,
        created_at="2020-01-01T00:00:00Z",
        updated_at="2020-01-01T00:00:00Z",
    )
    return user


@handles("orgs/get", auth="any")
def get_org(ctx: Context) -> RestResponse:
    return RestResponse(200, ctx.render.organization_full(ctx.state.org(ctx.params["org"])))


@handles("orgs/check-membership-for-user", need=("members", "read"))
def check_org_membership(ctx: Context) -> RestResponse:
    org = ctx.state.org(ctx.params["org"])
    if ctx.params["username"].lower() not in org.members:
        raise ApiError(404, "User does not exist or is not a member of the organization")
    return RestResponse(204)


@handles("teams/get-by-name", need=("members", "read"))
def get_team(ctx: Context) -> RestResponse:
    org = ctx.state.org(ctx.params["org"])
    _check_user_sees_org(ctx, org)
    team = org.teams.get(ctx.params["team_slug"].lower())
    if team is None:
        raise not_found()
    return RestResponse(200, _team_full(ctx, org, team))


def _team_full(ctx: Context, org: Account, team: Team) -> JsonObj:
    out = ctx.render.team(org, team)
    out.update(
        members_count=len(team.members),
        repos_count=0,
        created_at="2020-01-01T00:00:00Z",
        updated_at="2020-01-01T00:00:00Z",
        organization=ctx.render.organization_full(org),
    )
    return out


def _check_org_scope(ctx: Context, accepted: frozenset[str] = ORG_READ_SCOPES) -> None:
    """OAuth user tokens reach organization data only with one of these scopes."""
    scopes = ctx.caller.scopes
    if scopes is not None and not scopes & accepted:
        raise ApiError(
            403,
            f"Resource not accessible by OAuth token: it needs one of the scopes "
            f"{', '.join(sorted(accepted))}",
            headers={"X-Accepted-OAuth-Scopes": ", ".join(sorted(accepted))},
        )


def _check_user_sees_org(ctx: Context, org: Account) -> None:
    """A signed-in user (OAuth token) sees an organization's teams only as its member."""
    if ctx.caller.scopes is None:
        return
    _check_org_scope(ctx)
    if ctx.caller.login.lower() not in org.members:
        raise not_found()


@handles("teams/list-for-authenticated-user")
def list_teams_of_user(ctx: Context) -> RestResponse:
    """The signed-in user's teams, in every organization (user tokens only)."""
    if ctx.caller.kind != "user":
        raise ApiError(403, "Resource not accessible by integration")
    _check_org_scope(ctx, ORG_READ_SCOPES | {"user", "repo"})
    login = ctx.caller.login.lower()
    found = [
        (org, team)
        for org in sorted(ctx.state.accounts.values(), key=lambda a: a.id)
        if org.type == "Organization"
        for team in sorted(org.teams.values(), key=lambda t: t.id)
        if login in team.members
    ]
    return ctx.page(found, lambda pair: _team_full(ctx, *pair))


@handles("teams/get-membership-for-user-in-org", need=("members", "read"))
def get_team_membership(ctx: Context) -> RestResponse:
    org = ctx.state.org(ctx.params["org"])
    _check_user_sees_org(ctx, org)
    team = org.teams.get(ctx.params["team_slug"].lower())
    login = ctx.params["username"]
    if team is None or login.lower() not in team.members:
        raise not_found()
    url = f"{ctx.render.api}/orgs/{org.login}/teams/{team.slug}/memberships/{login}"
    return RestResponse(200, {"url": url, "role": team.members[login.lower()], "state": "active"})


@handles("teams/list-members-in-org", need=("members", "read"))
def list_team_members(ctx: Context) -> RestResponse:
    org = ctx.state.org(ctx.params["org"])
    _check_user_sees_org(ctx, org)
    team = org.teams.get(ctx.params["team_slug"].lower())
    if team is None:
        raise not_found()
    role = ctx.query.get("role", "all")
    members = sorted(login for login, r in team.members.items() if role in ("all", r))
    return ctx.page(members, ctx.render.user)
