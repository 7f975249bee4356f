"""The values that pass between the SDG modules: what a leaf gives, what comes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LeafKind = Literal["freeform", "grounded", "knowledge"]


@dataclass(frozen=True)
class Seed:
    question: str
    answer: str
    context: str = ""


@dataclass(frozen=True)
class Leaf:
    """One changed qna.yaml, parsed. Knowledge leaves carry their document's chunks (each with
    the seed Q&A of the context it belongs to kept in ``seeds``)."""

    path: str  # taxonomy path, e.g. "compositional_skills/writing/haiku"
    kind: LeafKind
    task_description: str
    seeds: tuple[Seed, ...]
    domain: str = ""
    document_outline: str = ""
    document_chunks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sample:
    """One training record: chat ``messages`` plus where it came from."""

    messages: list[dict[str, str]]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class MultipleChoice:
    """A PR-MMLU question generated from a knowledge leaf's document."""

    leaf: str
    question: str
    choices: list[str]
    answer: int  # index into choices
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepCount:
    """How many items a pipeline step produced and how many its filter kept."""

    step: str
    generated: int = 0
    kept: int = 0
    skipped: int = 0  # prompts not sent (too long for the teacher's context), reasons logged


@dataclass
class LeafOutput:
    leaf: str
    kind: LeafKind
    samples: list[Sample] = field(default_factory=list)
    multiple_choice: list[MultipleChoice] = field(default_factory=list)
    counts: list[StepCount] = field(default_factory=list)
