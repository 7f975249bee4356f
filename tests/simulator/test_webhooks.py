"""Admin actions send labbot the signed webhooks GitHub would send; labbot's own writes are echoed
back to it as GitHub does; redelivery keeps the GUID."""

from __future__ import annotations

import pytest
from github import Auth, Github, GithubIntegration

from app.simulator.admin_client import SimulatorAdmin
from tests.fixtures.simulator import WebhookReceiver
from tests.simulator.conftest import ORG, PLAIN_TOKEN, REPO, pygithub

SECRET = "simulator-test-secret"


@pytest.fixture
def hooks(sim: SimulatorAdmin, webhook_receiver: WebhookReceiver, taxonomy: str) -> WebhookReceiver:
    sim.configure(webhook_url=webhook_receiver.url, webhook_secret=SECRET)
    return webhook_receiver


def test_pull_request_lifecycle(sim: SimulatorAdmin, hooks: WebhookReceiver) -> None:
    opened = sim.open_pr(
        REPO, author="alice", title="Add haiku", files={"knowledge/a/qna.yaml": "x\n"}, fork=True
    )
    assert opened.status == 202
    assert opened.delivery is not None
    delivery = hooks.received[-1]
    assert delivery.guid == opened.delivery
    assert delivery.event == "pull_request"
    assert delivery.signature_ok(SECRET)
    assert not delivery.signature_ok("another secret")
    headers = delivery.headers
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    assert headers["content-type"] == "application/json"
    assert headers["x-github-hook-installation-target-type"] == "integration"
    assert headers["x-github-hook-installation-target-id"] == "1"
    assert headers["x-github-hook-id"]

    body = delivery.payload
    assert (body["action"], body["number"]) == ("opened", opened.number)
    pr = body["pull_request"]
    assert (pr["number"], pr["state"], pr["draft"], pr["merged"], pr["title"]) == (
        opened.number,
        "open",
        False,
        False,
        "Add haiku",
    )
    assert pr["user"]["login"] == "alice"
    assert pr["user"]["type"] == "User"
    assert pr["author_association"] == "FIRST_TIME_CONTRIBUTOR"
    assert pr["head"]["sha"] == opened.head_sha
    assert pr["head"]["repo"]["full_name"] == "alice/taxonomy"
    assert pr["base"]["repo"]["full_name"] == REPO
    assert pr["base"]["ref"] == "main"
    assert body["repository"]["full_name"] == REPO
    assert body["organization"]["login"] == ORG
    assert body["installation"]["id"] == sim.state()["installations"][0]["id"]
    assert body["sender"]["login"] == "alice"

    pushed = sim.push(REPO, opened.number, {"knowledge/a/qna.yaml": "y\n"})
    sync = hooks.received[-1].payload
    assert (sync["action"], sync["before"], sync["after"]) == (
        "synchronize",
        opened.head_sha,
        pushed.head_sha,
    )
    assert sync["pull_request"]["head"]["sha"] == pushed.head_sha

    labelled = sim.label(
        REPO, opened.number, user="tia", add=["skill", "triage-needed"], remove=["absent"]
    )
    assert [d["action"] for d in labelled.deliveries] == ["labeled", "labeled"]
    last = hooks.received[-1].payload
    assert (last["label"]["name"], last["sender"]["login"]) == ("triage-needed", "tia")
    assert [lb["name"] for lb in last["pull_request"]["labels"]] == ["skill", "triage-needed"]
    sim.label(REPO, opened.number, user="tia", remove=["skill"])
    assert (hooks.received[-1].payload["action"], hooks.received[-1].payload["label"]["name"]) == (
        "unlabeled",
        "skill",
    )

    sim.convert_to_draft(REPO, opened.number)
    assert hooks.received[-1].payload["pull_request"]["draft"] is True
    sim.ready_for_review(REPO, opened.number)
    sim.close_pr(REPO, opened.number)
    sim.reopen_pr(REPO, opened.number)
    merged = sim.merge_pr(REPO, opened.number, user="max")
    final = hooks.received[-1].payload
    assert (final["action"], final["pull_request"]["merged"], final["sender"]["login"]) == (
        "closed",
        True,
        "max",
    )
    assert final["pull_request"]["merge_commit_sha"] == merged.data["merge_commit_sha"]
    assert hooks.events()[-5:] == [
        ("pull_request", "converted_to_draft"),
        ("pull_request", "ready_for_review"),
        ("pull_request", "closed"),
        ("pull_request", "reopened"),
        ("pull_request", "closed"),
    ]

    # Now that alice has a merged pull request she is a contributor.
    second = sim.open_pr(REPO, author="alice", files={"knowledge/b/qna.yaml": "z\n"})
    assert hooks.received[-1].guid == second.delivery
    assert hooks.received[-1].payload["pull_request"]["author_association"] == "CONTRIBUTOR"


def test_author_association_reflects_membership(
    sim: SimulatorAdmin, hooks: WebhookReceiver
) -> None:
    sim.add_org_member(ORG, "mia")
    sim.set_permission(REPO, "carl", "write")
    seen = {}
    for author in ("mia", "carl", "acme"):
        sim.open_pr(REPO, author=author, files={f"{author}.md": "x\n"})
        seen[author] = hooks.received[-1].payload["pull_request"]["author_association"]
    assert seen == {"mia": "MEMBER", "carl": "COLLABORATOR", "acme": "OWNER"}


