"""PyGithub, as labbot uses it, against the simulator: every object populates from real HTTP."""

from __future__ import annotations

import base64

import pytest
from github import Github, GithubException, UnknownObjectException

from app.simulator.admin_client import SimulatorAdmin
from tests.simulator.conftest import ORG, REPO, SKILL

ONE_MB = 1024 * 1024


def annotation(line: int) -> dict[str, object]:
    return {
        "path": SKILL,
        "start_line": line,
        "end_line": line,
        "annotation_level": "failure",
        "message": f"problem {line}",
    }


def test_pull_request_and_all_its_files_across_pages(sim: SimulatorAdmin, gh: Github) -> None:
    files = {f"knowledge/topic_{i:03d}/qna.yaml": f"n: {i}\n" for i in range(250)}
    files[SKILL] = None  # a deletion
    opened = sim.open_pr(
        REPO, author="alice", title="Add topics", body="Please review", files=files
    )

    pr = gh.get_repo(REPO).get_pull(opened.number)
    assert (pr.number, pr.title, pr.body, pr.user.login) == (
        opened.number,
        "Add topics",
        "Please review",
        "alice",
    )
    assert (pr.state, pr.draft, pr.merged) == ("open", False, False)
    assert pr.head.sha == opened.head_sha
    assert pr.base.ref == "main"
    assert pr.base.sha == opened.base_sha
    assert pr.head.repo.full_name == REPO
    assert pr.changed_files == 251
    assert pr.raw_data["author_association"] == "FIRST_TIME_CONTRIBUTOR"

    listed = list(pr.get_files())  # 30 per page: nine requests following the Link header
    assert len(listed) == 251
    assert [f.filename for f in listed] == sorted(files)
    by_name = {f.filename: f for f in listed}
    assert by_name[SKILL].status == "removed"
    assert by_name[SKILL].deletions == 4
    assert by_name["knowledge/topic_000/qna.yaml"].status == "added"
    assert by_name["knowledge/topic_000/qna.yaml"].patch == "@@ -0,0 +1 @@\n+n: 0"
    assert len(sim.requests(operation="pulls/list-files")) == 9
    assert pr.get_files().totalCount == 251


def test_files_listing_stops_at_3000_like_github(sim: SimulatorAdmin, api: object) -> None:
    import httpx

    assert isinstance(api, httpx.Client)
    files = {f"knowledge/many/f{i:04d}.md": "x\n" for i in range(3005)}
    opened = sim.open_pr(REPO, author="alice", files=files)
    url = f"/repos/{REPO}/pulls/{opened.number}/files"
    assert api.get(f"/repos/{REPO}/pulls/{opened.number}").json()["changed_files"] == 3005
    last = api.get(url, params={"per_page": 100, "page": 30})
    assert len(last.json()) == 100
    assert 'rel="next"' not in last.headers["link"]
    assert 'rel="prev"' in last.headers["link"]
    assert 'rel="first"' in last.headers["link"]
    assert api.get(url, params={"per_page": 100, "page": 31}).json() == []
    first = api.get(url, params={"per_page": 100})
    page = f"{sim.api_url}{url}?per_page=100&page="
    assert first.headers["link"] == f'<{page}2>; rel="next", <{page}30>; rel="last"'


