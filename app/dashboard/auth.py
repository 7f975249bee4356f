"""Dashboard sign-in with GitHub (the OAuth web flow), sessions, who may see and do what, and
CSRF protection for every action.

- ``GET /login`` sends the browser to ``{github_web_url}/login/oauth/authorize`` with a random
  ``state`` kept in the session; ``GET /auth/callback`` checks that state, exchanges the code for
  a user token, asks ``GET /user`` and the membership of each of ``maintainer_teams`` with it,
  and keeps only the login and the maintainer flag in the session. The token is used for those
  calls alone: it is never stored, logged or shown. ``POST /logout`` ends the session;
  ``GET /auth/session`` tells scripts who is signed in and the CSRF token to send.
- Sessions are Starlette's signed cookies (``session_secret``; HttpOnly, SameSite=Lax, Secure
  when ``public_url`` is https). A sign-in lasts ``session_max_age_seconds`` from the moment it
  was made, whatever happens in between; maintainership is checked at sign-in.
- ``require_reader`` guards the read-only pages and the JSON API when ``dashboard_public`` is
  false (pages redirect to the sign-in, /api answers 401); ``require_maintainer`` guards the
  actions (403 for a signed-in non-maintainer); ``require_csrf`` checks the per-session token of
  every POST (form field ``csrf_token`` or header ``X-CSRF-Token``).
- Jinja globals for the templates: ``viewer(request)``, ``csrf_token(request)``,
  ``flashes(request)`` (the messages left by the last action, shown once) and
  ``sign_in_enabled()``.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.middleware.sessions import SessionMiddleware

from app.config import Settings, get_settings
from app.dashboard.templating import templates
from app.github.auth import USER_AGENT
from bots import messages

log = logging.getLogger(__name__)

SESSION_COOKIE = "labbot_session"
CALLBACK_PATH = "/auth/callback"
# OAuth apps need read:org to read team memberships; a GitHub App ignores scopes (its members
# permission applies), so asking for it is right for both.
OAUTH_SCOPE = "read:org"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
GITHUB_API_VERSION = "2022-11-28"
MAX_FLASHES = 5
MAX_FORM_BYTES = 64 * 1024  # the dashboard's forms are a few fields
STATIC_PREFIX = "/static/"

# What the session cookie holds: never a token.
_LOGIN = "login"
_MAINTAINER = "maintainer"
_SIGNED_IN_AT = "signed_in_at"
_CSRF = "csrf"
_OAUTH_STATE = "oauth_state"
_NEXT = "next"
_FLASH = "flash"
_GITHUB_ERROR = re.compile(r"[A-Za-z0-9_.:-]{1,60}")


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the dashboard."""

    login: str
    maintainer: bool


class LoginRequired(Exception):  # noqa: N818 (a signal, not an error)
    """Nobody is signed in and the page needs someone: pages redirect to /login, /api says 401."""