def test_comments_on_pull_requests_and_plain_issues(
    sim: SimulatorAdmin, hooks: WebhookReceiver
) -> None:
    number = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"}).number
    posted = sim.comment(REPO, number, user="tia", body="/ok-to-test")
    created = hooks.received[-1].payload
    assert (created["action"], created["comment"]["id"], created["comment"]["body"]) == (
        "created",
        posted.comment_id,
        "/ok-to-test",
    )
    assert created["issue"]["number"] == number
    assert "pull_request" in created["issue"]
    assert created["comment"]["user"]["login"] == "tia"
    assert created["sender"]["login"] == "tia"

    sim.edit_comment(REPO, posted.comment_id, "/ok-to-test please")
    edited = hooks.received[-1].payload
    assert (edited["action"], edited["changes"]["body"]["from"]) == ("edited", "/ok-to-test")
    sim.delete_comment(REPO, posted.comment_id, user="max")
    deleted = hooks.received[-1].payload
    assert (deleted["action"], deleted["sender"]["login"]) == ("deleted", "max")

    issue = sim.open_issue(REPO, author="bob", title="A question")
    assert hooks.received[-1].payload["action"] == "opened"
    assert hooks.received[-1].event == "issues"
    sim.comment(REPO, issue.number, user="bob", body="/generate")
    plain = hooks.received[-1].payload
    assert plain["issue"]["number"] == issue.number
    assert "pull_request" not in plain["issue"]


def test_labbots_own_writes_are_echoed_back(sim: SimulatorAdmin, hooks: WebhookReceiver) -> None:
    number = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"}).number
    gh = pygithub(sim, Auth.Token(PLAIN_TOKEN))
    gh.get_repo(REPO).get_issue(number).create_comment("Thanks, checking.")
    gh.requester.requestJsonAndCheck(
        "POST", f"/repos/{REPO}/issues/{number}/labels", input={"labels": ["skill"]}
    )
    assert sim.flush_deliveries()
    assert hooks.events()[-2:] == [("issue_comment", "created"), ("pull_request", "labeled")]
    assert {d.payload["sender"]["login"] for d in hooks.received[-2:]} == {"labbot-dev"}

    sim.configure(send_bot_events=False)
    gh.get_repo(REPO).get_issue(number).create_comment("quiet")
    assert sim.flush_deliveries()
    assert len(hooks.received) == 3


def test_events_the_app_is_not_subscribed_to_are_not_sent(
    sim: SimulatorAdmin, hooks: WebhookReceiver
) -> None:
    sim.configure(app={"events": ["pull_request"]})
    number = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"}).number
    result = sim.comment(REPO, number, user="bob", body="hi")
    assert (result.delivery, result.status) == (None, None)
    assert hooks.events() == [("pull_request", "opened")]


def test_failed_delivery_is_reported_and_redelivered_with_the_same_guid(
    sim: SimulatorAdmin, hooks: WebhookReceiver, app_key: tuple[str, str]
) -> None:
    private_pem, public_pem = app_key
    sim.configure(app={"id": 4242, "public_key_pem": public_pem})
    hooks.status = 503
    opened = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"})
    assert opened.status == 503

    hooks.status = 202
    integration = GithubIntegration(
        auth=Auth.AppAuth(4242, private_pem),
        base_url=sim.api_url,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    _, listed = integration.requester.requestJsonAndCheck("GET", "/app/hook/deliveries")
    failed = [d for d in listed if d["status"] != "OK"]
    assert [(d["guid"], d["status_code"], d["status"]) for d in failed] == [
        (opened.delivery, 503, "Invalid HTTP Response: 503")
    ]
    status, _, _ = integration.requester.requestJson(
        "POST", f"/app/hook/deliveries/{failed[0]['id']}/attempts"
    )
    assert status == 202
    assert sim.flush_deliveries()
    assert [d.guid for d in hooks.received] == [opened.delivery, opened.delivery]
    assert hooks.received[0].body == hooks.received[1].body
    assert hooks.received[1].signature_ok(SECRET)
    _, again = integration.requester.requestJsonAndCheck("GET", "/app/hook/deliveries")
    assert (again[0]["guid"], again[0]["redelivery"], again[0]["status"]) == (
        opened.delivery,
        True,
        "OK",
    )
    _, detail = integration.requester.requestJsonAndCheck(
        "GET", f"/app/hook/deliveries/{again[0]['id']}"
    )
    assert detail["request"]["payload"]["number"] == opened.number
    assert detail["request"]["headers"]["X-GitHub-Delivery"] == opened.delivery


def test_installation_created_and_check_run_rerequested(
    sim: SimulatorAdmin, hooks: WebhookReceiver
) -> None:
    installed = sim.create_installation(ORG, ["taxonomy"], sender="admin-ada")
    payload = hooks.received[-1].payload
    assert hooks.received[-1].event == "installation"
    assert payload["action"] == "created"
    assert payload["installation"]["id"] == installed.installation_id
    assert [r["full_name"] for r in payload["repositories"]] == [REPO]
    assert payload["sender"]["login"] == "admin-ada"

    opened = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"})
    gh: Github = pygithub(sim, Auth.Token(PLAIN_TOKEN))
    run = gh.get_repo(REPO).create_check_run(
        name="ilab/schema", head_sha=opened.head_sha, conclusion="success"
    )
    sim.flush_deliveries()
    rerun = sim.rerequest_check_run(run.id, user="alice")
    assert rerun.status == 202
    body = hooks.received[-1].payload
    assert (body["action"], body["check_run"]["id"], body["sender"]["login"]) == (
        "rerequested",
        run.id,
        "alice",
    )
    assert body["check_run"]["check_suite"]["head_sha"] == opened.head_sha
    assert body["installation"]["id"] == installed.installation_id


def test_unreachable_labbot_is_recorded(sim: SimulatorAdmin, taxonomy: str) -> None:
    sim.configure(webhook_url="http://127.0.0.1:9/webhooks/github")
    opened = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"})
    assert opened.status is None
    assert sim.deliveries()[-1]["status_text"].startswith("failed to connect")
