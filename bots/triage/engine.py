"""The triage engine: every check over the files of a pull request (or a checkout).

Pure domain: no GitHub, no database, no file system. Callers pass the files' bytes and git modes
and, for files the PR did not change (an attribution.txt already on the base branch), a lookup.
One file's problems never stop the others; an unexpected failure becomes an ``internal/error``
finding on that file, never a stack trace.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from bots.triage import layout, messages
from bots.triage.attribution import check_attribution
from bots.triage.config import RepoConfig, load_repo_config
from bots.triage.content import check_content
from bots.triage.document import check_document
from bots.triage.examples import check_examples
from bots.triage.findings import (
    FileMode,
    FileResult,
    Finding,
    InputFile,
    Severity,
    SiblingLookup,
    TriageReport,
    make,
)
from bots.triage.lint import lint
from bots.triage.schema import ROOT_KINDS, check_schema
from bots.triage.yamlload import Limits, decode, load_yaml

logger = logging.getLogger(__name__)


def triage_files(
    files: Sequence[InputFile],
    config: RepoConfig | None = None,
    *,
    lookup: SiblingLookup | None = None,
) -> TriageReport:
    """Check the files of one pull request. ``lookup(path)`` returns the bytes of a path in the
    PR's head tree (or None), for siblings the PR did not change; deleted files are skipped."""
    config = config or RepoConfig()
    engine = _Engine(files, config, lookup)
    return engine.run()


def triage_file(
    path: str,
    content: bytes,
    config: RepoConfig | None = None,
    *,
    siblings: Mapping[str, bytes] | None = None,
) -> FileResult:
    """One file on its own (tests, tools); ``siblings`` maps file names in the same folder
    (``{"attribution.txt": b"..."}``) to their bytes."""
    folder = posixpath.dirname(path)
    known = dict(siblings or {})

    def lookup(other: str) -> bytes | None:
        if posixpath.dirname(other) == folder:
            return known.get(posixpath.basename(other))
        return None

    report = triage_files([InputFile(path, content)], config, lookup=lookup)
    return report.files[0]


class _Engine:
    def __init__(
        self, files: Sequence[InputFile], config: RepoConfig, lookup: SiblingLookup | None
    ) -> None:
        self.files = files
        self.config = config
        self.triage = config.triage
        self.lookup = lookup
        self.by_path = {f.path: f for f in files}
        limits = self.triage.limits
        self.yaml_limits = Limits(max_nodes=limits.max_alias_nodes, max_depth=limits.max_depth)

    def sibling(self, path: str) -> bytes | None:
        changed = self.by_path.get(path)
        if changed is not None:
            return None if changed.removed else changed.content
        if self.lookup is None:
            return None
        try:
            return self.lookup(path)
        except Exception:  # a failing lookup must not take the file down with it
            logger.exception("sibling lookup failed for %s", path)
            return None

    def run(self) -> TriageReport:
        report = TriageReport()
        limits = self.triage.limits
        present = [f for f in self.files if not f.removed]
        total_bytes = 0
        for index, item in enumerate(present):
            result = FileResult(path=item.path)
            try:
                if index >= limits.max_files:
                    result.findings.append(
                        make(
                            "layout/too-many-files",
                            1,
                            1,
                            count=len(present),
                            limit=limits.max_files,
                        )
                    )
                else:
                    total_bytes = self._check(item, result, total_bytes)
            except Exception as exc:
                logger.exception("triage failed on %s", item.path)
                result.findings.append(make("internal/error", 1, 1, error=type(exc).__name__))
            result.findings = self._apply_settings(result.findings)
            result.sort()
            report.files.append(result)
        return report

    def _apply_settings(self, findings: Iterable[Finding]) -> list[Finding]:
        if not self.triage.rules:
            return list(findings)
        kept: list[Finding] = []
        for finding in findings:
            setting = self.config.setting(finding.rule)
            if setting == "off":
                continue
            if setting is not None and setting != finding.severity.value:
                finding = replace(finding, severity=Severity(setting))
            kept.append(finding)
        return kept

    def _check(self, item: InputFile, result: FileResult, total_bytes: int) -> int:
        limits = self.triage.limits
        placement = layout.classify(item.path, self.triage)
        result.findings.extend(placement.findings)
        if placement.category in ("qna", "attribution") and placement.root in ROOT_KINDS:
            result.kind = ROOT_KINDS[placement.root] if placement.category == "qna" else None
        if item.mode is FileMode.symlink:
            result.findings.append(make("layout/symlink", 1, 1, path=item.path))
            return total_bytes
        if item.mode is FileMode.submodule:
            result.findings.append(make("layout/submodule", 1, 1, path=item.path))
            return total_bytes
        if placement.category == "other":
            return total_bytes  # never read: its name already says what is wrong
        size = item.byte_size
        if size > limits.max_file_bytes:
            result.findings.append(
                make("layout/file-too-large", 1, 1, size=size, limit=limits.max_file_bytes)
            )
            return total_bytes
        total_bytes += size
        if total_bytes > limits.max_pr_bytes:
            result.findings.append(make("layout/pr-too-large", 1, 1, limit=limits.max_pr_bytes))
            return total_bytes
        if item.content is None:
            result.findings.append(make("layout/unreadable", 1, 1))
            return total_bytes
        if placement.category == "qna":
            self._check_qna(item.path, item.content, placement.root, result)
        elif placement.category == "attribution":
            text, _bom, findings = decode(item.content)
            result.findings.extend(f for f in findings if f.rule != "yaml/bom")
            if text is not None:
                result.findings.extend(check_attribution(text, self.triage.licenses))
        elif placement.category == "config":
            _config, findings = load_repo_config(item.content)
            result.findings.extend(findings)
        return total_bytes

    def _check_qna(self, path: str, content: bytes, root: str | None, result: FileResult) -> None:
        loaded = load_yaml(content, self.yaml_limits)
        result.findings.extend(loaded.findings)
        if loaded.empty:
            result.findings.append(make("yaml/empty", 1, 1))
            return
        if not loaded.ok:
            return
        data: Any = loaded.data
        if not isinstance(data, dict):
            found = messages.FOUND_LIST if isinstance(data, list) else messages.FOUND_SCALAR
            result.findings.append(make("yaml/not-mapping", 1, 1, found=found))
            return
        outcome = check_schema(loaded, data, root)
        result.kind = outcome.kind
        result.version = outcome.version
        result.findings.extend(outcome.findings)
        version = outcome.version
        if version is not None and version >= self.triage.lint_min_version and loaded.text:
            result.findings.extend(lint(loaded.text))
        if version is not None and version > 1:
            result.findings.extend(self._attribution_present(path, version))
        if outcome.kind == "knowledge":
            # worth fixing whatever the version: it is what labbot will fetch
            result.findings.extend(check_document(loaded, data))
        if not outcome.validated:
            return
        result.findings.extend(
            check_examples(
                loaded, data, outcome.kind, version, self.triage, outcome.min_items_paths
            )
        )
        result.findings.extend(check_content(loaded, data, self.triage))

    def _attribution_present(self, path: str, version: int) -> list[Finding]:
        sibling_path = posixpath.join(posixpath.dirname(path), layout.ATTRIBUTION_NAME)
        content = self.sibling(sibling_path)
        if content is None:
            return [make("attribution/missing", 1, 1, version=version)]
        text, _bom, _findings = decode(content)
        if text is not None and not text.strip():
            return [make("attribution/empty", 1, 1)]
        return []
