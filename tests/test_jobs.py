"""Row 13: the same intent arriving under different GUIDs makes one job per
(repository, PR, head SHA, kind), on both databases and across concurrent sessions."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from app.db.models import Installation, Job, JobKind, JobState, PullRequest, Repository
from app.db.session import new_session, session_scope
from app.jobs import submit_job
from tests.conftest import Backend


def make_pull_request() -> tuple[int, int]:
    with session_scope() as session:
        session.add(Installation(id=7, account_login="org"))
        session.add(Repository(id=70, full_name="org/taxonomy", installation_id=7))
        session.flush()
        pull = PullRequest(repository_id=70, number=5, author="alice", head_sha="a" * 40)
        session.add(pull)
        session.flush()
        return 70, pull.id


def submit(kind: JobKind, head_sha: str) -> tuple[int, bool]:
    """Submit in a unit of work of its own; (job id, created)."""
    with session_scope() as session:
        pull = session.scalars(select(PullRequest)).one()
        submitted = submit_job(
            session,
            kind,
            repository_id=pull.repository_id,
            pull_request_id=pull.id,
            head_sha=head_sha,
            requested_by="triager",
        )
        return submitted.job.id, submitted.created


def test_second_request_for_the_same_job_reports_the_existing_one(backend: Backend) -> None:
    make_pull_request()
    first_id, first_created = submit(JobKind.sdg, "a" * 40)
    second_id, second_created = submit(JobKind.sdg, "a" * 40)
    assert first_created
    assert not second_created
    assert second_id == first_id

    # Another kind, or a new head SHA, is a different job.
    assert submit(JobKind.train, "a" * 40)[1]
    assert submit(JobKind.sdg, "b" * 40)[1]

    # Once the job has finished, the same request makes a fresh job.
    with session_scope() as session:
        session.get(Job, first_id).state = JobState.succeeded  # type: ignore[union-attr]
    again_id, again_created = submit(JobKind.sdg, "a" * 40)
    assert again_created
    assert again_id != first_id


def test_concurrent_submissions_make_one_job(backend: Backend) -> None:
    repository_id, pull_id = make_pull_request()
    barrier = threading.Barrier(4)
    results: list[bool] = []
    errors: list[BaseException] = []

    def submit() -> None:
        session = new_session()
        try:
            barrier.wait()
            outcome = submit_job(
                session,
                JobKind.bench,
                repository_id=repository_id,
                pull_request_id=pull_id,
                head_sha="c" * 40,
            )
            session.commit()
            results.append(outcome.created)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # SQLite serialises writers, so a loser may also see "database is locked" only as a wait.
    assert not errors, errors
    assert results.count(True) == 1
    with session_scope() as session:
        count = session.scalar(
            select(func.count()).select_from(Job).where(Job.kind == JobKind.bench)
        )
    assert count == 1
