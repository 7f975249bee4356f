"""The SDG dataset files: mixing (dedup, cap, replay), PR-MMLU sets, manifest, preview, and
writes that never leave a half file looking complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from workers.sdg.dataset import DatasetFiles, preview, write_dataset
from workers.sdg.records import LeafOutput, MultipleChoice, Sample, StepCount
from workers.sdg.steps import slug

KNOWLEDGE_LEAF = "knowledge/science/astronomy/planets"
SKILL_LEAF = "compositional_skills/writing/haiku"
GROUNDED_LEAF = "compositional_skills/grounded/summary"
TEACHER = "mixtral-8x7b-instruct"


def sample(question: str, answer: str, system: str = "You are helpful.", **meta: Any) -> Sample:
    return Sample(
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        metadata=meta,
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "var", "sdg_replay_samples": 0}
    values.update(overrides)
    return Settings(**values)


def knowledge_output(count: int = 4) -> LeafOutput:
    return LeafOutput(
        leaf=KNOWLEDGE_LEAF,
        kind="knowledge",
        samples=[
            sample(f"How far is planet {i}?", f"About {i} AU.", step="qa") for i in range(count)
        ],
        multiple_choice=[
            MultipleChoice(KNOWLEDGE_LEAF, "Which planet is largest?", ["Mars", "Jupiter"], 1),
            MultipleChoice(
                KNOWLEDGE_LEAF, "Which is a gas giant?", ["Saturn", "Venus", "Mercury"], 0
            ),
            MultipleChoice(KNOWLEDGE_LEAF, "which planet is  LARGEST?", ["Mars", "Jupiter"], 1),
            MultipleChoice(KNOWLEDGE_LEAF, "Broken answer index", ["a", "b"], 2),
            MultipleChoice(KNOWLEDGE_LEAF, "One choice only", ["a"], 0),
        ],
        counts=[StepCount("knowledge_qa", generated=10, kept=count), StepCount("mcq", 5, 5)],
    )


def skill_output() -> LeafOutput:
    return LeafOutput(
        leaf=SKILL_LEAF,
        kind="freeform",
        samples=[
            sample("Write a haiku about rain.", "Soft rain on the roof"),
            # The same question and answer: other case, spacing and system prompt.
            sample("write a haiku  about RAIN.", "soft rain on the  roof", system="Other."),
            sample("Write a haiku about snow.", "White hush on the hills"),
            Sample(messages=[{"role": "user", "content": "No answer"}], metadata={}),
            Sample(messages=[{"role": "robot", "content": "x"}], metadata={}),
        ],
        counts=[StepCount("freeform_questions", 60, 30, 1)],
    )


def test_files_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    files = write_dataset(out, [skill_output(), knowledge_output()], settings(tmp_path), TEACHER)

    assert isinstance(files, DatasetFiles)
    knowledge = lines(files.knowledge)
    assert [r["messages"][1]["content"] for r in knowledge] == [
        f"How far is planet {i}?" for i in range(4)
    ]
    assert knowledge[0]["metadata"] == {
        "step": "qa",
        "leaf": KNOWLEDGE_LEAF,
        "kind": "knowledge",
        "source": "generated",
    }
    skills = lines(files.skills)
    # Skills first, then the knowledge samples again for phase 2.
    assert [r["metadata"]["leaf"] for r in skills] == [SKILL_LEAF] * 2 + [KNOWLEDGE_LEAF] * 4
    assert [r["messages"][2]["content"] for r in skills[:2]] == [
        "Soft rain on the roof",
        "White hush on the hills",
    ]

    mcq_name = f"mcq/{slug(KNOWLEDGE_LEAF)}.jsonl"
    assert files.mcq == {KNOWLEDGE_LEAF: out / mcq_name}
    assert lines(out / mcq_name) == [
        {
            "leaf": KNOWLEDGE_LEAF,
            "question": "Which planet is largest?",
            "choices": ["Mars", "Jupiter"],
            "answer": 1,
            "metadata": {},
        },
        {
            "leaf": KNOWLEDGE_LEAF,
            "question": "Which is a gas giant?",
            "choices": ["Saturn", "Venus", "Mercury"],
            "answer": 0,
            "metadata": {},
        },
    ]
    assert files.counts == {"knowledge.jsonl": 4, "skills.jsonl": 6, mcq_name: 2}

    manifest = json.loads(files.manifest.read_text())
    assert manifest["teacher_model"] == TEACHER
    assert manifest["created_at"].endswith("+00:00")
    assert manifest["files"] == {
        "knowledge.jsonl": {"records": 4},
        "skills.jsonl": {"records": 6},
        mcq_name: {"records": 2},
    }
    assert manifest["skills_mix"] == {"skills": 2, "knowledge": 4, "replay": 0}
    assert manifest["leaves"][SKILL_LEAF] == {
        "kind": "freeform",
        "samples": {"generated": 5, "invalid": 2, "duplicates": 1, "over_cap": 0, "kept": 2},
        "files": {"skills.jsonl": 2},
        "multiple_choice": {"generated": 0, "invalid": 0, "duplicates": 0, "kept": 0},
        "steps": [{"step": "freeform_questions", "generated": 60, "kept": 30, "skipped": 1}],
    }
    knowledge_leaf = manifest["leaves"][KNOWLEDGE_LEAF]
    assert knowledge_leaf["files"] == {"knowledge.jsonl": 4, "skills.jsonl": 4, mcq_name: 2}
    assert knowledge_leaf["multiple_choice"] == {
        "generated": 5,
        "invalid": 2,
        "duplicates": 1,
        "kept": 2,
    }
    assert [step["step"] for step in knowledge_leaf["steps"]] == ["knowledge_qa", "mcq"]


def test_duplicates_across_leaves_are_written_once(tmp_path: Path) -> None:
    other = LeafOutput(
        leaf="compositional_skills/writing/poems",
        kind="freeform",
        samples=[sample("Write a haiku about rain.", "Soft rain on the roof"), sample("Q", "A")],
    )
    files = write_dataset(tmp_path / "out", [skill_output(), other], settings(tmp_path), TEACHER)
    skills = lines(files.skills)
    # The copy in the leaf first in path order (haiku) is kept; poems loses its duplicate.
    assert [(r["metadata"]["leaf"], r["messages"][1]["content"]) for r in skills] == [
        (SKILL_LEAF, "Write a haiku about rain."),
        (SKILL_LEAF, "Write a haiku about snow."),
        ("compositional_skills/writing/poems", "Q"),
    ]
    manifest = json.loads(files.manifest.read_text())
    assert manifest["leaves"]["compositional_skills/writing/poems"]["samples"]["duplicates"] == 1


def test_samples_per_leaf_are_capped_by_a_seeded_choice(tmp_path: Path) -> None:
    many = LeafOutput(
        leaf=GROUNDED_LEAF,
        kind="grounded",
        samples=[sample(f"Summarise text {i}.", f"Summary {i}.") for i in range(100)],
    )
    config = settings(tmp_path, sdg_max_samples_per_leaf=10)
    first = write_dataset(tmp_path / "a", [many], config, TEACHER)
    second = write_dataset(tmp_path / "b", [many], config, TEACHER)

    chosen = [r["messages"][1]["content"] for r in lines(first.skills)]
    assert len(chosen) == 10
    assert chosen == [r["messages"][1]["content"] for r in lines(second.skills)]
    numbers = [int(text.split()[-1].rstrip(".")) for text in chosen]
    assert numbers == sorted(numbers)  # original order kept
    assert numbers != list(range(10))  # a spread, not the first ten
    manifest = json.loads(first.manifest.read_text())
    assert manifest["leaves"][GROUNDED_LEAF]["samples"]["over_cap"] == 90


def test_knowledge_in_skills_can_be_capped_or_left_out(tmp_path: Path) -> None:
    config = settings(tmp_path)
    some = write_dataset(
        tmp_path / "some", [knowledge_output(20)], config, TEACHER, knowledge_in_skills=5
    )
    assert len(lines(some.skills)) == 5
    assert json.loads(some.manifest.read_text())["skills_mix"]["knowledge"] == 5
    none = write_dataset(
        tmp_path / "none", [knowledge_output(20)], config, TEACHER, knowledge_in_skills=0
    )
    assert lines(none.skills) == []
    assert len(lines(none.knowledge)) == 20


def replay_line(question: str, answer: str, **extra: Any) -> str:
    record = {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        **extra,
    }
    return json.dumps(record)


def test_replay_records_are_validated_and_mixed_into_phase_two(tmp_path: Path) -> None:
    replay = tmp_path / "replay.jsonl"
    good = [replay_line(f"Old question {i}?", f"Old answer {i}.") for i in range(30)]
    bad = [
        "{not json",
        json.dumps([1, 2, 3]),
        json.dumps({"messages": "text"}),
        json.dumps({"messages": [{"role": "user", "content": "no answer"}]}),
        json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant"}]}),
        replay_line("q", "a")[:-1] + ', "score": NaN}',  # NaN is not JSON
        replay_line("long", "x" * (2 * 1024 * 1024)),
    ]
    duplicate = replay_line("Write a haiku about snow.", "White hush on the hills")
    blob = (
        "\n".join([*good[:10], *bad[:4], "", duplicate, *good[10:], *bad[4:]]).encode()
        + b"\n\xff\xfe not utf-8\n"
        + replay_line("Last", "line", metadata={"dataset": "skills-v1"}).encode()  # no newline
    )
    replay.write_bytes(blob)
    config = settings(tmp_path, sdg_replay_path=replay, sdg_replay_samples=12)

    files = write_dataset(tmp_path / "out", [skill_output()], config, TEACHER)
    skills = lines(files.skills)
    replayed = [r for r in skills if r["metadata"].get("source") == "replay"]
    assert len(replayed) == 12
    assert len(skills) == 2 + 12
    assert all("leaf" not in r["metadata"] for r in replayed)
    assert all(r["messages"][0]["role"] == "user" for r in replayed)
    manifest = json.loads(files.manifest.read_text())
    assert manifest["replay"] == {
        "configured": True,
        "requested": 12,
        "valid": 31,
        "invalid": 8,
        "duplicates": 1,
        "used": 12,
    }
    assert manifest["skills_mix"] == {"skills": 2, "knowledge": 0, "replay": 12}

    # The same choice on a rerun.
    again = write_dataset(tmp_path / "again", [skill_output()], config, TEACHER)
    assert lines(again.skills) == skills


def test_a_small_replay_file_is_used_whole(tmp_path: Path) -> None:
    replay = tmp_path / "replay.jsonl"
    replay.write_text(
        replay_line("Old?", "Yes.", metadata={"dataset": "base"}) + "\n", encoding="utf-8"
    )
    config = settings(tmp_path, sdg_replay_path=replay, sdg_replay_samples=1000)
    files = write_dataset(tmp_path / "out", [], config, TEACHER)
    assert lines(files.skills) == [
        {
            "messages": [
                {"role": "user", "content": "Old?"},
                {"role": "assistant", "content": "Yes."},
            ],
            "metadata": {"dataset": "base", "source": "replay"},
        }
    ]


def test_an_unreadable_replay_file_fails_without_naming_it(tmp_path: Path) -> None:
    from workers.sdg.dataset import DatasetError

    config = settings(tmp_path, sdg_replay_path=tmp_path / "absent.jsonl", sdg_replay_samples=5)
    with pytest.raises(DatasetError) as error:
        write_dataset(tmp_path / "out", [skill_output()], config, TEACHER)
    assert str(tmp_path) not in str(error.value)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_preview_reads_a_few_samples_per_leaf(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert preview(out) == {}
    write_dataset(out, [skill_output(), knowledge_output(6)], settings(tmp_path), TEACHER)

    shown = preview(out, per_leaf=3)
    assert set(shown) == {SKILL_LEAF, KNOWLEDGE_LEAF}
    assert [r["messages"][1]["content"] for r in shown[KNOWLEDGE_LEAF]] == [
        "How far is planet 0?",
        "How far is planet 1?",
        "How far is planet 2?",
    ]
    assert len(shown[SKILL_LEAF]) == 2  # all it has
    assert preview(out, per_leaf=0) == {SKILL_LEAF: [], KNOWLEDGE_LEAF: []}

    # A knowledge leaf with fewer samples than asked is not padded with its phase 2 copies.
    small = tmp_path / "small"
    write_dataset(small, [knowledge_output(2)], settings(tmp_path), TEACHER)
    assert len(preview(small, per_leaf=5)[KNOWLEDGE_LEAF]) == 2


def test_a_failure_mid_write_leaves_no_partial_or_complete_looking_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = write_dataset(out, [skill_output(), knowledge_output()], settings(tmp_path), TEACHER)
    before = first.knowledge.read_bytes()

    broken = knowledge_output(50)
    # The 30th sample cannot be serialised: the write fails half way through the file.
    broken.samples[30] = sample("Bad", "metadata", unserialisable=object())
    with pytest.raises(TypeError):
        write_dataset(out, [skill_output(), broken], settings(tmp_path), TEACHER)

    assert not (out / "manifest.json").exists()  # the dataset no longer claims to be complete
    assert first.knowledge.read_bytes() == before  # the old file, whole, never a half new one
    leftovers = [path.name for path in out.rglob("*") if path.name.startswith(".")]
    assert leftovers == []
    assert preview(out) == {}


def test_partial_files_of_a_killed_run_are_cleaned_and_stale_sets_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "mcq").mkdir(parents=True)
    (out / ".skills.jsonl.abc123.partial").write_text('{"messages": [')
    (out / "mcq" / "knowledge-old-leaf-00000000.jsonl").write_text("{}\n")
    files = write_dataset(out, [skill_output(), knowledge_output()], settings(tmp_path), TEACHER)
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert written == sorted([*files.counts, "manifest.json"])
    assert len(files.counts) == 3  # knowledge, skills and one multiple-choice set
