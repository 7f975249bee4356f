"""Row 15: the broker is down when a delivery arrives. It is acknowledged within the deadline,
stays recorded as 'received', and the sweeper enqueues it once the broker is back."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Backend,
    Process,
    delivery_status,
    free_port,
    payload,
    wait_http_ok,
    wait_until,
    webhook_headers,
)

pytestmark = pytest.mark.e2e


class RedisServer:
    """A Redis server this test owns, so it can be stopped and started again."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
                ).stdout.strip()
                == b"PONG"
            ),
            10,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


def test_delivery_survives_a_broker_outage(
    postgres_backend: Backend, own_redis: RedisServer, start_process: Callable[..., Process]
) -> None:
    env = {
        **postgres_backend.env,
        "LABBOT_BROKER_URL": f"redis://127.0.0.1:{own_redis.port}/0",
        "LABBOT_SWEEP_INTERVAL_SECONDS": "0.5",
        "LABBOT_SWEEP_GRACE_SECONDS": "0.5",
    }
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    api = start_process(["serve", "--port", str(port), "--no-worker"], env, "api")
    wait_http_ok(f"{base_url}/healthz", process=api)
    start_process(["worker", "--concurrency", "1"], env, "worker")

    own_redis.stop()
    assert httpx.get(f"{base_url}/readyz", timeout=10).status_code == 503

    body = payload("pull_request", "opened.payload.json")
    guid = str(uuid.uuid4())
    started = time.monotonic()
    response = httpx.post(
        f"{base_url}/webhooks/github",
        content=body,
        headers=webhook_headers(body, "pull_request", guid),
        timeout=15,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert response.json()["status"] == "received"
    assert elapsed < 10, f"acknowledgement took {elapsed:.1f}s with the broker down"
    time.sleep(1.5)  # a few sweeper rounds while the broker is still down
    assert delivery_status(base_url, guid)["status"] == "received"

    own_redis.start()
    record = wait_until(
        lambda: (r := delivery_status(base_url, guid)) and r["status"] == "processed" and r, 60
    )
    assert record["attempts"] == 1
    assert httpx.get(f"{base_url}/readyz").status_code == 200
