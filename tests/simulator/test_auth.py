"""Credentials as GitHub checks them: App JWTs (RS256), installation tokens, a plain token."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from github import Auth, GithubException, GithubIntegration

from app.simulator.admin_client import SimulatorAdmin
from tests.simulator.conftest import PLAIN_TOKEN, REPO, pygithub

APP_ID = 4242


@pytest.fixture
def app_auth(sim: SimulatorAdmin, taxonomy: str, app_key: tuple[str, str]) -> Auth.AppAuth:
    private_pem, public_pem = app_key
    sim.configure(app={"id": APP_ID, "slug": "labbot-test", "public_key_pem": public_pem})
    return Auth.AppAuth(APP_ID, private_pem)


def integration(sim: SimulatorAdmin, auth: Auth.AppAuth) -> GithubIntegration:
    return GithubIntegration(
        auth=auth, base_url=sim.api_url, seconds_between_requests=None, seconds_between_writes=None
    )


def test_app_jwt_installation_token_and_bot_identity(
    sim: SimulatorAdmin, app_auth: Auth.AppAuth
) -> None:
    gi = integration(sim, app_auth)
    app = gi.get_app()
    assert (app.id, app.slug) == (APP_ID, "labbot-test")
    assert app.permissions["checks"] == "write"
    assert "pull_request" in app.events
    installations = list(gi.get_installations())
    assert len(installations) == 1
    inst = gi.get_repo_installation(*REPO.split("/"))
    assert inst.id == installations[0].id

    token = gi.get_access_token(inst.id)
    assert token.token.startswith("ghs_")
    assert len(token.token) >= 40
    assert abs(token.expires_at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=10)

    number = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"}).number
    gh = pygithub(sim, app_auth.get_installation_auth(inst.id))
    comment = gh.get_repo(REPO).get_issue(number).create_comment("Thanks!")
    assert (comment.user.login, comment.user.type) == ("labbot-test[bot]", "Bot")
    assert comment.raw_data["performed_via_github_app"]["slug"] == "labbot-test"
    with pytest.raises(GithubException) as no_user:
        gh.get_user().login  # noqa: B018 (an installation has no /user)
    assert no_user.value.status == 403


def test_jwt_checks(sim: SimulatorAdmin, app_auth: Auth.AppAuth, app_key: tuple[str, str]) -> None:
    def get_app(token: str) -> httpx.Response:
        return httpx.get(f"{sim.api_url}/app", headers={"Authorization": f"Bearer {token}"})

    now = int(time.time())
    private_pem, _ = app_key
    good = jwt.encode(
        {"iat": now - 60, "exp": now + 300, "iss": str(APP_ID)}, private_pem, algorithm="RS256"
    )
    assert get_app(good).status_code == 200

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged = jwt.encode(
        {"iat": now - 60, "exp": now + 300, "iss": str(APP_ID)}, other, algorithm="RS256"
    )
    assert get_app(forged).status_code == 401
    expired = jwt.encode(
        {"iat": now - 900, "exp": now - 300, "iss": str(APP_ID)}, private_pem, algorithm="RS256"
    )
    assert "Expiration time" in get_app(expired).json()["message"]
    too_long = jwt.encode(
        {"iat": now, "exp": now + 3600, "iss": str(APP_ID)}, private_pem, algorithm="RS256"
    )
    assert (
        get_app(too_long).json()["message"]
        == "'Expiration time' claim ('exp') is too far in the future."
    )
    wrong_app = jwt.encode(
        {"iat": now - 60, "exp": now + 300, "iss": "7"}, private_pem, algorithm="RS256"
    )
    assert get_app(wrong_app).status_code == 401

    # The App's JWT is not an installation token, and the reverse.
    assert (
        httpx.get(
            f"{sim.api_url}/repos/{REPO}", headers={"Authorization": f"Bearer {good}"}
        ).status_code
        == 403
    )
    plain = httpx.get(f"{sim.api_url}/app", headers={"Authorization": f"token {PLAIN_TOKEN}"})
    assert plain.status_code == 401


def test_expired_and_unknown_tokens(sim: SimulatorAdmin, app_auth: Auth.AppAuth) -> None:
    gi = integration(sim, app_auth)
    token = gi.get_access_token(gi.get_repo_installation(*REPO.split("/")).id).token
    headers = {"Authorization": f"token {token}"}
    assert httpx.get(f"{sim.api_url}/repos/{REPO}", headers=headers).status_code == 200
    assert sim.expire_tokens() == 1
    expired = httpx.get(f"{sim.api_url}/repos/{REPO}", headers=headers)
    assert (expired.status_code, expired.json()["message"]) == (401, "Bad credentials")
    unknown = httpx.get(f"{sim.api_url}/repos/{REPO}", headers={"Authorization": "token ghs_nope"})
    assert (unknown.status_code, unknown.json()["message"]) == (401, "Bad credentials")
    anonymous = httpx.get(f"{sim.api_url}/repos/{REPO}")
    assert (anonymous.status_code, anonymous.json()["message"]) == (401, "Requires authentication")
    # A fresh token works again.
    fresh = gi.get_access_token(gi.get_repo_installation(*REPO.split("/")).id).token
    assert (
        httpx.get(
            f"{sim.api_url}/repos/{REPO}", headers={"Authorization": f"token {fresh}"}
        ).status_code
        == 200
    )


def test_incomplete_app_permissions_and_token_scope(
    sim: SimulatorAdmin, app_auth: Auth.AppAuth
) -> None:
    sim.configure(
        app={
            "permissions": {"contents": "read", "metadata": "read", "pull_requests": "read"},
            "events": [],
        }
    )
    gi = integration(sim, app_auth)
    app = gi.get_app()
    assert app.permissions == {"contents": "read", "metadata": "read", "pull_requests": "read"}
    assert app.events == []
    inst_id = gi.get_repo_installation(*REPO.split("/")).id
    opened = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"})
    gh = pygithub(sim, app_auth.get_installation_auth(inst_id))
    repo = gh.get_repo(REPO)
    assert repo.get_pull(opened.number).head.sha == opened.head_sha
    with pytest.raises(GithubException) as refused:
        repo.create_check_run(name="ilab/schema", head_sha=opened.head_sha)
    assert (refused.value.status, refused.value.data["message"]) == (
        403,
        "Resource not accessible by integration",
    )

    with pytest.raises(GithubException) as not_granted:
        gi.get_access_token(inst_id, permissions={"checks": "write"})
    assert not_granted.value.status == 422

    sim.create_repo("someone-else/private-stuff", {"x": "y"})
    with pytest.raises(GithubException) as hidden:
        gh.get_repo("someone-else/private-stuff").full_name  # noqa: B018
    assert hidden.value.status == 404


def test_rate_limit_is_counted_and_enforced(sim: SimulatorAdmin, api: httpx.Client) -> None:
    sim.configure(rate_limit=3)
    seen = [api.get(f"/repos/{REPO}") for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 403]
    assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
    assert seen[-1].json()["message"].startswith("API rate limit exceeded")
    assert seen[0].headers["x-ratelimit-resource"] == "core"
    assert int(seen[0].headers["x-ratelimit-reset"]) > time.time()
    assert seen[0].headers["content-type"] == "application/json; charset=utf-8"
    assert seen[0].headers["x-github-request-id"]
    assert api.get("/rate_limit").json()["rate"]["remaining"] == 0
