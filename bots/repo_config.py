"""The repository's ``.github/labbot.yml``, read from a base commit (never from the PR's head:
a contributor must not be able to change the policy their own PR is judged by)."""

from __future__ import annotations

from app.github.port import GitHubPort
from bots.triage.config import CONFIG_PATH, RepoConfig, load_repo_config


def repo_config(github: GitHubPort, repo: str, base_sha: str) -> RepoConfig:
    config, _ = load_repo_config(github.get_file_content(repo, CONFIG_PATH, base_sha))
    return config
