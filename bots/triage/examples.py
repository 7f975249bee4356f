"""The seed-example policy: enough examples, none empty or a placeholder, no repeats.

The schema's minimums differ by version (one example suffices for a version 1 skill); the
service's own minimums are configured per kind and version, and reported only where the schema
has not already said the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from bots.triage.config import MinExamples, TriageConfig
from bots.triage.findings import Finding, Kind, make
from bots.triage.schema import describe
from bots.triage.yamlload import Loaded, Path

_PLACEHOLDERS = frozenset(
    """tbd todo tba n/a na none null nil xxx xx x ... .. . - -- ? ?? test testing sample example
    placeholder lorem ipsum answer question context fill me fillme fill in <answer> <question>
    <context> your answer here your question here insert answer insert question""".split()
) | {"lorem ipsum", "fill me", "fill in", "your answer here", "your question here"}
_WORDS = re.compile(r"\w+")
_MIN_DUPLICATE_ANSWER = 40  # short answers ("Yes", "42") legitimately repeat


def _normal(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip("?.!:;")


def _is_placeholder(text: str) -> bool:
    stripped = text.strip()
    if not stripped:
        return False  # empty strings are the schema's (minLength)
    if _WORDS.search(stripped) is None:
        # Symbols can be a real answer (Morse code, emoji); a lone "..." or "-" cannot.
        return len(stripped) <= 3
    return _normal(stripped) in _PLACEHOLDERS


def qna_items(data: Mapping[Any, Any], kind: Kind) -> Iterator[tuple[Path, str | None, Any]]:
    """(path of a question/answer mapping, its context, the mapping) for every Q&A pair."""
    seeds = data.get("seed_examples")
    if not isinstance(seeds, list):
        return
    for index, seed in enumerate(seeds):
        if not isinstance(seed, Mapping):
            continue
        context = seed.get("context")
        context_text = context if isinstance(context, str) else None
        if kind == "knowledge":
            qna = seed.get("questions_and_answers")
            if isinstance(qna, list):
                for inner, pair in enumerate(qna):
                    if isinstance(pair, Mapping):
                        yield (
                            ("seed_examples", index, "questions_and_answers", inner),
                            context_text,
                            pair,
                        )
        else:
            yield ("seed_examples", index), context_text, seed


def check_examples(
    loaded: Loaded,
    data: Mapping[Any, Any],
    kind: Kind,
    version: int | None,
    config: TriageConfig,
    schema_min_items: set[Path],
) -> list[Finding]:
    findings: list[Finding] = []
    minimums = config.min_examples
    seeds = data.get("seed_examples")
    if isinstance(seeds, list):
        if kind == "skill":
            minimum = MinExamples.pick(minimums.skill, version)
            if len(seeds) < minimum and ("seed_examples",) not in schema_min_items:
                findings.append(
                    make(
                        "examples/too-few",
                        *loaded.position(("seed_examples",), key=True),
                        minimum=minimum,
                        found=len(seeds),
                    )
                )
        else:
            minimum = MinExamples.pick(minimums.knowledge_contexts, version)
            if len(seeds) < minimum and ("seed_examples",) not in schema_min_items:
                findings.append(
                    make(
                        "examples/too-few-contexts",
                        *loaded.position(("seed_examples",), key=True),
                        minimum=minimum,
                        found=len(seeds),
                    )
                )
            per_context = MinExamples.pick(minimums.knowledge_qna, version)
            for index, seed in enumerate(seeds):
                if not isinstance(seed, Mapping):
                    continue
                qna = seed.get("questions_and_answers")
                path = ("seed_examples", index, "questions_and_answers")
                if (
                    isinstance(qna, list)
                    and len(qna) < per_context
                    and path not in schema_min_items
                ):
                    findings.append(
                        make(
                            "examples/too-few-qna",
                            *loaded.position(path, key=True),
                            minimum=per_context,
                            found=len(qna),
                        )
                    )
    findings.extend(_quality(loaded, data, kind, config.limits.max_text_chars))
    return findings


def _quality(loaded: Loaded, data: Mapping[Any, Any], kind: Kind, max_chars: int) -> list[Finding]:
    findings: list[Finding] = []
    seen_examples: dict[tuple[str, str, str], int] = {}
    seen_answers: dict[tuple[str, str], int] = {}
    checked_contexts: set[Path] = set()
    for path, context, pair in qna_items(data, kind):
        context_path = path[:2] if kind == "knowledge" else path
        if context is not None and context_path not in checked_contexts:
            checked_contexts.add(context_path)
            findings.extend(_text_checks(loaded, (*context_path, "context"), context, max_chars))
        context_key = _normal(context) if context else ""
        texts: dict[str, str] = {}
        for field in ("question", "answer"):
            value = pair.get(field)
            if isinstance(value, str):
                findings.extend(_text_checks(loaded, (*path, field), value, max_chars))
                texts[field] = _normal(value)
        if "question" not in texts or "answer" not in texts:
            continue
        # The same question with different answers is a fine way to show variety; the same
        # pair twice is not.
        example = (context_key, texts["question"], texts["answer"])
        line = loaded.position((*path, "question"))[0]
        if example in seen_examples:
            findings.append(
                make(
                    "examples/duplicate-example",
                    *loaded.position((*path, "question")),
                    first_line=seen_examples[example],
                )
            )
            continue
        seen_examples[example] = line
        answer = (context_key, texts["answer"])
        if len(answer[1]) >= _MIN_DUPLICATE_ANSWER:
            if answer in seen_answers:
                findings.append(
                    make(
                        "examples/duplicate-answer",
                        *loaded.position((*path, "answer")),
                        first_line=seen_answers[answer],
                    )
                )
            else:
                seen_answers[answer] = loaded.position((*path, "answer"))[0]
    return findings


def _text_checks(loaded: Loaded, path: Path, value: str, max_chars: int) -> list[Finding]:
    field = str(path[-1])
    if _is_placeholder(value):
        return [
            make(
                "examples/empty",
                *loaded.position(path),
                where=describe(path),
                value=value,
                field=field,
            )
        ]
    if len(value) > max_chars:
        return [
            make(
                "examples/too-long",
                *loaded.position(path),
                where=describe(path),
                length=len(value),
                limit=max_chars,
            )
        ]
    return []
