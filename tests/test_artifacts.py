"""The artifact store: the local directory by default, S3-compatible storage when configured
(a real S3 API server, moto's, on loopback)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from github import Auth, Github
from sqlalchemy import select

from app.artifacts import JOB_LOG, LocalArtifacts, S3Artifacts
from app.config import Settings
from app.db.models import Job, JobKind, JobState
from app.db.session import session_scope
from app.simulator.admin_client import SimulatorAdmin
from tests.conftest import READER_TOKEN, Labbot, free_port, wait_http_ok, wait_until
from tests.test_triage_e2e import PR_1412, REPO, completed_run, files_of

BUCKET = "labbot-artifacts"
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "labbot-test",
    "AWS_SECRET_ACCESS_KEY": "labbot-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "s3.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{endpoint}/moto-api/", timeout=30)
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def s3_settings(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Settings]:
    for key, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    yield Settings(
        data_dir=tmp_path,
        artifacts_s3_url=f"s3://{BUCKET}/labbot",
        artifacts_s3_endpoint_url=s3_endpoint,
    )
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)


def _job_files(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / JOB_LOG).write_text("line 1\nline 2\nthe last line\n")
    (root / "data" / "skills.jsonl").write_bytes(b'{"messages": []}\n' * 3)
    return root


def test_s3_store_round_trip(s3_settings: Settings, tmp_path: Path) -> None:
    store = S3Artifacts(s3_settings)
    local = _job_files(tmp_path / "work")

    assert store.publish(7, local) == 2
    assert store.names(7) == ["data/skills.jsonl", JOB_LOG]
    assert store.names(8) == []
    assert store.read(7, JOB_LOG, tail_bytes=14) == b"the last line\n"
    assert store.read(7, "data/skills.jsonl") == b'{"messages": []}\n' * 3
    assert store.read(7, "missing.txt") is None

    fetched = store.download(7, tmp_path / "elsewhere")
    assert (fetched / "data" / "skills.jsonl").read_bytes() == b'{"messages": []}\n' * 3
    # Objects live under the configured prefix.
    keys = [
        o["Key"]
        for o in boto3.client(
            "s3", endpoint_url=s3_settings.artifacts_s3_endpoint_url
        ).list_objects_v2(Bucket=BUCKET)["Contents"]
    ]
    assert all(key.startswith("labbot/jobs/7/") for key in keys)


def test_local_store_reads_only_inside_the_job_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = LocalArtifacts(settings)
    _job_files(settings.artifacts_dir / "jobs" / "3")
    (settings.artifacts_dir / "jobs" / "4").mkdir()
    (settings.artifacts_dir / "jobs" / "4" / "secret.txt").write_text("other job")

    assert store.names(3) == ["data/skills.jsonl", JOB_LOG]
    assert store.read(3, JOB_LOG, tail_bytes=5) == b"line\n"
    assert store.read(3, "../4/secret.txt") is None
    assert store.download(3, tmp_path / "unused") == settings.artifacts_dir / "jobs" / "3"


def test_bad_s3_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        S3Artifacts(Settings(data_dir=tmp_path, artifacts_s3_url="https://bucket"))


@pytest.fixture
def labbot_env(s3_settings: Settings) -> dict[str, str]:
    return {
        **S3_CREDENTIALS,
        "LABBOT_ARTIFACTS_S3_URL": s3_settings.artifacts_s3_url,
        "LABBOT_ARTIFACTS_S3_ENDPOINT_URL": s3_settings.artifacts_s3_endpoint_url,
    }


@pytest.mark.e2e
def test_a_job_log_is_uploaded_and_the_dashboard_reads_it_from_s3(
    labbot: Labbot, sim: SimulatorAdmin, s3_settings: Settings
) -> None:
    api = labbot.start_api()
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
    opened = sim.open_pr(REPO, author="contributor", title="racial bias", files=files_of(PR_1412))
    completed_run(gh, opened.head_sha)

    def finished_triage() -> Any:
        with session_scope() as session:
            return session.scalars(
                select(Job).where(Job.kind == JobKind.triage, Job.state == JobState.succeeded)
            ).first()

    job = wait_until(finished_triage, 30)
    store = S3Artifacts(s3_settings)
    uploaded = wait_until(lambda: store.read(job.id, JOB_LOG), 30)
    assert f"job {job.id} (triage) started".encode() in uploaded

    # The API machine does not have the worker's files: it reads the log from the store.
    Path(job.log_path).unlink()
    page = httpx.get(f"{labbot.base_url}/jobs/{job.id}", timeout=10)
    assert page.status_code == 200
    assert f"job {job.id} (triage) started" in page.text
    api.stop()
