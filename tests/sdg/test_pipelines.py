"""The SDG prompts, their output parser, the resumable step store, and the three generation
pipelines run against a real vLLM server on a tiny random teacher.

A random teacher writes gibberish, so its replies mostly fail to parse; to drive the later
steps the integration tests rewrite stored replies into what a capable teacher would have
said, then rerun: the pipeline reads them from the step files like any resumed job."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from app.config import Settings
from tests.sdg.vllm import VllmServer
from workers.sdg import prompts
from workers.sdg.pipelines import PROMPTS, STEPS, generate_leaf, multiple_choice_per_chunk
from workers.sdg.records import Leaf, LeafKind, LeafOutput, Seed
from workers.sdg.steps import StepFile, StepResult, StepStore, WorkItem, item_key, slug
from workers.sdg.teacher import Teacher, open_teacher

TAXONOMY = Path(__file__).resolve().parents[3] / "shared" / "data" / "taxonomy"
MAIN = TAXONOMY / "main-HEAD-9488b9b4"

# --- prompts --------------------------------------------------------------------------------

# The variables each prompt is rendered with by the pipelines.
PROMPT_VARIABLES: dict[str, dict[str, Any]] = {
    "freeform_questions": {"task_description": "Synonyms", "seed_question": "Synonym of big?"},
    "grounded_contexts": {"task_description": "Rewrite", "seed_context": "A master node."},
    "grounded_questions": {
        "task_description": "Rewrite",
        "seed_context": "A master node.",
        "seed_question": "Rewrite it.",
        "context": "The slave disk.",
    },
    "question_judge": {"task_description": "Synonyms", "question": "Q?", "context": ""},
    "answer": {
        "seed_context": "",
        "seed_question": "Synonym of big?",
        "seed_answer": "Large.",
        "context": "",
        "question": "Synonym of small?",
    },
    "pair_judge": {"question": "Q?", "answer": "A.", "context": ""},
    "knowledge_qa": {
        "domain": "birds",
        "document_outline": "Chickadees",
        "example_passage": "Chickadees eat seeds.",
        "examples": [{"question": "What do chickadees eat?", "answer": "Seeds."}],
        "passage": "Chickadees cache food.",
    },
    "faithfulness_judge": {"passage": "P.", "question": "Q?", "answer": "A."},
    "relevancy_judge": {"question": "Q?", "answer": "A."},
    "standalone_judge": {"question": "Q?"},
    "multiple_choice": {"domain": "birds", "passage": "Chickadees cache food."},
}


def test_every_prompt_file_loads_and_renders_its_variables() -> None:
    assert sorted(PROMPT_VARIABLES) == prompts.available()
    for name, variables in PROMPT_VARIABLES.items():
        template = prompts.load(name)
        assert template.version >= 1
        assert template.stop == ("[End]",)
        messages = template.messages(**variables)
        assert [m["role"] for m in messages] == ["system", "user"]
        # Every variable's value appears in the prompt (nothing silently dropped).
        for value in variables.values():
            if isinstance(value, str) and value:
                assert value in messages[1]["content"], (name, value)
        # The prompt names each marker the parser looks for.
        for marker in template.output.fields:
            assert f"[{marker}]" in messages[1]["content"], (name, marker)


def test_a_missing_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(jinja2.UndefinedError):
        prompts.load("pair_judge").messages(question="Q?", answer="A.")


def test_optional_context_appears_only_when_given() -> None:
    judge = prompts.load("question_judge")
    without = judge.messages(task_description="T", question="Q?", context="")[1]["content"]
    with_context = judge.messages(task_description="T", question="Q?", context="Ctx here.")
    assert "[Context]" not in without
    assert "[Context]\nCtx here." in with_context[1]["content"]


def test_variables_are_data_not_template_code() -> None:
    question = "What does {{ 7 * 7 }} print in {% raw %}Jinja?"
    rendered = prompts.load("standalone_judge").messages(question=question)[1]["content"]
    assert question in rendered


def test_parse_well_formed_outputs() -> None:
    qa = prompts.load("knowledge_qa")
    assert qa.parse("[Question]\nWhat is a chickadee?\n[Answer]\nA small bird.\n") == {
        "Question": "What is a chickadee?",
        "Answer": "A small bird.",
    }
    judge = prompts.load("pair_judge")
    assert judge.parse("[Explanation]\nGood.\n[Score]\n3\n[End]") == {
        "Explanation": "Good.",
        "Score": "3",
    }
    mcq = prompts.load("multiple_choice")
    fields = mcq.parse("[Question] Q?\n[A] one\n[B] two\n[C] three\n[D] four\n[Answer] C")
    assert fields is not None
    assert [fields[k] for k in ("Question", "A", "B", "C", "D", "Answer")] == [
        "Q?",
        "one",
        "two",
        "three",
        "four",
        "C",
    ]


def test_parse_tolerates_chatter_case_and_emphasis() -> None:
    judge = prompts.load("question_judge")
    assert judge.parse("Sure!\n[ score ]\n**1**") == {"Score": "1"}
    faithful = prompts.load("faithfulness_judge")
    assert faithful.parse("[Explanation] ok [Verdict] yes.") == {
        "Explanation": "ok",
        "Verdict": "YES",
    }
    mcq = prompts.load("multiple_choice")
    answer = mcq.parse("[Question] Q?\n[A] a\n[B] b\n[C] c\n[D] d\n[Answer]\nB) b")
    assert answer is not None
    assert answer["Answer"] == "B"


def test_parse_takes_only_the_first_record() -> None:
    questions = prompts.load("freeform_questions")
    text = "[Question]\nFirst?\n[End]\n[Question]\nSecond?\n[End]"
    assert questions.parse(text) == {"Question": "First?"}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("freeform_questions", ""),
        ("freeform_questions", "the of and module returns a list of path objects"),
        ("freeform_questions", "[Question]\n   \n[End]"),  # empty
        ("knowledge_qa", "[Question]\nWhat is it?\n"),  # cut off before the answer
        ("knowledge_qa", "[Answer] only an answer"),
        ("question_judge", "[Explanation] fine but no score"),
        ("question_judge", "[Score]\n<0 or 1>"),  # the placeholder echoed back
        ("question_judge", "[Score] 7"),  # out of range
        ("pair_judge", "[Score] 0"),
        ("faithfulness_judge", "[Verdict] maybe"),
        ("multiple_choice", "[Question] Q?\n[A] a\n[B] b\n[C] c\n[Answer] A"),  # no D
        ("multiple_choice", "[Question] Q?\n[A] a\n[B] b\n[C] c\n[D] d\n[Answer] E"),
        ("multiple_choice", "[[[ ]]] [A [B] ] [End] [End]"),
    ],
)
def test_parse_rejects_gibberish_and_partial_outputs(name: str, text: str) -> None:
    assert prompts.load(name).parse(text) is None


def test_a_malformed_prompt_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "broken",
                "version": 1,
                "user": "x",
                "output": {"fields": ["A"], "values": {"B": ["1"]}},
            }
        )
    )
    monkeypatch.setattr(prompts, "PROMPTS_DIR", tmp_path)
    prompts.load.cache_clear()
    try:
        with pytest.raises(prompts.PromptError, match="unknown fields"):
            prompts.load("broken")
    finally:
        prompts.load.cache_clear()


# --- step store -----------------------------------------------------------------------------


def items(count: int) -> list[WorkItem]:
    return [
        WorkItem(item_key("step", index), [{"role": "user", "content": f"prompt {index}"}])
        for index in range(count)
    ]


def test_keys_are_stable_and_distinguish_inputs() -> None:
    assert item_key("a", {"x": 1, "y": [1, 2]}) == item_key("a", {"y": [1, 2], "x": 1})
    assert item_key("a", 1) != item_key("a", 2)
    assert slug("knowledge/a b") != slug("knowledge/a_b")
    assert "/" not in slug("compositional_skills/writing/haiku")


def test_step_store_resumes_after_a_kill_mid_write(tmp_path: Path) -> None:
    store = StepStore(tmp_path)
    file = store.step("knowledge/science/birds", "qa")
    work = items(5)
    assert file.pending(work) == work

    file.append(StepResult(item.key, [f"reply {i}"]) for i, item in enumerate(work[:3]))
    file.append([StepResult(work[3].key, [], skipped="prompt too long")])
    # A kill in the middle of writing the fourth record leaves half a line.
    raw = file.path.read_bytes()
    file.path.write_bytes(raw[: raw.rindex(b"\n", 0, len(raw) - 1) + 1] + raw[-20:-5])

    reopened = StepStore(tmp_path).step("knowledge/science/birds", "qa")
    assert [item.key for item in reopened.pending(work)] == [work[3].key, work[4].key]
    assert reopened.load()[work[0].key].texts == ["reply 0"]

    # Appending after the cut drops the half line instead of gluing onto it.
    reopened.append([StepResult(work[3].key, ["again"]), StepResult(work[4].key, ["new"])])
    lines = reopened.path.read_text().splitlines()
    assert len(lines) == 5
    assert all(json.loads(line)["key"] for line in lines)
    assert reopened.pending(work) == []
    assert reopened.load()[work[3].key].texts == ["again"]


def test_step_store_keeps_skips_and_details(tmp_path: Path) -> None:
    file = StepFile(tmp_path / "a" / "s.jsonl")
    file.append([StepResult("k", [], skipped="too long", details={"seed_index": 2})])
    assert file.load() == {"k": StepResult("k", [], skipped="too long", details={"seed_index": 2})}


def test_step_store_skips_damaged_lines_in_the_middle(tmp_path: Path) -> None:
    file = StepFile(tmp_path / "s.jsonl")
    file.append([StepResult("a", ["x"])])
    with file.path.open("a") as stream:
        stream.write('{"key": "b", "texts": "not a list"}\nnot json\n')
    file.append([StepResult("c", ["y"])])
    assert sorted(file.load()) == ["a", "c"]


def test_duplicate_work_items_are_asked_once(tmp_path: Path) -> None:
    work = items(2)
    assert StepFile(tmp_path / "s.jsonl").pending([work[0], work[1], work[0]]) == work


def test_step_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lower_snake_case"):
        StepStore(tmp_path).step("leaf", "../escape")


@pytest.mark.parametrize(
    ("total", "chunks", "expected"),
    [(20, 4, [5, 5, 5, 5]), (5, 4, [2, 1, 1, 1]), (2, 5, [1, 0, 1, 0, 0]), (0, 3, [0, 0, 0])],
)
def test_multiple_choice_spread_over_the_document(
    total: int, chunks: int, expected: list[int]
) -> None:
    assert multiple_choice_per_chunk(total, chunks) == expected
    assert multiple_choice_per_chunk(total, 0) == []


# --- the pipelines on a real teacher --------------------------------------------------------


def read_qna(relative: str) -> dict[str, Any]:
    data = yaml.safe_load((MAIN / relative / "qna.yaml").read_text())
    assert isinstance(data, dict)
    return data


def freeform_leaf(seeds: int = 2) -> Leaf:
    path = "compositional_skills/linguistics/synonyms"
    data = read_qna(path)
    examples = data["seed_examples"][:seeds]
    return Leaf(
        path=path,
        kind="freeform",
        task_description=data["task_description"],
        seeds=tuple(Seed(e["question"].strip(), e["answer"].strip()) for e in examples),
    )


def grounded_leaf(seeds: int = 2) -> Leaf:
    path = "compositional_skills/grounded/linguistics/inclusion"
    data = read_qna(path)
    examples = data["seed_examples"][:seeds]
    return Leaf(
        path=path,
        kind="grounded",
        task_description=data["task_description"],
        seeds=tuple(
            Seed(e["question"].strip(), e["answer"].strip(), e["context"].strip()) for e in examples
        ),
    )


# Hand-written document chunks about the leaf's subject (the document fetch is not tested here).
CHICKADEE_CHUNKS = (
    "## Caching\nIn autumn the black-capped chickadee hides seeds and insects in bark and "
    "lichen, and finds them again weeks later in winter.",
    "## Winter\nOn cold nights the black-capped chickadee lowers its body temperature by "
    "up to 12 degrees Celsius to save energy.",
)


def knowledge_leaf(chunks: tuple[str, ...] = CHICKADEE_CHUNKS) -> Leaf:
    """The chickadee leaf, cut down to fit the tiny teacher's 512-token context: of each seed
    context its first sentence and shortest Q&A, and of those the two shortest."""
    path = "knowledge/science/animals/birds/black_capped_chickadee"
    data = read_qna(path)
    seeds = []
    for example in data["seed_examples"]:
        context = " ".join(example["context"].split()).split(". ")[0] + "."
        qa = min(example["questions_and_answers"], key=lambda q: len(q["question"] + q["answer"]))
        seeds.append(
            Seed(" ".join(qa["question"].split()), " ".join(qa["answer"].split()), context)
        )
    seeds.sort(key=lambda seed: len(seed.context + seed.question + seed.answer))
    return Leaf(
        path=path,
        kind="knowledge",
        task_description="",
        seeds=tuple(seeds[:2]),
        domain=data["domain"],
        document_outline=" ".join(data["document_outline"].split()),
        document_chunks=chunks,
    )


LEAVES: dict[LeafKind, Callable[[], Leaf]] = {
    "freeform": freeform_leaf,
    "grounded": grounded_leaf,
    "knowledge": knowledge_leaf,
}


def sdg_settings(server: VllmServer, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "sdg_teacher_urls": [server.url],
        "sdg_questions_per_seed": 2,
        "sdg_contexts_per_seed": 2,
        "sdg_questions_per_context": 2,
        "sdg_qa_per_chunk": 2,
        "sdg_mcq_per_leaf": 3,
        "sdg_max_new_tokens": 64,
        "sdg_batch_size": 2,
        "sdg_concurrency": 2,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(vllm_server: VllmServer, tmp_path: Path) -> Settings:
    return sdg_settings(vllm_server, tmp_path)


@pytest.fixture
def teacher(settings: Settings) -> Iterator[Teacher]:
    with open_teacher(settings) as opened:
        yield opened


class Reports:
    """A report callback that records its calls and can cancel the run on one of them."""

    def __init__(self, raise_on_call: int | None = None) -> None:
        self.calls: list[tuple[str, float]] = []
        self.raise_on_call = raise_on_call

    def __call__(self, step: str, fraction: float) -> None:
        self.calls.append((step, fraction))
        if len(self.calls) == self.raise_on_call:
            raise JobCancelled(step)


class JobCancelled(Exception):
    pass


def assert_consistent(output: LeafOutput, leaf: Leaf, teacher: Teacher, reports: Reports) -> None:
    assert (output.leaf, output.kind) == (leaf.path, leaf.kind)
    assert [count.step for count in output.counts] == list(STEPS[leaf.kind])
    for count in output.counts:
        assert 0 <= count.kept <= count.generated, count
        assert count.skipped >= 0
    # The last judge's survivors are the samples.
    last_judge = "standalone" if leaf.kind == "knowledge" else "pair_judge"
    assert len(output.samples) == next(c.kept for c in output.counts if c.step == last_judge)
    versions = {name: prompts.load(name).version for name in PROMPTS[leaf.kind]}
    for sample in output.samples:
        assert [m["role"] for m in sample.messages] == ["user", "assistant"]
        assert all(m["content"].strip() for m in sample.messages)
        meta = sample.metadata
        assert meta["leaf"] == leaf.path
        assert meta["pipeline"] == leaf.kind
        assert meta["prompt_versions"] == versions
        assert meta["teacher_model"] == teacher.model
        assert 0 <= meta["seed_index"] < len(leaf.seeds)
        assert set(meta["sampling"]) == {"temperature", "top_p", "max_tokens"}
        if leaf.kind == "knowledge":
            chunk = leaf.document_chunks[meta["chunk_index"]]
            assert sample.messages[0]["content"].startswith(chunk)
    for question in output.multiple_choice:
        assert question.leaf == leaf.path
        assert len(question.choices) == 4
        assert 0 <= question.answer < 4
    fractions = [fraction for _, fraction in reports.calls]
    assert fractions == sorted(fractions)
    assert all(0 < fraction <= 1 for fraction in fractions)


def first_step_requests(leaf: Leaf, settings: Settings) -> int:
    """Completions the first step asks for: every prompt fits the tiny teacher's context."""
    if leaf.kind == "freeform":
        return len(leaf.seeds) * settings.sdg_questions_per_seed
    if leaf.kind == "grounded":
        return len(leaf.seeds) * settings.sdg_contexts_per_seed
    return len(leaf.document_chunks) * settings.sdg_qa_per_chunk


