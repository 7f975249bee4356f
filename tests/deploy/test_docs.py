"""docs/deploy.md walks through both paths, and what it names exists: files, settings, compose
services and Kubernetes objects."""

from __future__ import annotations

import re
import subprocess

from app.config import Settings
from tests.conftest import REPO_ROOT
from tests.deploy.manifests import every_manifest, labbot_images, load_compose, rendered_base

GUIDE = REPO_ROOT / "docs" / "deploy.md"


def test_the_readme_links_the_guide() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "](docs/deploy.md)" in readme


def test_the_guide_covers_what_the_issue_asks() -> None:
    headings = re.findall(r"^## (.+)$", GUIDE.read_text(), re.M)
    assert headings == [
        "One host with Docker Compose",
        "A cluster with Kubernetes",
        "Sizing",
        "Adding a GPU node",
        "Upgrades and migrations",
        "Backup of PostgreSQL",
        "Secrets and their rotation",
    ]


def test_what_the_guide_names_exists() -> None:
    text = GUIDE.read_text()
    for path in set(re.findall(r"`((?:deploy|docs)/[\w./-]+|docker-compose\.yml)`", text)):
        # Or a file the operator makes (keys, filled-in settings), which git must ignore.
        made = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT, check=False)
        assert (REPO_ROOT / path).exists() or made.returncode == 0, path
    for link in re.findall(r"\]\((\.\./[^)#]+)\)", text):
        assert (GUIDE.parent / link).resolve().exists(), link
    settings = {f"LABBOT_{name.upper()}" for name in Settings.model_fields}
    named = set(re.findall(r"\bLABBOT_[A-Z0-9_]+\b", text))
    assert named
    assert not named - settings, named - settings
    services = set(load_compose()["services"])
    for command in re.findall(r"docker compose [^\n`]*", text):
        words = command.split("#")[0].split()
        if words[2] in {"up", "stop", "logs", "exec"}:
            targets = [w for w in words[3:] if not w.startswith("-") and w != "gpu"]
            if words[2] == "exec":
                targets = targets[:1]
            assert set(targets) <= services, command
    objects = {f"{doc['kind'].lower()}/{doc['metadata']['name']}" for _, doc in rendered_base()}
    for reference in set(re.findall(r"\b(deployment|statefulset)/(labbot-[\w-]+)", text)):
        assert "/".join(reference) in objects, reference
    names = {doc["metadata"]["name"] for _, doc in every_manifest()} | set(labbot_images())
    for name in set(re.findall(r"`(labbot-[a-z-]+)`", text)):
        assert name in names, name
