"""What an evaluation asks:

- PR-bench: the seed examples of the PR's skill files (for grounded skills the context comes
  first in the question), with the contributor's answer as the judge's reference;
- precheck: the same, plus the knowledge files' seed questions;
- PR-MMLU: the multiple-choice questions SDG generated from each knowledge document;
- the regression guard: a fixed set of general questions kept in the repository."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # the dashboard imports this module; it needs no worker code
    from workers.sdg.stage import Changed

log = logging.getLogger(__name__)

GENERAL_QUESTIONS = Path(__file__).with_name("general.yaml")
MCQ_LETTERS = "ABCDEFGH"


class QuestionsError(ValueError):
    """A question file is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Question:
    id: str  # "<leaf>#<n>" for seeds, the set's own id for the guard
    group: str  # the qna.yaml file (or the guard's category) it is reported under
    question: str  # as both models are asked it
    reference: str  # the contributor's answer (or the guard's reference)
    context: str = ""  # shown to the judge; already part of ``question`` for grounded skills


def seed_questions(changed: list[Changed], *, knowledge: bool) -> list[Question]:
    """The seed examples of the PR's skill files, and of its knowledge files when asked."""
    questions: list[Question] = []
    for item in changed:
        leaf = item.path.removesuffix("/qna.yaml")
        examples = item.data.get("seed_examples") or []
        if leaf.startswith("knowledge/"):
            if not knowledge:
                continue
            pairs = [
                (str(qa.get("question", "")), str(qa.get("answer", "")))
                for example in examples
                for qa in example.get("questions_and_answers") or []
            ]
            # Asked without the passage: precheck wants to know what the model already knows.
            questions += [
                Question(f"{leaf}#{n}", item.path, q.strip(), a.strip())
                for n, (q, a) in enumerate(pairs, 1)
            ]
            continue
        for n, example in enumerate(examples, 1):
            question = str(example.get("question", "")).strip()
            context = str(example.get("context") or "").strip()
            asked = f"{context}\n\n{question}" if context else question
            answer = str(example.get("answer", "")).strip()
            questions.append(Question(f"{leaf}#{n}", item.path, asked, answer, context))
    return questions


def general_questions(path: Path | None = None) -> tuple[int, list[Question]]:
    """The regression guard's version and questions."""
    path = path or GENERAL_QUESTIONS
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        version = int(document["version"])
        questions = [
            Question(
                str(item["id"]),
                str(item["category"]),
                str(item["question"]).strip(),
                str(item.get("reference") or "").strip(),
            )
            for item in document["questions"]
        ]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise QuestionsError(f"the regression guard's questions ({path}): {exc!r}") from None
    if len({q.id for q in questions}) != len(questions):
        raise QuestionsError(f"the regression guard's questions ({path}) repeat an id")
    return version, questions


@dataclass(frozen=True)
class MultipleChoiceQuestion:
    leaf: str
    question: str
    choices: list[str]
    answer: int  # index into choices

    def prompt(self) -> str:
        """MMLU's zero-shot layout: the question, lettered choices, then "Answer:"."""
        lines = [self.question.strip()]
        lines += [f"{MCQ_LETTERS[i]}. {choice.strip()}" for i, choice in enumerate(self.choices)]
        lines.append("Answer:")
        return "\n".join(lines)

    def continuations(self) -> list[str]:
        return [f" {MCQ_LETTERS[i]}" for i in range(len(self.choices))]


def multiple_choice_questions(mcq_dir: Path) -> dict[str, list[MultipleChoiceQuestion]]:
    """Each knowledge leaf's questions from an SDG dataset's ``mcq/`` files; a record that is
    not a valid question is left out (and logged)."""
    by_leaf: dict[str, list[MultipleChoiceQuestion]] = {}
    if not mcq_dir.is_dir():
        return by_leaf
    for path in sorted(mcq_dir.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parsed = _multiple_choice(line)
            if parsed is None:
                log.warning("%s:%d is not a multiple-choice question; left out", path.name, number)
                continue
            by_leaf.setdefault(parsed.leaf, []).append(parsed)
    return by_leaf


def _multiple_choice(line: str) -> MultipleChoiceQuestion | None:
    try:
        record: Any = json.loads(line)
        choices = record["choices"]
        answer = record["answer"]
        if not (
            isinstance(choices, list)
            and 2 <= len(choices) <= len(MCQ_LETTERS)
            and all(isinstance(c, str) for c in choices)
            and type(answer) is int
            and 0 <= answer < len(choices)
        ):
            return None
        return MultipleChoiceQuestion(
            str(record["leaf"]), str(record["question"]), list(choices), answer
        )
    except (ValueError, KeyError, TypeError):
        return None
