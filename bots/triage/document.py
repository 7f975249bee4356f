"""The knowledge document reference: what labbot will later fetch, so it must point at a public
GitHub repository, at an exact commit, at files inside that repository."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bots.triage import messages
from bots.triage.findings import Finding, make
from bots.triage.yamlload import Loaded

# https://github.com/OWNER/REPO with an optional .git or trailing slash; GitHub's own rules for
# owner (39 characters, letters, digits, hyphens) and repository names.
_GITHUB_REPO = re.compile(
    r"^https://github\.com/[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}?(?:\.git)?/?$"
)
_SHA = re.compile(r"^[0-9a-f]{40}$")


def check_document(loaded: Loaded, data: Mapping[Any, Any]) -> list[Finding]:
    document = data.get("document")
    if not isinstance(document, Mapping):
        return []  # missing or mistyped: the schema reports it
    findings: list[Finding] = []
    repo = document.get("repo")
    if isinstance(repo, str):
        name = repo.strip()
        if not _GITHUB_REPO.match(name) or name.rstrip("/").removesuffix(".git").endswith(
            ("/.", "/..")
        ):
            findings.append(
                make("document/repo", *loaded.position(("document", "repo")), repo=repo)
            )
    commit = document.get("commit")
    if isinstance(commit, str) and not _SHA.match(commit.strip()):
        findings.append(
            make("document/commit", *loaded.position(("document", "commit")), commit=commit)
        )
    patterns = document.get("patterns")
    if isinstance(patterns, list):
        if not patterns:
            findings.append(
                make("document/no-patterns", *loaded.position(("document", "patterns")))
            )
        for index, pattern in enumerate(patterns):
            if not isinstance(pattern, str):
                continue
            problem = _pattern_problem(pattern)
            if problem:
                findings.append(
                    make(
                        "document/pattern",
                        *loaded.position(("document", "patterns", index)),
                        pattern=pattern,
                        problem=problem,
                    )
                )
    return findings


def _pattern_problem(pattern: str) -> str | None:
    text = pattern.strip()
    if not text:
        return messages.PATTERN_EMPTY
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        return messages.PATTERN_URL
    if text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", text):
        return messages.PATTERN_ABSOLUTE
    if ".." in re.split(r"[\\/]", text):
        return messages.PATTERN_PARENT
    return None
