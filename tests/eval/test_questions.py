"""What the evaluation asks: seed questions per file, the regression guard's set, and the
PR-MMLU questions read from an SDG dataset (bad records left out)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from workers.eval.questions import (
    QuestionsError,
    general_questions,
    multiple_choice_questions,
    seed_questions,
)
from workers.sdg.stage import Changed

SKILL = Changed(
    "compositional_skills/grounded/summary/qna.yaml",
    {
        "seed_examples": [
            {"context": "A long passage.", "question": "Summarise it.", "answer": "Short."},
            {"question": "No context here?", "answer": "Fine."},
        ]
    },
)
KNOWLEDGE = Changed(
    "knowledge/birds/chickadee/qna.yaml",
    {
        "seed_examples": [
            {
                "context": "Chickadees cache food.",
                "questions_and_answers": [
                    {"question": "What do they cache?", "answer": "Food."},
                    {"question": "Where?", "answer": "In many places."},
                ],
            }
        ]
    },
)


def test_seed_questions_put_the_context_first_and_skip_knowledge_for_bench() -> None:
    bench = seed_questions([SKILL, KNOWLEDGE], knowledge=False)
    assert [q.id for q in bench] == [
        "compositional_skills/grounded/summary#1",
        "compositional_skills/grounded/summary#2",
    ]
    assert bench[0].question == "A long passage.\n\nSummarise it."
    assert bench[0].reference == "Short."
    assert bench[1].question == "No context here?"
    assert {q.group for q in bench} == {SKILL.path}
    precheck = seed_questions([SKILL, KNOWLEDGE], knowledge=True)
    assert [q.question for q in precheck[2:]] == ["What do they cache?", "Where?"]


def test_the_bundled_regression_guard() -> None:
    version, questions = general_questions()
    assert version == 1
    assert len(questions) == 32
    assert Counter(q.group for q in questions) == dict.fromkeys(
        ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"],
        4,
    )
    assert all(q.question and q.reference for q in questions)


def test_a_broken_guard_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "guard.yaml"
    broken.write_text("version: 1\nquestions:\n  - id: a\n")
    with pytest.raises(QuestionsError, match="regression guard"):
        general_questions(broken)
    twice = tmp_path / "twice.yaml"
    item = {"id": "a", "category": "c", "question": "q", "reference": "r"}
    twice.write_text(json.dumps({"version": 1, "questions": [item, item]}))
    with pytest.raises(QuestionsError, match="repeat an id"):
        general_questions(twice)


def test_multiple_choice_files_are_read_and_bad_records_left_out(tmp_path: Path) -> None:
    mcq = tmp_path / "mcq"
    mcq.mkdir()
    good = {"leaf": "knowledge/x", "question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 2}
    lines = [
        json.dumps(good),
        "not json",
        json.dumps({**good, "answer": 7}),
        json.dumps({**good, "choices": "abcd"}),
        json.dumps({**good, "answer": True}),
    ]
    (mcq / "x.jsonl").write_text("\n".join(lines) + "\n")
    read = multiple_choice_questions(mcq)
    assert list(read) == ["knowledge/x"]
    (question,) = read["knowledge/x"]
    assert question.prompt() == "Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    assert question.continuations() == [" A", " B", " C", " D"]
    assert multiple_choice_questions(tmp_path / "missing") == {}
