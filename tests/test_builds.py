"""Builds: what a build contains, when one may start, what it records when its job ends, the
schedule, the CLI, and the build pages and API (on both databases)."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app.builds import (
    BuildError,
    fail_unfinished_builds,
    finish_build,
    mark_stage,
    schedule,
    start_build,
    start_scheduled_builds,
)
from app.cli import main as cli
from app.config import Settings, get_settings
from app.db.models import (
    Build,
    BuildPullRequest,
    BuildState,
    Job,
    JobKind,
    JobState,
    PullRequest,
    Repository,
)
from app.db.session import session_scope
from app.jobs import forget_worker, record_worker
from tests.conftest import Backend
from workers.celery_app import celery_app, configure_celery

REPO = "org/taxonomy"
MERGED_AT = datetime(2026, 11, 1, tzinfo=UTC)


def add_repository(repo_id: int = 70, name: str = REPO) -> None:
    with session_scope() as session:
        session.add(Repository(id=repo_id, full_name=name))


def add_pull(number: int, *, merged: bool = True, repo_id: int = 70, title: str = "") -> int:
    with session_scope() as session:
        pull = PullRequest(
            repository_id=repo_id,
            number=number,
            title=title or f"leaf {number}",
            author="alice",
            head_sha=f"{number:040x}",
            state="closed" if merged else "open",
            merged=merged,
            merged_at=MERGED_AT + timedelta(hours=number) if merged else None,
            kind="skill",
        )
        session.add(pull)
        session.flush()
        return pull.id


def build_pulls(build_id: int) -> list[int]:
    with session_scope() as session:
        return sorted(
            session.scalars(
                select(PullRequest.number)
                .join(BuildPullRequest, BuildPullRequest.pull_request_id == PullRequest.id)
                .where(BuildPullRequest.build_id == build_id)
            )
        )


def end_job(job_id: int, state: JobState, result: dict[str, Any] | None = None) -> None:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.state, job.result, job.finished_at = state, result, datetime.now(UTC)
        job.error = None if state is JobState.succeeded else "training stopped with exit code 1"
    finish_build(job_id)


@pytest.fixture
def train_worker(backend: Backend) -> Any:
    """A worker seen serving the train queue (the record a real worker keeps while it runs)."""
    record_worker("labbot-train@test", ["train"])
    yield
    forget_worker("labbot-train@test")


def test_a_build_takes_the_merged_prs_no_good_build_holds(
    backend: Backend, train_worker: None
) -> None:
    add_repository()
    for number in (1, 2):
        add_pull(number)
    add_pull(3, merged=False)  # open: not in any build
    with session_scope() as session:
        first = start_build(session, REPO, "cli")
    assert (first.pulls, first.queued) == (2, True)
    assert build_pulls(first.build_id) == [1, 2]
    with session_scope() as session:
        job = session.get(Job, first.job_id)
        build = session.get(Build, first.build_id)
        assert job is not None
        assert build is not None
        assert (job.kind, job.state, job.build_id) == (JobKind.build, JobState.queued, build.id)
        assert job.pull_request_id is None
        assert job.published_at is not None  # handed to the broker
        assert (build.state, build.trigger, build.previous_build_id) == (
            BuildState.pending,
            "cli",
            None,
        )

    # One build at a time per repository.
    with pytest.raises(BuildError, match="still under way"), session_scope() as session:
        start_build(session, REPO, "cli")

    # A failed build lets go of its PRs: the next one takes them again, with the new merge.
    end_job(first.job_id, JobState.failed)
    add_pull(4)
    with session_scope() as session:
        second = start_build(session, REPO, "schedule")
    assert build_pulls(second.build_id) == [1, 2, 4]
    with session_scope() as session:
        failed = session.get(Build, first.build_id)
        assert failed is not None
        assert failed.state is BuildState.failed
        assert failed.error == "training stopped with exit code 1"

    # A good build keeps them: the next build starts from it and takes only what is new.
    mark_stage(second.build_id, "data")
    mark_stage(second.build_id, "train")
    scores = {"guard_trained": 6.5, "trained_mean": 7.0, "mmlu_trained": 0.5}
    end_job(
        second.job_id,
        JobState.succeeded,
        {"scores": scores, "output_model": f"job {second.job_id}: train/output/skills/hf"},
    )
    with session_scope() as session:
        done = session.get(Build, second.build_id)
        assert done is not None
        assert done.state is BuildState.succeeded
        assert done.scores == scores
        assert [s["name"] for s in done.stages] == ["data", "train"]
        assert all(s["finished_at"] for s in done.stages)
        assert done.started_at is not None
    with pytest.raises(BuildError, match="nothing was merged"), session_scope() as session:
        start_build(session, REPO, "cli")
    add_pull(5)
    with session_scope() as session:
        third = start_build(session, REPO, "cli")
        build = session.get(Build, third.build_id)
        assert build is not None
        assert build.previous_build_id == second.build_id
        assert build.base_model == f"job {second.job_id}: train/output/skills/hf"
    assert build_pulls(third.build_id) == [5]


def test_a_build_with_no_worker_for_its_queue_fails_at_once(backend: Backend) -> None:
    add_repository()
    add_pull(1)
    with session_scope() as session:
        started = start_build(session, REPO, "cli")
    assert not started.queued
    with session_scope() as session:
        build = session.get(Build, started.build_id)
        assert build is not None
        assert build.state is BuildState.failed
        assert "train" in (build.error or "")


def test_unknown_repository_is_refused(backend: Backend) -> None:
    with pytest.raises(BuildError, match="does not know"), session_scope() as session:
        start_build(session, "org/elsewhere", "cli")


def test_the_schedule_starts_a_build_per_repository_with_new_merges(
    backend: Backend, train_worker: None
) -> None:
    add_repository(70, "org/taxonomy")
    add_repository(71, "org/quiet")
    add_repository(72, "org/busy")
    add_pull(1, repo_id=70)
    add_pull(2, repo_id=72)
    add_pull(3, repo_id=71, merged=False)
    started = start_scheduled_builds()
    assert sorted(s.name for s in started) == ["org-busy-1", "org-taxonomy-1"]
    assert start_scheduled_builds() == []  # both still under way; nothing new elsewhere


def test_the_beat_schedule_follows_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    weekly = schedule(Settings(build_schedule="0 6 * * 1"))
    assert weekly is not None
    assert (weekly.minute, weekly.hour, weekly.day_of_week) == ({0}, {6}, {1})  # Mondays 06:00
    # Last run eight days ago: due now, whatever the day.
    assert weekly.is_due(datetime.now(UTC) - timedelta(days=8)).is_due
    assert schedule(Settings(build_schedule="")) is None

    monkeypatch.setenv("LABBOT_BUILD_SCHEDULE", "30 2 * * *")
    get_settings.cache_clear()
    try:
        configure_celery(celery_app, get_settings())
        entry = celery_app.conf.beat_schedule["scheduled-builds"]
        assert entry["task"] == "labbot.start_scheduled_builds"
        assert entry["schedule"].hour == {2}
        assert entry["schedule"].minute == {30}
        assert "labbot.start_scheduled_builds" in celery_app.tasks
    finally:
        monkeypatch.delenv("LABBOT_BUILD_SCHEDULE")
        get_settings.cache_clear()
        configure_celery(celery_app, get_settings())


@pytest.mark.parametrize("line", ["0 6 * *", "61 * * * *", "0 6 * * funday"])
def test_a_bad_schedule_is_refused_at_start(line: str) -> None:
    with pytest.raises(ValueError, match="cron line"):
        Settings(build_schedule=line)


def test_build_start_on_the_command_line(backend: Backend, train_worker: None) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["build", "start", "--repository", REPO])
    assert refused.exit_code == 1
    assert "does not know the repository org/taxonomy" in refused.output
    assert "Traceback" not in refused.output
    add_repository()
    add_pull(1)
    started = runner.invoke(cli, ["build", "start", "--repository", REPO])
    assert started.exit_code == 0, started.output
    assert "started with 1 merged pull request(s)" in started.output
    assert "/builds/" in started.output
    nothing = runner.invoke(cli, ["build", "start"])
    assert nothing.exit_code == 1
    assert "No build started" in nothing.output


def seed_builds(count: int) -> list[int]:
    add_repository()
    ids = []
    for n in range(count):
        pull_id = add_pull(n + 1, title=f"<script>alert({n})</script>")
        with session_scope() as session:
            build = Build(
                name=f"taxonomy-{n}",
                state=BuildState.succeeded,
                repository_id=70,
                trigger="schedule",
                base_model="/models/granite",
                output_model=f"job {n}: train/output/skills/hf",
                scores={"guard_trained": 5.0 + n, "trained_mean": 6.0, "mmlu_trained": 0.5},
                stages=[{"name": "data", "started_at": "x", "finished_at": "y"}],
                started_at=MERGED_AT,
                finished_at=MERGED_AT + timedelta(hours=2),
            )
            session.add(build)
            session.flush()
            session.add(BuildPullRequest(build_id=build.id, pull_request_id=pull_id))
            session.add(
                Job(
                    kind=JobKind.build,
                    state=JobState.succeeded,
                    repository_id=70,
                    build_id=build.id,
                    progress={},
                )
            )
            ids.append(build.id)
    return ids


def test_build_pages_and_api(client: Any) -> None:
    ids = seed_builds(3)
    page = client.get("/builds")
    assert page.status_code == 200
    for n in range(3):
        assert f"taxonomy-{n}" in page.text
    assert page.text.count("<polyline") == 3  # guard, new leaves, PR-MMLU
    assert "taxonomy-2: 7" in page.text  # the last guard point's label

    detail = client.get(f"/builds/{ids[0]}")
    assert detail.status_code == 200
    assert "&lt;script&gt;alert(0)&lt;/script&gt;" in detail.text  # contributor text escaped
    assert "<script>alert" not in detail.text
    assert "/pulls/org/taxonomy/1" in html.unescape(detail.text)
    assert client.get("/builds/999999").status_code == 404

    listed = client.get("/api/builds").json()
    assert [b["name"] for b in listed["builds"]] == ["taxonomy-2", "taxonomy-1", "taxonomy-0"]
    assert listed["builds"][0]["pulls"] == 1
    assert listed["page"]["total"] == 3
    one = client.get(f"/api/builds/{ids[1]}").json()
    assert [p["number"] for p in one["pull_requests"]] == [2]
    assert one["job"]["state"] == "succeeded"
    assert "artifacts_path" not in one["job"]
    trends = client.get("/api/builds/trends").json()
    assert [p["value"] for p in trends[0]["points"]] == [5.0, 6.0, 7.0]
    assert client.get("/api/builds/999999").status_code == 404
    schema = client.get("/openapi.json").json()
    for path in ("/api/builds", "/api/builds/{build_id}", "/api/builds/trends"):
        assert "200" in schema["paths"][path]["get"]["responses"]


def test_the_sweeper_ends_a_build_whose_job_ended_without_it(
    backend: Backend, train_worker: None
) -> None:
    add_repository()
    add_pull(1)
    with session_scope() as session:
        started = start_build(session, REPO, "cli")
    mark_stage(started.build_id, "data")
    with session_scope() as session:  # the job's end, written by a worker that then died
        job = session.get(Job, started.job_id)
        assert job is not None
        job.state, job.error = JobState.failed, "worker lost"
    assert fail_unfinished_builds() == 1
    with session_scope() as session:
        build = session.get(Build, started.build_id)
        assert build is not None
        assert (build.state, build.error) == (BuildState.failed, "worker lost")
    assert fail_unfinished_builds() == 0
