"""The SDG job's output: training data in chat "messages" JSON Lines, PR-MMLU question sets and a
manifest, written so that a reader can trust what it finds.

Layout of ``out_dir``:

- ``knowledge.jsonl``: phase 1, the samples of knowledge leaves.
- ``skills.jsonl``: phase 2, the samples of skill leaves, the knowledge samples again (so the
  second phase does not forget them) and replay records from ``settings.sdg_replay_path``.
- ``mcq/<leaf-slug>.jsonl``: multiple-choice questions of each knowledge leaf.
- ``manifest.json``: counts per file, per leaf and per pipeline step, the teacher, the time.

Each line is ``{"messages": [...], "metadata": {...}}``; generated samples carry
``metadata.leaf`` and ``metadata.source = "generated"``, replay records ``source = "replay"``.
Every file is written to a temporary name and renamed into place, and the manifest, removed
first and written last, is the mark of a complete dataset: a killed job leaves no manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from app.config import Settings
from workers.sdg.records import LeafKind, LeafOutput, MultipleChoice, Sample
from workers.sdg.steps import slug

log = logging.getLogger(__name__)

KNOWLEDGE_FILE = "knowledge.jsonl"
SKILLS_FILE = "skills.jsonl"
MCQ_DIR = "mcq"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
# Seeds the per-leaf cap and the replay choice, so a rerun writes the same dataset.
MIX_SEED = "labbot-sdg-mix-1"
ROLES = frozenset({"system", "user", "assistant"})
# A replay line longer than this is not a chat sample (max_seq_len 4096 tokens is ~16 KB).
MAX_REPLAY_LINE_BYTES = 1024 * 1024
_TEMP_SUFFIX = ".partial"


class DatasetError(Exception):
    """The dataset cannot be written as configured; the message names no local path."""


@dataclass(frozen=True)
class DatasetFiles:
    knowledge: Path
    skills: Path
    mcq: dict[str, Path]  # leaf path -> its multiple-choice file
    manifest: Path
    counts: dict[str, int]  # records per file, by path relative to the output directory


@dataclass
class _LeafMix:
    leaf: str
    kind: LeafKind
    samples: list[dict[str, Any]] = field(default_factory=list)  # records to write
    sample_counts: dict[str, int] = field(default_factory=dict)
    questions: list[dict[str, Any]] = field(default_factory=list)
    question_counts: dict[str, int] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)


def write_dataset(
    out_dir: Path,
    outputs: list[LeafOutput],
    settings: Settings,
    teacher_model: str,
    *,
    knowledge_in_skills: int | None = None,
) -> DatasetFiles:
    """Write the dataset of ``outputs`` under ``out_dir`` and return where and how much.

    Samples are deduplicated on their normalised user and assistant text (the first seen, in
    leaf path order, is kept), then each leaf is capped at ``sdg_max_samples_per_leaf`` by a
    seeded choice. ``knowledge_in_skills`` caps the knowledge samples repeated in the phase 2
    file (None: all of them, 0: none)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mcq_dir = out_dir / MCQ_DIR
    manifest_path = out_dir / MANIFEST_FILE
    # From here until the new manifest lands, the directory does not claim to be complete.
    manifest_path.unlink(missing_ok=True)
    _remove_partials(out_dir)
    _remove_partials(mcq_dir)

    seen: set[bytes] = set()
    leaves = _mix_leaves(outputs, settings.sdg_max_samples_per_leaf, seen)
    knowledge = [record for mix in leaves if mix.kind == "knowledge" for record in mix.samples]
    skills = [record for mix in leaves if mix.kind != "knowledge" for record in mix.samples]
    repeated = _choose(knowledge, knowledge_in_skills, f"{MIX_SEED}:knowledge-in-skills")
    replay, replay_counts = _read_replay(settings, seen)

    counts: dict[str, int] = {}
    counts[KNOWLEDGE_FILE] = _write_jsonl(out_dir / KNOWLEDGE_FILE, knowledge)
    counts[SKILLS_FILE] = _write_jsonl(out_dir / SKILLS_FILE, [*skills, *repeated, *replay])
    mcq_files: dict[str, Path] = {}
    for mix in leaves:
        if mix.questions:
            path = mcq_dir / f"{slug(mix.leaf)}.jsonl"
            counts[f"{MCQ_DIR}/{path.name}"] = _write_jsonl(path, mix.questions)
            mcq_files[mix.leaf] = path
    if mcq_dir.is_dir():  # sets of leaves an earlier run had and this one has not
        for stale in mcq_dir.glob("*.jsonl"):
            if stale not in mcq_files.values():
                stale.unlink()

    repeated_by_leaf: dict[str, int] = {}
    for record in repeated:
        leaf = record["metadata"]["leaf"]
        repeated_by_leaf[leaf] = repeated_by_leaf.get(leaf, 0) + 1
    manifest = {
        "format": MANIFEST_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "teacher_model": teacher_model,
        "max_samples_per_leaf": settings.sdg_max_samples_per_leaf,
        "files": {name: {"records": count} for name, count in counts.items()},
        "skills_mix": {
            "skills": len(skills),
            "knowledge": len(repeated),
            "replay": len(replay),
        },
        "replay": replay_counts,
        "leaves": {
            mix.leaf: {
                "kind": mix.kind,
                "samples": mix.sample_counts,
                "files": _leaf_files(mix, repeated_by_leaf.get(mix.leaf, 0), mcq_files),
                "multiple_choice": mix.question_counts,
                "steps": mix.steps,
            }
            for mix in leaves
        },
    }
    _write_atomic(
        manifest_path,
        lambda stream: stream.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2)),
    )
    return DatasetFiles(
        knowledge=out_dir / KNOWLEDGE_FILE,
        skills=out_dir / SKILLS_FILE,
        mcq=mcq_files,
        manifest=manifest_path,
        counts=counts,
    )


