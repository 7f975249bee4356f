"""Comment commands end to end through the simulator, labbot's API and a real worker."""

from __future__ import annotations

from typing import Any

import pytest
from github import Auth, Github

from app.simulator.admin_client import SimulatorAdmin
from tests.conftest import READER_TOKEN, Labbot, delivery_status, wait_until
from tests.test_triage_e2e import PR_1412, REPO, completed_run, files_of

pytestmark = pytest.mark.e2e


@pytest.fixture
def opened(labbot: Labbot, sim: SimulatorAdmin) -> tuple[Github, Any]:
    labbot.start_api()
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
    pull = sim.open_pr(REPO, author="contributor", title="t", files=files_of(PR_1412))
    completed_run(gh, pull.head_sha)
    return gh, pull


def reactions(gh: Github, number: int, comment_id: int) -> set[str]:
    comment = gh.get_repo(REPO).get_issue(number).get_comment(comment_id)
    return {r.content for r in comment.get_reactions()}


def help_comments(gh: Github, number: int) -> list[Any]:
    return [
        c
        for c in gh.get_repo(REPO).get_issue(number).get_comments()
        if "<!-- labbot:help -->" in c.body
    ]


def test_retest_runs_triage_again_and_reacts(
    labbot: Labbot, sim: SimulatorAdmin, opened: tuple[Github, Any]
) -> None:
    gh, pull = opened
    first = completed_run(gh, pull.head_sha)
    posted = sim.comment(REPO, pull.number, user="contributor", body="Fixed it?\n/lab retest  ")
    again = completed_run(gh, pull.head_sha, after=first.id)
    assert again.conclusion == "failure"
    wait_until(lambda: reactions(gh, pull.number, posted.comment_id) == {"eyes", "rocket"}, 30)


def test_help_and_unknown_verbs_answer_with_one_help_comment(
    labbot: Labbot, sim: SimulatorAdmin, opened: tuple[Github, Any]
) -> None:
    gh, pull = opened
    asked = sim.comment(REPO, pull.number, user="contributor", body="/lab help")
    body = wait_until(lambda: help_comments(gh, pull.number), 30)[0].body
    assert "/lab retest" in body
    assert "/lab help" in body
    wait_until(lambda: reactions(gh, pull.number, asked.comment_id) == {"eyes"}, 30)
    unknown = sim.comment(REPO, pull.number, user="contributor", body="@labbot frobnicate")
    wait_until(lambda: "eyes" in reactions(gh, pull.number, unknown.comment_id), 30)
    assert len(help_comments(gh, pull.number)) == 1  # the same help comment, not a new one


@pytest.mark.parametrize(
    ("user", "body"),
    [
        ("contributor", "> /lab retest\nquoting the command above"),
        ("contributor", "```\n/lab retest\n```"),
        ("contributor", "please /lab retest when you can"),
        ("helper-bot[bot]", "/lab retest"),
    ],
)
def test_quotes_code_prose_and_bots_start_nothing(
    labbot: Labbot, sim: SimulatorAdmin, opened: tuple[Github, Any], user: str, body: str
) -> None:
    gh, pull = opened
    runs_before = gh.get_repo(REPO).get_commit(pull.head_sha).get_check_runs().totalCount
    posted = sim.comment(REPO, pull.number, user=user, body=body)
    record = wait_until(
        lambda: (
            (r := delivery_status(labbot.base_url, posted.delivery))
            and r["status"] in ("ignored", "processed", "failed")
            and r
        ),
        30,
    )
    assert record["status"] == "ignored"
    assert reactions(gh, pull.number, posted.comment_id) == set()
    assert gh.get_repo(REPO).get_commit(pull.head_sha).get_check_runs().totalCount == runs_before