@pytest.mark.parametrize("kind", ["freeform", "grounded", "knowledge"])
def test_pipeline_runs_on_the_real_teacher(
    kind: LeafKind, settings: Settings, teacher: Teacher, tmp_path: Path
) -> None:
    leaf = LEAVES[kind]()
    reports = Reports()
    output = generate_leaf(leaf, teacher, settings, StepStore(tmp_path / "steps"), reports)
    assert_consistent(output, leaf, teacher, reports)
    first = output.counts[0]
    assert (first.generated, first.skipped) == (first_step_requests(leaf, settings), 0)
    assert reports.calls, "report is called after each teacher batch"
    if kind == "knowledge":
        mcq = output.counts[-1]
        assert (mcq.generated, mcq.skipped) == (settings.sdg_mcq_per_leaf, 0)


@pytest.mark.parametrize("kind", ["freeform", "grounded", "knowledge"])
def test_a_leaf_with_nothing_to_generate_from_lists_every_step_empty(
    kind: LeafKind, settings: Settings, teacher: Teacher, tmp_path: Path
) -> None:
    leaf = Leaf(path=f"{kind}/empty", kind=kind, task_description="Nothing.", seeds=())
    reports = Reports()
    output = generate_leaf(leaf, teacher, settings, StepStore(tmp_path / "steps"), reports)
    assert_consistent(output, leaf, teacher, reports)
    assert all((c.generated, c.kept, c.skipped) == (0, 0, 0) for c in output.counts)
    assert (output.samples, output.multiple_choice, reports.calls) == ([], [], [])
    assert teacher.stats.prompts == 0


