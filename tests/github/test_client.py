"""PyGithubPort against the local GitHub simulator: what labbot reads and writes, and how it
survives GitHub's limits and faults (bad-inputs rows 30-38). The `sim` fixture fails a test that
sent any request GitHub's OpenAPI description would refuse (row 38)."""

from __future__ import annotations

import base64
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.config import ConfigError
from app.github.auth import app_context
from app.github.client import PyGithubPort, RetryPolicy
from app.github.factory import github_for_installation, github_for_token, github_port
from app.github.port import (
    Annotation,
    CheckRunOutput,
    FileMode,
    GitHubError,
)
from app.simulator.admin_client import SimulatorAdmin
from tests.github.conftest import (
    PLAIN_TOKEN,
    PUBLIC_URL,
    REPO,
    AppWorld,
    Sleeps,
    make_settings,
    requests_to,
)

PR_PATH = r"/repos/acme/taxonomy/pulls/\d+"


def open_pr(sim: SimulatorAdmin, files: dict[str, Any], author: str = "contributor") -> Any:
    return sim.open_pr(REPO, author=author, files=files, title="Add knowledge")


def comments_of(sim: SimulatorAdmin, number: int) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = sim.state()["repos"][REPO]["issues"][str(number)]["comments"]
    return result


def rest_get(sim: SimulatorAdmin, path: str, token: str = PLAIN_TOKEN) -> Any:
    response = httpx.get(
        f"{sim.api_url}{path}",
        headers={"Authorization": f"token {token}", "Accept": "application/vnd.github+json"},
    )
    response.raise_for_status()
    return response.json()


# --- reading ---------------------------------------------------------------------------------


