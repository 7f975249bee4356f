"""Typed settings: embedded defaults and refusing unsafe production configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Environment, Settings


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_embedded_default_is_sqlite_and_sqla_broker_with_absolute_paths(tmp_path: Path) -> None:
    settings = make(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/labbot.db"
    # Four slashes: an absolute path.
    assert settings.broker_url == f"sqla+sqlite:////{str(tmp_path.resolve()).lstrip('/')}/broker.db"
    assert settings.embedded_worker is True
    assert settings.environment is Environment.development
    settings.check_safe_to_start()  # development needs no secret


def test_production_servers_turn_the_embedded_worker_off() -> None:
    settings = make(
        database_url="postgresql+psycopg://labbot@db/labbot", broker_url="redis://redis:6379/0"
    )
    assert settings.embedded_worker is False


@pytest.mark.parametrize("secret", [None, "", "changeme", "<your webhook secret>", "REPLACE_ME"])
def test_production_refuses_missing_or_placeholder_webhook_secret(secret: str | None) -> None:
    settings = make(environment="production", webhook_secret=secret, github_token="ghs_real_token")
    with pytest.raises(ConfigError, match="LABBOT_WEBHOOK_SECRET"):
        settings.check_safe_to_start()


def test_production_needs_github_credentials() -> None:
    settings = make(environment="production", webhook_secret="a-real-secret-1234")
    with pytest.raises(ConfigError, match="LABBOT_GITHUB_APP_ID"):
        settings.check_safe_to_start()
    settings = make(environment="production", webhook_secret="a-real-secret-1234", github_app_id=1)
    with pytest.raises(ConfigError, match="LABBOT_GITHUB_PRIVATE_KEY"):
        settings.check_safe_to_start()


def test_production_with_real_values_starts() -> None:
    make(environment="production", webhook_secret="a-real-secret-1234", github_token="ghs_x" * 9)


def test_secrets_are_not_shown_in_repr() -> None:
    settings = make(webhook_secret="very-secret-value", github_token="ghs_token_value")
    assert "very-secret-value" not in repr(settings)
    assert "ghs_token_value" not in repr(settings)


def test_rotation_secrets_and_development_default() -> None:
    assert make(
        webhook_secret="new", webhook_secret_previous="old"
    ).effective_webhook_secrets() == [
        b"new",
        b"old",
    ]
    assert make().effective_webhook_secrets() == [b"labbot-development-secret"]
    assert make(environment="test").effective_webhook_secrets() == []
