"""/metrics: figures read from the database at scrape time, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from app.db.models import Job, JobKind, JobState
from app.db.session import session_scope
from app.metrics import JOB_BUCKETS


def _job(kind: JobKind, state: JobState, seconds: float | None) -> Job:
    started = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    return Job(
        kind=kind,
        state=state,
        started_at=started if seconds is not None else None,
        finished_at=started + timedelta(seconds=seconds) if seconds is not None else None,
    )


def _samples(client: Any, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_job_seconds_histogram_from_finished_jobs(client: Any) -> None:
    with session_scope() as session:
        session.add_all(
            [
                _job(JobKind.train, JobState.succeeded, 3600.0),
                _job(JobKind.train, JobState.succeeded, 7300.0),
                _job(JobKind.train, JobState.failed, 20.0),
                _job(JobKind.triage, JobState.succeeded, 2.5),
                # Not finished, or never started: no run time to report.
                _job(JobKind.sdg, JobState.running, None),
                _job(JobKind.sdg, JobState.cancelled, None),
            ]
        )
    samples = _samples(client, "labbot_job_seconds")

    def bucket(kind: str, state: str, le: float | str) -> float:
        labels = (("kind", kind), ("le", str(le)), ("state", state))
        return samples[("labbot_job_seconds_bucket", labels)]

    def plain(suffix: str, kind: str, state: str) -> float:
        return samples[(f"labbot_job_seconds_{suffix}", (("kind", kind), ("state", state)))]

    assert plain("count", "train", "succeeded") == 2
    assert abs(plain("sum", "train", "succeeded") - 10900.0) < 0.01
    assert bucket("train", "succeeded", 3600.0) == 1  # an hour exactly is within the bucket
    assert bucket("train", "succeeded", 7200.0) == 1
    assert bucket("train", "succeeded", 14400.0) == 2
    assert bucket("train", "succeeded", "+Inf") == 2
    assert plain("count", "train", "failed") == 1
    assert bucket("train", "failed", 15.0) == 0
    assert bucket("train", "failed", 60.0) == 1
    assert bucket("triage", "succeeded", 1.0) == 0
    assert bucket("triage", "succeeded", 5.0) == 1
    # Every bucket the histogram declares is reported, cumulative.
    counts = [bucket("train", "succeeded", b) for b in JOB_BUCKETS]
    assert counts == sorted(counts)
    assert not any(("kind", "sdg") in labels for _, labels in samples)
