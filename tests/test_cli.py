"""The `labbot` command: help on every command, the two-command embedded default, and the
refusal to start in production with unsafe settings."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app import signatures
from app.config import DEVELOPMENT_WEBHOOK_SECRET
from tests.conftest import (
    REPO_ROOT,
    Process,
    delivery_status,
    free_port,
    payload,
    wait_http_ok,
    wait_until,
    webhook_headers,
)


def labbot(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=cwd or REPO_ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [[], ["serve"], ["worker"], ["db"], ["db", "upgrade"], ["verify-app"], ["dev"]],
)
def test_every_command_has_useful_help(command: list[str]) -> None:
    result = labbot(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert len(result.stdout.splitlines()) >= 4


def test_worker_rejects_unknown_queue() -> None:
    result = labbot("worker", "--queues", "events,nonsense")
    assert result.returncode == 2
    assert "nonsense" in result.stderr


def test_production_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    result = labbot("serve", env={"LABBOT_ENVIRONMENT": "production"}, cwd=tmp_path)
    assert result.returncode != 0
    assert "LABBOT_WEBHOOK_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_serve_on_a_fresh_directory_processes_a_signed_real_payload(
    tmp_path: Path, start_process: Callable[..., Process]
) -> None:
    """The quick start: no configuration, SQLite under ./var, a worker beside the API."""
    port = free_port()
    api = start_process(["serve", "--port", str(port)], {}, "serve", cwd=tmp_path)
    base_url = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{base_url}/readyz", timeout=60, process=api)
    assert (tmp_path / "var" / "labbot.db").exists()

    body = payload("pull_request", "opened.payload.json")
    guid = str(uuid.uuid4())
    headers = webhook_headers(body, "pull_request", guid, secret=DEVELOPMENT_WEBHOOK_SECRET)
    response = httpx.post(f"{base_url}/webhooks/github", content=body, headers=headers)
    assert response.status_code == 202
    record = wait_until(
        lambda: (r := delivery_status(base_url, guid)) and r["status"] == "processed" and r, 60
    )
    assert record["attempts"] == 1
    assert signatures.verify(
        body, headers["X-Hub-Signature-256"], [DEVELOPMENT_WEBHOOK_SECRET.encode()]
    )
    page = httpx.get(base_url + "/").text
    assert guid in page

    # Stopping the service stops its worker too: nothing is left running.
    api.stop()
    wait_until(lambda: not _workers_in(tmp_path), 20)


def _workers_in(directory: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(proc, "cwd").resolve() == directory.resolve():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found
