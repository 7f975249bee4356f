"""Running the engine over the labelled contributor corpus (``shared/data/taxonomy``) and
comparing its verdicts with the upstream CI's, for the tests and the benchmark.

The corpus holds, per pull request, the files it added or modified (``prs/<N>/<path>``), a
manifest with every changed path and its git mode (symlinks, submodules and binaries were not
copied), and ``prs_labels.jsonl``: the upstream validator's verdict per yaml-ish file.
``ci_verdict`` is that verdict plus the taxonomy CI rule "version > 1 needs a non-empty
attribution.txt". It knows nothing of labbot's policy rules, so verdicts are compared twice:
with :func:`bots.triage.config.upstream_compatible` (same rule set: must agree) and with the
default policy (every disagreement must fall in a category below).
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bots.triage.config import RepoConfig, upstream_compatible
from bots.triage.engine import triage_files
from bots.triage.findings import FileMode, FileResult, InputFile, Severity, SiblingLookup

# Where labbot is deliberately stricter than upstream CI, in the order a file is attributed to
# one of them when several apply: (category, the rules that put a file in it, why).
CATEGORIES: tuple[tuple[str, frozenset[str], str], ...] = (
    (
        "pr-size-cap",
        frozenset({"layout/too-many-files", "layout/pr-too-large", "layout/file-too-large"}),
        "file beyond the per-PR file cap (3,000, GitHub's listing limit) or the size caps; "
        "not parsed",
    ),
    (
        "refused-root",
        frozenset({"layout/root"}),
        "qna.yaml outside compositional_skills/ and knowledge/ (foundational_skills/, other "
        "roots, repository root); upstream validates it wherever it is",
    ),
    (
        "min-examples",
        frozenset({"examples/too-few"}),
        "fewer seed examples than the policy minimum (3 per skill; 5 contexts x 3 Q&A for "
        "knowledge) while the schema of the declared version allows fewer (v1: 1)",
    ),
    (
        "document-reference",
        frozenset({"document/repo", "document/commit", "document/pattern"}),
        "knowledge document.repo not an https://github.com repository, commit not a full SHA, "
        "or a pattern leaving the repository",
    ),
    (
        "placeholder-text",
        frozenset({"examples/empty"}),
        'question, answer or context that is a placeholder ("test", "TBD", "...")',
    ),
    (
        "duplicate-key",
        frozenset({"yaml/duplicate-key"}),
        "duplicate mapping key in a version 1 file (upstream lints only version > 1; PyYAML "
        "keeps the last value silently)",
    ),
    (
        "personal-data",
        frozenset(
            {
                "pii/credit-card",
                "pii/us-ssn",
                "pii/iban-code",
                "pii/email-address",
                "pii/phone-number",
                "pii/ip-address",
                "pii/street-address",
            }
        ),
        "a checksummed identifier (card, SSN, IBAN) in the examples",
    ),
    (
        "empty-file",
        frozenset({"yaml/empty"}),
        "empty qna.yaml: an error here, a warning upstream",
    ),
)
UNEXPLAINED = "unexplained"

# attribution.txt files that exist on the base branch are not in the corpus; the labels say
# which. The engine only needs them present and non-empty.
BASE_ATTRIBUTION = b"Title of work: (on the base branch, not part of the pull request)\n"


@dataclass(frozen=True)
class PullRequest:
    number: str
    files: list[InputFile]
    lookup: SiblingLookup


def load_labels(taxonomy: Path) -> dict[str, dict[str, Any]]:
    """``prs_labels.jsonl`` keyed by ``<pr>/<path>``."""
    with open(taxonomy / "prs_labels.jsonl", encoding="utf-8") as handle:
        return {row["path"]: row for row in map(json.loads, handle)}


def pull_requests(taxonomy: Path, labels: dict[str, dict[str, Any]]) -> Iterator[PullRequest]:
    """Each PR of the corpus as the engine's input: copied files with their bytes, the other
    changed paths with their git mode and no content (as the GitHub handler would see them)."""
    manifest = json.loads((taxonomy / "prs_manifest.json").read_text(encoding="utf-8"))
    entries = {str(pr["pr"]): pr["files"] for pr in manifest["prs"]}
    base = taxonomy / "prs"
    for folder in sorted(base.iterdir(), key=lambda p: int(p.name)):
        number = folder.name
        files: list[InputFile] = []
        copied: set[str] = set()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            copied.add(rel)
            files.append(InputFile(rel, path.read_bytes()))
        for entry in entries.get(number, []):
            if entry["path"] in copied:
                continue
            if entry["status"] == "D":
                files.append(InputFile(entry["path"], None, deleted=True))
            else:
                files.append(
                    InputFile(
                        entry["path"], None, FileMode.parse(entry["mode"]), size=entry["size"]
                    )
                )
        in_base = {
            posixpath.dirname(key.split("/", 1)[1])
            for key, row in labels.items()
            if key.startswith(number + "/") and row.get("attribution") == "in_base"
        }
        yield PullRequest(number, files, _base_lookup(in_base))


def _base_lookup(folders: set[str]) -> SiblingLookup:
    def lookup(path: str) -> bytes | None:
        if posixpath.basename(path) == "attribution.txt" and posixpath.dirname(path) in folders:
            return BASE_ATTRIBUTION
        return None

    return lookup


def run(prs: list[PullRequest], config: RepoConfig) -> dict[str, FileResult]:
    """Results keyed by ``<pr>/<path>``."""
    results: dict[str, FileResult] = {}
    for pr in prs:
        report = triage_files(pr.files, config, lookup=pr.lookup)
        for result in report.files:
            results[f"{pr.number}/{result.path}"] = result
    return results


def error_rules(result: FileResult) -> set[str]:
    return {f.rule for f in result.findings if f.severity is Severity.error}


@dataclass
class Comparison:
    files: int = 0
    upstream_agree: int = 0
    policy_agree: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    # agreement on the files where no policy rule fired (the comparable subset)
    comparable: int = 0
    comparable_agree: int = 0

    @property
    def upstream_rate(self) -> float:
        return self.upstream_agree / self.files if self.files else 1.0

    @property
    def policy_rate(self) -> float:
        return self.policy_agree / self.files if self.files else 1.0


def classify(policy: FileResult, upstream: FileResult) -> str:
    """The category of a file where the policy verdict is stricter than upstream's."""
    extra = error_rules(policy) - error_rules(upstream)
    for name, rules, _why in CATEGORIES:
        if extra & rules:
            return name
    return UNEXPLAINED


def compare(
    labels: dict[str, dict[str, Any]],
    policy: dict[str, FileResult],
    upstream: dict[str, FileResult],
) -> Comparison:
    out = Comparison()
    for key, row in labels.items():
        out.files += 1
        theirs = row["ci_verdict"] == "invalid"
        upstream_result, policy_result = upstream[key], policy[key]
        out.upstream_agree += (upstream_result.errors > 0) == theirs
        ours = policy_result.errors > 0
        extra = error_rules(policy_result) - error_rules(upstream_result)
        if not extra:
            out.comparable += 1
            out.comparable_agree += ours == theirs
        if ours == theirs:
            out.policy_agree += 1
            continue
        name = classify(policy_result, upstream_result) if ours else UNEXPLAINED
        out.categories[name] += 1
        out.examples.setdefault(name, []).append(key)
    return out


def evaluate(taxonomy: Path) -> tuple[Comparison, dict[str, FileResult]]:
    """Both runs over the corpus; returns the comparison and the policy results."""
    labels = load_labels(taxonomy)
    prs = list(pull_requests(taxonomy, labels))
    policy = run(prs, RepoConfig())
    upstream = run(prs, upstream_compatible())
    return compare(labels, policy, upstream), policy
