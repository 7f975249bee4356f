"""GitHub's OAuth web flow, as github.com serves it: sign a person in for an application.

These two paths live on github.com, not on api.github.com, so they are not in GitHub's REST
OpenAPI description: they bypass the REST pipeline (no request check, no rate limit) and answer
what github.com answers.

- ``GET /login/oauth/authorize?client_id&redirect_uri&state&scope``: with someone signed in on
  the simulator (``PUT /_sim/oauth/signed-in``) it redirects at once to ``redirect_uri`` with
  ``code`` and ``state``, as GitHub does for an app the person already authorized; otherwise it
  shows a small page with a button per known user (and a field for any other login), which a
  browser clicks through. "Cancel" answers ``error=access_denied``.
- ``POST /login/oauth/access_token`` (client_id, client_secret, code, redirect_uri; as a form,
  JSON or query string): a ``gho_`` user token, as JSON with ``Accept: application/json``, else
  form-encoded. Codes are single use and expire after ten minutes; errors are GitHub's
  (``incorrect_client_credentials``, ``bad_verification_code``, ``redirect_uri_mismatch``),
  answered 200 as GitHub does.

The user token then works on the REST API (``GET /user``, team memberships, ``GET /user/teams``).
"""

from __future__ import annotations

import hmac
import html
import json
import re
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.simulator.models import OAuthApp
from app.simulator.state import OAuthError, SimulatorState

