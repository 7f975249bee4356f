"""The settings the deployment files give labbot exist in app/config.py, parse, hold no secret,
and, once the operator fills in the blanks, pass labbot's start-up checks."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from app.config import ConfigError, Settings
from tests.conftest import REPO_ROOT
from tests.deploy.manifests import (
    ENV_EXAMPLE,
    SECRETS_EXAMPLE,
    find,
    iter_env_names,
    load_documents,
    rendered_base,
    workloads,
)

SETTINGS = {f"LABBOT_{name.upper()}": name for name in Settings.model_fields}
SECRET_SETTINGS = {
    f"LABBOT_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if SecretStr in typing.get_args(field.annotation) or field.annotation is SecretStr
}
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def env_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """(set variables, variables shown commented out) of an env file."""
    values: dict[str, str] = {}
    commented: set[str] = set()
    for line in path.read_text().splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match:
            if match.group(1):
                commented.add(match.group(2))
            else:
                values[match.group(2)] = match.group(3)
    return values, commented


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    import os

    for key in [k for k in os.environ if k.startswith("LABBOT_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_secret_settings_are_known() -> None:
    # The checks below rely on this set; it must hold the secrets labbot has.
    assert {"LABBOT_WEBHOOK_SECRET", "LABBOT_GITHUB_PRIVATE_KEY"} <= SECRET_SETTINGS
    assert "LABBOT_DATABASE_URL" not in SECRET_SETTINGS


def test_the_env_example_names_only_real_settings_and_no_secret() -> None:
    values, commented = env_file(ENV_EXAMPLE)
    assert not (set(values) | commented) - set(SETTINGS), "settings app/config.py lacks"
    for key in SECRET_SETTINGS & set(values):
        assert values[key] == "", f"{key} has a value in a committed file"
    assert "LABBOT_WEBHOOK_SECRET_PREVIOUS" in commented, "the rotation setting is shown"
    password = re.search(r"://[^:/]+:([^@]*)@", values["LABBOT_DATABASE_URL"])
    assert password, values["LABBOT_DATABASE_URL"]
    assert password.group(1) == "", "no database password in a committed file"


def test_the_env_example_filled_in_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values, _ = env_file(ENV_EXAMPLE)
    empty = {key for key, value in values.items() if value == ""}
    assert empty == {"LABBOT_GITHUB_APP_ID", "LABBOT_WEBHOOK_SECRET"}
    key_file = tmp_path / "github-app.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n")
    filled = {
        **values,
        "LABBOT_GITHUB_APP_ID": "123456",
        "LABBOT_WEBHOOK_SECRET": "0f9c2e4b7a1d3c5e8f60718293a4b5c6",
        "LABBOT_GITHUB_PRIVATE_KEY_PATH": str(key_file),
    }
    settings = settings_from(filled, monkeypatch)
    settings.check_safe_to_start()
    assert settings.sdg_teacher_urls == ["http://teacher:8000/v1"]
    # As committed, labbot refuses to start and names what is missing.
    with pytest.raises(ConfigError, match="LABBOT_WEBHOOK_SECRET"):
        settings_from(
            {k: v for k, v in filled.items() if k != "LABBOT_WEBHOOK_SECRET"}, monkeypatch
        ).check_safe_to_start()


@pytest.mark.parametrize("name", ["postgres.env.example", "flower.env.example"])
def test_the_other_env_examples_hold_no_password(name: str) -> None:
    values, _ = env_file(REPO_ROOT / "deploy" / name)
    for key, value in values.items():
        if any(word in key for word in ("PASSWORD", "AUTH", "SECRET")):
            assert value == "", f"{name}: {key}"


def kubernetes_settings() -> tuple[dict[str, str], dict[str, str]]:
    config = find(rendered_base(), "ConfigMap", "labbot-config")["data"]
    secrets = {d["metadata"]["name"]: d for d in load_documents(SECRETS_EXAMPLE)}
    return config, secrets["labbot-secrets"]["stringData"]


def test_kubernetes_settings_are_real_and_secrets_stay_in_the_secret() -> None:
    config, secret = kubernetes_settings()
    assert not set(config) - set(SETTINGS)
    assert not set(secret) - set(SETTINGS)
    assert not set(config) & SECRET_SETTINGS, "secret settings belong in labbot-secrets"
    assert "LABBOT_DATABASE_URL" in secret, "the database URL holds its password"
    for value in secret.values():
        assert "<" in value, f"{value!r}: the example Secret holds placeholders only"
    named_in_pods: set[str] = set()
    for w in workloads():
        for container in w.containers():
            named_in_pods |= {n for n in iter_env_names(container) if n.startswith("LABBOT_")}
    assert named_in_pods
    assert not named_in_pods - set(SETTINGS)


def test_kubernetes_settings_parse_and_placeholders_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config, secret = kubernetes_settings()
    key_file = tmp_path / "private-key.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n")
    real: dict[str, Any] = {
        "LABBOT_DATABASE_URL": "postgresql+psycopg://labbot:pw@db:5432/labbot",
        "LABBOT_GITHUB_APP_ID": "123456",
        "LABBOT_WEBHOOK_SECRET": "0f9c2e4b7a1d3c5e8f60718293a4b5c6",
    }
    assert set(real) == set(secret)
    env = {**config, **real, "LABBOT_GITHUB_PRIVATE_KEY_PATH": str(key_file)}
    settings = settings_from(env, monkeypatch)
    settings.check_safe_to_start()
    assert len(settings.sdg_teacher_urls) >= 2
    assert settings.train_processes_per_node >= 1
    # Applied as committed (placeholders), the example Secret keeps labbot from starting.
    placeholder_secret = {k: v for k, v in secret.items() if k != "LABBOT_GITHUB_APP_ID"}
    placeholders = {**env, **placeholder_secret}
    with pytest.raises(ConfigError, match="LABBOT_WEBHOOK_SECRET"):
        settings_from(placeholders, monkeypatch).check_safe_to_start()
