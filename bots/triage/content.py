"""What the examples say: personal data, topics the repository avoids, pasted chatbot output."""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from bots.triage import messages, pii
from bots.triage.config import TriageConfig
from bots.triage.findings import Finding, Severity, make
from bots.triage.schema import describe
from bots.triage.yamlload import Loaded, Path

# Free text that becomes training data. created_by is a public GitHub handle and document.* are
# links, not examples.
TEXT_FIELDS = frozenset(
    {"question", "answer", "context", "task_description", "document_outline", "domain"}
)
ANSWER_FIELDS = frozenset({"answer"})
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})


def iter_texts(data: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key == "document":
                continue
            if isinstance(value, str):
                if key in TEXT_FIELDS:
                    yield (*path, key), value
            elif isinstance(value, Mapping | list):
                yield from iter_texts(value, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from iter_texts(item, (*path, index))


class _Locator:
    """Maps a span of a value back to the file, so a finding marks the exact spot."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.text = loaded.text or ""
        self._starts: list[int] | None = None

    def _line_starts(self) -> list[int]:
        if self._starts is None:
            starts = [0]
            pos = self.text.find("\n")
            while pos != -1:
                starts.append(pos + 1)
                pos = self.text.find("\n", pos + 1)
            self._starts = starts
        return self._starts

    def locate(self, path: Path, value: str, start: int, end: int) -> tuple[int, int, int | None]:
        """Line and column where ``value[start:end]`` is in the file, and the column where it
        ends (None when the span could not be found as such: escapes, folding)."""
        line, col = self.loaded.position(path)
        starts = self._line_starts()
        if line > len(starts):
            return line, col, None
        node_index = starts[line - 1] + col - 1
        needle = value[start:end]
        # Block and folded scalars keep the text of a span on one line in practice; look for it
        # after the node's start, not beyond the value's extent.
        found = self.text.find(needle, node_index, node_index + 2 * len(value) + 200)
        if found == -1 or "\n" in needle:
            return line, col, None
        found_line = bisect.bisect_right(starts, found)
        found_col = found - starts[found_line - 1] + 1
        return found_line, found_col, found_col + len(needle)


def check_content(loaded: Loaded, data: Mapping[Any, Any], config: TriageConfig) -> list[Finding]:
    findings: list[Finding] = []
    locator = _Locator(loaded)
    texts = list(iter_texts(data))
    if config.pii.enabled and config.pii.entities:
        findings.extend(_pii(texts, locator, config))
    if config.avoid_topics:
        findings.extend(_topics(texts, loaded, config.avoid_topics))
    if config.llm_phrases:
        findings.extend(_llm_output(texts, locator, config.llm_phrases))
    return findings


def _pii(texts: list[tuple[Path, str]], locator: _Locator, config: TriageConfig) -> list[Finding]:
    findings: list[Finding] = []
    settings = config.pii
    errors = set(settings.error_entities)
    for path, value in texts:
        hits = pii.scan(
            value,
            entities=settings.entities,
            allow=settings.allowed if settings.allow else None,
            min_score=settings.min_score,
        )
        for hit in hits:
            label, example = messages.PII_LABELS[hit.entity]
            line, column, end_column = locator.locate(path, value, hit.start, hit.end)
            finding = make(
                "pii/found",
                line,
                column,
                entity=hit.entity.lower().replace("_", "-"),
                label=label,
                masked=hit.masked,
                where=describe(path),
                example=example,
            )
            findings.append(
                replace(
                    finding,
                    severity=Severity.error if hit.entity in errors else finding.severity,
                    end_line=line if end_column is not None else None,
                    end_column=end_column,
                )
            )
    return findings


def _topics(texts: list[tuple[Path, str]], loaded: Loaded, topics: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    patterns = [
        (topic, re.compile(r"(?<!\w)" + re.escape(topic) + r"(?!\w)", re.IGNORECASE))
        for topic in topics
    ]
    for topic, pattern in patterns:
        for path, value in texts:
            if pattern.search(value):
                findings.append(
                    make(
                        "content/avoid-topic",
                        *loaded.position(path),
                        where=describe(path),
                        topic=topic,
                    )
                )
                break  # once per topic and file is enough to send it to a human
    return findings


@functools.lru_cache(maxsize=16)
def _lowered(phrases: tuple[str, ...]) -> list[str]:
    return [p.lower().translate(_QUOTES) for p in phrases]


def _llm_output(
    texts: list[tuple[Path, str]], locator: _Locator, phrases: list[str]
) -> list[Finding]:
    findings: list[Finding] = []
    lowered_phrases = _lowered(tuple(phrases))
    for path, value in texts:
        if path[-1] not in ANSWER_FIELDS:
            continue
        folded = value.lower().translate(_QUOTES)
        for phrase in lowered_phrases:
            index = folded.find(phrase)
            if index != -1:
                line, column, _end = locator.locate(path, value, index, index + len(phrase))
                findings.append(
                    make(
                        "content/llm-output",
                        line,
                        column,
                        where=describe(path),
                        phrase=value[index : index + len(phrase)],
                    )
                )
                break
    return findings