def test_pull_request_and_all_pages_of_changed_files(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    files: dict[str, Any] = {f"knowledge/topic_{i:03}/qna.yaml": f"n: {i}\n" for i in range(230)}
    pr = open_pr(token_sim, files)
    info = gh.get_pull_request(REPO, pr.number)
    assert (info.number, info.author, info.head_sha, info.state) == (
        pr.number,
        "contributor",
        pr.head_sha,
        "open",
    )
    assert info.base_ref == "main"
    assert not info.merged
    assert not info.draft

    changed = gh.list_changed_files(REPO, pr.number)
    assert sorted(c.path for c in changed) == sorted(files)
    assert {c.status for c in changed} == {"added"}
    pages = requests_to(token_sim, "GET", f"/pulls/{pr.number}/files")
    assert len(pages) == 3  # 100 + 100 + 30


def test_file_over_one_megabyte_is_read_whole(token_sim: SimulatorAdmin, gh: PyGithubPort) -> None:
    big = ("question: " + "x" * 70 + "\n") * 20_000  # 1.6 MB
    binary = bytes(range(256)) * 5000
    pr = open_pr(
        token_sim,
        {
            "knowledge/big/qna.yaml": big,
            "docs/blob.bin": {"base64": base64.b64encode(binary).decode()},
        },
    )
    assert gh.get_file_content(REPO, "knowledge/big/qna.yaml", pr.head_sha) == big.encode()
    assert gh.get_file_content(REPO, "docs/blob.bin", pr.head_sha) == binary
    assert gh.get_file_content(REPO, "knowledge/missing/qna.yaml", pr.head_sha) is None
    assert gh.get_file_content(REPO, "README.md", "0" * 40) is None  # unknown commit


def test_tree_shows_symlinks_and_submodules_and_never_follows_them(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    pr = open_pr(
        token_sim,
        {
            "knowledge/a/qna.yaml": "real: true\n",
            "knowledge/b/qna.yaml": {"symlink": "../../../etc/passwd"},
            "knowledge/c": {"submodule": "a" * 40},
            "scripts/run.sh": {"executable": "#!/bin/sh\n"},
        },
    )
    tree = {e.path: e for e in gh.list_tree(REPO, pr.head_sha)}
    assert tree["knowledge/a/qna.yaml"].mode is FileMode.file
    assert tree["knowledge/b/qna.yaml"].mode is FileMode.symlink
    assert tree["knowledge/c"].mode is FileMode.submodule
    assert tree["knowledge/c"].type == "commit"
    assert tree["scripts/run.sh"].mode is FileMode.executable
    assert tree["knowledge"].mode is FileMode.tree
    assert tree["knowledge"].size is None

    only = gh.list_tree(REPO, pr.head_sha, paths=["knowledge/b/qna.yaml", "scripts"])
    assert {e.path for e in only} == {"knowledge/b/qna.yaml", "scripts", "scripts/run.sh"}
    # A symlink's content is its target string; a submodule has no content.
    assert gh.get_file_content(REPO, "knowledge/b/qna.yaml", pr.head_sha) == b"../../../etc/passwd"
    assert gh.get_file_content(REPO, "knowledge/c", pr.head_sha) is None
    # One tree request served all of that: a commit's tree never changes.
    assert len(requests_to(token_sim, "GET", "/git/trees/")) == 1
    assert not requests_to(token_sim, "GET", "/contents/")


def test_truncated_recursive_tree_is_walked_level_by_level(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    """Past GitHub's recursive-tree limit the answer is cut short and says `truncated`."""
    pr = open_pr(
        token_sim,
        {"knowledge/a/qna.yaml": "a: 1\n", "knowledge/b/qna.yaml": {"symlink": "../a/qna.yaml"}},
    )
    commit = rest_get(token_sim, f"/repos/{REPO}/commits/{pr.head_sha}")
    root = commit["commit"]["tree"]["sha"]
    token_sim.fault(
        rf"/repos/acme/taxonomy/git/trees/{pr.head_sha}",
        200,
        method="GET",
        body={
            "sha": root,
            "url": f"{token_sim.api_url}/repos/{REPO}/git/trees/{root}",
            "tree": [],
            "truncated": True,
        },
    )
    tree = {e.path: e.mode for e in gh.list_tree(REPO, pr.head_sha)}
    assert tree["knowledge/a/qna.yaml"] is FileMode.file
    assert tree["knowledge/b/qna.yaml"] is FileMode.symlink
    assert tree["README.md"] is FileMode.file
    # The cut-short answer, then root, knowledge/, knowledge/a/ and knowledge/b/ one by one.
    assert len(requests_to(token_sim, "GET", "/git/trees/")) == 5
    assert gh.get_file_content(REPO, "knowledge/a/qna.yaml", pr.head_sha) == b"a: 1\n"


# --- labels, reactions, people ---------------------------------------------------------------


def test_labels_added_and_removed_absent_label_is_fine(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    gh.add_labels(REPO, pr.number, ["triage/needs-review", "size/S"])
    gh.remove_label(REPO, pr.number, "size/S")
    gh.remove_label(REPO, pr.number, "never-added")
    gh.add_labels(REPO, pr.number, [])
    assert gh.get_pull_request(REPO, pr.number).labels == ("triage/needs-review",)


def test_reaction_permission_and_team_membership(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    posted = token_sim.comment(REPO, pr.number, user="contributor", body="/retest")
    gh.add_reaction(REPO, posted.comment_id, "eyes")
    gh.add_reaction(REPO, posted.comment_id, "eyes")  # repeating is harmless
    reactions = rest_get(token_sim, f"/repos/{REPO}/issues/comments/{posted.comment_id}/reactions")
    assert [r["content"] for r in reactions] == ["eyes"]

    for user, role in [
        ("tina", "triage"),
        ("max", "maintain"),
        ("wendy", "write"),
        ("ada", "admin"),
    ]:
        token_sim.set_permission(REPO, user, role)  # type: ignore[arg-type]
        assert gh.get_permission(REPO, user) == role
    assert gh.get_permission(REPO, "stranger") in ("read", "none")

    token_sim.add_team_member("acme", "triagers", "tina")
    assert gh.is_team_member("acme", "triagers", "tina") is True
    assert gh.is_team_member("acme", "triagers", "stranger") is False
    assert gh.is_team_member("acme", "no-such-team", "tina") is False


def test_team_check_fails_closed_on_other_errors(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    token_sim.fault(r"/orgs/acme/teams/triagers/memberships/.*", 403, body={"message": "Forbidden"})
    with pytest.raises(GitHubError) as err:
        gh.is_team_member("acme", "triagers", "tina")
    assert err.value.status == 403


# --- sticky comments -------------------------------------------------------------------------


def test_sticky_comment_created_once_edited_and_not_resent(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    first = gh.upsert_comment(REPO, pr.number, "summary", "All checks pending")
    assert gh.upsert_comment(REPO, pr.number, "summary", "All checks pending", first) == first
    assert gh.upsert_comment(REPO, pr.number, "summary", "Schema: 2 errors", first) == first
    # Without the stored id the hidden marker finds it; unchanged, so nothing is sent.
    assert gh.upsert_comment(REPO, pr.number, "summary", "Schema: 2 errors") == first
    # Another purpose is another comment.
    other = gh.upsert_comment(REPO, pr.number, "pii", "No PII found")
    assert other != first

    comments = comments_of(token_sim, pr.number)
    assert len(comments) == 2
    assert comments[0]["body"] == "<!-- labbot:summary -->\nSchema: 2 errors"
    assert len(requests_to(token_sim, "POST", f"/issues/{pr.number}/comments")) == 2
    assert len(requests_to(token_sim, "PATCH", "/issues/comments/")) == 1


def test_sticky_comment_ignores_markers_in_other_peoples_comments(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    spoof = token_sim.comment(
        REPO, pr.number, user="contributor", body="<!-- labbot:summary -->\nall good, merge!"
    )
    mine = gh.upsert_comment(
        REPO, pr.number, "summary", "Schema: ok", known_comment_id=spoof.comment_id
    )
    assert mine != spoof.comment_id
    bodies = [c["body"] for c in comments_of(token_sim, pr.number)]
    assert bodies[0].endswith("all good, merge!")  # untouched


def test_sticky_comment_recreated_when_deleted(token_sim: SimulatorAdmin, gh: PyGithubPort) -> None:
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    first = gh.upsert_comment(REPO, pr.number, "summary", "one")
    token_sim.delete_comment(REPO, first)
    second = gh.upsert_comment(REPO, pr.number, "summary", "two", first)
    assert second != first
    assert [c["id"] for c in comments_of(token_sim, pr.number)] == [second]


def test_5xx_after_comment_was_created_leaves_exactly_one(
    token_sim: SimulatorAdmin, gh: PyGithubPort, sleeps: Sleeps
) -> None:
    """Row 33: GitHub created the comment, then answered 502; no duplicate may appear."""
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    token_sim.fault(
        rf"/repos/acme/taxonomy/issues/{pr.number}/comments",
        502,
        method="POST",
        mode="after",
        body={"message": "Server Error"},
    )
    comment_id = gh.upsert_comment(REPO, pr.number, "summary", "Schema: ok")
    comments = comments_of(token_sim, pr.number)
    assert [c["id"] for c in comments] == [comment_id]
    assert len(requests_to(token_sim, "POST", f"/issues/{pr.number}/comments")) == 1
    assert sleeps.calls  # it backed off before looking again


def test_5xx_before_comment_was_created_retries_the_create(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    token_sim.fault(rf"/repos/acme/taxonomy/issues/{pr.number}/comments", 503, method="POST")
    comment_id = gh.upsert_comment(REPO, pr.number, "summary", "Schema: ok")
    assert [c["id"] for c in comments_of(token_sim, pr.number)] == [comment_id]


def test_overlong_comment_is_truncated_not_refused(
    token_sim: SimulatorAdmin, gh: PyGithubPort
) -> None:
    """Row 34 (comments): over 65,536 characters is cut with a note, never a 422."""
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    gh.upsert_comment(REPO, pr.number, "summary", "```\n" + "e" * 80_000 + "\n```")
    [comment] = comments_of(token_sim, pr.number)
    assert len(comment["body"]) <= 65_536
    assert comment["body"].startswith("<!-- labbot:summary -->")
    assert comment["body"].endswith(f"truncated — see details: {PUBLIC_URL}")
    # Unchanged on the next run, so not re-sent.
    gh.upsert_comment(REPO, pr.number, "summary", "```\n" + "e" * 80_000 + "\n```")
    assert not requests_to(token_sim, "PATCH", "/issues/comments/")


# --- check runs (App mode: only Apps may write check runs) -------------------------------------


def many_annotations(n: int) -> list[Annotation]:
    return [
        Annotation(
            path="knowledge/a/qna.yaml",
            start_line=i + 1,
            end_line=i + 1 if i % 2 else i + 3,
            level="warning",
            message=f"issue {i}",
            title="schema",
            start_column=2,
            end_column=5,
        )
        for i in range(n)
    ]


def test_120_annotations_go_in_batches_of_50(app_world: AppWorld, app_gh: PyGithubPort) -> None:
    sim = app_world.sim
    pr = open_pr(sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    output = CheckRunOutput("Schema", "3 problems", annotations=many_annotations(120))
    run_id = app_gh.create_check_run(REPO, "ilab/schema", pr.head_sha, output=output)
    [run] = sim.state()["check_runs"]
    assert (run["id"], run["annotations"], run["status"]) == (run_id, 120, "in_progress")
    creates = requests_to(sim, "POST", "/check-runs")
    patches = requests_to(sim, "PATCH", f"/check-runs/{run_id}")
    assert len(creates[0]["body"]["output"]["annotations"]) == 50
    assert [len(p["body"]["output"]["annotations"]) for p in patches] == [50, 20]

    # Updating with another 120 and the verdict: annotations first, the verdict last.
    app_gh.update_check_run(REPO, run_id, status="completed", conclusion="failure", output=output)
    [run] = sim.state()["check_runs"]
    assert (run["annotations"], run["status"], run["conclusion"]) == (240, "completed", "failure")
    patches = requests_to(sim, "PATCH", f"/check-runs/{run_id}")[2:]
    assert [len(p["body"]["output"]["annotations"]) for p in patches] == [50, 50, 20]
    assert ["conclusion" in p["body"] for p in patches] == [False, False, True]


def test_overlong_check_text_is_truncated_not_refused(
    app_world: AppWorld, app_gh: PyGithubPort
) -> None:
    """Row 34 (check runs): summary and text over 65,535 characters are cut with a note."""
    sim = app_world.sim
    pr = open_pr(sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    output = CheckRunOutput("Schema", "s" * 70_000, text="t" * 100_000)
    run_id = app_gh.create_check_run(
        REPO,
        "ilab/schema",
        pr.head_sha,
        status="completed",
        conclusion="neutral",
        details_url=f"{PUBLIC_URL}/prs/1",
        output=output,
    )
    [create] = requests_to(sim, "POST", "/check-runs")
    sent = create["body"]["output"]
    for key in ("summary", "text"):
        assert len(sent[key]) <= 65_535
        assert sent[key].endswith(f"truncated — see details: {PUBLIC_URL}/prs/1")
    app_gh.update_check_run(REPO, run_id, output=CheckRunOutput("Schema", "s" * 70_000))
    assert sim.state()["check_runs"][0]["conclusion"] == "neutral"


def test_check_run_5xx_after_create_finds_the_run_by_external_id(
    app_world: AppWorld, app_gh: PyGithubPort
) -> None:
    sim = app_world.sim
    pr = open_pr(sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    sim.fault(r"/repos/acme/taxonomy/check-runs", 502, method="POST", mode="after")
    output = CheckRunOutput("Schema", "ok", annotations=many_annotations(60))
    run_id = app_gh.create_check_run(
        REPO, "ilab/schema", pr.head_sha, external_id="job-17", output=output
    )
    runs = sim.state()["check_runs"]
    assert [(r["id"], r["annotations"]) for r in runs] == [(run_id, 60)]


# --- rate limits and faults --------------------------------------------------------------------


def test_primary_rate_limit_waits_until_reset_then_retries(
    token_sim: SimulatorAdmin, gh: PyGithubPort, sleeps: Sleeps
) -> None:
    """Row 30: 403 and 429 with x-ratelimit-remaining 0 sleep until x-ratelimit-reset."""
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    for status in (403, 429):
        reset = int(time.time()) + 30
        token_sim.fault(
            PR_PATH,
            status,
            method="GET",
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            body={"message": "API rate limit exceeded for installation ID 1."},
        )
        assert gh.get_pull_request(REPO, pr.number).number == pr.number
        waited = sleeps.calls.pop()
        assert 25 <= waited <= 32  # until the reset, plus a second of slack


def test_primary_rate_limit_past_the_cap_fails_at_once(
    token_sim: SimulatorAdmin, gh: PyGithubPort, sleeps: Sleeps
) -> None:
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    token_sim.fault(
        PR_PATH,
        403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 3000)},
        body={"message": "API rate limit exceeded"},
    )
    with pytest.raises(GitHubError) as err:
        gh.get_pull_request(REPO, pr.number)
    assert err.value.status == 403
    assert "longer than the 120s allowed" in str(err.value)
    assert sleeps.calls == []


def test_retry_after_is_honoured(
    token_sim: SimulatorAdmin, gh: PyGithubPort, sleeps: Sleeps
) -> None:
    """Row 31, with retry-after: wait exactly that long."""
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    token_sim.fault(
        PR_PATH,
        429,
        headers={"retry-after": "17"},
        body={"message": "You have exceeded a secondary rate limit."},
    )
    gh.add_labels(REPO, pr.number, ["x"])  # unaffected: another path
    assert gh.get_pull_request(REPO, pr.number).labels == ("x",)
    assert sleeps.calls == [17.0]


def test_secondary_limit_without_retry_after_backs_off_then_gives_up(
    token_sim: SimulatorAdmin, gh: PyGithubPort, sleeps: Sleeps
) -> None:
    """Row 31, without retry-after: at least 60 s, then doubling; at most N tries."""
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    secondary = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}
    token_sim.fault(PR_PATH, 403, body=secondary, times=2)
    gh.get_pull_request(REPO, pr.number)
    assert sleeps.calls == [60.0, 120.0]

    sleeps.calls.clear()
    token_sim.fault(PR_PATH, 403, body=secondary, times=10)
    with pytest.raises(GitHubError) as err:
        gh.get_pull_request(REPO, pr.number)
    assert err.value.status == 403
    assert sleeps.calls == [60.0, 120.0]  # the next wait (240 s) is past the 120 s cap
    token_sim.clear_faults()


def test_secondary_limit_gives_up_after_max_tries(
    token_sim: SimulatorAdmin, sleeps: Sleeps
) -> None:
    policy = RetryPolicy(
        max_wait=1000, secondary_wait=0.01, max_rate_limit_attempts=3, sleep=sleeps
    )
    gh = github_for_token(make_settings(token_sim), policy=policy)
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    token_sim.fault(PR_PATH, 429, times=10, body={"message": "slow down"})
    with pytest.raises(GitHubError) as err:
        gh.get_pull_request(REPO, pr.number)
    assert err.value.status == 429
    assert "after 3 tries" in str(err.value)
    assert sleeps.calls == [0.01, 0.02]
    assert len(requests_to(token_sim, "GET", f"/pulls/{pr.number}")) == 3
    token_sim.clear_faults()


def test_permission_403_is_surfaced_without_retry(
    token_sim: SimulatorAdmin, gh: PyGithubPort, sleeps: Sleeps
) -> None:
    """Row 32."""
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    token_sim.fault(
        rf"/repos/acme/taxonomy/issues/{pr.number}/labels",
        403,
        method="POST",
        headers={"x-ratelimit-remaining": "4990", "x-ratelimit-reset": str(int(time.time()) + 60)},
        body={"message": "Resource not accessible by integration"},
    )
    with pytest.raises(GitHubError) as err:
        gh.add_labels(REPO, pr.number, ["triage/needs-review"])
    assert err.value.status == 403
    assert "Resource not accessible by integration" in str(err.value)
    assert len(requests_to(token_sim, "POST", f"/issues/{pr.number}/labels")) == 1
    assert sleeps.calls == []


def test_server_errors_on_reads_are_retried_with_backoff(
    token_sim: SimulatorAdmin, gh: PyGithubPort, sleeps: Sleeps
) -> None:
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    token_sim.fault(PR_PATH, 502, times=2)
    assert gh.get_pull_request(REPO, pr.number).number == pr.number
    assert sleeps.calls == [0.5, 1.0]
    token_sim.fault(PR_PATH, 500, times=5)
    with pytest.raises(GitHubError) as err:
        gh.get_pull_request(REPO, pr.number)
    assert err.value.status == 500
    token_sim.clear_faults()


def test_no_pygithub_exception_escapes(token_sim: SimulatorAdmin, gh: PyGithubPort) -> None:
    with pytest.raises(GitHubError) as err:
        gh.get_pull_request(REPO, 999)
    assert err.value.status == 404
    with pytest.raises(GitHubError) as err:
        gh.list_changed_files("acme/nope", 1)
    assert err.value.status == 404


def test_unreachable_github_is_a_github_error(sim: SimulatorAdmin, sleeps: Sleeps) -> None:
    policy = RetryPolicy(server_error_backoff=0.01, sleep=sleeps)
    settings = make_settings(sim, github_api_url="http://127.0.0.1:9", github_timeout_seconds=2)
    with pytest.raises(GitHubError) as err:
        github_for_token(settings, policy=policy).get_pull_request(REPO, 1)
    assert err.value.status == 0
    assert PLAIN_TOKEN not in str(err.value)


# --- App authentication ----------------------------------------------------------------------


def test_app_installation_token_minted_once_and_cached(
    app_world: AppWorld, app_gh: PyGithubPort
) -> None:
    pr = open_pr(app_world.sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    app_gh.get_pull_request(REPO, pr.number)
    # Another client for the same installation, as the next Celery task would build.
    other = github_for_installation(app_world.settings, app_world.installation_id)
    other.list_changed_files(REPO, pr.number)
    assert app_context(app_world.settings).tokens.mints == 1
    assert len(requests_to(app_world.sim, "POST", "/access_tokens")) == 1


def test_expired_token_is_reminted_once_then_the_request_succeeds(
    app_world: AppWorld, app_gh: PyGithubPort
) -> None:
    """Row 35: the token expires mid-job; labbot re-mints once and posts."""
    sim = app_world.sim
    pr = open_pr(sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    app_gh.get_pull_request(REPO, pr.number)
    assert sim.expire_tokens() >= 1
    comment_id = app_gh.upsert_comment(REPO, pr.number, "summary", "Schema: ok")
    assert [c["id"] for c in comments_of(sim, pr.number)] == [comment_id]
    assert comments_of(sim, pr.number)[0]["user"] == "labbot[bot]"
    assert app_context(app_world.settings).tokens.mints == 2


def test_token_refused_twice_is_surfaced(app_world: AppWorld, app_gh: PyGithubPort) -> None:
    sim = app_world.sim
    pr = open_pr(sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    sim.fault(PR_PATH, 401, times=2, body={"message": "Bad credentials"})
    with pytest.raises(GitHubError) as err:
        app_gh.get_pull_request(REPO, pr.number)
    assert err.value.status == 401
    assert app_context(app_world.settings).tokens.mints == 2  # first use, then one re-mint


def test_suspended_installation_fails_without_a_retry_storm(
    app_world: AppWorld, app_gh: PyGithubPort, sleeps: Sleeps
) -> None:
    """Row 29: the token request is refused; that is final."""
    sim = app_world.sim
    sim.fault(
        r"/app/installations/\d+/access_tokens",
        403,
        times=5,
        body={"message": "This installation has been suspended"},
    )
    with pytest.raises(GitHubError) as err:
        app_gh.get_pull_request(REPO, 1)
    assert err.value.status == 403
    assert "suspended" in str(err.value)
    assert len(requests_to(sim, "POST", "/access_tokens")) == 1
    assert sleeps.calls == []
    sim.clear_faults()


def test_long_tokens_are_accepted(token_sim: SimulatorAdmin, gh: PyGithubPort) -> None:
    """Row 36: the plain token here is 101 characters; nothing checks a token's length."""
    assert len(PLAIN_TOKEN) > 40
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    assert gh.get_pull_request(REPO, pr.number).number == pr.number


def test_app_tokens_never_reach_the_logs(
    app_world: AppWorld, app_gh: PyGithubPort, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    pr = open_pr(app_world.sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    app_gh.get_pull_request(REPO, pr.number)
    app_world.sim.expire_tokens()
    app_gh.get_pull_request(REPO, pr.number)
    text = caplog.text
    assert "ghs_" not in text
    assert "BEGIN RSA" not in text
    assert "eyJ" not in text


# --- write spacing ---------------------------------------------------------------------------


def test_writes_are_spaced_by_the_configured_interval(token_sim: SimulatorAdmin) -> None:
    """Row 37. The simulator logs whole seconds, so a 1 s interval is what its log can prove:
    writes at least 1 s apart always land in different seconds."""
    settings = make_settings(token_sim, github_write_interval_seconds=1.0, github_write_burst=1)
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    gh = github_for_token(settings)
    start = time.monotonic()
    gh.add_labels(REPO, pr.number, ["a"])
    gh.get_pull_request(REPO, pr.number)  # reads are not held back
    gh.add_labels(REPO, pr.number, ["b"])
    gh.remove_label(REPO, pr.number, "a")
    assert time.monotonic() - start >= 2.0
    writes = [r for r in token_sim.requests() if r["method"] in ("POST", "PATCH", "PUT", "DELETE")]
    stamps = [datetime.fromisoformat(r["at"].replace("Z", "+00:00")) for r in writes]
    assert len(stamps) == 3
    assert all((b - a).total_seconds() >= 1 for a, b in zip(stamps, stamps[1:], strict=False))


def test_a_burst_of_writes_goes_at_once_then_one_per_interval(token_sim: SimulatorAdmin) -> None:
    """Row 37 with a burst allowance: three writes go out without waiting, the rest are held to
    the interval, so N writes take at least (N - burst) intervals."""
    settings = make_settings(token_sim, github_write_interval_seconds=0.4, github_write_burst=3)
    pr = open_pr(token_sim, {"knowledge/a/qna.yaml": "a: 1\n"})
    gh = github_for_token(settings)
    start = time.monotonic()
    for label in ("a", "b", "c", "d", "e", "f"):
        gh.add_labels(REPO, pr.number, [label])
    assert time.monotonic() - start >= (6 - 3) * 0.4 * 0.95


def test_factory_picks_the_mode_from_settings(sim: SimulatorAdmin) -> None:
    token_settings = make_settings(sim)
    assert isinstance(github_port(token_settings), PyGithubPort)
    # Token mode: an installation id from a delivery is irrelevant.
    assert isinstance(github_for_installation(token_settings, 123), PyGithubPort)
    with pytest.raises(ConfigError):
        github_port(make_settings(sim, app=True))  # App mode needs the installation id
    with pytest.raises(ConfigError):
        github_for_token(make_settings(sim, github_token=None))
