"""The dashboard's read-only pages, their live fragments and the JSON API, on rows written
straight into the database (SQLite and PostgreSQL): the right rows, filters, pagination,
escaping, the OpenAPI description, and a constant number of queries per page."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import event, update

from app.config import get_settings
from app.dashboard.pulls import LatestJob, blocking_sentence
from app.dashboard.schemas import TriageSummary, aware
from app.db.models import (
    Build,
    BuildState,
    Delivery,
    DeliveryStatus,
    Job,
    JobKind,
    JobState,
    PullRequest,
    Repository,
    RunStatus,
    TestApproval,
    TriageFinding,
    TriageRun,
    WorkerSeen,
    utcnow,
)
from app.db.session import get_engine, session_scope
from app.jobs import live_workers
from bots import messages
from bots.triage.runner import pull_kind
from tests.conftest import Backend

REPO = "org/taxonomy"
OTHER = "org/other"
HOSTILE = '<script>alert("pwned")</script>'
API_PATHS = (
    "/api/overview",
    "/api/pulls",
    "/api/pulls/{owner}/{name}/{number}",
    "/api/jobs",
    "/api/jobs/{job_id}",
    "/api/jobs/{job_id}/log",
    "/api/deliveries",
)


@pytest.fixture
def client(backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """The app on the chosen backend, with the sweeper held off (its queries would disturb
    the counts) and artifacts in this test's own directory."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    monkeypatch.setenv("LABBOT_SWEEP_INTERVAL_SECONDS", "3600")
    monkeypatch.setenv("LABBOT_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    with TestClient(create_app()) as test_client:
        yield test_client


# --- seeding ----------------------------------------------------------------------------------

NOW = utcnow().replace(microsecond=0)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def sha(n: int) -> str:
    return f"{n:040x}"


@dataclass
class World:
    repos: dict[str, int] = field(default_factory=dict)
    pulls: dict[tuple[str, int], int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    build_id: int = 0
    runs: dict[int, int] = field(default_factory=dict)


def add_repo(world: World, full_name: str) -> int:
    repo_id = 9000 + len(world.repos)
    with session_scope() as session:
        session.add(Repository(id=repo_id, full_name=full_name))
    world.repos[full_name] = repo_id
    return repo_id


def add_pull(world: World, repo: str, number: int, **values: Any) -> int:
    values.setdefault("title", f"Add leaf {number}")
    values.setdefault("author", "alice")
    values.setdefault("head_sha", sha(number * 1000 + world.repos[repo]))
    values.setdefault("updated_at", ago(minutes=number))
    with session_scope() as session:
        pull = PullRequest(repository_id=world.repos[repo], number=number, **values)
        session.add(pull)
        session.flush()
        world.pulls[(repo, number)] = pull.id
    return pull.id


def head(pull_id: int) -> str:
    with session_scope() as session:
        pull = session.get(PullRequest, pull_id)
        assert pull is not None
        return pull.head_sha


def add_run(pull_id: int, errors: int = 0, warnings: int = 0, findings: int = 0) -> int:
    with session_scope() as session:
        run = TriageRun(
            pull_request_id=pull_id,
            head_sha=head(pull_id),
            status=RunStatus.completed,
            conclusion="failure" if errors else "success",
            errors=errors,
            warnings=warnings,
            summary="Triage summary sentence.",
            created_at=ago(minutes=30),
        )
        session.add(run)
        session.flush()
        for i in range(findings):
            session.add(
                TriageFinding(
                    triage_run_id=run.id,
                    path=f"knowledge/leaf/qna.yaml{i:03d}",
                    rule="schema/required",
                    severity="error" if i < errors else "warning",
                    line=10 + i,
                    column=3,
                    message=f"Finding message {i}",
                    hint=f"Hint {i}",
                )
            )
        return run.id


def add_job(
    world: World | None,
    pull_id: int | None,
    kind: JobKind,
    state: JobState,
    name: str | None = None,
    **values: Any,
) -> int:
    repository_id = None
    head_sha = values.pop("head_sha", None)
    if pull_id is not None:
        with session_scope() as session:
            pull = session.get(PullRequest, pull_id)
            assert pull is not None
            repository_id = pull.repository_id
            head_sha = head_sha or pull.head_sha
    values.setdefault("queued_at", ago(minutes=20))
    if state is not JobState.queued:
        values.setdefault("started_at", ago(minutes=19))
    if state not in (JobState.queued, JobState.running):
        values.setdefault("finished_at", ago(minutes=5))
    with session_scope() as session:
        job = Job(
            kind=kind,
            state=state,
            pull_request_id=pull_id,
            repository_id=values.pop("repository_id", repository_id),
            head_sha=head_sha,
            progress=values.pop("progress", {}),
            **values,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    if world is not None and name:
        world.jobs[name] = job_id
    return job_id


def seed_world() -> World:
    """Pull requests in every situation the "what is blocking" sentence tells apart, jobs in
    every state, deliveries, workers and a build."""
    world = World()
    add_repo(world, REPO)
    add_repo(world, OTHER)
    p1 = add_pull(world, REPO, 1, kind="knowledge", labels=["knowledge", "triage-needed"])
    add_run(p1, warnings=1, findings=1)
    add_job(
        world,
        p1,
        JobKind.sdg,
        JobState.running,
        "running",
        requested_by="triager-tom",
        worker="w-live@gpu",
        progress={"stage": "generating skills", "percent": 40, "eta_seconds": 600},
    )
    p2 = add_pull(world, REPO, 2, author="bob", kind="skill", labels=["skill"])
    world.runs[p2] = add_run(p2, errors=2, warnings=1, findings=3)
    add_pull(world, REPO, 3, draft=True, kind="skill")
    p4 = add_pull(world, REPO, 4, author="carol", kind="skill", labels=["needs-ok-to-test"])
    add_run(p4)
    p5 = add_pull(world, REPO, 5, author="dave", kind="knowledge")
    add_run(p5)
    add_job(world, p5, JobKind.sdg, JobState.succeeded, "sdg_done")
    add_job(
        world,
        p5,
        JobKind.bench,
        JobState.succeeded,
        "bench_done",
        result={"conclusion": "success", "title": "improved"},
    )
    p6 = add_pull(world, REPO, 6, author="erin", kind="skill")
    add_run(p6)
    add_job(
        world,
        p6,
        JobKind.train,
        JobState.failed,
        "failed",
        error="Training stopped with exit code 3.\nTraceback (most recent call last): ...",
    )
    add_pull(
        world,
        REPO,
        7,
        state="closed",
        merged=True,
        merged_at=ago(days=1),
        kind="knowledge",
    )
    add_pull(world, REPO, 8, state="closed", kind="skill")
    p9 = add_pull(world, REPO, 9, author="frank")
    add_job(world, p9, JobKind.triage, JobState.queued, "queued", requested_by="frank")
    p10 = add_pull(world, OTHER, 1, kind="mixed", labels=["knowledge", "skill"])
    add_run(p10)
    add_job(world, p10, JobKind.sdg, JobState.cancelled, "cancelled", head_sha=sha(77))
    add_job(world, p10, JobKind.precheck, JobState.superseded, "superseded", head_sha=sha(78))

    with session_scope() as session:
        build = Build(
            name="build-2026-w01",
            state=BuildState.succeeded,
            repository_id=world.repos[REPO],
            scores={"pr_bench": {"mean": 7.25, "questions": 40}, "mmlu": 0.6125},
            created_at=ago(hours=3),
            finished_at=ago(hours=1),
        )
        session.add(build)
        session.flush()
        world.build_id = build.id
    add_job(world, None, JobKind.build, JobState.succeeded, "build", build_id=world.build_id)

    with session_scope() as session:
        session.add_all(
            [
                Delivery(
                    guid="guid-processed",
                    event="pull_request",
                    action="opened",
                    repository=REPO,
                    status=DeliveryStatus.processed,
                    attempts=1,
                    handler_seconds=0.25,
                    received_at=ago(minutes=3),
                ),
                Delivery(
                    guid="guid-failed",
                    event="issue_comment",
                    action="created",
                    repository=REPO,
                    status=DeliveryStatus.failed,
                    attempts=2,
                    error="RuntimeError: the handler broke\n  File x.py, line 3",
                    received_at=ago(minutes=2),
                ),
                Delivery(
                    guid="guid-ignored",
                    event="ping",
                    repository=OTHER,
                    status=DeliveryStatus.ignored,
                    received_at=ago(minutes=1),
                ),
            ]
        )
        session.add_all(
            [
                WorkerSeen(hostname="w-live@gpu", queues=["sdg", "train"], last_seen_at=utcnow()),
                WorkerSeen(hostname="w-gone@cpu", queues=["triage"], last_seen_at=ago(hours=2)),
            ]
        )
    return world


def text_of(response: Any) -> str:
    assert response.status_code == 200, response.text[:2000]
    return html.unescape(response.text)


def rows_of(page: str, table_class: str) -> list[str]:
    match = re.search(rf'<table class="{table_class}">(.*?)</table>', page, re.S)
    assert match, f"no table {table_class}"
    return re.findall(r"<tr>(.*?)</tr>", match.group(1), re.S)[1:]


def match(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, pattern
    return found.group(1)


def numbers(items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(item["repository"], item["number"]) for item in items]


# --- pages -----------------------------------------------------------------------------------


def test_overview_shows_queues_running_jobs_workers_failures_and_the_last_build(
    client: Any,
) -> None:
    world = seed_world()
    page = text_of(client.get("/"))
    assert 'data-live="/fragments/overview"' in page
    queues = {q["queue"]: q for q in client.get("/api/overview").json()["queues"]}
    assert (queues["sdg"]["queued"], queues["sdg"]["running"]) == (0, 1)
    assert (queues["triage"]["queued"], queues["triage"]["live_workers"]) == (1, 0)
    assert queues["train"]["live_workers"] == 1
    assert queues["eval"]["kinds"] == ["precheck", "bench"]
    # The running job with its progress, the workers, the failures and the build.
    assert f'href="/jobs/{world.jobs["running"]}"' in page
    assert "generating skills: 40% · about 10 min left" in page
    assert "w-live@gpu" in page
    assert "w-gone@cpu" in page
    assert "Training stopped with exit code 3." in page
    assert "Traceback" not in page  # first lines only
    assert "RuntimeError: the handler broke" in page
    assert f'<a href="/builds/{world.build_id}">build-2026-w01</a>' in page
    assert "7.25" in page
    assert "0.6125" in page
    assert "guid-processed" in page  # the latest deliveries

    overview = client.get("/api/overview").json()
    assert [j["id"] for j in overview["running"]] == [world.jobs["running"]]
    assert {w["hostname"]: w["live"] for w in overview["workers"]} == {
        "w-live@gpu": True,
        "w-gone@cpu": False,
    }
    with session_scope() as session:  # the same rule as the one jobs are failed by
        live = {w.hostname for w in live_workers(session, get_settings())}
    assert live == {w["hostname"] for w in overview["workers"] if w["live"]}
    assert [j["id"] for j in overview["failed_jobs"]] == [world.jobs["failed"]]
    assert [d["guid"] for d in overview["failed_deliveries"]] == ["guid-failed"]
    assert overview["last_build"]["scores"]["pr_bench"]["mean"] == 7.25
    fragment = text_of(client.get("/fragments/overview"))
    assert "<html" not in fragment
    assert "generating skills" in fragment


def test_pulls_page_says_what_each_pull_request_waits_for(client: Any) -> None:
    world = seed_world()
    page = text_of(client.get("/pulls?state=all"))
    rows = rows_of(page, "pulls")
    by_number = {}
    for row in rows:
        found = re.search(r'href="/pulls/([^"]+)/(\d+)"', row)
        assert found
        by_number[(found.group(1), int(found.group(2)))] = row
    expected = {
        (REPO, 1): "Data generation is running (generating skills: 40% · about 10 min left).",
        (REPO, 2): "Triage found 2 error(s) at commit",
        (REPO, 3): messages.BLOCKING_DRAFT,
        (REPO, 4): "comment <code>/lab ok-to-test</code>",
        (REPO, 5): "Evaluation results are ready (passed)",
        (REPO, 6): "Training failed on commit",
        (REPO, 7): "Merged on ",
        (REPO, 8): messages.BLOCKING_CLOSED,
        (REPO, 9): "Triage of commit",
        (OTHER, 1): "Triage passed: waiting for a triager to add <code>precheck-generate-ready",
    }
    assert set(by_number) == set(expected)
    for key, sentence in expected.items():
        assert sentence in by_number[key], (key, by_number[key])
    assert "<code>/lab train</code>" in by_number[(REPO, 6)]
    # Triage state, labels and the latest jobs as badges linking to them.
    assert "2 err · 1 warn" in by_number[(REPO, 2)]
    assert f'href="/jobs/{world.jobs["bench_done"]}"' in by_number[(REPO, 5)]
    assert "bench: succeeded" in by_number[(REPO, 5)]
    assert "sdg: succeeded" in by_number[(REPO, 5)]
    assert 'class="badge s-cancelled old"' in by_number[(OTHER, 1)]  # not on the head
    assert "needs-ok-to-test" in by_number[(REPO, 4)]

    api = client.get("/api/pulls", params={"state": "all"}).json()
    assert api["total"] == 10
    sentences = {(p["repository"], p["number"]): p["blocking"] for p in api["items"]}
    assert sentences[(REPO, 6)].startswith("Training failed on commit")
    pr5 = next(p for p in api["items"] if (p["repository"], p["number"]) == (REPO, 5))
    assert [j["kind"] for j in pr5["jobs"]] == ["sdg", "bench"]  # pipeline order
    assert pr5["triage"]["conclusion"] == "success"
    assert pr5["url"] == f"/pulls/{REPO}/5"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [1, 2, 3, 4, 5, 6, 9, 101]),  # open, by default
        ({"state": "merged"}, [7]),
        ({"state": "closed"}, [8]),
        ({"state": "all", "kind": "skill"}, [2, 3, 4, 6, 8]),
        ({"kind": "mixed"}, [101]),
        ({"author": "alice"}, [1, 3, 101]),
        ({"label": "knowledge"}, [1, 101]),
        ({"label": "needs-ok-to-test", "author": "carol"}, [4]),
        ({"repository": OTHER}, [101]),
        ({"repository": "nobody/else"}, []),
    ],
)
def test_pull_filters_narrow_the_list_on_the_page_and_in_the_api(
    client: Any, query: dict[str, str], expected: list[int]
) -> None:
    seed_world()

    def key(repository: str, number: int) -> int:
        return number + (100 if repository == OTHER else 0)

    api = client.get("/api/pulls", params=query).json()
    assert sorted(key(*item) for item in numbers(api["items"])) == expected
    assert api["total"] == len(expected)
    page = text_of(client.get("/pulls", params=query))
    shown = re.findall(r'<td><a href="/pulls/([^"]+)/(\d+)">', page)
    assert sorted(key(repo, int(n)) for repo, n in shown) == expected
    for _name, value in query.items():
        assert f'value="{value}"' in page  # the form keeps the filters


def test_bad_filters_are_ignored_on_pages_with_a_message_and_refused_by_the_api(
    client: Any,
) -> None:
    seed_world()
    page = text_of(client.get("/pulls?state=weird&kind=<b>x</b>&page=zero"))
    assert "Ignored state=weird: expected one of open, closed, merged, all." in page
    assert "Ignored page=zero" in page
    assert "<b>x</b>" not in client.get("/pulls?kind=<b>x</b>").text  # escaped
    page = text_of(client.get("/jobs?state=sleeping&since=yesterday"))
    assert "Ignored state=sleeping" in page
    assert "Ignored since=yesterday" in page
    assert f'href="/jobs/{seed_ids(client)[0]}"' in page  # the rest of the page still works
    for url in (
        "/api/pulls?state=weird",
        "/api/pulls?per_page=51",
        "/api/jobs?state=sleeping",
        "/api/jobs?since=yesterday",
        "/api/jobs?page=0",
        "/api/deliveries?status=lost",
    ):
        response = client.get(url)
        assert response.status_code == 422, url
        assert "Traceback" not in response.text
    assert client.get("/api/jobs/not-a-number").status_code == 422


def seed_ids(client: Any) -> list[int]:
    return [job["id"] for job in client.get("/api/jobs").json()["items"]]


def test_pagination_keeps_the_filters_and_stops_at_the_end(client: Any) -> None:
    world = World()
    add_repo(world, REPO)
    pull_id = add_pull(world, REPO, 1)
    ids = [
        add_job(None, pull_id, JobKind.sdg, JobState.failed, queued_at=ago(minutes=200 - i))
        for i in range(55)
    ]
    add_job(None, pull_id, JobKind.train, JobState.failed)
    first = client.get("/api/jobs", params={"kind": "sdg"}).json()
    assert (first["total"], first["page"], first["has_next"]) == (55, 1, True)
    assert [j["id"] for j in first["items"]] == ids[::-1][:50]
    second = client.get("/api/jobs", params={"kind": "sdg", "page": 2}).json()
    assert [j["id"] for j in second["items"]] == ids[::-1][50:]
    assert second["has_next"] is False
    small = client.get("/api/jobs", params={"kind": "sdg", "per_page": 20, "page": 3}).json()
    assert [j["id"] for j in small["items"]] == ids[::-1][40:]

    page = client.get("/jobs?kind=sdg").text
    assert len(rows_of(page, "jobs")) == 50
    assert '<a href="/jobs?kind=sdg&amp;page=2" rel="next">' in page
    assert "1–50 of 55" in html.unescape(page)
    page2 = client.get("/jobs?kind=sdg&page=2").text
    assert len(rows_of(page2, "jobs")) == 5
    assert '<a href="/jobs?kind=sdg" rel="prev">' in page2
    assert 'rel="next"' not in page2
    assert 'data-live="/fragments/jobs?kind=sdg&amp;page=2"' in page2

    for n in range(2, 56):
        add_pull(world, REPO, n)
    pulls = client.get("/api/pulls", params={"page": 2}).json()
    assert (pulls["total"], len(pulls["items"]), pulls["has_next"]) == (55, 5, False)
    assert rows_of(client.get("/pulls?page=2&author=alice").text, "pulls")
    prev = '<a href="/pulls?state=open&amp;author=alice" rel="prev">'
    assert prev in client.get("/pulls?page=2&author=alice").text


def test_pull_page_shows_findings_jobs_samples_and_the_loss_curve(
    client: Any, tmp_path: Path
) -> None:
    world = seed_world()
    pull_id = world.pulls[(REPO, 2)]
    sdg_dir = tmp_path / "sdg"
    (sdg_dir / "dataset").mkdir(parents=True)
    (sdg_dir / "dataset" / "preview.json").write_text(
        json.dumps(
            {
                "knowledge/leaf": [
                    {
                        "messages": [
                            {"role": "user", "content": "What is a leaf?"},
                            {"role": "assistant", "content": f"A leaf. {HOSTILE}"},
                        ]
                    }
                ]
            }
        )
    )
    train_dir = tmp_path / "train"
    (train_dir / "train" / "output").mkdir(parents=True)
    (train_dir / "train" / "output" / "metrics.jsonl").write_text(
        "\n".join(json.dumps({"phase": "knowledge", "loss": 2.0 - i / 10}) for i in range(5))
    )
    sdg = add_job(world, pull_id, JobKind.sdg, JobState.succeeded, artifacts_path=str(sdg_dir))
    train = add_job(
        world,
        pull_id,
        JobKind.train,
        JobState.running,
        artifacts_path=str(train_dir),
        progress={"stage": "phase 1", "percent": 10},
    )
    response = client.get(f"/pulls/{REPO}/2")
    page = text_of(response)
    assert "Triage found 2 error(s)" in page
    findings = rows_of(response.text, "findings")
    assert len(findings) == 3
    assert "knowledge/leaf/qna.yaml000:10:3" in html.unescape(findings[0])
    assert 'class="sev-error">error' in findings[0]
    assert "schema/required" in findings[0]
    assert "Finding message 0" in findings[0]
    assert "Hint 0" in findings[0]
    assert f'href="/api/triage-runs/{world.runs[pull_id]}"' in page
    timeline = rows_of(response.text, "jobs")
    assert [match(r'href="/jobs/(\d+)"', row) for row in timeline] == [
        str(train),
        str(sdg),
    ]
    assert "What is a leaf?" in page
    assert HOSTILE not in response.text
    assert str(escape(HOSTILE)) in response.text
    assert "Training loss, knowledge phase" in page
    assert "5 steps: 2.000 → 1.600" in page
    # Live while a job runs: the fragment is the page's top part, final once nothing runs.
    assert f'data-live="/fragments/pulls/{REPO}/2"' in page
    fragment = client.get(f"/fragments/pulls/{REPO}/2")
    assert "X-Live-Final" not in fragment.headers
    assert "phase 1: 10%" in fragment.text
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == train).values(state=JobState.succeeded))
    fragment = client.get(f"/fragments/pulls/{REPO}/2")
    assert fragment.headers["X-Live-Final"] == "1"

    detail = client.get(f"/api/pulls/{REPO}/2").json()
    assert detail["findings_total"] == 3
    assert detail["findings"][0] == {
        "path": "knowledge/leaf/qna.yaml000",
        "line": 10,
        "column": 3,
        "severity": "error",
        "rule": "schema/required",
        "message": "Finding message 0",
        "hint": "Hint 0",
    }
    assert [j["id"] for j in detail["timeline"]] == [train, sdg]
    assert detail["triage"]["errors"] == 2


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"state": "failed"}, ["failed"]),
        ({"kind": "sdg"}, ["running", "sdg_done", "cancelled"]),
        ({"state": "succeeded", "kind": "build"}, ["build"]),
        ({"repository": OTHER}, ["cancelled", "superseded"]),
        ({"author": "dave"}, ["sdg_done", "bench_done"]),  # the PR's author
        ({"author": "triager-tom"}, ["running"]),  # who asked for it
        ({"since": "OLD", "state": "succeeded"}, ["bench_done"]),
        ({"until": "OLD", "state": "succeeded"}, ["sdg_done", "build"]),
    ],
)
def test_job_filters_narrow_the_list_on_the_page_and_in_the_api(
    client: Any, query: dict[str, str], names: list[str]
) -> None:
    world = seed_world()
    old = ago(days=3)
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id.in_([world.jobs["sdg_done"], world.jobs["build"]]))
            .values(queued_at=old)
        )
    stamp = (old + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    query = {k: (stamp if v == "OLD" else v) for k, v in query.items()}
    wanted = sorted(world.jobs[name] for name in names)
    api = client.get("/api/jobs", params=query).json()
    assert sorted(j["id"] for j in api["items"]) == wanted
    page = client.get("/jobs", params=query).text
    shown = [int(i) for i in re.findall(r'<td class="num"><a href="/jobs/(\d+)">', page)]
    assert sorted(shown) == wanted


def test_the_jobs_table_fragment_follows_a_job_through_its_states(client: Any) -> None:
    world = World()
    add_repo(world, REPO)
    pull_id = add_pull(world, REPO, 1, title="Teach haiku")
    job_id = add_job(world, pull_id, JobKind.sdg, JobState.queued, requested_by="tom")
    page = client.get("/jobs?kind=sdg").text
    assert '<div id="jobs" data-live="/fragments/jobs?kind=sdg">' in page
    assert '<script src="/static/live.js" defer></script>' in page

    def row() -> str:
        fragment = client.get("/fragments/jobs?kind=sdg")
        assert fragment.status_code == 200
        assert "<html" not in fragment.text
        assert "X-Live-Final" not in fragment.headers  # the table never stops refreshing
        rows = rows_of(fragment.text, "jobs")
        assert len(rows) == 1
        return html.unescape(rows[0])

    assert '<span class="s-queued">queued</span>' in row()
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=JobState.running,
                started_at=utcnow(),
                progress={"stage": "generating knowledge", "percent": 55},
            )
        )
    assert '<span class="s-running">running</span>' in row()
    assert "generating knowledge: 55%" in row()
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state=JobState.succeeded, finished_at=utcnow())
        )
    assert '<span class="s-succeeded">succeeded</span>' in row()

    # The job's own page: live while active, the fragment says when it is the last one.
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=JobState.running))
    assert f'data-live="/fragments/jobs/{job_id}"' in client.get(f"/jobs/{job_id}").text
    live = client.get(f"/fragments/jobs/{job_id}")
    assert "X-Live-Final" not in live.headers
    assert "<html" not in live.text
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=JobState.failed))
    live = client.get(f"/fragments/jobs/{job_id}")
    assert live.headers["X-Live-Final"] == "1"
    assert '<span class="s-failed">failed</span>' in live.text
    assert "data-live=" not in client.get(f"/jobs/{job_id}").text
    assert client.get("/fragments/jobs/999999").status_code == 404


