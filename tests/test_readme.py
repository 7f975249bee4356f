"""The README documents every setting and the quick start the CI runs."""

from __future__ import annotations

from app.config import Settings
from tests.conftest import REPO_ROOT


def test_every_setting_is_documented() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [
        f"LABBOT_{name.upper()}"
        for name in Settings.model_fields
        if f"LABBOT_{name.upper()}" not in readme
    ]
    assert not missing, f"undocumented settings: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    assert "make serve" in readme
    assert "make test" in ci
