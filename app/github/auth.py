"""GitHub App credentials.

PyGithub signs the App JWT (``Auth.AppAuth``) and mints installation tokens
(``GithubIntegration.get_access_token``). What it does not do is share them: its
``AppInstallationAuth`` keeps one token per client object and refreshes it 20 s before expiry.
Here one ``GithubIntegration`` and one token cache live per process, tokens are refreshed when
less than five minutes are left, and a token GitHub refuses is dropped so the next request mints
a new one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import jwt
from github import Auth, GithubIntegration

from app.config import ConfigError, Settings

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 5 * 60
USER_AGENT = "labbot (+https://github.com/instructlab)"

# PyGithub logs response bodies at DEBUG, and the body of a token request is the token.
_requester_log = logging.getLogger("github.Requester")
if _requester_log.level < logging.INFO:
    _requester_log.setLevel(logging.INFO)

Minter = Callable[[int], tuple[str, datetime]]
Runner = Callable[[Callable[[], tuple[str, datetime]]], tuple[str, datetime]]


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    token: str | None = None
    expires_at: float = 0.0


class InstallationTokens:
    """Installation access tokens of one App, shared by every client in the process."""

    def __init__(
        self,
        mint: Minter,
        *,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._mint = mint
        self._margin = refresh_margin
        self._clock = clock
        self._slots: dict[int, _Slot] = {}
        self._slots_lock = threading.Lock()
        self.mints = 0  # how many tokens were minted; tests and metrics read it

    def _slot(self, installation_id: int) -> _Slot:
        with self._slots_lock:
            return self._slots.setdefault(installation_id, _Slot())

    def token(self, installation_id: int, runner: Runner | None = None) -> str:
        """A token valid for at least the refresh margin, minting one if needed."""
        slot = self._slot(installation_id)
        # One lock per installation: a slow mint for one does not hold up the others.
        with slot.lock:
            if slot.token is None or slot.expires_at - self._clock() < self._margin:

                def mint() -> tuple[str, datetime]:
                    return self._mint(installation_id)

                token, expires_at = runner(mint) if runner is not None else mint()
                if expires_at.tzinfo is None:
                    expires_at = expires_at.replace(tzinfo=UTC)
                slot.token, slot.expires_at = token, expires_at.timestamp()
                self.mints += 1
                log.info(
                    "minted an installation token for installation %s (valid %.0f min)",
                    installation_id,
                    (slot.expires_at - self._clock()) / 60,
                )
            return slot.token

    def invalidate(self, installation_id: int, refused: str | None) -> None:
        """Forget a token GitHub refused (401), unless another thread already replaced it."""
        slot = self._slot(installation_id)
        with slot.lock:
            if refused is None or slot.token == refused:
                slot.token, slot.expires_at = None, 0.0


class InstallationAuth(Auth.Auth):
    """Per-client view of the shared token cache for one installation."""

    def __init__(self, tokens: InstallationTokens, installation_id: int) -> None:
        self._tokens = tokens
        self._installation_id = installation_id
        self._runner: Runner | None = None
        self._last: str | None = None

    def use_runner(self, runner: Runner) -> None:
        """Mint through the client's transport, so token requests get the same retry rules."""
        self._runner = runner

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        self._last = self._tokens.token(self._installation_id, self._runner)
        return self._last

    def refused(self) -> bool:
        """GitHub answered 401 with the last token: drop it; the retry mints a new one."""
        self._tokens.invalidate(self._installation_id, self._last)
        return True

    @property
    def _masked_token(self) -> str:
        return "token (installation token removed)"


@dataclass
class AppContext:
    """What one App needs per process: its JWT auth, its integration and its token cache."""

    app_id: int
    app_auth: Auth.AppAuth
    integration: GithubIntegration
    tokens: InstallationTokens


_contexts: dict[tuple[str, int, str], AppContext] = {}
_contexts_lock = threading.Lock()


def _forget_after_fork() -> None:
    # Sockets and locks must not be shared with a forked worker child.
    global _contexts_lock
    _contexts.clear()
    _contexts_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def timeout_of(settings: Settings) -> int:
    # PyGithub takes whole seconds.
    return max(1, math.ceil(settings.github_timeout_seconds))


def app_context(settings: Settings) -> AppContext:
    """The per-process App context for these settings (App mode only)."""
    if settings.github_app_id is None:
        raise ConfigError("LABBOT_GITHUB_APP_ID is not set; App authentication is not configured.")
    pem = settings.private_key_pem()
    if not pem or not pem.strip():
        raise ConfigError(
            "LABBOT_GITHUB_APP_ID is set but LABBOT_GITHUB_PRIVATE_KEY (or _PATH) is missing."
        )
    # The key itself is never a dict key or a log field; its digest tells keys apart.
    key = (
        settings.github_api_url.rstrip("/"),
        settings.github_app_id,
        hashlib.sha256(pem.encode()).hexdigest(),
    )
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = _new_context(settings, pem)
            _contexts[key] = context
        return context


def _new_context(settings: Settings, pem: str) -> AppContext:
    assert settings.github_app_id is not None
    app_auth = Auth.AppAuth(settings.github_app_id, pem)
    try:
        app_auth.create_jwt()  # fail at start-up, not on the first webhook
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ConfigError(
            "LABBOT_GITHUB_PRIVATE_KEY cannot sign a JWT: it must be the App's PEM private key "
            f"({type(exc).__name__})."
        ) from None
    integration = GithubIntegration(
        auth=app_auth,
        base_url=settings.github_api_url.rstrip("/"),
        timeout=timeout_of(settings),
        user_agent=USER_AGENT,
        # labbot's transport retries and spaces requests; PyGithub must not do it again.
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )

    def mint(installation_id: int) -> tuple[str, datetime]:
        grant = integration.get_access_token(installation_id)
        return grant.token, grant.expires_at

    return AppContext(settings.github_app_id, app_auth, integration, InstallationTokens(mint))


def reset_app_contexts() -> None:
    """Forget every cached integration and token (tests; key rotation)."""
    with _contexts_lock:
        for context in _contexts.values():
            context.integration.close()
        _contexts.clear()