class Refused(Exception):  # noqa: N818
    """A request that is answered with an explanation page (or JSON under /api)."""

    def __init__(self, status: int, title: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.title = title
        self.text = text


class SignInFailed(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


# --- settings ------------------------------------------------------------------------------


def oauth_configured(settings: Settings) -> bool:
    secret = settings.github_oauth_client_secret
    return bool(settings.github_oauth_client_id and secret and secret.get_secret_value())


def session_secret(settings: Settings) -> str:
    """The key that signs session cookies: LABBOT_SESSION_SECRET, else (development; outside
    it check_safe_to_start refuses to run without one once sign-in is configured) a random key
    of this process."""
    if settings.session_secret is not None and settings.session_secret.get_secret_value().strip():
        return settings.session_secret.get_secret_value()
    if oauth_configured(settings):
        log.warning(messages.SESSION_SECRET_EPHEMERAL)
    return _process_secret()


@lru_cache(maxsize=1)
def _process_secret() -> str:
    return secrets.token_hex(32)


def callback_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}{CALLBACK_PATH}"


# --- the session ---------------------------------------------------------------------------


def _session(request: Request) -> dict[str, Any]:
    """The request's session; a throwaway dict where no session middleware runs."""
    session = request.scope.get("session")
    return session if isinstance(session, dict) else {}


def current_viewer(request: Request) -> Viewer | None:
    session = _session(request)
    login = session.get(_LOGIN)
    if not isinstance(login, str) or not login:
        return None
    signed_in_at = session.get(_SIGNED_IN_AT)
    max_age = get_settings().session_max_age_seconds
    if not isinstance(signed_in_at, int | float) or time.time() - signed_in_at > max_age:
        for key in (_LOGIN, _MAINTAINER, _SIGNED_IN_AT, _CSRF):
            session.pop(key, None)
        return None
    return Viewer(login, session.get(_MAINTAINER) is True)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    session = _session(request)
    token = session.get(_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_CSRF] = token
    return token


def flash(request: Request, text: str, level: str = "info") -> None:
    """A message for the next page this browser sees (``level``: info or error)."""
    session = _session(request)
    kept = [f for f in session.get(_FLASH) or [] if isinstance(f, dict)][-(MAX_FLASHES - 1) :]
    session[_FLASH] = [*kept, {"level": level, "text": text}]


def pop_flashes(request: Request) -> list[dict[str, str]]:
    session = _session(request)
    if _FLASH not in session:
        return []
    found = session.pop(_FLASH) or []
    return [f for f in found if isinstance(f, dict)]


def safe_next(value: object, default: str = "/") -> str:
    """A path on this site to return to; anything else (another site, a scheme) is refused."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 32 for c in value):
        return default
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def referer_path(request: Request) -> str | None:
    """The path of the page the request came from, when it is on this site."""
    referer = request.headers.get("referer")
    if not referer:
        return None
    parts = urllib.parse.urlsplit(referer)
    if parts.netloc != request.url.netloc:
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return safe_next(path, "") or None


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a form-encoded body (read once, then kept on the request)."""
    cached = getattr(request.state, "form_fields", None)
    if isinstance(cached, dict):
        return cached
    fields: dict[str, str] = {}
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "0")
    size = int(declared) if declared.isdigit() else MAX_FORM_BYTES + 1
    if media_type == "application/x-www-form-urlencoded" and size <= MAX_FORM_BYTES:
        body = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace")
        fields = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
    request.state.form_fields = fields
    return fields


# --- dependencies --------------------------------------------------------------------------


def require_reader(request: Request) -> Viewer | None:
    """Read-only pages and /api: open when the dashboard is public, else a signed-in person."""
    viewer = current_viewer(request)
    if viewer is None and not get_settings().dashboard_public:
        if request.url.path.startswith(STATIC_PREFIX):
            return None  # the pages' script holds no data (and the sign-in pages load it)
        raise LoginRequired()
    return viewer


def require_maintainer(request: Request) -> Viewer:
    """Actions: a signed-in member of one of the maintainer teams."""
    viewer = current_viewer(request)
    if viewer is None:
        raise LoginRequired()
    if not viewer.maintainer:
        teams = get_settings().maintainer_teams
        text = (
            messages.MAINTAINER_REQUIRED.format(login=viewer.login, teams=", ".join(teams))
            if teams
            else messages.MAINTAINER_REQUIRED_NO_TEAMS.format(login=viewer.login)
        )
        log.warning(
            "dashboard: %s %s refused: %s is not a maintainer",
            request.method,
            request.url.path,
            viewer.login,
        )
        raise Refused(403, messages.MAINTAINER_REQUIRED_TITLE, text)
    return viewer


async def require_csrf(request: Request) -> None:
    """Every POST carries the session's CSRF token (form field or header)."""
    expected = _session(request).get(_CSRF)
    given = request.headers.get(CSRF_HEADER) or (await form_fields(request)).get(CSRF_FIELD, "")
    if not (
        isinstance(expected, str)
        and expected
        and given
        and hmac.compare_digest(given.encode(), expected.encode())
    ):
        log.warning(
            "dashboard: %s %s refused: missing or wrong CSRF token",
            request.method,
            request.url.path,
        )
        raise Refused(403, messages.CSRF_REFUSED_TITLE, messages.CSRF_REFUSED)


# --- GitHub --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    login: str
    maintainer: bool


