"""Credentials as GitHub checks them: the App's JWT (RS256) for `/app*` endpoints, installation
access tokens minted by the simulator, user tokens minted by the OAuth web flow
(`routes_oauth.py`), or a configured plain token for everything else."""

from __future__ import annotations

import time
from typing import Literal

import jwt

from app.simulator.errors import ApiError
from app.simulator.models import utcnow
from app.simulator.state import Caller, SimulatorState

# GitHub refuses App JWTs that live longer than ten minutes; a minute of clock drift is tolerated.
MAX_JWT_LIFETIME = 600
CLOCK_LEEWAY = 60

AuthKind = Literal["app", "installation", "any"]


def _bad_credentials() -> ApiError:
    return ApiError(401, "Bad credentials")


def authenticate(state: SimulatorState, authorization: str | None, needs: AuthKind) -> Caller:
    """The caller behind an `Authorization` header, or the 401/403 GitHub would answer."""
    if not authorization:
        raise ApiError(401, "Requires authentication")
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() not in ("bearer", "token") or not credential:
        raise _bad_credentials()
    if credential.count(".") == 2 and credential.startswith("eyJ"):
        caller = _app_caller(state, credential)
        if needs == "installation":
            raise ApiError(
                403,
                "Resource not accessible by integration: this endpoint needs an installation "
                "access token, not the App's JWT",
            )
        return caller
    if needs == "app":
        raise ApiError(401, "A JSON web token could not be decoded")
    token = state.tokens.get(credential)
    if token is not None:
        if token.expires_at <= utcnow():
            raise _bad_credentials()
        inst = state.installations.get(token.installation_id)
        if inst is None:
            raise _bad_credentials()
        repos = frozenset(inst.repos) if token.repos is None else token.repos & inst.repos
        return Caller(
            "installation",
            state.config.app.bot_login,
            installation=inst,
            permissions=token.permissions,
            repos=repos,
            rate_key=f"installation:{inst.id}",
        )
    user_token = state.user_tokens.get(credential)
    if user_token is not None:
        return Caller(
            "user",
            user_token.login,
            rate_key=f"user:{user_token.login.lower()}",
            scopes=user_token.scopes,
        )
    if state.config.plain_token and credential == state.config.plain_token:
        return Caller("user", state.config.plain_token_user, rate_key="plain")
    raise _bad_credentials()


def _app_caller(state: SimulatorState, token: str) -> Caller:
    app = state.config.app
    try:
        if app.public_key_pem:
            claims = jwt.decode(
                token,
                app.public_key_pem,
                algorithms=["RS256"],
                options={
                    "require": ["iat", "exp", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        else:
            claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidSignatureError as exc:
        raise ApiError(
            401, "A JSON web token could not be decoded: signature verification failed"
        ) from exc
    except jwt.PyJWTError as exc:
        raise ApiError(401, f"A JSON web token could not be decoded: {exc}") from exc
    now = time.time()
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int | float) or iat > now + CLOCK_LEEWAY:
        raise ApiError(
            401,
            "'Issued at' claim ('iat') must be an Integer representing the time that the "
            "assertion was issued.",
        )
    if not isinstance(exp, int | float) or exp <= now:
        raise ApiError(
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires.",
        )
    if exp > now + MAX_JWT_LIFETIME + CLOCK_LEEWAY:
        raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future.")
    if str(claims.get("iss")) != str(app.id):
        raise ApiError(401, "A JSON web token could not be decoded: 'iss' is not this App's id")
    return Caller("app", app.slug, rate_key=f"app:{app.id}")