def test_job_page_shows_timeline_log_tail_files_and_links(client: Any, tmp_path: Path) -> None:
    world = seed_world()
    job_dir = tmp_path / "job"
    (job_dir / "bench").mkdir(parents=True)
    (job_dir / "checkpoints").mkdir()
    (job_dir / "job.log").write_text("".join(f"log line {i}\n" for i in range(5000)))
    (job_dir / "bench" / "results.json").write_text('{"conclusion": "success"}')
    (job_dir / "checkpoints" / "model.safetensors").write_bytes(b"\0" * 10)
    (tmp_path / "secret.txt").write_text("outside the job")
    job_id = add_job(
        world,
        world.pulls[(REPO, 5)],
        JobKind.bench,
        JobState.succeeded,
        artifacts_path=str(job_dir),
        log_path=str(job_dir / "job.log"),
        queued_at=ago(minutes=10),
        started_at=ago(minutes=9, seconds=30),
        finished_at=ago(minutes=2),
        result={"conclusion": "success", "scores": {"mean": 7.5}},
    )
    page = text_of(client.get(f"/jobs/{job_id}"))
    assert f'<a href="/pulls/{REPO}/5">{REPO}#5</a>' in page
    assert "waited 30 s" in page
    assert "ran 7m 30s" in page
    assert "log line 4999" in page
    assert "log line 0\n" not in page
    assert f'href="/jobs/{job_id}/artifacts/bench/results.json"' in page
    assert f'href="/jobs/{job_id}/artifacts/job.log"' in page
    assert "model.safetensors" not in page  # only the text kinds
    assert "7.5" in page  # the result
    downloaded = client.get(f"/jobs/{job_id}/artifacts/bench/results.json")
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"].startswith("text/plain")
    assert downloaded.text == '{"conclusion": "success"}'
    for name in ("checkpoints/model.safetensors", "..%2Fsecret.txt", "bench/../../secret.txt"):
        refused = client.get(f"/jobs/{job_id}/artifacts/{name}")
        assert refused.status_code == 404, name
        assert "outside the job" not in refused.text

    log = client.get(f"/api/jobs/{job_id}/log", params={"tail": 100}).json()
    assert log["final"] is True
    assert log["available"] is True
    assert log["text"].endswith("log line 4999\n")
    assert len(log["text"]) <= 100
    assert log["text"].startswith("log line")  # cut at a line start
    job = client.get(f"/api/jobs/{job_id}").json()
    for name in ("id", "kind", "state", "head_sha", "attempts", "worker", "progress", "error"):
        assert name in job
    assert (job["kind"], job["state"], job["final"]) == ("bench", "succeeded", True)
    assert job["repository"] == REPO
    assert job["pull_number"] == 5
    assert job["result"]["scores"] == {"mean": 7.5}
    assert job["run_seconds"] == 450.0

    build_job = text_of(client.get(f"/jobs/{world.jobs['build']}"))
    assert f'<a href="/builds/{world.build_id}">build build-2026-w01</a>' in build_job
    assert messages.DASHBOARD_NO_LOG in text_of(client.get(f"/jobs/{world.jobs['queued']}"))