async def identify(settings: Settings, code: str) -> Identity:
    """Exchange the code for a user token, and ask GitHub who it is and whether they are in a
    maintainer team. The token lives in this function only."""
    secret = settings.github_oauth_client_secret
    form = {
        "client_id": settings.github_oauth_client_id or "",
        "client_secret": secret.get_secret_value() if secret else "",
        "code": code,
        "redirect_uri": callback_url(settings),
    }
    web = settings.github_web_url.rstrip("/")
    api = settings.github_api_url.rstrip("/")
    async with httpx.AsyncClient(
        timeout=settings.github_timeout_seconds, headers={"User-Agent": USER_AGENT}
    ) as http:
        try:
            answer = await http.post(
                f"{web}/login/oauth/access_token", data=form, headers={"Accept": "application/json"}
            )
            data: Any = answer.json() if answer.status_code == 200 else {}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("dashboard sign-in: the code exchange failed: %s", type(exc).__name__)
            raise SignInFailed(
                502, messages.LOGIN_GITHUB_UNREACHABLE.format(error=type(exc).__name__)
            ) from None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            error = data.get("error") if isinstance(data, dict) else None
            reason = (
                error
                if isinstance(error, str) and _GITHUB_ERROR.fullmatch(error)
                else f"HTTP {answer.status_code}"
            )
            log.warning("dashboard sign-in: GitHub refused the code: %s", reason)
            raise SignInFailed(400, messages.LOGIN_CODE_REFUSED.format(error=reason))
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
        }
        login = await _login_of(http, api, headers)
        maintainer = await _in_maintainer_team(http, api, headers, login, settings)
    return Identity(login, maintainer)


async def _login_of(http: httpx.AsyncClient, api: str, headers: dict[str, str]) -> str:
    try:
        answer = await http.get(f"{api}/user", headers=headers)
        data: Any = answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("dashboard sign-in: GET /user failed: %s", type(exc).__name__)
        raise SignInFailed(
            502, messages.LOGIN_GITHUB_UNREACHABLE.format(error=type(exc).__name__)
        ) from None
    login = data.get("login") if isinstance(data, dict) else None
    if not isinstance(login, str) or not login:
        log.warning("dashboard sign-in: GET /user answered %s", answer.status_code)
        error = f"GET /user: HTTP {answer.status_code}"
        raise SignInFailed(502, messages.LOGIN_GITHUB_UNREACHABLE.format(error=error))
    return login


async def _in_maintainer_team(
    http: httpx.AsyncClient, api: str, headers: dict[str, str], login: str, settings: Settings
) -> bool:
    """Fails closed: an answer other than an active membership is not one."""
    for team in settings.maintainer_teams:
        org, _, slug = team.partition("/")
        if not org or not slug:
            log.warning("LABBOT_MAINTAINER_TEAMS: %r is not org/team-slug; skipped", team)
            continue
        parts = [urllib.parse.quote(p, safe="") for p in (org, slug, login)]
        url = "{}/orgs/{}/teams/{}/memberships/{}".format(api, *parts)
        try:
            answer = await http.get(url, headers=headers)
            data: Any = answer.json() if answer.status_code == 200 else {}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning(
                "dashboard sign-in: membership of %s in %s unknown: %s",
                login,
                team,
                type(exc).__name__,
            )
            continue
        if isinstance(data, dict) and data.get("state") == "active":
            return True
        if answer.status_code != 404:
            log.warning(
                "dashboard sign-in: membership of %s in %s unknown: HTTP %s",
                login,
                team,
                answer.status_code,
            )
    return False


# --- routes --------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


def _message_page(
    request: Request, status: int, title: str, text: str, *, retry: bool = False
) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": text}, status)
    context = {"title": title, "text": text, "retry": retry}
    return templates.TemplateResponse(request, "auth_message.html", context, status_code=status)


def _wants_json(request: Request) -> bool:
    return request.url.path == "/api" or request.url.path.startswith("/api/")


