"""Triage end to end: a real contributor's files opened as a PR in the simulator yield the
check run with annotations on the same lines `labbot triage` reports locally, one sticky
comment and the labels; a push re-runs it on the new head; a re-request runs it again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github

from app.simulator.admin_client import SimulatorAdmin
from bots.commands import COMMANDS
from tests.conftest import READER_TOKEN, REPO_ROOT, SHARED, Labbot, wait_until

pytestmark = pytest.mark.e2e

REPO = "instructlab-demo/taxonomy"
PR_1412 = SHARED / "data" / "taxonomy" / "prs" / "1412"
MARKER = "<!-- labbot:triage -->"


def files_of(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


VALID_ATTRIBUTION = (
    "Title of work: Inclusive language examples\n"
    "Link to work: https://example.org/inclusive-language\n"
    "Revision: 1\n"
    "License of the work: CC-BY-4.0\n"
    "Creator names: The contributor\n"
)


def fixed_files() -> dict[str, str]:
    """PR 1412's files with its findings fixed: trailing spaces gone, attribution complete."""
    files = files_of(PR_1412)
    qna_path = next(p for p in files if p.endswith("qna.yaml"))
    attribution_path = next(p for p in files if p.endswith("attribution.txt"))
    files[qna_path] = "\n".join(line.rstrip() for line in files[qna_path].splitlines()) + "\n"
    files[attribution_path] = VALID_ATTRIBUTION
    return files


def local_findings(root: Path) -> set[tuple[str, int, str]]:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "triage", "--root", str(root), "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    return {
        (entry["path"], finding["line"], finding["rule"])
        for entry in report["files"]
        for finding in entry["findings"]
    }


def completed_run(gh: Github, sha: str, after: int = 0) -> Any:
    def find() -> Any:
        runs = [
            run
            for run in gh.get_repo(REPO).get_commit(sha).get_check_runs(check_name="labbot/triage")
            if run.status == "completed" and run.id > after
        ]
        return runs[0] if runs else None

    return wait_until(find, 60, interval=0.2)


def labels(gh: Github, number: int) -> set[str]:
    return {label.name for label in gh.get_repo(REPO).get_pull(number).labels}


def triage_comments(gh: Github, number: int) -> list[Any]:
    issue = gh.get_repo(REPO).get_issue(number)
    return [c for c in issue.get_comments() if MARKER in c.body]


def test_real_contributor_pr_gets_check_run_comment_and_labels(
    labbot: Labbot, sim: SimulatorAdmin
) -> None:
    labbot.start_api()
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
    opened = sim.open_pr(REPO, author="contributor", title="racial bias", files=files_of(PR_1412))
    assert opened.status == 202

    run = completed_run(gh, opened.head_sha)
    assert run.conclusion == "failure"
    annotations = {(a.path, a.start_line, a.title) for a in run.get_annotations()}
    assert annotations == local_findings(PR_1412)
    assert any(title == "lint/trailing-spaces" for _, _, title in annotations)
    assert run.output.summary

    comments = wait_until(lambda: triage_comments(gh, opened.number), 30)
    assert len(comments) == 1
    assert "labbot triage" in comments[0].body
    assert comments[0].user.login == "labbot[bot]"
    # The welcome section under the summary comes from the command registry.
    assert all(command.usage in comments[0].body for command in COMMANDS.values())
    # The contributor is not trusted here yet: triage runs, GPU jobs wait for an ok-to-test.
    wanted = {"skill", "triage-requested-changes", "needs-ok-to-test"}
    wait_until(lambda: labels(gh, opened.number) == wanted, 30)

    # The contributor fixes the files: triage runs on the new head only, the comment is edited
    # in place, and the state label flips.
    pushed = sim.push(REPO, opened.number, fixed_files())
    new_run = completed_run(gh, pushed.head_sha)
    assert new_run.conclusion == "success", [
        (a.path, a.start_line, a.title, a.message) for a in new_run.get_annotations()
    ]
    wanted = {"skill", "triage-needed", "needs-ok-to-test"}
    wait_until(lambda: labels(gh, opened.number) == wanted, 30)
    comments = triage_comments(gh, opened.number)
    assert len(comments) == 1
    assert pushed.head_sha[:12] in comments[0].body

    # A re-requested check runs triage again for the same head.
    sim.rerequest_check_run(new_run.id, user="maintainer")
    again = completed_run(gh, pushed.head_sha, after=new_run.id)
    assert again.conclusion == "success"
    assert len(triage_comments(gh, opened.number)) == 1


