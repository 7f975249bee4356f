"""GitHub access for labbot. Handlers depend on ``app.github.port.GitHubPort``; the production
adapter and its factories are loaded on first use, so importing the port stays cheap."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.github.client import PyGithubPort, RetryPolicy
    from app.github.factory import github_for_installation, github_for_token, github_port
    from app.github.verify import VerifyReport, verify_app

__all__ = [
    "PyGithubPort",
    "RetryPolicy",
    "VerifyReport",
    "github_for_installation",
    "github_for_token",
    "github_port",
    "verify_app",
]

_HOMES = {
    "PyGithubPort": "app.github.client",
    "RetryPolicy": "app.github.client",
    "github_for_installation": "app.github.factory",
    "github_for_token": "app.github.factory",
    "github_port": "app.github.factory",
    "VerifyReport": "app.github.verify",
    "verify_app": "app.github.verify",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'app.github' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