@router.get("/login")
def login(request: Request, next_path: str = Query("/", alias="next")) -> Response:
    settings = get_settings()
    if not oauth_configured(settings):
        return _message_page(
            request, 503, messages.LOGIN_NOT_CONFIGURED_TITLE, messages.LOGIN_NOT_CONFIGURED
        )
    session = _session(request)
    state = secrets.token_urlsafe(32)
    session[_OAUTH_STATE] = state
    session[_NEXT] = safe_next(next_path)
    query = urllib.parse.urlencode(
        {
            "client_id": settings.github_oauth_client_id,
            "redirect_uri": callback_url(settings),
            "state": state,
            "scope": OAUTH_SCOPE,
            "allow_signup": "false",
        }
    )
    return RedirectResponse(
        f"{settings.github_web_url.rstrip('/')}/login/oauth/authorize?{query}", 303
    )


@router.get(CALLBACK_PATH)
async def callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
    session = _session(request)
    expected = session.pop(_OAUTH_STATE, None)
    next_path = safe_next(session.pop(_NEXT, None))
    title = messages.LOGIN_FAILED_TITLE
    if not (
        isinstance(expected, str)
        and state
        and hmac.compare_digest(state.encode(), expected.encode())
    ):
        log.warning("dashboard sign-in refused: the state does not match the session's")
        return _message_page(request, 400, title, messages.LOGIN_STATE_MISMATCH, retry=True)
    if error or not code:
        reason = error if _GITHUB_ERROR.fullmatch(error) else "no code"
        log.warning("dashboard sign-in: GitHub answered %s", reason)
        return _message_page(
            request, 403, title, messages.LOGIN_DENIED.format(error=reason), retry=True
        )
    try:
        identity = await identify(get_settings(), code)
    except SignInFailed as failed:
        return _message_page(request, failed.status, title, failed.text, retry=True)
    session.clear()  # nothing from before the sign-in carries over
    session.update(
        {
            _LOGIN: identity.login,
            _MAINTAINER: identity.maintainer,
            _SIGNED_IN_AT: int(time.time()),
            _CSRF: secrets.token_urlsafe(32),
        }
    )
    welcome = (
        messages.DASHBOARD_SIGNED_IN_MAINTAINER
        if identity.maintainer
        else messages.DASHBOARD_SIGNED_IN
    )
    flash(request, welcome.format(login=identity.login))
    log.info(
        "dashboard sign-in: %s%s", identity.login, " (maintainer)" if identity.maintainer else ""
    )
    return RedirectResponse(next_path, 303)


@router.post("/logout", dependencies=[Depends(require_csrf)])
def logout(request: Request) -> Response:
    viewer = current_viewer(request)
    session = _session(request)
    session.clear()
    flash(request, messages.DASHBOARD_SIGNED_OUT)
    if viewer is not None:
        log.info("dashboard sign-out: %s", viewer.login)
    return RedirectResponse("/", 303)


@router.get("/auth/session")
def session_info(request: Request) -> JSONResponse:
    """Who is signed in, and the CSRF token for scripts that POST actions (X-CSRF-Token)."""
    viewer = current_viewer(request)
    body = {
        "login": viewer.login if viewer else None,
        "maintainer": bool(viewer and viewer.maintainer),
        "csrf_token": csrf_token(request) if viewer else None,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


# --- wiring --------------------------------------------------------------------------------


def _login_required(request: Request, exc: Exception) -> Response:
    # Only a page the person navigates to is sent to sign in; the JSON API, and what a page
    # fetches by itself (its live fragments), are told 401 (a redirect would start a sign-in).
    fetched = request.headers.get("sec-fetch-mode", "navigate") != "navigate"
    if _wants_json(request) or fetched:
        return JSONResponse({"detail": messages.LOGIN_REQUIRED}, 401)
    if request.method in ("GET", "HEAD"):
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        back = referer_path(request) or "/"
    return RedirectResponse(f"/login?{urllib.parse.urlencode({'next': safe_next(back)})}", 303)


def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return _message_page(request, exc.status, exc.title, exc.text)


def install(app: FastAPI, settings: Settings) -> None:
    """Sessions, the sign-in routes and the answers to LoginRequired and Refused."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.public_url.lower().startswith("https://"),
    )
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(Refused, _refused)
    app.include_router(router)


def sign_in_enabled() -> bool:
    return oauth_configured(get_settings())


templates.env.globals.update(
    viewer=current_viewer,
    csrf_token=csrf_token,
    flashes=pop_flashes,
    sign_in_enabled=sign_in_enabled,
)
templates.env.globals.setdefault("messages", messages)
