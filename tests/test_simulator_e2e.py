"""The simulator drives a pull request through labbot end to end: signed webhooks from the
simulator, labbot's API and a real worker process on PostgreSQL and Redis, and labbot talking
back to the simulator as a GitHub App (RS256 JWT, installation tokens)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from app.config import get_settings
from app.db.models import Delivery, DeliveryStatus, PullRequest, Repository
from app.db.session import get_engine
from app.github.auth import reset_app_contexts
from app.github.redelivery import redeliver_missed
from app.simulator.admin_client import SimulatorAdmin
from tests.conftest import (
    TEST_SECRET,
    Backend,
    Process,
    delivery_status,
    free_port,
    wait_http_ok,
    wait_until,
)

pytestmark = pytest.mark.e2e

APP_ID = 4242
QNA = """\
version: 3
task_description: Teach the model to write haiku about the sea.
created_by: contributor
seed_examples:
  - question: Write a haiku about waves.
    answer: |
      Waves fold into foam
      salt wind carries gull voices
      the tide keeps its time
"""


@dataclass
class Labbot:
    base_url: str
    env: dict[str, str]
    start_api: Callable[[], Process]


@pytest.fixture
def app_key(tmp_path: Path) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "app.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


@pytest.fixture
def labbot(
    postgres_backend: Backend,
    sim: SimulatorAdmin,
    app_key: tuple[Path, str],
    start_process: Callable[..., Process],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Labbot]:
    private_key_path, public_key = app_key
    port = free_port()
    env = {
        **postgres_backend.env,
        "LABBOT_GITHUB_API_URL": sim.api_url,
        "LABBOT_GITHUB_APP_ID": str(APP_ID),
        "LABBOT_GITHUB_APP_SLUG": "labbot",
        "LABBOT_GITHUB_PRIVATE_KEY_PATH": str(private_key_path),
        "LABBOT_GITHUB_TOKEN": "",
        "LABBOT_GITHUB_WRITE_INTERVAL_SECONDS": "0",
        "LABBOT_REDELIVER_INTERVAL_SECONDS": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    reset_app_contexts()
    sim.configure(
        webhook_url=f"http://127.0.0.1:{port}/webhooks/github",
        webhook_secret=TEST_SECRET,
        app={"id": APP_ID, "slug": "labbot", "public_key_pem": public_key},
    )
    base_url = f"http://127.0.0.1:{port}"

    def start_api() -> Process:
        api = start_process(["serve", "--port", str(port), "--no-worker"], env, "api")
        wait_http_ok(f"{base_url}/healthz", process=api)
        return api

    start_process(["worker", "--concurrency", "2"], env, "worker")
    yield Labbot(base_url, env, start_api)
    reset_app_contexts()


def test_a_pull_request_opened_in_the_simulator_is_recorded_by_labbot(
    labbot: Labbot, sim: SimulatorAdmin
) -> None:
    labbot.start_api()
    sim.create_repo("instructlab-demo/taxonomy", {"README.md": "# taxonomy\n"}, org=True)
    opened = sim.open_pr(
        "instructlab-demo/taxonomy",
        author="contributor",
        title="Add haiku skill",
        files={
            "compositional_skills/writing/poetry/haiku/qna.yaml": QNA,
            "compositional_skills/writing/poetry/haiku/attribution.txt": "Title of work: haiku\n",
        },
    )
    assert opened.status == 202, "labbot did not acknowledge the signed webhook"
    record = wait_until(
        lambda: (r := delivery_status(labbot.base_url, opened.delivery))
        and r["status"] == "processed"
        and r,
        60,
    )
    assert (record["event"], record["action"]) == ("pull_request", "opened")
    assert record["repository"] == "instructlab-demo/taxonomy"
    with get_engine().connect() as conn:
        pull = conn.execute(
            select(PullRequest.number, PullRequest.author, PullRequest.head_sha, PullRequest.state)
        ).one()
        repository = conn.execute(select(Repository.full_name, Repository.installation_id)).one()
    assert tuple(pull) == (opened.number, "contributor", opened.head_sha, "open")
    assert repository.full_name == "instructlab-demo/taxonomy"
    assert repository.installation_id is not None

    # A push moves the recorded head to the new commit.
    pushed = sim.push(
        "instructlab-demo/taxonomy",
        opened.number,
        {"compositional_skills/writing/poetry/haiku/qna.yaml": QNA + "# edited\n"},
    )
    wait_until(
        lambda: (delivery_status(labbot.base_url, pushed.delivery) or {}).get("status")
        == "processed",
        60,
    )
    with get_engine().connect() as conn:
        assert conn.execute(select(PullRequest.head_sha)).scalar_one() == pushed.head_sha


def test_deliveries_missed_while_labbot_was_down_are_redelivered(
    labbot: Labbot, sim: SimulatorAdmin
) -> None:
    # Row 16: GitHub does not retry; labbot lists the App's deliveries and asks for the missed.
    sim.create_repo("instructlab-demo/taxonomy", {"README.md": "# taxonomy\n"}, org=True)
    missed = sim.open_pr(
        "instructlab-demo/taxonomy",
        author="contributor",
        title="Sent while labbot was down",
        files={"compositional_skills/writing/poetry/limerick/qna.yaml": QNA},
    )
    assert missed.status != 202  # nobody was listening

    labbot.start_api()
    delivered = sim.open_pr(
        "instructlab-demo/taxonomy",
        author="contributor",
        title="Sent while labbot was up",
        files={"compositional_skills/writing/poetry/sonnet/qna.yaml": QNA},
    )
    assert delivered.status == 202

    report = redeliver_missed(get_settings())
    assert report.redelivered == [missed.delivery]
    record = wait_until(
        lambda: (r := delivery_status(labbot.base_url, missed.delivery))
        and r["status"] == "processed"
        and r,
        60,
    )
    assert record["attempts"] == 1
    # A second round finds nothing left to ask for.
    assert redeliver_missed(get_settings()).redelivered == []
    with get_engine().connect() as conn:
        statuses = conn.execute(select(Delivery.guid, Delivery.status)).all()
    assert all(status is not DeliveryStatus.failed for _, status in statuses)