def test_contents_blobs_and_tree_modes(sim: SimulatorAdmin, gh: Github) -> None:
    big = ("0123456789abcdef" * (ONE_MB // 16 + 100)).encode()
    png = bytes(range(256))
    opened = sim.open_pr(
        REPO,
        author="alice",
        files={
            "big.txt": big.decode(),
            "image.png": {"base64": base64.b64encode(png).decode()},
            "docs/readme-link.md": {"symlink": "../README.md"},
            "docs/escape": {"symlink": "../../../etc/passwd"},
            "vendor/lib": {"submodule": "c" * 40},
            "bin/tool.sh": {"executable": "#!/bin/sh\necho hi\n"},
        },
    )
    head = opened.head_sha
    repo = gh.get_repo(REPO)

    assert repo.get_contents("README.md", ref=head).decoded_content == b"# taxonomy\n"  # type: ignore[union-attr]
    assert repo.get_contents("image.png", ref=head).decoded_content == png  # type: ignore[union-attr]

    large = repo.get_contents("big.txt", ref=head)
    assert not isinstance(large, list)
    assert (large.encoding, large.content, large.size) == ("none", "", len(big))
    raw_headers = {"Accept": "application/vnd.github.raw+json"}
    _, raw = gh.requester.requestJsonAndCheck(
        "GET", f"/repos/{REPO}/contents/big.txt", parameters={"ref": head}, headers=raw_headers
    )
    assert raw["data"].encode() == big  # PyGithub wraps a non-JSON body as {"data": ...}
    blob = repo.get_git_blob(large.sha)
    assert blob.size == len(big)
    assert base64.b64decode(blob.content) == big

    # A symlink to a file in the repository is answered with that file; any other with the link.
    followed = repo.get_contents("docs/readme-link.md", ref=head)
    assert not isinstance(followed, list)
    assert (followed.type, followed.path) == (
        "file",
        "README.md",
    )
    link = repo.get_contents("docs/escape", ref=head)
    assert not isinstance(link, list)
    assert (link.type, link.raw_data["target"]) == ("symlink", "../../../etc/passwd")
    submodule = repo.get_contents("vendor/lib", ref=head)
    assert not isinstance(submodule, list)
    assert (submodule.type, submodule.sha) == ("submodule", "c" * 40)
    assert submodule.raw_data["submodule_git_url"].endswith(".git")
    listing = repo.get_contents("vendor", ref=head)
    assert isinstance(listing, list)
    assert [(c.name, c.type) for c in listing] == [("lib", "file")]

    tree = repo.get_git_tree(head, recursive=True)
    modes = {e.path: (e.mode, e.type) for e in tree.tree}
    assert modes["docs/readme-link.md"] == ("120000", "blob")
    assert modes["vendor/lib"] == ("160000", "commit")
    assert modes["bin/tool.sh"] == ("100755", "blob")
    assert modes["docs"] == ("040000", "tree")
    assert modes["README.md"] == ("100644", "blob")
    top = repo.get_git_tree(head)
    assert "docs/readme-link.md" not in {e.path for e in top.tree}
    assert "docs" in {e.path for e in top.tree}
    assert repo.get_git_tree("main", recursive=True).sha == repo.get_commit("main").commit.tree.sha
    with pytest.raises(UnknownObjectException):
        repo.get_contents("missing.txt", ref=head)


def test_labels_comments_and_reactions(sim: SimulatorAdmin, gh: Github) -> None:
    number = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"}).number
    repo = gh.get_repo(REPO)
    pr = repo.get_pull(number)
    url = f"/repos/{REPO}/issues/{number}/labels"
    gh.requester.requestJsonAndCheck("POST", url, input={"labels": ["skill", "triage-needed"]})
    gh.requester.requestJsonAndCheck("POST", url, input={"labels": ["skill"]})  # already there
    assert [lb.name for lb in pr.get_labels()] == ["skill", "triage-needed"]
    pr.remove_from_labels("skill")
    with pytest.raises(GithubException) as absent:
        pr.remove_from_labels("skill")
    assert (absent.value.status, absent.value.data["message"]) == (404, "Label does not exist")
    assert [lb.name for lb in repo.get_pull(number).labels] == ["triage-needed"]
    assert {lb.name for lb in repo.get_labels()} == {"skill", "triage-needed"}

    issue = repo.get_issue(number)
    assert issue.pull_request is not None
    first = issue.create_comment("hello")
    first.edit("hello again")
    for i in range(34):
        issue.create_comment(f"comment {i}")
    comments = list(issue.get_comments())
    assert len(comments) == 35
    assert comments[0].body == "hello again"
    assert comments[0].user.login == "labbot-dev"
    assert len(sim.requests(operation="issues/list-comments")) == 2  # 30 + 5

    assert first.create_reaction("eyes").content == "eyes"
    again = first.create_reaction("eyes")  # GitHub answers 200 with the existing reaction
    first.create_reaction("rocket")
    assert [r.content for r in first.get_reactions()] == ["eyes", "rocket"]
    assert again.id == next(iter(first.get_reactions())).id
    assert issue.get_comment(first.id).raw_data["reactions"]["total_count"] == 2

    first.delete()
    with pytest.raises(UnknownObjectException):
        issue.get_comment(first.id)
    assert repo.get_issue(number).comments == 34


def test_check_run_annotations_accumulate_across_updates(sim: SimulatorAdmin, gh: Github) -> None:
    opened = sim.open_pr(REPO, author="alice", files={SKILL: "version: 3\n"})
    repo = gh.get_repo(REPO)
    run = repo.create_check_run(
        name="ilab/schema",
        head_sha=opened.head_sha,
        status="in_progress",
        external_id="job-1",
        output={
            "title": "Schema",
            "summary": "checking",
            "annotations": [annotation(i) for i in range(1, 51)],
        },
    )
    run.edit(
        output={
            "title": "Schema",
            "summary": "still checking",
            "annotations": [annotation(i) for i in range(51, 101)],
        }
    )
    run.edit(
        conclusion="failure",
        output={"title": "Schema", "summary": "100 problems", "text": "details"},
    )

    again = repo.get_check_run(run.id)
    assert (again.status, again.conclusion, again.external_id) == ("completed", "failure", "job-1")
    assert (again.output.summary, again.output.text, again.output.annotations_count) == (
        "100 problems",
        "details",
        100,
    )
    assert again.completed_at is not None
    assert [pr.number for pr in again.pull_requests] == [opened.number]
    annotations = list(again.get_annotations())
    assert [a.start_line for a in annotations] == list(range(1, 101))
    assert annotations[0].annotation_level == "failure"
    assert annotations[0].path == SKILL

    runs = repo.get_commit(opened.head_sha).get_check_runs(check_name="ilab/schema")
    assert runs.totalCount == 1
    assert [r.id for r in runs] == [run.id]


def test_collaborator_roles_and_team_membership(sim: SimulatorAdmin, gh: Github) -> None:
    sim.set_permission(REPO, "tia", "triage")
    sim.set_permission(REPO, "max", "maintain")
    sim.set_permission(REPO, "wes", "write")
    repo = gh.get_repo(REPO)
    seen = {
        u: (repo.get_collaborator_permission(u), repo.get_collaborator_role_name(u))
        for u in ("tia", "max", "wes")
    }
    assert seen == {
        "tia": ("read", "triage"),
        "max": ("write", "maintain"),
        "wes": ("write", "write"),
    }
    assert repo.get_collaborator_permission("stranger") == "read"  # a public repository

    sim.add_team_member(ORG, "triagers", "tia")
    team = gh.get_organization(ORG).get_team_by_slug("triagers")
    membership = team.get_team_membership("tia")
    assert (membership.state, membership.role) == ("active", "member")
    with pytest.raises(UnknownObjectException):
        team.get_team_membership("stranger")
    sim.remove_team_member(ORG, "triagers", "tia")
    with pytest.raises(UnknownObjectException):
        team.get_team_membership("tia")


def test_whoami_and_rate_limit(sim: SimulatorAdmin, gh: Github) -> None:
    assert gh.get_user().login == "labbot-dev"
    gh.get_repo(REPO).get_pull  # noqa: B018 (lazy: no request)
    rate = gh.get_rate_limit()
    assert rate.resources.core.limit == 5000
    assert gh.get_repo(REPO).full_name == REPO
    assert gh.rate_limiting[1] == 5000
    assert gh.rate_limiting[0] < 5000


@pytest.mark.allow_invalid_github_requests
def test_pygithub_add_to_labels_sends_what_the_schema_refuses(
    sim: SimulatorAdmin, gh: Github
) -> None:
    number = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"}).number
    with pytest.raises(GithubException) as refused:
        gh.get_repo(REPO).get_pull(number).add_to_labels("skill")
    assert refused.value.status == 422
    assert "is not of type 'object'" in refused.value.data["message"]