def test_deliveries_page_lists_and_filters_deliveries(client: Any) -> None:
    seed_world()
    page = text_of(client.get("/deliveries"))
    rows = rows_of(client.get("/deliveries").text, "deliveries")
    assert [match(r"<code>([^<]+)</code>", row) for row in rows] == [
        "guid-ignored",
        "guid-failed",
        "guid-processed",
    ]
    assert "issue_comment.created" in page
    assert "RuntimeError: the handler broke" in page
    assert "File x.py" not in page
    assert "0.2 s" in page or "0.3 s" in page  # the handler's time
    failed = client.get("/api/deliveries", params={"status": "failed"}).json()
    assert [d["guid"] for d in failed["items"]] == ["guid-failed"]
    assert failed["items"][0]["attempts"] == 2
    opened = client.get("/api/deliveries", params={"event": "pull_request.opened"}).json()
    assert [d["guid"] for d in opened["items"]] == ["guid-processed"]
    events = client.get("/api/deliveries", params={"event": "ping"}).json()
    assert [d["guid"] for d in events["items"]] == ["guid-ignored"]
    filtered = text_of(client.get("/deliveries?status=failed"))
    assert "guid-failed" in filtered
    assert "guid-processed" not in filtered
    assert "body" not in client.get("/api/deliveries").json()["items"][0]


