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


def test_second_request_for_the_same_job_reports_the_existing_one(backend: Backend) -> None:
    repository_id, pull_id = make_pull_request()
    with session_scope() as session:
        first = submit_job(
            session,
            JobKind.sdg,
            repository_id=repository_id,
            pull_request_id=pull_id,
            head_sha="a" * 40,
            requested_by="triager",
        )
    with session_scope() as session:
        second = submit_job(
            session,
            JobKind.sdg,
            repository_id=repository_id,
            pull_request_id=pull_id,
            head_sha="a" * 40,
            requested_by="triager",
        )
    assert first.created
    assert not second.created
    assert second.job.id == first.job.id

    # Another kind, or a new head SHA, is a different job.
    with session_scope() as session:
        other_kind = submit_job(
            session,
            JobKind.train,
            repository_id=repository_id,
            pull_request_id=pull_id,
            head_sha="a" * 40,
        )
        new_head = submit_job(
            session,
            JobKind.sdg,
            repository_id=repository_id,
            pull_request_id=pull_id,
            head_sha="b" * 40,
        )
    assert other_kind.created
    assert new_head.created

    # Once the job has finished, the same request makes a fresh job.
    with session_scope() as session:
        session.get(Job, first.job.id).state = JobState.succeeded  # type: ignore[union-attr]
    with session_scope() as session:
        again = submit_job(
            session,
            JobKind.sdg,
            repository_id=repository_id,
            pull_request_id=pull_id,
            head_sha="a" * 40,
        )
    assert again.created
    assert again.job.id != first.job.id


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
