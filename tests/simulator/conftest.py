"""Fixtures for the simulator's own tests (`sim` itself comes from tests.fixtures.simulator)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from github import Auth, Github

from app.simulator.admin_client import SimulatorAdmin

PLAIN_TOKEN = "ghp_simulatorTestToken000000000000000000"
ORG = "acme"
REPO = "acme/taxonomy"
SKILL = "compositional_skills/writing/haiku/qna.yaml"
BASE_FILES = {
    "README.md": "# taxonomy\n",
    SKILL: "version: 3\ncreated_by: someone\ntask_description: Write haiku\nseed_examples: []\n",
}


def pygithub(sim: SimulatorAdmin, auth: Auth.Auth) -> Github:
    """PyGithub on the simulator, without its write throttling and retries (tests stay fast)."""
    return Github(
        base_url=sim.api_url,
        auth=auth,
        seconds_between_requests=None,
        seconds_between_writes=None,
        retry=None,
    )


@pytest.fixture
def taxonomy(sim: SimulatorAdmin) -> str:
    sim.configure(plain_token=PLAIN_TOKEN)
    sim.create_repo(REPO, BASE_FILES, org=True)
    return REPO


@pytest.fixture
def gh(sim: SimulatorAdmin, taxonomy: str) -> Iterator[Github]:
    client = pygithub(sim, Auth.Token(PLAIN_TOKEN))
    yield client
    client.close()


@pytest.fixture
def api(sim: SimulatorAdmin, taxonomy: str) -> Iterator[httpx.Client]:
    """Raw HTTP on the simulator's REST API with the plain token."""
    with httpx.Client(
        base_url=sim.api_url, headers={"Authorization": f"token {PLAIN_TOKEN}"}
    ) as client:
        yield client


@pytest.fixture(autouse=True)
def _answers_match_githubs_schemas(sim: SimulatorAdmin) -> Iterator[None]:
    """The simulator's own answers and webhook payloads must have the shapes GitHub documents."""
    yield
    sim.flush_deliveries()
    problems = [
        f"{r['method']} {r['path']}: {r['response_problem']}"
        for r in sim.requests()
        if r["response_problem"]
    ]
    problems += [
        f"{d['event']}.{d['action']}: {d['payload_problem']}"
        for d in sim.deliveries()
        if d["payload_problem"]
    ]
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def app_key() -> tuple[str, str]:
    """A GitHub App key pair: (private PEM for PyGithub, public PEM for the simulator)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public
