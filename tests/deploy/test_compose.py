"""docker-compose.yml: valid against the Compose Specification's schema (the copy vendored in
check-jsonschema), and shaped as the one-host deployment needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.manifests import COMPOSE_FILE, ENV_EXAMPLE, load_compose

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
LABBOT_SERVICES = {"migrate", "api", "worker", "beat", "worker-sdg", "worker-train", "worker-eval"}
GPU_SERVICES = {"teacher", "worker-sdg", "worker-train", "worker-eval"}


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def env_example() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return dict(pairs)


def gpu_devices(service: dict[str, Any]) -> list[str]:
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    found: list[str] = []
    for device in devices.get("devices", []):
        assert device["driver"] == "nvidia", device
        assert "gpu" in device["capabilities"], device
        found += device["device_ids"]
    return found


def test_the_compose_file_validates() -> None:
    result = validate(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda c: c["services"]["api"].update(restart_policy="always"),
            "restart_policy",
            id="unknown-service-key",
        ),
        pytest.param(
            lambda c: c["services"]["api"]["depends_on"]["redis"].update(condition="healthy"),
            "healthy",
            id="bad-depends-on-condition",
        ),
        pytest.param(
            lambda c: c["services"]["redis"]["healthcheck"].update(test=42),
            "42",
            id="healthcheck-test-not-a-command",
        ),
    ],
)
def test_a_broken_compose_file_fails(tmp_path: Path, mutate: Any, expected: str) -> None:
    compose = load_compose()
    mutate(compose)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(compose))
    result = validate(broken)
    assert result.returncode == 1, result.stdout
    assert expected in result.stdout + result.stderr


def test_the_services_and_their_profiles() -> None:
    services = load_compose()["services"]
    assert set(services) == {"postgres", "redis", "flower", "teacher", *LABBOT_SERVICES}
    for name, service in services.items():
        profiles = set(service.get("profiles", []))
        if name in GPU_SERVICES:
            assert profiles == {"gpu"}, name
        elif name == "flower":
            assert profiles == {"flower"}
        else:
            assert not profiles, f"{name} must start with a plain `docker compose up`"
    assert services["teacher"]["image"].startswith("vllm/vllm-openai:")


def test_healthchecks_and_start_order() -> None:
    services = load_compose()["services"]
    healthy = {name for name, service in services.items() if "healthcheck" in service}
    assert {"postgres", "redis", "api", "teacher", "flower"} <= healthy
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            condition = rule["condition"]
            if dependency == "migrate":
                assert condition == "service_completed_successfully", name
            else:
                # Waiting for "healthy" on a service without a healthcheck would never end.
                assert condition == "service_healthy", (name, dependency)
                assert dependency in healthy, (name, dependency)
    for name in LABBOT_SERVICES - {"migrate"}:
        assert "migrate" in services[name]["depends_on"], f"{name} must start after migrations"
    assert services["migrate"]["restart"] == "no"
    for name in ("worker-sdg", "worker-eval"):
        assert "teacher" in services[name]["depends_on"], name


def test_settings_come_from_committed_example_env_files() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        if name in {"redis", "teacher"}:
            continue  # no settings beyond the command line
        env_files = service["env_file"]
        env_files = [env_files] if isinstance(env_files, str) else env_files
        assert "environment" not in service, f"{name}: settings belong in its env file"
        for env_file in env_files:
            assert (REPO_ROOT / f"{env_file}.example").is_file(), f"{env_file}.example"
            ignored = subprocess.run(
                ["git", "check-ignore", "-q", env_file], cwd=REPO_ROOT, check=False
            )
            assert ignored.returncode == 0, f"{env_file} holds secrets: it must be ignored by git"
        if name in LABBOT_SERVICES:
            assert env_files == ["deploy/labbot.env"], name


def test_gpu_reservations_fit_the_settings() -> None:
    services = load_compose()["services"]
    devices = {name: gpu_devices(services[name]) for name in GPU_SERVICES}
    assert devices["worker-sdg"] == [], "the sdg worker uses the teacher's GPUs, not its own"
    assert all(devices[name] for name in ("teacher", "worker-train", "worker-eval"))
    used = [d for name in GPU_SERVICES for d in devices[name]]
    assert len(used) == len(set(used)), f"two services reserve the same GPU: {devices}"
    teacher = services["teacher"]["command"]
    tensor_parallel = int(teacher[teacher.index("--tensor-parallel-size") + 1])
    assert tensor_parallel == len(devices["teacher"])
    per_node = int(env_example()["LABBOT_TRAIN_PROCESSES_PER_NODE"])
    assert per_node == len(devices["worker-train"]), "one training process per reserved GPU"


def test_redis_keeps_every_message_and_data_persists() -> None:
    services = load_compose()["services"]
    command = services["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    artifacts = "artifacts:/var/lib/labbot/artifacts"
    for name in LABBOT_SERVICES:
        assert artifacts in services[name]["volumes"], f"{name} shares the job artifacts"
    assert env_example()["LABBOT_ARTIFACTS_DIR"] == artifacts.split(":")[1]


def test_the_api_runs_several_uvicorn_workers() -> None:
    command = load_compose()["services"]["api"]["command"]
    assert command[:2] == ["labbot", "serve"]
    assert "--workers" not in command
    assert int(env_example()["LABBOT_API_WORKERS"]) >= 2