def preview(out_dir: Path, per_leaf: int = 3) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_leaf`` written samples of each leaf, read back from a complete dataset (one
    with a manifest); {} while there is none. Reads only as far as it needs to."""
    try:
        manifest = orjson.loads((out_dir / MANIFEST_FILE).read_bytes())
        leaves = list(manifest["leaves"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return {}
    found: dict[str, list[dict[str, Any]]] = {leaf: [] for leaf in leaves}
    shown: set[bytes] = set()
    wanted = max(per_leaf, 0) * len(found)
    for name in (KNOWLEDGE_FILE, SKILLS_FILE):
        if wanted == 0:
            break
        for record in _read_records(out_dir / name):
            metadata = record.get("metadata")
            leaf = metadata.get("leaf") if isinstance(metadata, dict) else None
            if not isinstance(leaf, str) or leaf not in found or len(found[leaf]) >= per_leaf:
                continue
            key = orjson.dumps(record.get("messages"))
            if key in shown:  # knowledge samples are in both files
                continue
            shown.add(key)
            found[leaf].append(record)
            wanted -= 1
            if wanted == 0:
                break
    return found


# --- mixing ---------------------------------------------------------------------------------


def _mix_leaves(outputs: list[LeafOutput], cap: int, seen: set[bytes]) -> list[_LeafMix]:
    by_leaf: dict[str, _LeafMix] = {}
    for output in sorted(outputs, key=lambda output: output.leaf):
        mix = by_leaf.setdefault(output.leaf, _LeafMix(output.leaf, output.kind))
        kept = _unique_samples(mix, output.samples, seen)
        mix.samples.extend(kept)
        mix.questions.extend(_valid_questions(mix, output.multiple_choice))
        mix.steps.extend(
            {"step": c.step, "generated": c.generated, "kept": c.kept, "skipped": c.skipped}
            for c in output.counts
        )
    for mix in by_leaf.values():
        chosen = _choose(mix.samples, cap, f"{MIX_SEED}:{mix.leaf}")
        mix.sample_counts["over_cap"] = len(mix.samples) - len(chosen)
        mix.sample_counts["kept"] = len(chosen)
        mix.samples = chosen
    return list(by_leaf.values())


def _unique_samples(
    mix: _LeafMix, samples: Iterable[Sample], seen: set[bytes]
) -> list[dict[str, Any]]:
    counts = mix.sample_counts
    kept = []
    for sample in samples:
        counts["generated"] = counts.get("generated", 0) + 1
        messages = _clean_messages(sample.messages)
        if messages is None:
            counts["invalid"] = counts.get("invalid", 0) + 1
            continue
        key = _dedup_key(messages)
        if key in seen:
            counts["duplicates"] = counts.get("duplicates", 0) + 1
            continue
        seen.add(key)
        metadata = {**sample.metadata, "leaf": mix.leaf, "kind": mix.kind, "source": "generated"}
        kept.append({"messages": messages, "metadata": metadata})
    for name in ("generated", "invalid", "duplicates"):
        counts.setdefault(name, 0)
    return kept


def _valid_questions(mix: _LeafMix, questions: Iterable[MultipleChoice]) -> list[dict[str, Any]]:
    counts = mix.question_counts
    seen = {_normalise(record["question"]) for record in mix.questions}
    kept = []
    for question in questions:
        counts["generated"] = counts.get("generated", 0) + 1
        choices = question.choices
        if not (
            isinstance(question.question, str)
            and question.question.strip()
            and isinstance(choices, list)
            and len(choices) >= 2
            and all(isinstance(choice, str) and choice.strip() for choice in choices)
            and type(question.answer) is int
            and 0 <= question.answer < len(choices)
        ):
            counts["invalid"] = counts.get("invalid", 0) + 1
            continue
        normalised = _normalise(question.question)
        if normalised in seen:
            counts["duplicates"] = counts.get("duplicates", 0) + 1
            continue
        seen.add(normalised)
        kept.append(
            {
                "leaf": mix.leaf,
                "question": question.question,
                "choices": choices,
                "answer": question.answer,
                "metadata": question.metadata,
            }
        )
    counts["kept"] = counts.get("kept", 0) + len(kept)
    for name in ("generated", "invalid", "duplicates"):
        counts.setdefault(name, 0)
    return kept


def _clean_messages(messages: object) -> list[dict[str, str]] | None:
    """The chat turns as {"role", "content"}, or None when they are not a trainable sample
    (a user turn and a non-empty assistant answer are needed)."""
    if not isinstance(messages, list) or not messages:
        return None
    cleaned = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        role, content = message.get("role"), message.get("content")
        if role not in ROLES or not isinstance(content, str):
            return None
        cleaned.append({"role": role, "content": content})
    roles = {message["role"] for message in cleaned if message["content"].strip()}
    if not {"user", "assistant"} <= roles:
        return None
    return cleaned


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def _dedup_key(messages: list[dict[str, str]]) -> bytes:
    """Same questions and answers, whatever the system prompt, case or spacing."""
    turns = [
        f"{message['role']}:{_normalise(message['content'])}"
        for message in messages
        if message["role"] != "system"
    ]
    return hashlib.sha256("\x1e".join(turns).encode("utf-8")).digest()


def _choose(records: list[dict[str, Any]], limit: int | None, seed: str) -> list[dict[str, Any]]:
    """At most ``limit`` records, a seeded choice kept in the original order."""
    if limit is None or len(records) <= limit:
        return list(records)
    chosen = sorted(random.Random(seed).sample(range(len(records)), max(limit, 0)))
    return [records[index] for index in chosen]


def _leaf_files(mix: _LeafMix, repeated: int, mcq_files: dict[str, Path]) -> dict[str, int]:
    files = {KNOWLEDGE_FILE if mix.kind == "knowledge" else SKILLS_FILE: len(mix.samples)}
    if repeated:
        files[SKILLS_FILE] = repeated
    if mix.leaf in mcq_files:
        files[f"{MCQ_DIR}/{mcq_files[mix.leaf].name}"] = len(mix.questions)
    return files


# --- replay ---------------------------------------------------------------------------------


def _read_replay(
    settings: Settings, seen: set[bytes]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``sdg_replay_samples`` records chosen evenly from the replay file (reservoir sampling,
    seeded, so the file is read once and never held whole). Bad lines are counted, skipped."""
    wanted = settings.sdg_replay_samples
    counts: dict[str, Any] = {
        "configured": settings.sdg_replay_path is not None,
        "requested": wanted if settings.sdg_replay_path is not None else 0,
        "valid": 0,
        "invalid": 0,
        "duplicates": 0,
        "used": 0,
    }
    path = settings.sdg_replay_path
    if path is None or wanted == 0:
        return [], counts
    rng = random.Random(f"{MIX_SEED}:replay")
    reservoir: list[dict[str, Any]] = []
    try:
        with path.open("rb") as stream:
            for line in _bounded_lines(stream, MAX_REPLAY_LINE_BYTES):
                if line is not None and not line.strip():
                    continue
                record = _replay_record(line)
                if record is None:
                    counts["invalid"] += 1
                    continue
                if _dedup_key(record["messages"]) in seen:
                    counts["duplicates"] += 1
                    continue
                counts["valid"] += 1
                if len(reservoir) < wanted:
                    reservoir.append(record)
                else:
                    slot = rng.randrange(counts["valid"])
                    if slot < wanted:
                        reservoir[slot] = record
    except OSError as error:
        log.error("replay data set %s cannot be read: %s", path, error)
        raise DatasetError("the replay data set (LABBOT_SDG_REPLAY_PATH) cannot be read") from None
    used = []
    for record in reservoir:  # duplicates inside the replay file itself
        key = _dedup_key(record["messages"])
        if key in seen:
            counts["duplicates"] += 1
            continue
        seen.add(key)
        used.append(record)
    counts["used"] = len(used)
    if counts["invalid"]:
        log.warning("replay data set %s: %d invalid lines skipped", path, counts["invalid"])
    return used, counts


def _replay_record(line: bytes | None) -> dict[str, Any] | None:
    if line is None:
        return None
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    messages = _clean_messages(data.get("messages"))
    if messages is None:
        return None
    metadata = data.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    metadata["source"] = "replay"
    return {"messages": messages, "metadata": metadata}


def _bounded_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Lines of ``stream``; None for a line longer than ``limit``, which is skipped without
    being held in memory."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = stream.readline(limit + 1)
        yield None


# --- files ----------------------------------------------------------------------------------


def _write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    written = 0

    def write(stream: IO[bytes]) -> None:
        nonlocal written
        for record in records:
            stream.write(orjson.dumps(record) + b"\n")
            written += 1

    _write_atomic(path, write)
    return written


def _write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """``path`` appears complete or not at all: written under a temporary name in the same
    directory, flushed to disk, then renamed over the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX
    )
    try:
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (a crash right after could otherwise undo it)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_partials(directory: Path) -> None:
    """Temporary files of a run that was killed before it could clean up."""
    if directory.is_dir():
        for partial in directory.glob(f".*{_TEMP_SUFFIX}"):
            partial.unlink(missing_ok=True)


def _read_records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        stream = path.open("rb")
    except OSError:
        return
    with stream:
        for line in stream:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record
