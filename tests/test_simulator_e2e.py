"""The simulator drives a pull request through labbot end to end: signed webhooks from the
simulator, labbot's API and a real worker process on PostgreSQL and Redis, and labbot talking
back to the simulator as a GitHub App (RS256 JWT, installation tokens)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.config import get_settings
from app.db.models import Delivery, DeliveryStatus, PullRequest, Repository
from app.db.session import get_engine
from app.github.redelivery import redeliver_missed
from app.simulator.admin_client import SimulatorAdmin
from tests.conftest import Labbot, delivery_status, wait_until

pytestmark = pytest.mark.e2e

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
        lambda: (
            (r := delivery_status(labbot.base_url, opened.delivery))
            and r["status"] == "processed"
            and r
        ),
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
        lambda: (
            (delivery_status(labbot.base_url, pushed.delivery) or {}).get("status") == "processed"
        ),
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
        lambda: (
            (r := delivery_status(labbot.base_url, missed.delivery))
            and r["status"] == "processed"
            and r
        ),
        60,
    )
    assert record["attempts"] == 1
    # A second round finds nothing left to ask for.
    assert redeliver_missed(get_settings()).redelivered == []
    with get_engine().connect() as conn:
        statuses = conn.execute(select(Delivery.guid, Delivery.status)).all()
    assert all(status is not DeliveryStatus.failed for _, status in statuses)