def test_symlinks_submodules_and_stray_files_are_refused_without_being_followed(
    labbot: Labbot, sim: SimulatorAdmin
) -> None:
    labbot.start_api()
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
    opened = sim.open_pr(
        REPO,
        author="contributor",
        title="odd files",
        files={
            "compositional_skills/writing/odd/qna.yaml": {"symlink": "../../../.cache/secret"},
            "compositional_skills/writing/vendored": {"submodule": "a" * 40},
            "train_data.jsonl": '{"messages": []}\n',
            "compositional_skills/writing/misnamed/qna.yml": "version: 3\n",
        },
    )
    run = completed_run(gh, opened.head_sha)
    assert run.conclusion == "failure"
    rules = {(a.path, a.title) for a in run.get_annotations()}
    assert ("compositional_skills/writing/odd/qna.yaml", "layout/symlink") in rules
    assert ("compositional_skills/writing/vendored", "layout/submodule") in rules
    assert any(path == "train_data.jsonl" for path, _ in rules)
    assert any(path.endswith("qna.yml") for path, _ in rules)
    # The symlink was never dereferenced: labbot asked for no content at its target.
    targets = [r["path"] for r in sim.requests() if ".cache" in r["path"]]
    assert targets == []


def test_a_job_for_an_old_head_posts_nothing(labbot: Labbot, sim: SimulatorAdmin) -> None:
    """Results for a SHA that is no longer the PR's head are never posted as current."""
    from sqlalchemy import select

    from app.db.models import Job, JobKind, JobState, PullRequest, Repository
    from app.db.session import session_scope
    from app.jobs import submit_job
    from bots.triage.runner import triage_stage
    from workers.harness import run_job

    labbot.start_api()
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
    opened = sim.open_pr(REPO, author="contributor", title="t", files=files_of(PR_1412))
    completed_run(gh, opened.head_sha)
    pushed = sim.push(REPO, opened.number, {"compositional_skills/extra/qna.yaml": "version: 3\n"})
    completed_run(gh, pushed.head_sha)

    with session_scope() as session:
        pull = session.scalars(select(PullRequest)).one()
        repository = session.scalars(select(Repository)).one()
        stale = submit_job(
            session,
            JobKind.triage,
            repository_id=repository.id,
            pull_request_id=pull.id,
            head_sha=opened.head_sha,
        ).job.id
    runs_before = gh.get_repo(REPO).get_commit(opened.head_sha).get_check_runs().totalCount
    comment_before = triage_comments(gh, opened.number)[0].body

    run_job(stale, lambda kind: triage_stage)

    with session_scope() as session:
        assert session.get(Job, stale).state is JobState.cancelled  # type: ignore[union-attr]
    assert gh.get_repo(REPO).get_commit(opened.head_sha).get_check_runs().totalCount == runs_before
    assert triage_comments(gh, opened.number)[0].body == comment_before
    assert pushed.head_sha[:12] in comment_before


def test_repository_config_is_read_from_the_base_branch(
    labbot: Labbot, sim: SimulatorAdmin
) -> None:
    """`.github/labbot.yml` on the default branch renames labels and raises the minimum; a PR
    cannot loosen the rules it is judged by by editing the file itself."""
    labbot.start_api()
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    config = (
        "labels:\n  triage_needed: needs-review\n  triage_requested_changes: changes-please\n"
        "triage:\n  min_examples:\n    skill: 6\n"
    )
    sim.create_repo(REPO, {"README.md": "# taxonomy\n", ".github/labbot.yml": config}, org=True)
    files = fixed_files()
    # The PR tries to lower the minimum back; the base branch's file is the one that counts.
    files[".github/labbot.yml"] = "triage:\n  min_examples:\n    skill: 1\n"
    opened = sim.open_pr(REPO, author="contributor", title="config", files=files)

    run = completed_run(gh, opened.head_sha)
    titles = {a.title for a in run.get_annotations()}
    assert run.conclusion == "failure"
    assert any(title.startswith("examples/") for title in titles), titles
    wanted = {"skill", "changes-please", "needs-ok-to-test"}
    wait_until(lambda: labels(gh, opened.number) == wanted, 30)
