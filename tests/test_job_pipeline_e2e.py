"""Labels, commands and trust driving jobs, end to end: the simulator sends real webhooks to
labbot's API, real worker processes run the jobs on PostgreSQL and Redis, and everything labbot
says is read back from the simulator."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from github import Auth, Github
from sqlalchemy import select

from app.db.models import (
    FINAL_JOB_STATES,
    CommandAudit,
    Job,
    JobKind,
    JobState,
    TestApproval,
    WorkerSeen,
)
from app.db.session import session_scope
from app.simulator.admin_client import SimulatorAdmin
from bots import messages
from tests.conftest import (
    READER_TOKEN,
    Labbot,
    Process,
    delivery_status,
    wait_until,
    webhook_headers,
)
from tests.test_triage_e2e import PR_1412, REPO, completed_run, files_of

pytestmark = pytest.mark.e2e

TRIAGER = "tina-triager"
OUTSIDER = "mallory"
AUTHOR = "contributor"
GENERATE_LABEL = "precheck-generate-ready"


@pytest.fixture
def labbot_env() -> dict[str, str]:
    return {
        "LABBOT_JOB_LEASE_SECONDS": "3",
        "LABBOT_SWEEP_INTERVAL_SECONDS": "0.5",
        "LABBOT_SWEEP_GRACE_SECONDS": "1",
        "LABBOT_JOB_CANCEL_GRACE_SECONDS": "5",
    }


@pytest.fixture
def opened(labbot: Labbot, sim: SimulatorAdmin) -> tuple[Github, Any]:
    labbot.start_api()
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
    sim.set_permission(REPO, TRIAGER, "triage")
    pull = sim.open_pr(REPO, author=AUTHOR, title="t", files=files_of(PR_1412))
    completed_run(gh, pull.head_sha)
    wait_until(lambda: "needs-ok-to-test" in labels(gh, pull.number), 30)
    return gh, pull


def labels(gh: Github, number: int) -> set[str]:
    return {label.name for label in gh.get_repo(REPO).get_issue(number).get_labels()}


def notice(gh: Github, number: int) -> str:
    for comment in gh.get_repo(REPO).get_issue(number).get_comments():
        if "<!-- labbot:notice -->" in comment.body:
            return str(comment.body)
    return ""


def jobs(kind: JobKind) -> list[Job]:
    with session_scope() as session:
        return list(session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id)).all())


def job(job_id: int) -> Job:
    with session_scope() as session:
        found = session.get(Job, job_id)
        assert found is not None
        return found


def check_runs(gh: Github, sha: str, name: str) -> list[Any]:
    runs = gh.get_repo(REPO).get_commit(sha).get_check_runs(check_name=name, filter="all")
    return sorted(runs, key=lambda run: run.id)


def handled(labbot: Labbot, guid: str) -> dict[str, Any]:
    result: dict[str, Any] = wait_until(
        lambda: (
            (r := delivery_status(labbot.base_url, guid))
            and r["status"] in ("processed", "ignored", "failed")
            and r
        ),
        30,
    )
    return result


def say(labbot: Labbot, sim: SimulatorAdmin, number: int, user: str, body: str) -> Any:
    posted = sim.comment(REPO, number, user=user, body=body)
    assert handled(labbot, posted.delivery)["status"] == "processed"
    return posted


def ok_to_test(labbot: Labbot, sim: SimulatorAdmin, gh: Github, number: int) -> None:
    say(labbot, sim, number, TRIAGER, "/lab ok-to-test")
    wait_until(lambda: "needs-ok-to-test" not in labels(gh, number), 30)


def test_gpu_jobs_need_a_trusted_requester_then_an_ok_to_test(
    labbot: Labbot, sim: SimulatorAdmin, opened: tuple[Github, Any]
) -> None:
    gh, pull = opened
    # Someone without triage permission is told who may run it; nothing starts.
    say(labbot, sim, pull.number, OUTSIDER, "/lab generate")
    refusal = notice(gh, pull.number)
    assert "@mallory" in refusal
    assert "triage permission or higher" in refusal
    # A triager's label on a PR whose author is not trusted yet waits for an ok-to-test.
    labeled = sim.label(REPO, pull.number, user=TRIAGER, add=[GENERATE_LABEL])
    assert handled(labbot, labeled.delivery)["status"] == "processed"
    assert "/lab ok-to-test" in notice(gh, pull.number)
    assert jobs(JobKind.sdg) == []
    with session_scope() as session:
        audits = session.scalars(select(CommandAudit).order_by(CommandAudit.id)).all()
        assert [(a.user, a.action, a.outcome.value) for a in audits] == [
            (OUTSIDER, "command:generate", "refused"),
            (TRIAGER, f"label:{GENERATE_LABEL}", "refused"),
        ]

    ok_to_test(labbot, sim, gh, pull.number)
    with session_scope() as session:
        approval = session.scalars(select(TestApproval)).one()
        assert (approval.head_sha, approval.approved_by) == (pull.head_sha, TRIAGER)

    # Now it may start, but no worker serves the GPU queue here: it fails at once, saying so.
    say(labbot, sim, pull.number, TRIAGER, "/lab generate")
    (sdg,) = jobs(JobKind.sdg)
    assert sdg.state is JobState.failed
    assert "No worker serves the `sdg` queue" in (sdg.error or "")
    (run,) = check_runs(gh, pull.head_sha, "labbot/sdg")
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert "No worker serves the `sdg` queue" in run.output.summary
    assert "`/lab generate`" in run.output.summary
    assert "could not start" in notice(gh, pull.number)
    wait_until(lambda: "sdg-unsuccessful" in labels(gh, pull.number), 30)


def test_an_error_asking_github_for_permission_refuses(
    labbot: Labbot, sim: SimulatorAdmin, opened: tuple[Github, Any]
) -> None:
    gh, pull = opened
    sim.fault(r"/repos/.+/collaborators/.+/permission", 502, times=10)
    say(labbot, sim, pull.number, TRIAGER, "/lab ok-to-test")
    assert "did not answer" in notice(gh, pull.number)
    assert "needs-ok-to-test" in labels(gh, pull.number)
    with session_scope() as session:
        assert session.scalars(select(TestApproval)).all() == []


def resend(labbot: Labbot, sim: SimulatorAdmin, delivery_guid: str) -> str:
    """Deliver a webhook labbot already had again (as GitHub's redelivery does)."""
    sent = next(d for d in sim.deliveries(payload=True) if d["guid"] == delivery_guid)
    body = json.dumps(sent["payload"]).encode()
    guid = str(uuid.uuid4())
    response = httpx.post(
        f"{labbot.base_url}/webhooks/github",
        content=body,
        headers=webhook_headers(body, sent["event"], guid),
    )
    assert response.status_code == 202
    return guid


def start_gpu_worker(start_process: Callable[..., Process], labbot: Labbot) -> Process:
    worker = start_process(
        ["worker", "--queues", "sdg", "--concurrency", "1", "--name", "gpu@test"],
        labbot.env,
        "gpu-worker",
    )

    def registered() -> bool:
        with session_scope() as session:
            seen = session.get(WorkerSeen, "gpu@test")
            return seen is not None and "sdg" in seen.queues

    wait_until(registered, 60)
    return worker


def test_one_job_per_intent_its_check_run_updated_in_place_and_label_removal_cancels(
    labbot: Labbot,
    sim: SimulatorAdmin,
    opened: tuple[Github, Any],
    start_process: Callable[..., Process],
) -> None:
    gh, pull = opened
    ok_to_test(labbot, sim, gh, pull.number)
    gpu = start_gpu_worker(start_process, labbot)
    os.kill(gpu.proc.pid, signal.SIGSTOP)  # busy elsewhere: alive and registered, taking nothing
    try:
        labeled = sim.label(REPO, pull.number, user=TRIAGER, add=[GENERATE_LABEL])
        assert handled(labbot, labeled.delivery)["status"] == "processed"
        assert handled(labbot, resend(labbot, sim, labeled.delivery))["status"] == "processed"
        first = say(labbot, sim, pull.number, TRIAGER, "/lab generate")
        say(labbot, sim, pull.number, TRIAGER, "/lab generate")
        (queued,) = jobs(JobKind.sdg)
        assert queued.state is JobState.queued
        assert queued.trigger == f"label:{GENERATE_LABEL}"
        (run,) = check_runs(gh, pull.head_sha, "labbot/sdg")
        assert run.status == "queued"
        assert run.id == queued.check_run_id
        assert run.details_url.endswith(f"/jobs/{queued.id}")
        comment = gh.get_repo(REPO).get_issue(pull.number).get_comment(first.comment_id)
        assert {r.content for r in comment.get_reactions()} == {"eyes"}  # nothing new started

        # Taking the label off cancels what it started; the check run says so, in place.
        unlabeled = sim.label(REPO, pull.number, user=TRIAGER, remove=[GENERATE_LABEL])
        assert handled(labbot, unlabeled.delivery)["status"] == "processed"
        assert job(queued.id).state is JobState.cancelled
        (run,) = check_runs(gh, pull.head_sha, "labbot/sdg")
        assert (run.status, run.conclusion) == ("completed", "cancelled")
    finally:
        os.kill(gpu.proc.pid, signal.SIGCONT)

    # A new request makes a new job, which the worker runs: it moves queued -> running ->
    # its final state, with its own check run updated in place, and the worker's old message for
    # the cancelled job was dropped.
    started = say(labbot, sim, pull.number, TRIAGER, "/lab generate")
    comment = gh.get_repo(REPO).get_issue(pull.number).get_comment(started.comment_id)
    assert {r.content for r in comment.get_reactions()} == {"eyes", "rocket"}
    _, second = jobs(JobKind.sdg)
    done = wait_until(lambda: (j := job(second.id)).state in FINAL_JOB_STATES and j, 60)
    # No teacher is configured here: the job says so plainly, and who can fix it.
    assert done.state is JobState.failed
    assert done.error == messages.SDG_NO_TEACHER
    assert done.attempts == 1
    assert job(queued.id).state is JobState.cancelled
    runs = check_runs(gh, pull.head_sha, "labbot/sdg")
    assert len(runs) == 2
    assert runs[1].id == done.check_run_id
    assert (runs[1].status, runs[1].conclusion) == ("completed", "failure")
    assert "`/lab generate`" in runs[1].output.summary
    assert done.log_path is not None
    assert "No teacher model is configured" in Path(done.log_path).read_text()
    page = httpx.get(runs[1].details_url)
    assert page.status_code == 200
    assert "No teacher model is configured" in page.text  # the job page shows its log
    wait_until(lambda: "sdg-unsuccessful" in labels(gh, pull.number), 30)


def test_draft_and_closed_pull_requests_start_nothing(
    labbot: Labbot, sim: SimulatorAdmin, opened: tuple[Github, Any]
) -> None:
    gh, pull = opened
    ok_to_test(labbot, sim, gh, pull.number)
    sim.convert_to_draft(REPO, pull.number)
    say(labbot, sim, pull.number, TRIAGER, "/lab generate")
    assert "is a draft" in notice(gh, pull.number)
    assert jobs(JobKind.sdg) == []
    labeled = sim.label(REPO, pull.number, user=TRIAGER, add=[GENERATE_LABEL])
    assert handled(labbot, labeled.delivery)["status"] == "processed"
    assert jobs(JobKind.sdg) == []


def slow_github(sim: SimulatorAdmin, seconds: float, times: int = 200) -> None:
    """File contents come back slowly, so a triage job runs long enough to interrupt."""
    sim.fault(r"/repos/.+/git/blobs/.+", 0, mode="delay", delay_seconds=seconds, times=times)


def running_triage(before: int = 0) -> Job:
    def find() -> Job | None:
        for candidate in jobs(JobKind.triage):
            if candidate.id > before and candidate.state is JobState.running:
                if candidate.progress.get("stage") == "reading files":
                    return candidate
        return None

    found: Job = wait_until(find, 60)
    return found


def test_a_push_supersedes_the_running_job_and_needs_a_new_ok_to_test(
    labbot: Labbot, sim: SimulatorAdmin, opened: tuple[Github, Any]
) -> None:
    gh, pull = opened
    ok_to_test(labbot, sim, gh, pull.number)
    last = jobs(JobKind.triage)[-1].id
    slow_github(sim, 1.0)
    say(labbot, sim, pull.number, OUTSIDER, "/lab retest")
    old = running_triage(before=last)

    pushed = sim.push(REPO, pull.number, {"compositional_skills/extra/qna.yaml": "version: 3\n"})
    assert handled(labbot, pushed.delivery)["status"] == "processed"
    stopped = wait_until(lambda: (j := job(old.id)).state is JobState.superseded and j, 30)
    assert stopped.head_sha == pull.head_sha
    assert pushed.head_sha[:7] in (stopped.error or "")
    sim.clear_faults()

    # The approval was for the old head: the new one is gated again.
    completed_run(gh, pushed.head_sha)
    wait_until(lambda: "needs-ok-to-test" in labels(gh, pull.number), 30)
    say(labbot, sim, pull.number, TRIAGER, "/lab generate")
    assert "/lab ok-to-test" in notice(gh, pull.number)
    assert jobs(JobKind.sdg) == []
