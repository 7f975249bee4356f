"""Build a ``GitHubPort``: App mode when ``LABBOT_GITHUB_APP_ID`` is set, else a plain token."""

from __future__ import annotations

from github import Auth, Github

from app.config import ConfigError, Settings
from app.github.auth import USER_AGENT, InstallationAuth, app_context, timeout_of
from app.github.client import PER_PAGE, PyGithubPort, RetryPolicy, Transport


def _github(settings: Settings, auth: Auth.Auth, per_page: int) -> Github:
    return Github(
        auth=auth,
        base_url=settings.github_api_url.rstrip("/"),
        timeout=timeout_of(settings),
        user_agent=USER_AGENT,
        per_page=per_page,
        # labbot's Transport retries and spaces requests; PyGithub must not do it again.
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        lazy=True,  # building repo/issue objects costs no request; only real calls do
    )


def _policy(settings: Settings, policy: RetryPolicy | None) -> RetryPolicy:
    return policy or RetryPolicy.from_settings(settings)


def github_for_installation(
    settings: Settings,
    installation_id: int,
    *,
    policy: RetryPolicy | None = None,
    per_page: int = PER_PAGE,
) -> PyGithubPort:
    """A client acting as one installation of the App (or the plain token, in token mode)."""
    if settings.github_app_id is None:
        return github_for_token(settings, policy=policy, per_page=per_page)
    context = app_context(settings)
    auth = InstallationAuth(context.tokens, installation_id)
    transport = Transport(
        _policy(settings, policy),
        settings.github_write_interval_seconds,
        reauth=auth.refused,
        write_burst=settings.github_write_burst,
    )
    # Token requests get the same rate-limit and 5xx rules, but a 401 there is final.
    minting = Transport(transport.policy, 0.0)
    auth.use_runner(lambda mint: minting.run_read(mint, "mint an installation token"))
    return PyGithubPort(
        _github(settings, auth, per_page),
        transport,
        public_url=settings.public_url,
        bot_login=f"{settings.github_app_slug}[bot]",
    )


def github_for_token(
    settings: Settings, *, policy: RetryPolicy | None = None, per_page: int = PER_PAGE
) -> PyGithubPort:
    """A client on ``LABBOT_GITHUB_TOKEN`` (any token format or length GitHub issues)."""
    token = settings.github_token.get_secret_value().strip() if settings.github_token else ""
    if not token:
        raise ConfigError(
            "No GitHub token: set LABBOT_GITHUB_TOKEN, or LABBOT_GITHUB_APP_ID with the App's "
            "private key."
        )
    transport = Transport(
        _policy(settings, policy),
        settings.github_write_interval_seconds,
        write_burst=settings.github_write_burst,
    )
    # Whose comments are ours is learnt from GET /user when first needed.
    return PyGithubPort(
        _github(settings, Auth.Token(token), per_page), transport, public_url=settings.public_url
    )


def github_port(
    settings: Settings, installation_id: int | None = None, *, policy: RetryPolicy | None = None
) -> PyGithubPort:
    """App mode when an App id is configured (then ``installation_id`` is required)."""
    if settings.github_app_id is not None:
        if installation_id is None:
            raise ConfigError("App mode needs the installation id of the webhook delivery.")
        return github_for_installation(settings, installation_id, policy=policy)
    return github_for_token(settings, policy=policy)
