"""The data the engine takes and gives: input files, findings, per-file results and the report."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bots.triage import messages

Kind = Literal["skill", "knowledge"]


class Severity(enum.StrEnum):
    error = "error"
    warning = "warning"


class FileMode(enum.StrEnum):
    """Git tree modes, so a symlink or a submodule is seen as one and never followed."""

    regular = "100644"
    executable = "100755"
    symlink = "120000"
    submodule = "160000"

    @classmethod
    def parse(cls, value: str | int | FileMode) -> FileMode:
        """Accept a git mode as text ("100644"), an octal int, or a name ("symlink")."""
        if isinstance(value, FileMode):
            return value
        if isinstance(value, int):
            value = f"{value:o}"
        text = str(value).strip().lower()
        for mode in cls:
            if text in (mode.value, mode.name):
                return mode
        if text in ("gitlink", "commit"):
            return cls.submodule
        if text in ("link", "120000"):
            return cls.symlink
        return cls.regular


@dataclass(frozen=True)
class InputFile:
    """One changed file of a pull request (or one file of a checkout).

    ``content`` is the file's bytes, or None for a file the PR deletes (skipped). A file that
    exists but was not fetched also has None: a symlink or a submodule (``mode`` says so; never
    read), or a blob over the size limit (give its ``size``, so the cap is reported). ``mode``
    comes from the git tree, so links and submodules are recognised without following them.
    ``deleted=True`` marks a deletion explicitly.
    """

    path: str
    content: bytes | None
    mode: FileMode = FileMode.regular
    size: int | None = None
    deleted: bool = False

    @property
    def removed(self) -> bool:
        """Deleted by the PR: flagged so, or a regular file with neither content nor size."""
        return self.deleted or (
            self.content is None
            and self.size is None
            and self.mode in (FileMode.regular, FileMode.executable)
        )

    @property
    def byte_size(self) -> int:
        if self.content is not None:
            return len(self.content)
        return self.size or 0


# Returns the bytes of a path in the PR's head tree (None when absent); used for siblings such
# as attribution.txt that the PR did not change.
SiblingLookup = Callable[[str], bytes | None]


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    line: int
    column: int
    message: str
    hint: str = ""
    # Where the offending text ends (exclusive column), when the check knows the exact span.
    end_line: int | None = None
    end_column: int | None = None

    def to_dict(self, *, with_hint: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rule": self.rule,
            "severity": self.severity.value,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }
        if with_hint and self.hint:
            data["hint"] = self.hint
        if with_hint and self.end_line is not None:
            data["end_line"] = self.end_line
            data["end_column"] = self.end_column
        return data


def make(message_id: str, line: int = 1, column: int = 1, /, **values: object) -> Finding:
    """Build a finding from the message catalogue; ``values`` are user text, rendered safely."""
    entry = messages.CATALOG[message_id]
    message, hint = messages.render(message_id, **values)
    return Finding(
        rule=messages.rule_of(message_id, **values),
        severity=Severity(entry.severity),
        line=max(1, int(line)),
        column=max(1, int(column)),
        message=message,
        hint=hint,
    )


@dataclass
class FileResult:
    path: str
    kind: Kind | None = None
    version: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.error)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.warning)

    def sort(self) -> None:
        self.findings.sort(key=lambda f: (f.line, f.column, f.severity != Severity.error, f.rule))

    def to_dict(self, *, with_hints: bool = True) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "version": self.version,
            "findings": [f.to_dict(with_hint=with_hints) for f in self.findings],
        }


@dataclass
class TriageReport:
    files: list[FileResult] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.files)

    @property
    def warnings(self) -> int:
        return sum(r.warnings for r in self.files)

    @property
    def ok(self) -> bool:
        """True when nothing blocks the pull request (warnings allowed)."""
        return self.errors == 0

    @property
    def kinds(self) -> set[Kind]:
        return {r.kind for r in self.files if r.kind is not None}

    def summary(self) -> dict[str, int]:
        return {"files": len(self.files), "errors": self.errors, "warnings": self.warnings}

    def result(self, path: str) -> FileResult | None:
        return next((r for r in self.files if r.path == path), None)

    def to_dict(self, *, with_hints: bool = True) -> dict[str, Any]:
        return {
            "files": [r.to_dict(with_hints=with_hints) for r in self.files],
            "summary": self.summary(),
        }

    def to_json(self, *, with_hints: bool = True, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(with_hints=with_hints), ensure_ascii=False, indent=indent)

    def blocking_sentence(self) -> str:
        """One sentence: what blocks the PR and how to fix it (or that nothing does)."""
        blocking = [(r, f) for r in self.files for f in r.findings if f.severity is Severity.error]
        if not blocking:
            if not self.files:
                return messages.SENTENCE_NO_FILES
            return messages.SENTENCE_NOTHING_BLOCKS
        first_file, first = blocking[0]
        files_with_errors = sum(1 for r in self.files if r.errors)
        return messages.blocking_sentence(
            errors=len(blocking),
            files=files_with_errors,
            path=first_file.path,
            line=first.line,
            message=first.message,
            hint=first.hint,
        )
