"""Shared fixtures: real PostgreSQL and Redis on 127.0.0.1, the embedded SQLite default, signed
real webhook payloads, and labbot's API and worker as real processes for end-to-end tests.

PostgreSQL and Redis are required: when they cannot be reached the tests fail with a message
(never skip), because a skip would hide exactly the setup CI must prove."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app import signatures
from app.config import get_settings
from app.db.migrate import upgrade
from app.github.auth import reset_app_contexts
from app.simulator.admin_client import SimulatorAdmin
from tests.vllm_fixtures import (  # noqa: F401 - fixtures shared by every test directory
    formatted_teacher_dir,
    formatted_vllm_server,
    tiny_model_dir,
    vllm_server,
    vllm_venv,
)
from workers.celery_app import celery_app, configure_celery

pytest_plugins = ["tests.fixtures.simulator"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
WEBHOOKS = SHARED / "data" / "webhooks"
TEST_SECRET = "test-webhook-secret-7f3a9c"
POSTGRES_ADMIN_URL = os.environ.get(
    "LABBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("LABBOT_TEST_REDIS", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def payload(event: str, name: str) -> bytes:
    """A real payload example from ../shared/data/webhooks, as bytes."""
    return (WEBHOOKS / event / name).read_bytes()


def webhook_headers(
    body: bytes, event: str, guid: str | None = None, secret: str = TEST_SECRET
) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid or str(uuid.uuid4()),
        "X-Hub-Signature-256": signatures.sign(body, secret.encode()),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }


# --- servers --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server, dropped at the end of the session."""
    name = f"labbot_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {POSTGRES_ADMIN_URL}: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_URL}: {exc}")
    return REDIS_URL


# --- labbot configured on a backend --------------------------------------------------------


@dataclass
class Backend:
    name: str
    database_url: str
    broker_url: str
    env: dict[str, str]

    def truncate(self) -> None:
        from sqlalchemy import text

        from app.db.models import Base
        from app.db.session import engine_for

        with engine_for(self.database_url).begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(text(f"DELETE FROM {table.name}"))
        if self.broker_url.startswith("redis"):
            redis.Redis.from_url(self.broker_url).flushdb()
            return
        from workers.celery_app import ALL_QUEUES

        with celery_app.connection_for_write() as conn:
            for queue in ALL_QUEUES:
                try:
                    conn.default_channel.queue_purge(queue)
                except conn.channel_errors:
                    pass


def _apply_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith("LABBOT_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    configure_celery(celery_app, get_settings())


@pytest.fixture(scope="session")
def _sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="session")
def migrated_databases(postgres_url: str, _sqlite_dir: Path) -> dict[str, str]:
    sqlite_url = f"sqlite:///{_sqlite_dir / 'labbot.db'}"
    upgrade(sqlite_url)
    upgrade(postgres_url)
    return {"sqlite": sqlite_url, "postgres": postgres_url}


def backend_env(name: str, database_url: str, broker_url: str, data_dir: Path) -> dict[str, str]:
    return {
        "LABBOT_ENVIRONMENT": "test",
        "LABBOT_DATA_DIR": str(data_dir),
        "LABBOT_DATABASE_URL": database_url,
        "LABBOT_BROKER_URL": broker_url,
        "LABBOT_WEBHOOK_SECRET": TEST_SECRET,
        "LABBOT_GITHUB_TOKEN": "ghs_test_token_for_the_simulator_0000000000",
        "LABBOT_LOG_LEVEL": "INFO",
    }


@pytest.fixture(params=["sqlite", "postgres"])
def backend(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    migrated_databases: dict[str, str],
    _sqlite_dir: Path,
    redis_url: str,
) -> Iterator[Backend]:
    """labbot configured on the embedded default (SQLite + SQLAlchemy broker) or on
    production servers (PostgreSQL + Redis); each test using it runs on both."""
    name = request.param
    broker = f"sqla+sqlite:///{_sqlite_dir / 'broker.db'}" if name == "sqlite" else redis_url
    env = backend_env(name, migrated_databases[name], broker, _sqlite_dir)
    _apply_env(monkeypatch, env)
    chosen = Backend(name, migrated_databases[name], broker, env)
    chosen.truncate()
    yield chosen
    get_settings.cache_clear()


