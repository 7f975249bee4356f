"""The generation pipelines: one leaf's seed examples turned into filtered samples.

- freeform skills: questions per seed, question judge (0/1), answers, pair judge (1-3);
- grounded skills: contexts per seed, questions per context, the same judges and answers, with
  the context in the prompt and in the sample's user turn;
- knowledge: a question-answer pair per completion for every document chunk, kept only when
  three judges agree (faithful to the chunk, relevant, standing alone), and multiple-choice
  questions for PR-MMLU.

Every teacher request goes through the leaf's step files (``steps.StepStore``): results are
stored after each batch and a rerun asks only for what is missing. Outputs that do not parse
count as rejected: a weak teacher yields few samples, never an exception.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from workers.sdg.prompts import PromptTemplate, load
from workers.sdg.records import Leaf, LeafKind, LeafOutput, MultipleChoice, Sample, Seed, StepCount
from workers.sdg.steps import StepResult, StepStore, WorkItem, item_key
from workers.sdg.teacher import Reply, Sampling, Teacher

log = logging.getLogger(__name__)

Report = Callable[[str, float], None]

# Step names in the order they run; also the order of LeafOutput.counts.
STEPS: dict[LeafKind, tuple[str, ...]] = {
    "freeform": ("questions", "question_judge", "answers", "pair_judge"),
    "grounded": ("contexts", "questions", "question_judge", "answers", "pair_judge"),
    "knowledge": ("qa", "faithfulness", "relevancy", "standalone", "multiple_choice"),
}

PROMPTS: dict[LeafKind, tuple[str, ...]] = {
    "freeform": ("freeform_questions", "question_judge", "answer", "pair_judge"),
    "grounded": (
        "grounded_contexts",
        "grounded_questions",
        "question_judge",
        "answer",
        "pair_judge",
    ),
    "knowledge": (
        "knowledge_qa",
        "faithfulness_judge",
        "relevancy_judge",
        "standalone_judge",
        "multiple_choice",
    ),
}

# Seed Q&A shown to the teacher per knowledge chunk, as upstream (3 per seed context).
KNOWLEDGE_EXAMPLES = 3
CHOICE_LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Candidate:
    """A sample under construction, carried from step to step."""

    seed_index: int
    question: str
    answer: str = ""
    context: str = ""  # grounded: generated context; knowledge: the chunk
    chunk_index: int | None = None
    scores: dict[str, str] = field(default_factory=dict)

    def user_turn(self) -> str:
        return f"{self.context}\n\n{self.question}" if self.context else self.question


@dataclass(frozen=True)
class Request:
    variables: dict[str, Any]
    details: dict[str, Any]
    n: int = 1


def generate_leaf(
    leaf: Leaf, teacher: Teacher, settings: Settings, store: StepStore, report: Report
) -> LeafOutput:
    """Run the pipeline for ``leaf.kind``. ``report(step, fraction_of_leaf_done)`` is called
    after every teacher batch, once its results are stored; an exception it raises stops the
    run and the next run resumes from the stored results."""
    run = _LeafRun(leaf, teacher, settings, store, report)
    if leaf.kind == "freeform":
        candidates = _freeform_questions(run)
    elif leaf.kind == "grounded":
        candidates = _grounded_questions(run)
    else:
        return _knowledge(run)
    candidates = run.judge(
        "question_judge",
        load("question_judge"),
        candidates,
        lambda c: {
            "task_description": leaf.task_description,
            "question": c.question,
            "context": c.context,
        },
        lambda fields: fields["Score"] == "1",
    )
    candidates = _answers(run, candidates)
    candidates = run.judge(
        "pair_judge",
        load("pair_judge"),
        candidates,
        lambda c: {"question": c.question, "answer": c.answer, "context": c.context},
        lambda fields: int(fields["Score"]) >= settings.sdg_pair_min_score,
    )
    return run.output(candidates)


class _LeafRun:
    """State shared by the steps of one leaf: where results go, counts, progress."""

    def __init__(
        self, leaf: Leaf, teacher: Teacher, settings: Settings, store: StepStore, report: Report
    ) -> None:
        self.leaf = leaf
        self.teacher = teacher
        self.settings = settings
        self.store = store
        self.report = report
        self.steps = STEPS[leaf.kind]
        self.counts = {step: StepCount(step=step) for step in self.steps}
        self.prompt_versions = {name: load(name).version for name in PROMPTS[leaf.kind]}
        self.generation = Sampling(
            max_tokens=settings.sdg_max_new_tokens,
            temperature=settings.sdg_temperature,
            top_p=settings.sdg_top_p,
        )
        # Judges are greedy so a rerun judges the same way.
        self.judging = Sampling(max_tokens=settings.sdg_max_new_tokens, temperature=0.0)
        self.deduplicated: set[str] = set()

    def ask(
        self, step: str, prompt: PromptTemplate, requests: Sequence[Request], sampling: Sampling
    ) -> list[StepResult]:
        """The teacher's replies to ``requests``, in order: stored ones from the step file,
        the rest asked for in batches, each batch stored before ``report`` is called."""
        file = self.store.step(self.leaf.path, step)
        items: list[WorkItem] = []
        samplings: dict[str, Sampling] = {}
        for request in requests:
            messages = prompt.messages(**request.variables)
            request_sampling = dataclasses.replace(sampling, n=request.n, stop=prompt.stop)
            key = item_key(
                step,
                prompt.name,
                prompt.version,
                self.teacher.model,
                messages,
                dataclasses.asdict(request_sampling),
            )
            items.append(WorkItem(key=key, messages=messages, details=request.details))
            samplings[key] = request_sampling
        pending = file.pending(items)
        done = 0
        # One teacher call per sampling keeps every replica full for the whole step; each
        # request's replies are stored as they arrive, then progress is reported.
        for group in _same_sampling(pending, lambda item: samplings[item.key]):

            def store(arrived: list[tuple[int, Reply]], group: list[WorkItem] = group) -> None:
                nonlocal done
                file.append(
                    StepResult(
                        key=group[index].key,
                        texts=reply.texts,
                        skipped=reply.skipped,
                        details=group[index].details,
                    )
                    for index, reply in arrived
                )
                done += len(arrived)
                position = self.steps.index(step) + done / len(pending)
                self.report(step, position / len(self.steps))

            self.teacher.chat(
                [item.messages for item in group], samplings[group[0].key], on_replies=store
            )
        stored = file.load()
        results = [stored[item.key] for item in items]
        count = self.counts[step]
        skipped = [result.skipped for result in results if result.skipped is not None]
        count.generated += sum(len(result.texts) for result in results)
        count.skipped += len(skipped)
        if skipped:
            log.warning(
                "%s %s: %d prompts skipped, e.g. %s", self.leaf.path, step, len(skipped), skipped[0]
            )
        return results

    def judge(
        self,
        step: str,
        prompt: PromptTemplate,
        candidates: Sequence[Candidate],
        variables: Callable[[Candidate], dict[str, Any]],
        passes: Callable[[dict[str, str]], bool],
    ) -> list[Candidate]:
        """The candidates whose judgement parses and passes; the verdict is kept in
        ``scores``."""
        requests = [
            Request(variables(c), {"seed_index": c.seed_index, "question": c.question})
            for c in candidates
        ]
        results = self.ask(step, prompt, requests, self.judging)
        verdict_field = next(iter(prompt.output.values))
        kept = []
        for candidate, result in zip(candidates, results, strict=True):
            fields = prompt.parse(result.texts[0]) if result.texts else None
            if fields is not None and passes(fields):
                scores = {**candidate.scores, step: fields[verdict_field]}
                kept.append(dataclasses.replace(candidate, scores=scores))
        self.counts[step].kept += len(kept)
        return kept

    def first_time(self, what: str, *parts: str) -> bool:
        """False for a repeat (case and spacing ignored) of a ``what`` (question, context...)
        seen before in the leaf."""
        normalized = "\x00".join([what, *(" ".join(part.split()).casefold() for part in parts)])
        if normalized in self.deduplicated:
            return False
        self.deduplicated.add(normalized)
        return True

    def metadata(self, seed_index: int, **extra: Any) -> dict[str, Any]:
        return {
            "leaf": self.leaf.path,
            "seed_index": seed_index,
            "pipeline": self.leaf.kind,
            "prompt_versions": dict(self.prompt_versions),
            "teacher_model": self.teacher.model,
            "sampling": {
                "temperature": self.generation.temperature,
                "top_p": self.generation.top_p,
                "max_tokens": self.generation.max_tokens,
            },
            **extra,
        }

    def output(
        self, candidates: Sequence[Candidate], multiple_choice: Sequence[MultipleChoice] = ()
    ) -> LeafOutput:
        samples = []
        for candidate in candidates:
            extra: dict[str, Any] = {"judge_scores": dict(candidate.scores)}
            if candidate.chunk_index is not None:
                extra["chunk_index"] = candidate.chunk_index
            samples.append(
                Sample(
                    messages=[
                        {"role": "user", "content": candidate.user_turn()},
                        {"role": "assistant", "content": candidate.answer},
                    ],
                    metadata=self.metadata(candidate.seed_index, **extra),
                )
            )
        return LeafOutput(
            leaf=self.leaf.path,
            kind=self.leaf.kind,
            samples=samples,
            multiple_choice=list(multiple_choice),
            counts=[self.counts[step] for step in self.steps],
        )


def _same_sampling(
    items: Sequence[WorkItem], sampling_of: Callable[[WorkItem], Sampling]
) -> Iterator[list[WorkItem]]:
    """Consecutive runs of items sharing one sampling (one teacher call takes one)."""
    group: list[WorkItem] = []
    for item in items:
        if group and sampling_of(item) != sampling_of(group[0]):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def _parsed(prompt: PromptTemplate, texts: Sequence[str]) -> Iterator[dict[str, str]]:
    for text in texts:
        fields = prompt.parse(text)
        if fields is not None:
            yield fields


# --- skills ---------------------------------------------------------------------------------


def _freeform_questions(run: _LeafRun) -> list[Candidate]:
    prompt = load("freeform_questions")
    requests = [
        Request(
            {"task_description": run.leaf.task_description, "seed_question": seed.question},
            {"seed_index": index},
            n=run.settings.sdg_questions_per_seed,
        )
        for index, seed in enumerate(run.leaf.seeds)
    ]
    candidates = []
    for index, result in enumerate(run.ask("questions", prompt, requests, run.generation)):
        for fields in _parsed(prompt, result.texts):
            if run.first_time("question", fields["Question"]):
                candidates.append(Candidate(seed_index=index, question=fields["Question"]))
    run.counts["questions"].kept += len(candidates)
    return candidates


def _grounded_questions(run: _LeafRun) -> list[Candidate]:
    task = run.leaf.task_description
    seeds = run.leaf.seeds
    context_prompt = load("grounded_contexts")
    requests = [
        Request(
            {"task_description": task, "seed_context": seed.context},
            {"seed_index": index},
            n=run.settings.sdg_contexts_per_seed,
        )
        for index, seed in enumerate(seeds)
    ]
    contexts: list[tuple[int, str]] = []
    for index, result in enumerate(run.ask("contexts", context_prompt, requests, run.generation)):
        for fields in _parsed(context_prompt, result.texts):
            if run.first_time("context", fields["Context"]):
                contexts.append((index, fields["Context"]))
    run.counts["contexts"].kept += len(contexts)

    question_prompt = load("grounded_questions")
    requests = [
        Request(
            {
                "task_description": task,
                "seed_context": seeds[index].context,
                "seed_question": seeds[index].question,
                "context": context,
            },
            {"seed_index": index, "context_index": number},
            n=run.settings.sdg_questions_per_context,
        )
        for number, (index, context) in enumerate(contexts)
    ]
    results = run.ask("questions", question_prompt, requests, run.generation)
    candidates = []
    for (index, context), result in zip(contexts, results, strict=True):
        for fields in _parsed(question_prompt, result.texts):
            # The same question about another context is another sample.
            if run.first_time("question", context, fields["Question"]):
                candidates.append(
                    Candidate(seed_index=index, question=fields["Question"], context=context)
                )
    run.counts["questions"].kept += len(candidates)
    return candidates


def _answers(run: _LeafRun, candidates: Sequence[Candidate]) -> list[Candidate]:
    prompt = load("answer")
    seeds = run.leaf.seeds
    requests = [
        Request(
            {
                "seed_context": seeds[c.seed_index].context,
                "seed_question": seeds[c.seed_index].question,
                "seed_answer": seeds[c.seed_index].answer,
                "context": c.context,
                "question": c.question,
            },
            {"seed_index": c.seed_index, "question": c.question},
        )
        for c in candidates
    ]
    answered = []
    for candidate, result in zip(
        candidates, run.ask("answers", prompt, requests, run.generation), strict=True
    ):
        fields = next(_parsed(prompt, result.texts), None)
        if fields is not None:
            answered.append(dataclasses.replace(candidate, answer=fields["Answer"]))
    run.counts["answers"].kept += len(answered)
    return answered


# --- knowledge ------------------------------------------------------------------------------


def _seed_groups(seeds: Sequence[Seed]) -> list[tuple[int, str, list[Seed]]]:
    """Seeds grouped by their context, in order: (index of the first seed, context, seeds)."""
    groups: dict[str, tuple[int, str, list[Seed]]] = {}
    for index, seed in enumerate(seeds):
        groups.setdefault(seed.context, (index, seed.context, []))[2].append(seed)
    return list(groups.values())


def multiple_choice_per_chunk(total: int, chunks: int) -> list[int]:
    """``total`` questions spread over the chunks as evenly as possible, the remainder on
    chunks spaced through the document rather than bunched at its start."""
    if chunks == 0:
        return []
    base, remainder = divmod(total, chunks)
    extra = {(j * chunks) // remainder for j in range(remainder)}
    return [base + (1 if index in extra else 0) for index in range(chunks)]


def _knowledge(run: _LeafRun) -> LeafOutput:
    leaf = run.leaf
    chunks = leaf.document_chunks
    groups = _seed_groups(leaf.seeds)
    qa_prompt = load("knowledge_qa")
    requests = []
    for chunk_index, chunk in enumerate(chunks):
        # Rotate through the seed contexts so every chunk sees real examples of the leaf.
        first_seed, seed_context, seed_examples = (
            groups[chunk_index % len(groups)] if groups else (-1, "", [])
        )
        examples = [
            {"question": seed.question, "answer": seed.answer}
            for seed in seed_examples[:KNOWLEDGE_EXAMPLES]
        ]
        requests.append(
            Request(
                {
                    "domain": leaf.domain or "the subject",
                    "document_outline": leaf.document_outline,
                    "example_passage": seed_context,
                    "examples": examples,
                    "passage": chunk,
                },
                {"seed_index": first_seed, "chunk_index": chunk_index},
                n=run.settings.sdg_qa_per_chunk,
            )
        )
    candidates = []
    for request, result in zip(
        requests, run.ask("qa", qa_prompt, requests, run.generation), strict=True
    ):
        chunk_index = request.details["chunk_index"]
        for fields in _parsed(qa_prompt, result.texts):
            if run.first_time("question", fields["Question"]):
                candidates.append(
                    Candidate(
                        seed_index=request.details["seed_index"],
                        question=fields["Question"],
                        answer=fields["Answer"],
                        context=chunks[chunk_index],
                        chunk_index=chunk_index,
                    )
                )
    run.counts["qa"].kept += len(candidates)

    # One judge after the other: each sees only the pairs the previous one kept.
    candidates = run.judge(
        "faithfulness",
        load("faithfulness_judge"),
        candidates,
        lambda c: {"passage": c.context, "question": c.question, "answer": c.answer},
        lambda fields: fields["Verdict"] == "YES",
    )
    candidates = run.judge(
        "relevancy",
        load("relevancy_judge"),
        candidates,
        lambda c: {"question": c.question, "answer": c.answer},
        lambda fields: fields["Score"] == "2",
    )
    candidates = run.judge(
        "standalone",
        load("standalone_judge"),
        candidates,
        lambda c: {"question": c.question},
        lambda fields: fields["Score"] == "1",
    )
    return run.output(candidates, _multiple_choice(run))


def _multiple_choice(run: _LeafRun) -> list[MultipleChoice]:
    leaf = run.leaf
    prompt = load("multiple_choice")
    per_chunk = multiple_choice_per_chunk(run.settings.sdg_mcq_per_leaf, len(leaf.document_chunks))
    requests = [
        Request({"domain": leaf.domain, "passage": chunk}, {"chunk_index": index}, n=count)
        for index, (chunk, count) in enumerate(zip(leaf.document_chunks, per_chunk, strict=True))
        if count > 0
    ]
    questions = []
    for request, result in zip(
        requests, run.ask("multiple_choice", prompt, requests, run.generation), strict=True
    ):
        for fields in _parsed(prompt, result.texts):
            choices = [fields[letter] for letter in CHOICE_LETTERS]
            # Four different options, or the question cannot tell knowing from guessing.
            if len({c.casefold() for c in choices}) < len(choices):
                continue
            if not run.first_time("multiple_choice", fields["Question"]):
                continue
            questions.append(
                MultipleChoice(
                    leaf=leaf.path,
                    question=fields["Question"],
                    choices=choices,
                    answer=CHOICE_LETTERS.index(fields["Answer"]),
                    metadata={
                        "chunk_index": request.details["chunk_index"],
                        "prompt_versions": {prompt.name: prompt.version},
                        "teacher_model": run.teacher.model,
                    },
                )
            )
    run.counts["multiple_choice"].kept += len(questions)
    return questions