_TROUBLESHOOTING = "https://docs.github.com/apps/managing-oauth-apps/"
TOKEN_ERRORS = {
    "incorrect_client_credentials": (
        "The client_id and/or client_secret passed are incorrect.",
        _TROUBLESHOOTING
        + "troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials",
    ),
    "bad_verification_code": (
        "The code passed is incorrect or expired.",
        _TROUBLESHOOTING
        + "troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
    ),
    "redirect_uri_mismatch": (
        "The redirect_uri MUST match the registered callback URL for this application.",
        _TROUBLESHOOTING + "troubleshooting-authorization-request-errors/#redirect-uri-mismatch2",
    ),
}
ACCESS_DENIED = "The user has denied your application access."
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to GitHub · {app}</title>
<style>
body {{ font: 14px/1.5 system-ui, sans-serif; max-width: 28rem; margin: 3rem auto; }}
button {{ display: block; width: 100%; margin: .4rem 0; padding: .5rem; font-size: 14px; }}
.other {{ display: flex; gap: .4rem; }} .other button {{ width: auto; margin: 0; }}
.error {{ color: #cf222e; }}
</style></head>
<body>
<h1>Sign in to GitHub</h1>
<p>to continue to <strong>{app}</strong> (the GitHub simulator has no passwords: pick who you
are).</p>
{error}
<form method="post" action="/login/oauth/authorize">
{hidden}
{buttons}
<p><label for="other_login">Another login</label></p>
<div class="other"><input id="other_login" name="other_login" autocomplete="off">
<button type="submit" name="decision" value="other">Sign in</button></div>
<p><button type="submit" name="decision" value="cancel">Cancel</button></p>
</form>
</body></html>
"""


def _with_query(url: str, params: dict[str, str | None]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def redirect_uri_allowed(redirect_uri: str, callback_url: str | None) -> bool:
    """GitHub's rule: same scheme, host and port as the registered callback URL, and a path at
    or below its path. Without a registered callback URL every absolute http(s) URL is allowed."""
    target = urllib.parse.urlsplit(redirect_uri)
    if target.scheme not in ("http", "https") or not target.netloc:
        return False
    if callback_url is None:
        return True
    registered = urllib.parse.urlsplit(callback_url)
    base = registered.path.rstrip("/")
    return (target.scheme, target.netloc.lower()) == (
        registered.scheme,
        registered.netloc.lower(),
    ) and (target.path == base or target.path.startswith(base + "/") or not base)


async def _params(request: Request) -> dict[str, str]:
    """Query string and body (form-encoded or JSON), as GitHub accepts both."""
    params = dict(request.query_params)
    body = await request.body()
    if not body:
        return params
    if "json" in request.headers.get("content-type", ""):
        try:
            data: Any = json.loads(body)
        except ValueError:
            data = {}
        if isinstance(data, dict):
            params.update({str(k): str(v) for k, v in data.items() if v is not None})
        return params
    params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _page(status: int, title: str, text: str) -> HTMLResponse:
    body = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title></head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        "</body></html>"
    )
    return HTMLResponse(body, status)


def oauth_router(state: SimulatorState) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def check_request(params: dict[str, str]) -> tuple[OAuthApp, str] | Response:
        """The app and the redirect URI of an authorization request, or GitHub's answer."""
        with state.lock:
            oauth_app = state.config.oauth_apps.get(params.get("client_id", ""))
        if oauth_app is None:
            return _page(404, "Not Found", "No application is registered with this client_id.")
        redirect_uri = params.get("redirect_uri") or oauth_app.callback_url
        if not redirect_uri:
            return _page(
                422,
                "Unprocessable",
                "redirect_uri is required: this application has no callback URL registered.",
            )
        if not redirect_uri_allowed(redirect_uri, oauth_app.callback_url):
            if oauth_app.callback_url is None:
                return _page(422, "Unprocessable", "redirect_uri must be an http(s) URL.")
            description, uri = TOKEN_ERRORS["redirect_uri_mismatch"]
            return RedirectResponse(
                _with_query(
                    oauth_app.callback_url,
                    {
                        "error": "redirect_uri_mismatch",
                        "error_description": description,
                        "error_uri": uri,
                        "state": params.get("state"),
                    },
                ),
                302,
            )
        return oauth_app, redirect_uri

    def grant(
        oauth_app: OAuthApp, login: str, redirect_uri: str, params: dict[str, str]
    ) -> Response:
        with state.lock:
            code = state.issue_oauth_code(oauth_app, login, redirect_uri, params.get("scope", ""))
        return RedirectResponse(
            _with_query(redirect_uri, {"code": code.code, "state": params.get("state")}), 302
        )

    def choose_page(oauth_app: OAuthApp, params: dict[str, str], error: str = "") -> Response:
        with state.lock:
            users = sorted(a.login for a in state.accounts.values() if a.type == "User")
        kept = ("client_id", "redirect_uri", "state", "scope")
        hidden = "\n".join(
            f'<input type="hidden" name="{name}" value="{html.escape(params[name])}">'
            for name in kept
            if name in params
        )
        buttons = "\n".join(
            f'<button type="submit" name="login" value="{html.escape(login)}">'
            f"Sign in as {html.escape(login)}</button>"
            for login in users
        )
        return HTMLResponse(
            _PAGE.format(
                app=html.escape(oauth_app.name),
                hidden=hidden,
                buttons=buttons,
                error=f'<p class="error">{html.escape(error)}</p>' if error else "",
            ),
            422 if error else 200,
        )

    @router.get("/login/oauth/authorize")
    async def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        checked = check_request(params)
        if isinstance(checked, Response):
            return checked
        oauth_app, redirect_uri = checked
        with state.lock:
            signed_in = state.signed_in
        if signed_in is not None:
            return grant(oauth_app, signed_in, redirect_uri, params)
        return choose_page(oauth_app, params)

    @router.post("/login/oauth/authorize")
    async def authorize_decision(request: Request) -> Response:
        """The page's form: the person picked a login, typed one, or cancelled."""
        params = await _params(request)
        checked = check_request(params)
        if isinstance(checked, Response):
            return checked
        oauth_app, redirect_uri = checked
        decision = params.get("decision", "")
        if decision == "cancel":
            return RedirectResponse(
                _with_query(
                    redirect_uri,
                    {
                        "error": "access_denied",
                        "error_description": ACCESS_DENIED,
                        "state": params.get("state"),
                    },
                ),
                302,
            )
        login = (params.get("other_login") if decision == "other" else params.get("login")) or ""
        login = login.strip()
        if not _LOGIN.fullmatch(login):
            return choose_page(oauth_app, params, f"{login!r} is not a GitHub login.")
        with state.lock:
            known = state.accounts.get(login.lower())
        if known is not None and known.type != "User":
            return choose_page(oauth_app, params, f"{login} is not a person's account.")
        return grant(oauth_app, known.login if known else login, redirect_uri, params)

    @router.post("/login/oauth/access_token")
    async def access_token(request: Request) -> Response:
        params = await _params(request)
        as_json = "application/json" in request.headers.get("accept", "")
        client_id = params.get("client_id", "")
        with state.lock:
            oauth_app = state.config.oauth_apps.get(client_id)
            try:
                if oauth_app is None or not hmac.compare_digest(
                    params.get("client_secret", "").encode(), oauth_app.client_secret.encode()
                ):
                    raise OAuthError("incorrect_client_credentials")
                token = state.redeem_oauth_code(
                    client_id, params.get("code", ""), params.get("redirect_uri") or None
                )
            except OAuthError as exc:
                description, uri = TOKEN_ERRORS[exc.code]
                answer = {"error": exc.code, "error_description": description, "error_uri": uri}
            else:
                answer = {
                    "access_token": token.value,
                    "token_type": "bearer",
                    "scope": ",".join(sorted(token.scopes)),
                }
        if as_json:
            return JSONResponse(answer)
        return Response(
            urllib.parse.urlencode(answer), media_type="application/x-www-form-urlencoded"
        )

    return router