@pytest.fixture
def postgres_backend(
    monkeypatch: pytest.MonkeyPatch,
    migrated_databases: dict[str, str],
    _sqlite_dir: Path,
    redis_url: str,
) -> Iterator[Backend]:
    """Production servers only (for the tests with real worker processes)."""
    env = backend_env("postgres", migrated_databases["postgres"], redis_url, _sqlite_dir)
    _apply_env(monkeypatch, env)
    chosen = Backend("postgres", migrated_databases["postgres"], redis_url, env)
    chosen.truncate()
    yield chosen
    get_settings.cache_clear()


@pytest.fixture
def client(backend: Backend) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


# --- real processes ---------------------------------------------------------------------------


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(args: list[str], env: dict[str, str], name: str, cwd: Path | None = None) -> Process:
        log = tmp_path / f"{name}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOT_")}
        full_env.update(env)
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=full_env,
            cwd=cwd or REPO_ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        process = Process(proc, log)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def wait_http_ok(url: str, timeout: float = 30.0, process: Process | None = None) -> None:
    def ok() -> bool:
        if process is not None and process.proc.poll() is not None:
            raise AssertionError(f"process exited early:\n{process.output()[-3000:]}")
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ok, timeout)


def delivery_status(base_url: str, guid: str) -> dict[str, Any] | None:
    response = httpx.get(f"{base_url}/api/deliveries/{guid}", timeout=5)
    return response.json() if response.status_code == 200 else None


def json_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


# --- labbot as a GitHub App against the simulator ----------------------------------------------

APP_ID = 4242
READER_TOKEN = "ghp_test_reader_token_000000000000000000"


@dataclass
class Labbot:
    base_url: str
    env: dict[str, str]
    start_api: Callable[[], Process]
    worker: Process


@pytest.fixture
def labbot_env() -> dict[str, str]:
    """Settings a test module wants on top of the `labbot` fixture's (override it there)."""
    return {}


@pytest.fixture
def app_key(tmp_path: Path) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "app.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


@pytest.fixture
def labbot(
    postgres_backend: Backend,
    sim: SimulatorAdmin,
    app_key: tuple[Path, str],
    start_process: Callable[..., Process],
    monkeypatch: pytest.MonkeyPatch,
    labbot_env: dict[str, str],
) -> Iterator[Labbot]:
    private_key_path, public_key = app_key
    port = free_port()
    env = {
        **postgres_backend.env,
        "LABBOT_GITHUB_API_URL": sim.api_url,
        "LABBOT_GITHUB_APP_ID": str(APP_ID),
        "LABBOT_GITHUB_APP_SLUG": "labbot",
        "LABBOT_GITHUB_PRIVATE_KEY_PATH": str(private_key_path),
        "LABBOT_GITHUB_TOKEN": "",
        "LABBOT_GITHUB_WRITE_INTERVAL_SECONDS": "0",
        "LABBOT_REDELIVER_INTERVAL_SECONDS": "0",
        "LABBOT_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **labbot_env,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    reset_app_contexts()
    sim.configure(
        webhook_url=f"http://127.0.0.1:{port}/webhooks/github",
        webhook_secret=TEST_SECRET,
        app={"id": APP_ID, "slug": "labbot", "public_key_pem": public_key},
        plain_token=READER_TOKEN,  # for tests to read back what labbot posted
    )
    base_url = f"http://127.0.0.1:{port}"

    def start_api() -> Process:
        api = start_process(["serve", "--port", str(port), "--no-worker"], env, "api")
        wait_http_ok(f"{base_url}/healthz", process=api)
        return api

    worker = start_process(["worker", "--concurrency", "2"], env, "worker")
    yield Labbot(base_url, env, start_api, worker)
    reset_app_contexts()