def test_hostile_text_is_escaped_everywhere(client: Any, tmp_path: Path) -> None:
    world = World()
    add_repo(world, REPO)
    pull_id = add_pull(
        world, REPO, 1, title=HOSTILE, author="mallory", labels=['"><img src=x onerror=alert(1)>']
    )
    with session_scope() as session:
        run = TriageRun(
            pull_request_id=pull_id,
            head_sha=head(pull_id),
            status=RunStatus.completed,
            conclusion="failure",
            errors=1,
            summary=HOSTILE,
        )
        session.add(run)
        session.flush()
        session.add(
            TriageFinding(
                triage_run_id=run.id,
                path="knowledge/<b>x</b>/qna.yaml",
                rule="x",
                severity="error",
                message=HOSTILE,
                hint=HOSTILE,
            )
        )
    job_id = add_job(
        world, pull_id, JobKind.sdg, JobState.failed, error=HOSTILE, result={HOSTILE: HOSTILE}
    )
    add_job(
        world,
        pull_id,
        JobKind.train,
        JobState.running,
        progress={"stage": HOSTILE, "percent": 5},
    )
    for url in (
        "/",
        "/pulls",
        f"/pulls/{REPO}/1",
        "/jobs",
        f"/jobs/{job_id}",
        f"/fragments/pulls/{REPO}/1",
        "/fragments/jobs",
    ):
        body = client.get(url).text
        assert "<script>alert" not in body, url
        assert "<img src=x" not in body, url
        assert "<b>x</b>" not in body, url
        assert "&lt;script&gt;" in body, url
    # The JSON API carries the text as it is: JSON is no HTML.
    assert client.get("/api/pulls").json()["items"][0]["title"] == HOSTILE