def test_prompts_too_long_for_the_teacher_are_counted_as_skipped(
    settings: Settings, teacher: Teacher, tmp_path: Path
) -> None:
    long_chunk = "## Everything\n" + " ".join(["The chickadee stores seeds for the winter."] * 80)
    leaf = knowledge_leaf((CHICKADEE_CHUNKS[0], long_chunk))
    reports = Reports()
    output = generate_leaf(leaf, teacher, settings, StepStore(tmp_path / "steps"), reports)
    assert_consistent(output, leaf, teacher, reports)
    counts = {count.step: count for count in output.counts}
    assert (counts["qa"].skipped, counts["qa"].generated) == (1, settings.sdg_qa_per_chunk)
    assert counts["multiple_choice"].skipped == 1


# --- resuming ---------------------------------------------------------------------------------


def stored_lines(root: Path) -> dict[str, int]:
    """Complete records per step file (a line cut off by a kill is not one)."""
    return {
        str(path.relative_to(root)): len(StepFile(path).load())
        for path in sorted(root.rglob("*.jsonl"))
    }


def new_lines(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(count - before.get(name, 0) for name, count in after.items())


def test_a_rerun_asks_only_for_what_a_killed_run_did_not_store(
    vllm_server: VllmServer, teacher: Teacher, tmp_path: Path
) -> None:
    settings = sdg_settings(vllm_server, tmp_path, sdg_questions_per_seed=3)
    leaf = freeform_leaf(seeds=3)
    store = StepStore(tmp_path / "steps")
    first = generate_leaf(leaf, teacher, settings, store, Reports())

    # Kill: the last record lost, the one before it cut off mid-write.
    questions = store.step(leaf.path, "questions").path
    lines = questions.read_bytes().splitlines(keepends=True)
    assert len(lines) == len(leaf.seeds)
    questions.write_bytes(b"".join(lines[:-2]) + lines[-2][: len(lines[-2]) // 2])

    before, asked = stored_lines(tmp_path / "steps"), teacher.stats.prompts
    second = generate_leaf(leaf, teacher, settings, store, Reports())
    after = stored_lines(tmp_path / "steps")
    assert after[str(questions.relative_to(tmp_path / "steps"))] == len(leaf.seeds)
    # Two question prompts again, plus whatever the new questions led to downstream.
    assert teacher.stats.prompts - asked == new_lines(before, after) >= 2
    assert second.counts[0] == first.counts[0]

    # Nothing missing: a third run sends nothing.
    asked = teacher.stats.prompts
    generate_leaf(leaf, teacher, settings, store, Reports())
    assert teacher.stats.prompts == asked


def test_a_cancelled_run_resumes_from_the_batches_it_stored(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    # One prompt per batch, so there is a report call between every two requests.
    settings = sdg_settings(vllm_server, tmp_path, sdg_batch_size=1, sdg_concurrency=1)
    leaf = freeform_leaf(seeds=3)
    store = StepStore(tmp_path / "steps")
    with open_teacher(settings) as teacher:
        with pytest.raises(JobCancelled):
            generate_leaf(leaf, teacher, settings, store, Reports(raise_on_call=2))
        # The next request may already have been answered when the report raised; it is not
        # stored (the cancel came first), so the rerun asks for it again.
        asked = teacher.stats.prompts
        assert asked >= 2
        questions = store.step(leaf.path, "questions")
        assert len(questions.load()) == 2  # both batches before the cancel are kept

        before = stored_lines(tmp_path / "steps")
        reports = Reports()
        output = generate_leaf(leaf, teacher, settings, store, reports)
        after = stored_lines(tmp_path / "steps")
    assert_consistent(output, leaf, teacher, reports)
    assert len(questions.load()) == len(leaf.seeds)
    assert teacher.stats.prompts - asked == new_lines(before, after)
    assert output.counts[0].generated == len(leaf.seeds) * settings.sdg_questions_per_seed


# --- every step, driven with well-formed replies --------------------------------------------

# What a capable teacher would answer, per step: (line, completion) -> text. The first line of
# each judge and of the answers fails, and the first line's second completion of each
# generation step repeats its first, so every filter and the deduplication are exercised.
GENERATED: dict[str, Callable[[int, int], str]] = {
    "questions": lambda i, j: f"[Question]\nWhat is a synonym for word {i}.{j}?",
    "contexts": lambda i, j: f"[Context]\nThe master server {i}.{j} copies data to slaves.",
    "qa": lambda i, j: f"[Question]\nWhat does a chickadee do {i}.{j}?\n[Answer]\nIt caches.",
    "multiple_choice": lambda i, j: (
        f"[Question]\nWhere are seeds hidden {i}.{j}?\n[A]\nbark\n[B]\nwater\n[C]\nsky\n"
        f"[D]\nsand\n[Answer]\n{'ABCD'[j % 4]}"
    ),
}
VERDICTS: dict[str, tuple[str, str]] = {  # step: (failing, passing)
    "question_judge": ("[Explanation]\nOff topic.\n[Score]\n0", "[Explanation]\nOk.\n[Score]\n1"),
    "pair_judge": ("[Explanation]\nWrong.\n[Score]\n1", "[Explanation]\nGood.\n[Score]\n3"),
    "faithfulness": ("[Explanation]\nUnsupported.\n[Verdict]\nNO", "[Verdict]\nYES"),
    "relevancy": ("[Explanation]\nOff.\n[Score]\n1", "[Explanation]\nOn.\n[Score]\n2"),
    "standalone": ("[Score]\n0", "[Score]\n1"),
    "answers": ("I would rather not say.", "[Answer]\nTiny, little and small."),
}


def well_formed_reply(step: str, line: int, completion: int) -> str:
    if step in VERDICTS:
        failing, passing = VERDICTS[step]
        return failing if line == 0 else passing
    if line == 0 and completion == 1:
        completion = 0  # a duplicate
    return GENERATED[step](line, completion)


def rewrite_step(file: StepFile) -> int:
    """Replace the stored replies with well-formed ones; returns how many should be kept."""
    records = [json.loads(line) for line in file.path.read_text().splitlines()]
    kept = 0
    for line, record in enumerate(records):
        texts = [well_formed_reply(file.path.stem, line, j) for j in range(len(record["texts"]))]
        record["texts"] = texts
        kept += sum(
            1
            for j in range(len(texts))
            if not (line == 0 and (j == 1 or file.path.stem in VERDICTS))
        )
    file.path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return kept


@pytest.mark.parametrize("kind", ["freeform", "grounded", "knowledge"])
def test_every_step_with_well_formed_replies(
    kind: LeafKind, vllm_server: VllmServer, teacher: Teacher, tmp_path: Path
) -> None:
    # Three per prompt: enough survive the failing first line of every step to reach the end.
    settings = sdg_settings(vllm_server, tmp_path, sdg_questions_per_seed=3, sdg_qa_per_chunk=3)
    leaf = LEAVES[kind]()
    store = StepStore(tmp_path / "steps")
    root = tmp_path / "steps"
    expected: dict[str, int] = {}
    before = stored_lines(root)
    asked = teacher.stats.prompts
    output = generate_leaf(leaf, teacher, settings, store, Reports())
    for step in STEPS[kind]:
        after = stored_lines(root)
        # Each run sent exactly the prompts it had no stored reply for.
        assert teacher.stats.prompts - asked == new_lines(before, after)
        assert all(count.skipped == 0 for count in output.counts)
        expected[step] = rewrite_step(store.step(leaf.path, step))
        before, asked = stored_lines(root), teacher.stats.prompts
        output = generate_leaf(leaf, teacher, settings, store, Reports())
        assert output.counts[STEPS[kind].index(step)].kept == expected[step] > 0
    # All replies were stored: the last run needed nothing from the teacher.
    assert teacher.stats.prompts == asked
    assert stored_lines(root) == before

    reports = Reports()
    output = generate_leaf(leaf, teacher, settings, store, reports)
    assert_consistent(output, leaf, teacher, reports)
    assert {count.step: count.kept for count in output.counts} == expected
    assert output.samples
    for sample in output.samples:
        user, assistant = (m["content"] for m in sample.messages)
        if kind == "knowledge":
            assert assistant == "It caches."
            assert sample.metadata["judge_scores"] == {
                "faithfulness": "YES",
                "relevancy": "2",
                "standalone": "1",
            }
        else:
            assert assistant == "Tiny, little and small."
            assert sample.metadata["judge_scores"] == {"question_judge": "1", "pair_judge": "3"}
        if kind == "grounded":
            context, question = user.split("\n\n")
            assert context.startswith("The master server")
            assert question.startswith("What is a synonym")
    if kind == "knowledge":
        assert len(output.multiple_choice) == expected["multiple_choice"]
        assert {q.choices[q.answer] for q in output.multiple_choice} <= {
            "bark",
            "water",
            "sky",
            "sand",
        }
