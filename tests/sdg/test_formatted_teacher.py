"""The pipelines' success path on a real vLLM server: the formatted tiny teacher
(tests/sdg/formatted_data.py) answers every prompt in its format, so a freeform skill leaf and a
knowledge leaf it was not trained on keep samples at every step, and the dataset written from
them is non-empty and valid. It is also the evaluation's judge: it rates answers to those leaves'
seed questions in the judge prompt's format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from tests.sdg.formatted_data import FORMATTED_TEACHER_NAME, MAX_SEED_ANSWER_WORDS, shorten
from tests.sdg.test_pipelines import (
    Reports,
    assert_consistent,
    freeform_leaf,
    grounded_leaf,
    knowledge_leaf,
)
from tests.sdg.vllm import VllmServer
from workers.eval.judge import MAX_RATING, MIN_RATING, judge_messages, judge_prompt, parse_judgment
from workers.sdg import dataset
from workers.sdg.pipelines import generate_leaf
from workers.sdg.records import Leaf, LeafOutput
from workers.sdg.steps import StepStore
from workers.sdg.teacher import Sampling, Teacher, open_teacher

# The first use on a machine trains the teacher (about 100 s) and starts a second server.
pytestmark = pytest.mark.timeout(900)

PASSING = {
    "question_judge": {"1"},
    "pair_judge": {"2", "3"},
    "faithfulness": {"YES"},
    "relevancy": {"2"},
    "standalone": {"1"},
}


def formatted_settings(server: VllmServer, model_dir: Path, data_dir: Path) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "sdg_teacher_urls": [server.url],
        "sdg_teacher_tokenizer": model_dir,
        "sdg_questions_per_seed": 2,
        "sdg_qa_per_chunk": 2,
        "sdg_mcq_per_leaf": 4,
        # A multiple-choice reply is about 75 of the tiny tokenizer's tokens.
        "sdg_max_new_tokens": 96,
        # Sampled, so the completions of one prompt differ (judges stay greedy).
        "sdg_temperature": 0.7,
        "sdg_batch_size": 4,
        "sdg_concurrency": 2,
    }
    return Settings(_env_file=None, **values)


def run_leaf(leaf: Leaf, teacher: Teacher, settings: Settings, steps: Path) -> LeafOutput:
    reports = Reports()
    output = generate_leaf(leaf, teacher, settings, StepStore(steps), reports)
    assert_consistent(output, leaf, teacher, reports)
    for count in output.counts:
        assert count.skipped == 0, count  # every prompt fits the 512-token context
        assert 0 < count.kept <= count.generated, (leaf.kind, output.counts)
    for sample in output.samples:
        scores = sample.metadata["judge_scores"]
        assert set(scores) == (
            {"faithfulness", "relevancy", "standalone"}
            if leaf.kind == "knowledge"
            else {"question_judge", "pair_judge"}
        )
        assert all(value in PASSING[step] for step, value in scores.items()), scores
    return output


def test_the_formatted_teacher_keeps_samples_at_every_step(
    formatted_vllm_server: VllmServer, formatted_teacher_dir: Path, tmp_path: Path
) -> None:
    settings = formatted_settings(formatted_vllm_server, formatted_teacher_dir, tmp_path)
    skill, knowledge = freeform_leaf(seeds=3), knowledge_leaf()
    with open_teacher(settings) as teacher:
        assert teacher.model == FORMATTED_TEACHER_NAME
        skill_output = run_leaf(skill, teacher, settings, tmp_path / "steps")
        knowledge_output = run_leaf(knowledge, teacher, settings, tmp_path / "steps")

    # Different prompts get different questions: deduplication keeps more than one.
    questions = {s.messages[0]["content"] for s in skill_output.samples}
    assert len(questions) > 1, skill_output.samples
    for question in knowledge_output.multiple_choice:
        assert len({c.casefold() for c in question.choices}) == 4, question

    files = dataset.write_dataset(
        tmp_path / "dataset", [skill_output, knowledge_output], settings, teacher.model
    )
    records = {}
    for name in (dataset.KNOWLEDGE_FILE, dataset.SKILLS_FILE):
        lines = (tmp_path / "dataset" / name).read_text().splitlines()
        records[name] = [json.loads(line) for line in lines]
        assert records[name], name
        assert files.counts[name] == len(records[name])
        for record in records[name]:
            assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
            assert all(m["content"].strip() for m in record["messages"])
            metadata = record["metadata"]
            assert metadata["source"] == "generated"
            assert metadata["teacher_model"] == FORMATTED_TEACHER_NAME
    assert {r["metadata"]["leaf"] for r in records[dataset.KNOWLEDGE_FILE]} == {knowledge.path}
    # Phase 2 repeats the knowledge samples after the skill's.
    assert {r["metadata"]["leaf"] for r in records[dataset.SKILLS_FILE]} == {
        skill.path,
        knowledge.path,
    }
    mcq = [json.loads(line) for line in files.mcq[knowledge.path].read_text().splitlines()]
    assert mcq
    manifest = json.loads(files.manifest.read_text())
    assert manifest["teacher_model"] == FORMATTED_TEACHER_NAME
    for leaf in (skill, knowledge):
        steps = manifest["leaves"][leaf.path]["steps"]
        assert all(step["kept"] > 0 for step in steps), steps


def test_the_formatted_teacher_judges_answers_to_leaves_it_was_not_trained_on(
    formatted_vllm_server: VllmServer, formatted_teacher_dir: Path, tmp_path: Path
) -> None:
    """The evaluation's judge prompt, filled in with the held-out leaves' seeds (each answer
    rated as given and as another seed's answer), gets replies that ``parse_judgment`` reads."""
    settings = formatted_settings(formatted_vllm_server, formatted_teacher_dir, tmp_path)

    def cut(text: str) -> str:
        # The training seeds' limit: the grounded leaf's longest seed would not fit 512 tokens.
        return shorten(text, MAX_SEED_ANSWER_WORDS)

    conversations = []
    for leaf in (freeform_leaf(seeds=3), grounded_leaf(), knowledge_leaf()):
        seeds = leaf.seeds
        for seed, other in zip(seeds, (*seeds[1:], seeds[0]), strict=True):
            # Grounded and knowledge seeds come with their context, freeform ones without.
            question, reference, context = cut(seed.question), cut(seed.answer), cut(seed.context)
            for answer in (reference, cut(other.answer)):
                conversations.append(judge_messages(question, answer, reference, context))
    sampling = Sampling(max_tokens=64, temperature=0.0, stop=judge_prompt().stop)
    with open_teacher(settings) as teacher:
        replies = teacher.chat(conversations, sampling)
    assert len(replies) == len(conversations) >= 10
    for reply in replies:
        assert reply.skipped is None, reply  # every judge prompt fits the 512-token context
        judgment = parse_judgment(reply.texts[0])
        assert judgment is not None, reply.texts
        assert MIN_RATING <= judgment.rating <= MAX_RATING, judgment
        assert judgment.reasoning, judgment
