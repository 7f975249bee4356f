"""Fixtures for the GitHub adapter, run against the real local GitHub simulator (the `sim`
fixture comes from tests/fixtures/simulator.py, which the top-level conftest registers and which
fails any test that sent a request GitHub's OpenAPI description would refuse)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.config import Settings
from app.github.auth import reset_app_contexts
from app.github.client import PyGithubPort, RetryPolicy
from app.github.factory import github_for_installation, github_for_token
from app.simulator.admin_client import SimulatorAdmin

REPO = "acme/taxonomy"
APP_ID = 4242
# Longer than the 40 characters of classic tokens (bad-inputs row 36).
PLAIN_TOKEN = "github_pat_" + "A1b2C3d4E5" * 9
PUBLIC_URL = "https://labbot.example.org"


@dataclass
class Sleeps:
    """Stands in for time.sleep: records each wait and returns at once."""

    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@cache
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def make_settings(sim: SimulatorAdmin, *, app: bool = False, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "github_api_url": sim.api_url,
        "public_url": PUBLIC_URL,
        "github_write_interval_seconds": 0.0,
        "github_max_rate_limit_wait_seconds": 120.0,
        "github_timeout_seconds": 10.0,
    }
    if app:
        values.update(
            github_app_id=APP_ID, github_app_slug="labbot", github_private_key=app_key()[0]
        )
    else:
        values.update(github_token=PLAIN_TOKEN)
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def _fresh_app_contexts() -> Iterator[None]:
    # Each test's simulator starts with no tokens; cached ones from a previous test are void.
    reset_app_contexts()
    yield
    reset_app_contexts()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def policy(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(
        max_wait=120.0,
        secondary_wait=60.0,
        server_error_backoff=0.5,
        sleep=sleeps,
    )


@pytest.fixture
def token_sim(sim: SimulatorAdmin) -> SimulatorAdmin:
    sim.configure(plain_token=PLAIN_TOKEN, plain_token_user="labbot-dev")
    sim.create_repo(REPO, {"README.md": "taxonomy\n"}, org=True)
    return sim


@pytest.fixture
def gh(token_sim: SimulatorAdmin, policy: RetryPolicy) -> Iterator[PyGithubPort]:
    with github_for_token(make_settings(token_sim), policy=policy) as port:
        yield port


@dataclass
class AppWorld:
    sim: SimulatorAdmin
    settings: Settings
    installation_id: int


@pytest.fixture
def app_world(sim: SimulatorAdmin) -> AppWorld:
    sim.configure(app={"id": APP_ID, "slug": "labbot", "public_key_pem": app_key()[1]})
    created = sim.create_repo(REPO, {"README.md": "taxonomy\n"}, org=True)
    assert created.installation_id is not None
    return AppWorld(sim, make_settings(sim, app=True), created.installation_id)


@pytest.fixture
def app_gh(app_world: AppWorld, policy: RetryPolicy) -> Iterator[PyGithubPort]:
    port = github_for_installation(app_world.settings, app_world.installation_id, policy=policy)
    with port:
        yield port


def requests_to(sim: SimulatorAdmin, method: str, path_part: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["method"] == method and path_part in r["path"]]