def test_unknown_pull_requests_and_jobs_get_a_plain_404(client: Any) -> None:
    for url, message in (
        ("/pulls/org/taxonomy/404", messages.PULL_NOT_FOUND),
        ("/jobs/404404", messages.JOB_NOT_FOUND),
        ("/jobs/404404/artifacts/job.log", messages.JOB_NOT_FOUND),
        ("/builds/404404", messages.BUILD_NOT_FOUND),
        ("/no-such-page", messages.PAGE_NOT_FOUND),
        ("/jobs/not-a-number", messages.PAGE_NOT_FOUND),
    ):
        response = client.get(url)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert message in response.text
        assert "Traceback" not in response.text
    for url, message in (
        ("/api/pulls/org/taxonomy/404", messages.PULL_NOT_FOUND),
        ("/api/jobs/404404", messages.JOB_NOT_FOUND),
        ("/api/jobs/404404/log", messages.JOB_NOT_FOUND),
        ("/api/no-such-call", "Not Found"),
    ):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json() == {"detail": message}


def test_openapi_describes_every_dashboard_endpoint(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for path in API_PATHS:
        operation = schema["paths"][path]["get"]
        assert operation.get("description") or operation.get("summary"), path
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        name = ok["$ref"].rsplit("/", 1)[-1]
        properties = components[name]["properties"]
        assert properties, path
        for field_name, spec in properties.items():
            assert spec.get("description"), f"{name}.{field_name} has no description"
        if "{" in path:
            assert "404" in operation["responses"], path
    jobs = schema["paths"]["/api/jobs"]["get"]
    assert {p["name"] for p in jobs["parameters"]} >= {
        "state",
        "kind",
        "repository",
        "author",
        "since",
        "until",
        "page",
        "per_page",
    }
    for path in schema["paths"]:
        assert not path.startswith("/fragments"), path  # HTML for live.js only
    assert client.get("/api/docs").status_code == 200


# --- queries per page ---------------------------------------------------------------------------


@contextmanager
def counted_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def grow(world: World, first: int, count: int) -> None:
    """PRs with a triage run and findings, an approval, jobs of two kinds and a delivery."""
    for number in range(first, first + count):
        pull_id = add_pull(world, REPO, number, labels=["skill", "needs-ok-to-test"])
        add_run(pull_id, errors=1, findings=2)
        add_job(None, pull_id, JobKind.triage, JobState.succeeded)
        add_job(None, pull_id, JobKind.sdg, JobState.running, progress={"stage": "x"})
        with session_scope() as session:
            session.add(
                TestApproval(pull_request_id=pull_id, head_sha=head(pull_id), approved_by="t")
            )
            session.add(
                Delivery(
                    guid=f"guid-{number}",
                    event="pull_request",
                    status=DeliveryStatus.failed,
                    error="boom",
                )
            )


def test_queries_per_page_do_not_grow_with_the_rows(client: Any) -> None:
    world = World()
    add_repo(world, REPO)
    grow(world, 1, 5)
    first = world.pulls[(REPO, 1)]
    job_id = add_job(None, first, JobKind.train, JobState.failed)
    urls = [
        "/",
        "/fragments/overview",
        "/pulls?state=all",
        "/pulls?label=skill&author=alice",
        f"/pulls/{REPO}/1",
        f"/fragments/pulls/{REPO}/1",
        "/jobs",
        "/fragments/jobs?state=running",
        f"/jobs/{job_id}",
        f"/fragments/jobs/{job_id}",
        "/deliveries",
        "/api/overview",
        "/api/pulls",
        f"/api/pulls/{REPO}/1",
        "/api/jobs",
        f"/api/jobs/{job_id}",
        f"/api/jobs/{job_id}/log",
        "/api/deliveries",
    ]

    def counts() -> dict[str, int]:
        found = {}
        for url in urls:
            with counted_queries() as statements:
                assert client.get(url).status_code == 200, url
            found[url] = len(statements)
        return found

    small = counts()
    grow(world, 6, 45)
    for _ in range(45):  # and a long timeline on the first PR
        add_job(None, first, JobKind.bench, JobState.cancelled)
    large = counts()
    assert large == small
    assert max(small.values()) <= 7, small
    assert len(client.get("/api/pulls").json()["items"]) == 50


def test_recording_a_triage_run_sets_the_kind_and_keeps_the_update_time(backend: Backend) -> None:
    from bots.triage import TriageReport
    from bots.triage.findings import FileResult
    from bots.triage.runner import _record
    from workers.harness import JobTarget

    world = World()
    repository_id = add_repo(world, REPO)
    updated = ago(days=2)
    pull_id = add_pull(world, REPO, 1, updated_at=updated)
    report = TriageReport(
        [
            FileResult("knowledge/a/qna.yaml", kind="knowledge"),
            FileResult("compositional_skills/b/qna.yaml", kind="skill"),
        ]
    )

    def record(head_sha: str) -> None:
        target = JobTarget(1, REPO, repository_id, None, 1, head_sha, pull_id)
        _record(target, report, check_run_id=7)

    record(sha(1))  # an older head: the PR keeps what its own head's triage said
    with session_scope() as session:
        untouched = session.get(PullRequest, pull_id)
        assert untouched is not None
        assert untouched.kind is None
    record(head(pull_id))
    with session_scope() as session:
        pull = session.get(PullRequest, pull_id)
        assert pull is not None
        assert pull.kind == "mixed"
        assert aware(pull.updated_at) == updated  # GitHub's time, which orders deliveries


# --- pieces without a database ------------------------------------------------------------------


def test_the_triage_job_records_what_a_pull_request_teaches() -> None:
    assert pull_kind([]) == "none"
    assert pull_kind(["skill", "skill"]) == "skill"
    assert pull_kind(["knowledge"]) == "knowledge"
    assert pull_kind(["knowledge", "skill"]) == "mixed"


def _run(errors: int = 0, conclusion: str | None = "success") -> TriageSummary:
    return TriageSummary(
        id=1,
        head_sha="a" * 40,
        status="completed",
        conclusion=conclusion,
        errors=errors,
        warnings=0,
        summary=None,
        created_at=NOW,
    )


def _job(kind: JobKind, state: JobState, sha_: str = "a" * 40, **extra: Any) -> LatestJob:
    return LatestJob(
        extra.get("id", 1), kind, state, sha_, extra.get("progress", {}), extra.get("conclusion")
    )


@pytest.mark.parametrize(
    ("situation", "expected"),
    [
        ({"run": None}, messages.BLOCKING_NOT_TRIAGED.format(sha="aaaaaaa")),
        ({"run": _run(conclusion=None)}, messages.BLOCKING_NOT_TRIAGED.format(sha="aaaaaaa")),
        (
            {"run": None, "jobs": [_job(JobKind.triage, JobState.failed)]},
            messages.BLOCKING_TRIAGE_FAILED.format(sha="aaaaaaa"),
        ),
        (
            {"jobs": [_job(JobKind.triage, JobState.running)]},
            messages.BLOCKING_TRIAGE_RUNNING.format(sha="aaaaaaa"),
        ),
        (
            {"labels": ["needs-ok-to-test"]},
            messages.BLOCKING_OK_TO_TEST.format(sha="aaaaaaa"),
        ),
        (
            {"labels": ["needs-ok-to-test"], "approved": True},
            messages.BLOCKING_TRIAGE_PASSED.format(label="precheck-generate-ready"),
        ),
        (
            {"jobs": [_job(JobKind.sdg, JobState.queued)]},
            messages.BLOCKING_JOB_QUEUED.format(kind="Data generation", queue="sdg"),
        ),
        (
            {"jobs": [_job(JobKind.sdg, JobState.succeeded, "b" * 40)]},  # an older head
            messages.BLOCKING_TRIAGE_PASSED.format(label="precheck-generate-ready"),
        ),
        (
            {"jobs": [_job(JobKind.sdg, JobState.succeeded)]},
            messages.BLOCKING_DATA_READY.format(label="community-build-ready"),
        ),
        (
            {"jobs": [_job(JobKind.precheck, JobState.succeeded)]},
            messages.BLOCKING_PRECHECK_READY.format(label="precheck-generate-ready"),
        ),
        (
            {
                "jobs": [
                    _job(JobKind.sdg, JobState.succeeded, id=1),
                    _job(JobKind.train, JobState.succeeded, id=2),
                ]
            },
            messages.BLOCKING_TRAINED,
        ),
        (
            {"jobs": [_job(JobKind.bench, JobState.succeeded, conclusion="failure")]},
            messages.BLOCKING_RESULTS_READY.format(conclusion=" (a regression)"),
        ),
        (
            {"jobs": [_job(JobKind.sdg, JobState.cancelled)]},
            messages.BLOCKING_JOB_CANCELLED.format(
                kind="Data generation", sha="aaaaaaa", command="/lab generate"
            ),
        ),
        (
            {"draft": True, "run": _run(errors=3)},
            messages.BLOCKING_DRAFT,
        ),
        ({"state": "merged", "merged_at": NOW}, f"Merged on {NOW:%Y-%m-%d}; nothing is left"),
        ({"state": "merged"}, "Merged; nothing is left to do here."),
        ({"state": "closed", "run": None}, messages.BLOCKING_CLOSED),
    ],
)
def test_what_is_blocking(situation: dict[str, Any], expected: str) -> None:
    arguments: dict[str, Any] = {
        "state": "open",
        "draft": False,
        "merged_at": None,
        "head_sha": "a" * 40,
        "labels": [],
        "run": _run(),
        "jobs": [],
        "approved": False,
        **situation,
    }
    assert blocking_sentence(**arguments).startswith(expected)
