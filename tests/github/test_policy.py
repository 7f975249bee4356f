"""The adapter's rules that need no server: rate-limit arithmetic, text limits, token cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.github.auth import InstallationTokens
from app.github.client import RetryPolicy, fit_text
from app.github.port import CHECK_TEXT_MAX, COMMENT_BODY_MAX

NOW = 1_800_000_000.0


def policy(**kw: object) -> RetryPolicy:
    return RetryPolicy(clock=lambda: NOW, **kw)  # type: ignore[arg-type]


def test_retry_after_is_honoured() -> None:
    assert policy().rate_limit_wait(403, {"Retry-After": "7"}, "", 0) == (7.0, False)
    assert policy().rate_limit_wait(429, {"retry-after": "0"}, "", 0) == (0.0, False)


def test_primary_limit_waits_until_reset() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)}
    wait = policy(reset_skew=1.0).rate_limit_wait(403, headers, "API rate limit exceeded", 0)
    assert wait == (31.0, False)
    # A reset already past still waits the skew, never a negative time.
    headers["x-ratelimit-reset"] = str(int(NOW) - 5)
    assert policy(reset_skew=1.0).rate_limit_wait(429, headers, "", 0) == (1.0, False)


def test_secondary_limit_without_hint_backs_off_from_a_minute() -> None:
    p = RetryPolicy()
    message = "You have exceeded a secondary rate limit. Please wait a few minutes."
    assert p.rate_limit_wait(403, {}, message, 0) == (60.0, True)
    assert p.rate_limit_wait(403, {}, message, 1) == (120.0, True)
    assert p.rate_limit_wait(429, {}, "", 2) == (240.0, True)


def test_permission_403_is_not_a_rate_limit() -> None:
    headers = {"x-ratelimit-remaining": "4999", "x-ratelimit-reset": str(int(NOW) + 30)}
    assert (
        policy().rate_limit_wait(403, headers, "Resource not accessible by integration", 0) is None
    )
    assert policy().rate_limit_wait(404, {"Retry-After": "5"}, "", 0) is None


@pytest.mark.parametrize("limit", [COMMENT_BODY_MAX, CHECK_TEXT_MAX])
def test_fit_text_cuts_honestly(limit: int) -> None:
    text = "x" * (limit + 10)
    out = fit_text(text, limit, "https://labbot.example/prs/1")
    assert len(out) <= limit
    assert out.endswith("truncated — see details: https://labbot.example/prs/1")
    assert fit_text("short", limit, None) == "short"


def test_fit_text_closes_an_open_code_fence() -> None:
    text = "intro\n```\n" + "y" * 200
    out = fit_text(text, 100, None)
    assert len(out) <= 100
    assert out.count("```") == 2
    assert out.endswith("truncated — see details")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_installation_tokens_are_cached_and_refreshed_five_minutes_early() -> None:
    clock = Clock()
    minted: list[int] = []

    def mint(installation_id: int) -> tuple[str, datetime]:
        minted.append(installation_id)
        expires = datetime.fromtimestamp(clock.now, UTC) + timedelta(hours=1)
        return f"ghs_{len(minted)}_" + "a" * 200, expires  # long tokens are fine

    tokens = InstallationTokens(mint, clock=clock)
    first = tokens.token(7)
    assert tokens.token(7) == first
    assert minted == [7]
    clock.now += 54 * 60  # six minutes left: still good
    assert tokens.token(7) == first
    clock.now += 2 * 60  # four minutes left: refresh
    second = tokens.token(7)
    assert second != first
    assert minted == [7, 7]
    # Another installation has its own token.
    tokens.token(8)
    assert minted == [7, 7, 8]


def test_refused_token_is_dropped_only_if_still_current() -> None:
    count = 0

    def mint(installation_id: int) -> tuple[str, datetime]:
        nonlocal count
        count += 1
        return f"t{count}", datetime.now(UTC) + timedelta(hours=1)

    tokens = InstallationTokens(mint)
    assert tokens.token(1) == "t1"
    tokens.invalidate(1, "t0")  # an older token: someone already replaced it
    assert tokens.token(1) == "t1"
    tokens.invalidate(1, "t1")
    assert tokens.token(1) == "t2"
    assert tokens.mints == 2
