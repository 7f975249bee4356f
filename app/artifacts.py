"""Job artifacts. A job works in a local directory (``artifacts_dir/jobs/<id>``): its log, and
whatever its stage writes (datasets, checkpoints, reports). By default that directory is the
store. With ``LABBOT_ARTIFACTS_S3_URL`` set, the worker uploads the directory to S3-compatible
storage when the job ends, and the dashboard and later stages on other machines read it from
there. Credentials come from boto3's usual chain (environment, profile, instance role)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from app.config import Settings

log = logging.getLogger(__name__)
JOB_LOG = "job.log"


def job_dir(settings: Settings, job_id: int) -> Path:
    """Where a job works on this machine."""
    return settings.artifacts_dir / "jobs" / str(job_id)


class ArtifactStore(Protocol):
    def publish(self, job_id: int, local_dir: Path) -> int:
        """Store every file under ``local_dir`` as the job's artifacts; returns the count."""
        ...

    def names(self, job_id: int) -> list[str]:
        """The job's artifact paths, relative to its directory, sorted."""
        ...

    def read(self, job_id: int, name: str, tail_bytes: int | None = None) -> bytes | None:
        """One artifact (or its last ``tail_bytes``); None when it does not exist."""
        ...

    def download(self, job_id: int, dest: Path) -> Path:
        """The job's artifacts as a local directory (``dest`` unless already local)."""
        ...


class LocalArtifacts:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _dir(self, job_id: int) -> Path:
        return job_dir(self.settings, job_id)

    def publish(self, job_id: int, local_dir: Path) -> int:
        # The working directory is the store: nothing to copy.
        return sum(1 for path in local_dir.rglob("*") if path.is_file())

    def names(self, job_id: int) -> list[str]:
        root = self._dir(job_id)
        if not root.is_dir():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def read(self, job_id: int, name: str, tail_bytes: int | None = None) -> bytes | None:
        root = self._dir(job_id).resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        with path.open("rb") as handle:
            if tail_bytes is not None:
                handle.seek(max(path.stat().st_size - tail_bytes, 0))
            return handle.read()

    def download(self, job_id: int, dest: Path) -> Path:
        return self._dir(job_id)


class S3Artifacts:
    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        parts = urlsplit(settings.artifacts_s3_url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("LABBOT_ARTIFACTS_S3_URL must look like s3://bucket/prefix")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.artifacts_s3_endpoint_url or None,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )

    def _key(self, job_id: int, name: str = "") -> str:
        return "/".join(part for part in (self.prefix, "jobs", str(job_id), name) if part)

    def publish(self, job_id: int, local_dir: Path) -> int:
        count = 0
        for path in sorted(local_dir.rglob("*")):
            if path.is_file() and not path.is_symlink():
                self.client.upload_file(
                    str(path), self.bucket, self._key(job_id, str(path.relative_to(local_dir)))
                )
                count += 1
        return count

    def names(self, job_id: int) -> list[str]:
        prefix = self._key(job_id) + "/"
        names: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            names += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
        return sorted(names)

    def read(self, job_id: int, name: str, tail_bytes: int | None = None) -> bytes | None:
        from botocore.exceptions import ClientError

        extra = {"Range": f"bytes=-{tail_bytes}"} if tail_bytes else {}
        try:
            answer = self.client.get_object(
                Bucket=self.bucket, Key=self._key(job_id, name), **extra
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        body: bytes = answer["Body"].read()
        return body

    def download(self, job_id: int, dest: Path) -> Path:
        for name in self.names(job_id):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, self._key(job_id, name), str(target))
        return dest


def artifact_store(settings: Settings) -> ArtifactStore:
    if settings.artifacts_s3_url:
        return S3Artifacts(settings)
    return LocalArtifacts(settings)


def read_artifact(
    settings: Settings,
    job_id: int,
    artifacts_path: str | None,
    name: str,
    tail_bytes: int | None = None,
) -> bytes | None:
    """One of a job's artifacts for a page: from this machine when the job ran here, else
    from the store it was uploaded to (None when neither has it or the store is down)."""
    local = Path(artifacts_path) / name if artifacts_path else None
    if local is not None and local.is_file():
        with local.open("rb") as handle:
            if tail_bytes is not None:
                handle.seek(max(local.stat().st_size - tail_bytes, 0))
            return handle.read()
    try:
        return artifact_store(settings).read(job_id, name, tail_bytes)
    except Exception as exc:
        log.warning("job %s: %s not read from the artifact store: %s", job_id, name, exc)
        return None
