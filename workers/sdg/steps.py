"""A resumable record of the teacher's answers, kept in the job's artifacts directory.

Each pipeline step of a leaf is a JSON Lines file ``<root>/<leaf-slug>/<step>.jsonl`` with one
line per work item: its key (a hash of everything that went into the request), the texts that
came back, and why it was skipped if it was. Lines are appended as each batch of requests
returns, so a job killed half way keeps what it paid for: on the rerun the pipeline asks the
teacher only for the keys that are not in the file yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    """One request to the teacher: chat turns and the key it is stored under. ``details`` are
    written beside the result so a step file can be read on its own (seed, chunk, ...)."""

    key: str
    messages: list[dict[str, str]]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    key: str
    texts: list[str]
    skipped: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def item_key(*parts: Any) -> str:
    """A stable key for a request: the SHA-256 of its parts as canonical JSON."""
    encoded = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def slug(path: str) -> str:
    """A file-system-safe directory name for a taxonomy path, unique per path: readable part
    plus a short hash (two paths can differ only in characters the readable part drops)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.strip("/")).strip("-.")[:80] or "leaf"
    return f"{readable}-{hashlib.sha256(path.encode('utf-8')).hexdigest()[:8]}"


class StepFile:
    """The stored results of one step of one leaf."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, StepResult]:
        """Every complete line, by key (a later line for a key wins). A last line cut off by a
        kill is dropped; the request behind it is simply asked again."""
        results: dict[str, StepResult] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return results
        lines = raw.split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            result = _decode(line)
            if result is None:
                # Only the unterminated last line can be cut off by a kill; anything else means
                # the file was edited or damaged, which is worth a warning.
                if number != len(lines):
                    log.warning("%s:%d: unreadable step record ignored", self.path, number)
                continue
            results[result.key] = result
        return results

    def pending(self, items: Sequence[WorkItem]) -> list[WorkItem]:
        """The items whose key has no stored result, in order, each key once."""
        stored = self.load()
        seen: set[str] = set()
        missing = []
        for item in items:
            if item.key not in stored and item.key not in seen:
                seen.add(item.key)
                missing.append(item)
        return missing

    def append(self, results: Iterable[StepResult]) -> None:
        """Write the results and make them durable before returning."""
        payload = b"".join(_encode(result) for result in results)
        if not payload:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_partial_tail()
        with self.path.open("ab") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())

    def _drop_partial_tail(self) -> None:
        """Cut a last line without its newline (a write killed half way), so the next record
        does not get glued onto it."""
        try:
            with self.path.open("rb+") as stream:
                size = stream.seek(0, os.SEEK_END)
                if size == 0:
                    return
                stream.seek(size - 1)
                if stream.read(1) == b"\n":
                    return
                # Rare and small enough to read whole: find the last complete line.
                stream.seek(0)
                keep = stream.read().rfind(b"\n") + 1
                stream.truncate(keep)
        except FileNotFoundError:
            return


class StepStore:
    """Step files of every leaf of a job, under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def step(self, leaf_path: str, step: str) -> StepFile:
        if not re.fullmatch(r"[a-z0-9_]+", step):
            raise ValueError(f"step name {step!r} must be lower_snake_case")
        return StepFile(self.root / slug(leaf_path) / f"{step}.jsonl")


def _encode(result: StepResult) -> bytes:
    record: dict[str, Any] = {"key": result.key, "texts": result.texts}
    if result.skipped is not None:
        record["skipped"] = result.skipped
    if result.details:
        record["details"] = result.details
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def _decode(line: bytes) -> StepResult | None:
    try:
        record = json.loads(line)
        key, texts = record["key"], record["texts"]
        skipped, details = record.get("skipped"), record.get("details", {})
    except (ValueError, TypeError, KeyError):
        return None
    if (
        not isinstance(key, str)
        or not isinstance(texts, list)
        or not all(isinstance(text, str) for text in texts)
        or not (skipped is None or isinstance(skipped, str))
        or not isinstance(details, dict)
    ):
        return None
    return StepResult(key=key, texts=texts, skipped=skipped, details=details)
