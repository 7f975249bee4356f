"""The "formatted" tiny teacher: the tiny random Llama fine-tuned to answer every SDG prompt in
the format that prompt asks for, so that the pipelines keep samples end to end.

The training data is made here, in the project's virtualenv (it renders the real prompt files):
each prompt the pipelines use, filled in with seed examples of the taxonomy pull requests'
qna.yaml files and short passages cut from their contexts, paired with a reply in the prompt's
own output format. Generated questions, contexts and answers copy their example with a small
change (a word swapped or added), knowledge pairs take the passage's heading and first sentence,
and every judge gives a passing verdict. Every reply is checked with the prompt's own parser.

The same model is also the evaluation's judge in the tests (workers/eval/prompts/judge.yaml): a
seed question with its answer as the reference, rated against either that answer with a small
change (a high rating) or another seed's answer (a low one).

What the two-layer model learns in 1000 steps is the format, reliably; its copying is weak, so
the text between the markers is mostly made-up words. That is all the pipelines' success path
needs: parsable replies, passing verdicts, and sampled questions that differ.

``make_formatted_teacher`` fine-tunes the tiny model on it (tests/sdg/formatted_teacher.py,
under the vLLM virtualenv's python) once per machine and caches the result like the tiny model.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.sdg.vllm import (
    CACHE_DIR,
    COMPLETE_MARKER,
    TINY_MODEL_VERSION,
    ensure_vllm_venv,
    make_tiny_model,
)
from workers.eval.judge import MAX_RATING, MIN_RATING, judge_prompt, parse_judgment
from workers.sdg.pipelines import PROMPTS
from workers.sdg.prompts import PromptTemplate, load

PRS = Path(__file__).resolve().parents[3] / "shared" / "data" / "taxonomy" / "prs"
TRAINING_SCRIPT = Path(__file__).with_name("formatted_teacher.py")
# Bump when the data or the training change in a way the digest in the name does not see.
FORMATTED_TEACHER_VERSION = 2
FORMATTED_TEACHER_NAME = "formatted-teacher"
TRAINING_FILE = "training.jsonl"
SEED = 20240601
RECORDS_PER_PROMPT = 120

# Leaves the SDG tests run (tests/sdg/test_pipelines.py, test_sdg_e2e.py): not trained on, so
# those tests see prompts the teacher has never seen.
HELD_OUT = ("synonyms", "inclusion", "black_capped_chickadee")
# Records per prompt in units of RECORDS_PER_PROMPT: more of the replies that are hard to learn
# (copying from the prompt, many markers), fewer of the judges' fixed verdicts; the eval judge's
# ratings vary with the answer.
PROMPT_WEIGHTS = {
    "knowledge_qa": 3,
    "multiple_choice": 2,
    "freeform_questions": 2,
    "answer": 2,
    "judge": 2,
}

# Limits in words that keep prompt and reply inside the tiny teacher's 512 tokens (its
# tokenizer makes about 2.5 tokens of a word) and a reply inside 64 to 96 new tokens.
MAX_SEED_QUESTION_WORDS = 18
MAX_SEED_ANSWER_WORDS = 20
MAX_SEED_CONTEXT_WORDS = 40
MAX_TASK_WORDS = 16
MAX_PASSAGE_WORDS = 32
# Characters of the user turn and the reply together: about 0.45 tokens each, so the
# knowledge prompts, the longest, stay near the test leaf's 430 tokens and leave room to reply.
CHAR_BUDGET = {"knowledge_qa": 980}
DEFAULT_CHAR_BUDGET = 1200

# The judges' replies: always a pass, with the explanation a capable teacher might give.
JUDGE_REPLIES = {
    "question_judge": (
        "[Explanation]\nThe question is clear, safe and relevant to the task.\n[Score]\n1\n[End]"
    ),
    "pair_judge": "[Explanation]\nThe answer is correct and complete.\n[Score]\n3\n[End]",
    "faithfulness_judge": "[Explanation]\nThe passage states this directly.\n[Verdict]\nYES\n[End]",
    "relevancy_judge": (
        "[Explanation]\nThe answer is on the subject and answers the question.\n[Score]\n2\n[End]"
    ),
    "standalone_judge": (
        "[Explanation]\nThe question names its subject and is clear alone.\n[Score]\n1\n[End]"
    ),
}
# The verdicts the pipelines keep (workers/sdg/pipelines.py).
PASSING = {
    "question_judge": ("Score", {"1"}),
    "pair_judge": ("Score", {"2", "3"}),
    "faithfulness_judge": ("Verdict", {"YES"}),
    "relevancy_judge": ("Score", {"2"}),
    "standalone_judge": ("Score", {"1"}),
}
# The eval judge's replies: for an answer that agrees with the reference, and for one that does not.
EVAL_JUDGE_AGREES = (
    (8, "The answer agrees with the reference in substance."),
    (9, "The answer matches the reference and is correct."),
    (7, "The answer mostly agrees with the reference, with a small slip."),
)
EVAL_JUDGE_DISAGREES = (
    (2, "The answer does not match the reference and misses its point."),
    (3, "The answer contradicts the reference answer."),
    (1, "The answer is about something else than the question."),
)
# Wrong options of the multiple-choice questions, one per letter so that none repeats.
DISTRACTORS = {"A": "the moon", "B": "nobody", "C": "in 1492", "D": "green paint"}
QUESTION_OPENINGS = (
    "What is known about",
    "What is true of",
    "What can you say about",
    "What do we know of",
    "What is a fact about",
)
FILLERS = ("please", "now", "briefly", "again", "also", "today", "simply", "exactly")


@dataclass(frozen=True)
class Example:
    question: str
    answer: str
    context: str = ""


@dataclass(frozen=True)
class SkillSource:
    task_description: str
    seeds: tuple[Example, ...]


@dataclass(frozen=True)
class KnowledgeSource:
    domain: str
    document_outline: str
    # The seed contexts, each with its short question-answer pairs.
    contexts: tuple[tuple[str, tuple[Example, ...]], ...]


def _flat(text: object) -> str:
    return " ".join(str(text).split())


def _words(text: str) -> int:
    return len(text.split())


def _usable(text: str, limit: int) -> bool:
    # Square brackets would read as markers in a reply.
    return 0 < _words(text) <= limit and "[" not in text and "]" not in text


def _qna_files() -> Iterator[tuple[str, dict[str, Any]]]:
    """(leaf path, content) of the PRs' qna.yaml files that parse, each leaf once (its newest
    PR's version), in a fixed order."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    seen: set[str] = set()
    paths = sorted(
        PRS.glob("*/**/qna.yaml"),
        key=lambda path: (-int(path.relative_to(PRS).parts[0]), str(path)),
    )
    for path in paths:
        leaf = str(path.parent.relative_to(PRS)).partition("/")[2]
        if not leaf or leaf in seen or any(name in leaf for name in HELD_OUT):
            continue
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get("seed_examples"), list):
            seen.add(leaf)
            yield leaf, data


def _task(data: dict[str, Any], leaf: str) -> str:
    task = _flat(data.get("task_description") or "")
    if not task:  # some PRs leave it empty: the leaf's name says what the task is
        task = leaf.rsplit("/", 1)[-1].replace("_", " ")
    return " ".join(task.split()[:MAX_TASK_WORDS])


def _skill_source(leaf: str, data: dict[str, Any]) -> tuple[bool, SkillSource] | None:
    """(grounded, the leaf's usable seeds), or None with fewer than two."""
    examples = [e for e in data["seed_examples"] if isinstance(e, dict)]
    grounded = any(e.get("context") for e in examples)
    seeds = []
    for example in examples:
        seed = Example(
            _flat(example.get("question") or ""),
            _flat(example.get("answer") or ""),
            _flat(example.get("context") or ""),
        )
        if (
            _usable(seed.question, MAX_SEED_QUESTION_WORDS)
            and _usable(seed.answer, MAX_SEED_ANSWER_WORDS)
            and (not grounded or _usable(seed.context, MAX_SEED_CONTEXT_WORDS))
        ):
            seeds.append(seed)
    if len(seeds) < 2:
        return None
    return grounded, SkillSource(_task(data, leaf), tuple(seeds))


def _knowledge_source(data: dict[str, Any]) -> KnowledgeSource | None:
    """The leaf's seed contexts with their short pairs, or None with fewer than two."""
    contexts = []
    for example in data["seed_examples"]:
        if not isinstance(example, dict):
            continue
        if isinstance(example.get("context"), str):
            context = _flat(example["context"])
            pairs = tuple(
                Example(_flat(qa.get("question") or ""), _flat(qa.get("answer") or ""))
                for qa in example.get("questions_and_answers") or []
                if isinstance(qa, dict)
            )
        else:  # an old leaf: questions with answers, the longer answers read as passages
            context = _flat(example.get("answer") or "").strip("|").strip()
            pairs = (Example(_flat(example.get("question") or ""), shorten(context, 10)),)
            if not _usable(context, MAX_PASSAGE_WORDS * 2) or _words(context) < 8:
                continue
        pairs = tuple(p for p in pairs if _usable(p.question, 12) and _usable(p.answer, 10))
        if "[" not in context and sentences(context) and pairs:
            contexts.append((context, pairs))
    if len(contexts) < 2:
        return None
    return KnowledgeSource(
        _flat(data.get("domain") or "the subject"),
        " ".join(_flat(data.get("document_outline") or "").split()[:8]),
        tuple(contexts),
    )


def taxonomy_sources() -> dict[str, list[Any]]:
    """The freeform skills, grounded skills and knowledge leaves of the taxonomy PRs with
    seeds short enough for the tiny teacher; a leaf copied into several PRs counts once."""
    sources: dict[str, list[Any]] = {"skills": [], "grounded": [], "knowledge": []}
    seen: set[object] = set()
    for leaf, data in _qna_files():
        if leaf.startswith("knowledge/"):
            knowledge = _knowledge_source(data)
            if knowledge is not None and knowledge.contexts[0] not in seen:
                seen.add(knowledge.contexts[0])
                sources["knowledge"].append(knowledge)
        elif (skill := _skill_source(leaf, data)) is not None and skill[1].seeds not in seen:
            seen.add(skill[1].seeds)
            sources["grounded" if skill[0] else "skills"].append(skill[1])
    for kind, found in sources.items():
        assert len(found) >= 10, f"only {len(found)} usable {kind} leaves under {PRS}"
    return sources


# --- replies: a small change of the example, or words of the passage ------------------------


def _content_words(*texts: str) -> list[str]:
    return sorted({w for text in texts for w in re.findall(r"[A-Za-z]{4,}", text) if w.islower()})


def vary(text: str, rng: random.Random, pool: list[str]) -> str:
    """``text`` with a word swapped for one of ``pool`` or a filler word added."""
    words = text.split(" ")
    swappable = [i for i, w in enumerate(words) if re.fullmatch(r"[a-z]{4,}", w)]
    choice = rng.random()
    if swappable and pool and choice < 0.6:
        index = rng.choice(swappable)
        replacement = rng.choice(pool)
        if replacement != words[index]:
            words[index] = replacement
            return " ".join(words)
    filler = rng.choice(FILLERS)
    if choice < 0.8 and len(words) > 2:
        words.insert(rng.randrange(1, len(words)), filler)
        return " ".join(words)
    return f"{filler.capitalize()}, {text[0].lower()}{text[1:]}"


def shorten(text: str, limit: int) -> str:
    words = text.split()
    return text if len(words) <= limit else " ".join(words[:limit]).rstrip(",;:") + "."


def noisy(text: str, rng: random.Random) -> str:
    """What the tiny teacher itself may write: words dropped or repeated. The judges see it."""
    words = text.split()
    if len(words) < 4 or rng.random() < 0.5:
        return text
    start = rng.randrange(len(words) - 2)
    if rng.random() < 0.5:
        return " ".join(words[:start] + words[start + 2 :])
    return " ".join(words[: start + 2] + words[start:])


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if _words(s) >= 4]


def passage_of(context: str, rng: random.Random) -> str:
    """A document chunk cut from a seed context: consecutive sentences, mostly under a
    markdown heading of a word or two of them, as the chunks of a document often are."""
    parts = sentences(context) or [context]
    start = rng.randrange(len(parts))
    passage = " ".join(parts[start : start + rng.choice((1, 2))])
    passage = shorten(passage, MAX_PASSAGE_WORDS)
    words = sorted(set(re.findall(r"[A-Za-z]{4,}", passage)))
    if words and rng.random() < 0.8:
        heading = " ".join(rng.sample(words, min(len(words), rng.choice((1, 1, 2)))))
        passage = f"## {heading.title()}\n{passage}"
    return passage


def fact_of(passage: str) -> tuple[str, str, str]:
    """(subject, the start of the first sentence after its first two words, the sentence
    shortened) of ``passage``; the subject is the heading, else the first two words. Copying
    from a fixed place is what a two-layer model learns soonest."""
    heading, _, body = passage.partition("\n") if passage.startswith("## ") else ("", "", passage)
    sentence = (sentences(body) or [body])[0]
    words = sentence.rstrip(".!?").split()
    subject = heading.removeprefix("## ") or " ".join(words[:2])
    return subject, " ".join(words[2:4]), shorten(sentence, 9)


def knowledge_pair(passage: str, rng: random.Random) -> tuple[str, str]:
    subject, _, sentence = fact_of(passage)
    return f"{rng.choice(QUESTION_OPENINGS)} {subject}?", sentence


def multiple_choice_reply(passage: str, rng: random.Random) -> str:
    subject, correct, _ = fact_of(passage)
    correct = correct or subject
    # Always the second, as in the prompt's example: a letter that moves is more than the
    # tiny model learns in a minute.
    letter = "B"
    options = {k: correct if k == letter else v for k, v in DISTRACTORS.items()}
    if len({o.casefold() for o in options.values()}) < 4:
        options[letter] = f"{correct} indeed"
    lines = [f"[Question]\nWhich is true of {subject}?"]
    lines += [f"[{k}]\n{v}" for k, v in options.items()]
    return "\n".join([*lines, f"[Answer]\n{letter}\n[End]"])


# --- one record per prompt ------------------------------------------------------------------

Record = tuple[dict[str, Any], str]  # the prompt's variables, the reply


def _freeform_questions(rng: random.Random, skills: list[SkillSource], **_unused: Any) -> Record:
    source = rng.choice(skills)
    seed = rng.choice(source.seeds)
    pool = _content_words(source.task_description, *(s.question for s in source.seeds))
    question = vary(seed.question, rng, pool)
    variables = {"task_description": source.task_description, "seed_question": seed.question}
    return variables, f"[Question]\n{question}\n[End]"


def _grounded_contexts(rng: random.Random, grounded: list[SkillSource], **_unused: Any) -> Record:
    source = rng.choice(grounded)
    seed = rng.choice(source.seeds)
    pool = _content_words(*(s.context for s in source.seeds))
    context = vary(shorten(seed.context, 25), rng, pool)
    variables = {"task_description": source.task_description, "seed_context": seed.context}
    return variables, f"[Context]\n{context}\n[End]"


def _grounded_questions(rng: random.Random, grounded: list[SkillSource], **_unused: Any) -> Record:
    source = rng.choice(grounded)
    seed, other = rng.sample(source.seeds, 2)
    pool = _content_words(source.task_description, *(s.question for s in source.seeds))
    variables = {
        "task_description": source.task_description,
        "seed_context": seed.context,
        "seed_question": seed.question,
        "context": other.context,
    }
    return variables, f"[Question]\n{vary(seed.question, rng, pool)}\n[End]"


def _skill_pair(
    rng: random.Random, skills: list[SkillSource], grounded: list[SkillSource]
) -> tuple[SkillSource, Example, Example, str]:
    """A source, its seed, the question asked and, for grounded skills, its context."""
    source = rng.choice(grounded if rng.random() < 0.3 else skills)
    seed, asked = rng.sample(source.seeds, 2)
    pool = _content_words(*(s.question for s in source.seeds))
    question = vary(asked.question, rng, pool)
    return source, seed, Example(question, asked.answer), asked.context


def _answer(
    rng: random.Random, skills: list[SkillSource], grounded: list[SkillSource], **_unused: Any
) -> Record:
    _, seed, asked, context = _skill_pair(rng, skills, grounded)
    variables = {
        "seed_context": seed.context,
        "seed_question": seed.question,
        "seed_answer": seed.answer,
        "context": context,
        "question": asked.question,
    }
    # In the style of the example: the example's answer with a small change.
    pool = _content_words(seed.answer, asked.question)
    return variables, f"[Answer]\n{vary(seed.answer, rng, pool)}\n[End]"


def _question_judge(
    rng: random.Random, skills: list[SkillSource], grounded: list[SkillSource], **_unused: Any
) -> Record:
    source, _, asked, context = _skill_pair(rng, skills, grounded)
    variables = {
        "task_description": source.task_description,
        "question": noisy(asked.question, rng),
        "context": context,
    }
    return variables, JUDGE_REPLIES["question_judge"]


def _pair_judge(
    rng: random.Random, skills: list[SkillSource], grounded: list[SkillSource], **_unused: Any
) -> Record:
    _, _, asked, context = _skill_pair(rng, skills, grounded)
    variables = {
        "question": noisy(asked.question, rng),
        "answer": noisy(asked.answer, rng),
        "context": context,
    }
    return variables, JUDGE_REPLIES["pair_judge"]


def _knowledge_passage(
    rng: random.Random, knowledge: list[KnowledgeSource]
) -> tuple[KnowledgeSource, str]:
    source = rng.choice(knowledge)
    context, _ = rng.choice(source.contexts)
    return source, passage_of(context, rng)


def _knowledge_qa(rng: random.Random, knowledge: list[KnowledgeSource], **_unused: Any) -> Record:
    source, passage = _knowledge_passage(rng, knowledge)
    example_context, pairs = rng.choice(source.contexts)
    examples = rng.sample(pairs, min(len(pairs), rng.choice((1, 2))))
    variables = {
        "domain": source.domain,
        "document_outline": source.document_outline,
        "example_passage": shorten(example_context, 20),
        "examples": [{"question": e.question, "answer": e.answer} for e in examples],
        "passage": passage,
    }
    question, answer = knowledge_pair(passage, rng)
    return variables, f"[Question]\n{question}\n[Answer]\n{answer}\n[End]"


def _knowledge_judge(name: str) -> Callable[..., Record]:
    def record(rng: random.Random, knowledge: list[KnowledgeSource], **_unused: Any) -> Record:
        _, passage = _knowledge_passage(rng, knowledge)
        question, answer = knowledge_pair(passage, rng)
        question, answer = noisy(question, rng), noisy(answer, rng)
        variables: dict[str, Any] = {
            "faithfulness_judge": {"passage": passage, "question": question, "answer": answer},
            "relevancy_judge": {"question": question, "answer": answer},
            "standalone_judge": {"question": question},
        }[name]
        return variables, JUDGE_REPLIES[name]

    return record


def _multiple_choice(
    rng: random.Random, knowledge: list[KnowledgeSource], **_unused: Any
) -> Record:
    source, passage = _knowledge_passage(rng, knowledge)
    domain = source.domain if rng.random() < 0.8 else ""
    return {"domain": domain, "passage": passage}, multiple_choice_reply(passage, rng)


def _eval_judge(
    rng: random.Random,
    skills: list[SkillSource],
    grounded: list[SkillSource],
    knowledge: list[KnowledgeSource],
    **_unused: Any,
) -> Record:
    """A seed question, its answer as the reference, and either that answer with a small change
    or another seed's answer to rate; grounded seeds bring their context, and some knowledge
    seeds a passage of theirs."""
    kind = rng.random()
    if kind < 0.4:
        source = rng.choice(skills)
        seed, other = rng.sample(source.seeds, 2)
        context = ""
    elif kind < 0.7:
        source = rng.choice(grounded)
        seed, other = rng.sample(source.seeds, 2)
        context = seed.context
    else:
        knowledge_source = rng.choice(knowledge)
        pairs = [(c, p) for c, ps in knowledge_source.contexts for p in ps]
        (passage, seed), (_passage, other) = rng.sample(pairs, 2)
        context = shorten(passage, 25) if rng.random() < 0.5 else ""
    if rng.random() < 0.5:
        pool = _content_words(seed.answer, seed.question)
        answer = noisy(vary(seed.answer, rng, pool), rng)
        rating, explanation = rng.choice(EVAL_JUDGE_AGREES)
    else:
        answer = other.answer
        rating, explanation = rng.choice(EVAL_JUDGE_DISAGREES)
    variables = {
        "question": seed.question,
        "reference": seed.answer,
        "answer": answer,
        "context": context,
    }
    return variables, f"[Explanation]\n{explanation}\n[Rating]\n{rating}\n[End]"


# The SDG pipelines' prompts (workers/sdg/prompts), then the evaluation's (workers/eval/prompts).
RECORDS: dict[str, Callable[..., Record]] = {
    "freeform_questions": _freeform_questions,
    "grounded_contexts": _grounded_contexts,
    "grounded_questions": _grounded_questions,
    "question_judge": _question_judge,
    "answer": _answer,
    "pair_judge": _pair_judge,
    "knowledge_qa": _knowledge_qa,
    "faithfulness_judge": _knowledge_judge("faithfulness_judge"),
    "relevancy_judge": _knowledge_judge("relevancy_judge"),
    "standalone_judge": _knowledge_judge("standalone_judge"),
    "multiple_choice": _multiple_choice,
    "judge": _eval_judge,
}
EVAL_PROMPTS: dict[str, Callable[[], PromptTemplate]] = {"judge": judge_prompt}


def template(name: str) -> PromptTemplate:
    """The prompt ``name``: the evaluation's judge, or an SDG prompt."""
    return EVAL_PROMPTS[name]() if name in EVAL_PROMPTS else load(name)


def check_reply(name: str, reply: str) -> dict[str, str]:
    """The reply's fields as the pipeline reads them; raises unless it is kept."""
    # vLLM stops at the stop sequence and leaves it out of the text.
    text = reply.split("[End]")[0]
    fields = template(name).parse(text)
    assert fields is not None, (name, reply)
    assert reply.rstrip().endswith("[End]"), (name, reply)
    if name == "judge":
        judgment = parse_judgment(reply)
        assert judgment is not None, reply
        assert MIN_RATING <= judgment.rating <= MAX_RATING, reply
    if name in PASSING:
        field, passing = PASSING[name]
        assert fields[field] in passing, (name, reply)
    if name == "multiple_choice":
        choices = [fields[letter] for letter in "ABCD"]
        assert len({c.casefold() for c in choices}) == 4, reply
    return fields


def training_records(
    per_prompt: int = RECORDS_PER_PROMPT, seed: int = SEED
) -> Iterator[dict[str, Any]]:
    """Chat records ``{"messages": [system, user, assistant], "prompt": name}``, prompts in
    turn, each reply checked with its prompt's parser."""
    used = {name for names in PROMPTS.values() for name in names} | set(EVAL_PROMPTS)
    assert used == set(RECORDS), sorted(used ^ set(RECORDS))
    rng = random.Random(seed)
    sources = taxonomy_sources()
    for _ in range(per_prompt):
        for name, make in RECORDS.items():
            for _copy in range(PROMPT_WEIGHTS.get(name, 1)):
                yield _record(name, make, rng, sources)


def _record(
    name: str, make: Callable[..., Record], rng: random.Random, sources: dict[str, list[Any]]
) -> dict[str, Any]:
    budget = CHAR_BUDGET.get(name, DEFAULT_CHAR_BUDGET)
    for _attempt in range(100):
        variables, reply = make(rng, **sources)
        messages = template(name).messages(**variables)
        if len(messages[-1]["content"]) + len(reply) <= budget:
            break
    else:
        raise AssertionError(f"{name}: no record within {budget} characters")
    check_reply(name, reply)
    return {"messages": [*messages, {"role": "assistant", "content": reply}], "prompt": name}


def training_data(per_prompt: int = RECORDS_PER_PROMPT) -> bytes:
    return b"".join(
        json.dumps(record, ensure_ascii=False).encode() + b"\n"
        for record in training_records(per_prompt)
    )


# --- the teacher, built once per machine ----------------------------------------------------


def make_formatted_teacher(venv: Path | None = None, dest: Path | None = None) -> Path:
    """The formatted teacher's directory (weights, tokenizer, chat template), made when
    missing: about 90 s of training on one CPU core after the tiny model exists. The
    directory's name carries a digest of the training data, the training script and the
    tiny model's version, so a changed prompt file makes a new teacher."""
    venv = venv or ensure_vllm_venv()
    base = make_tiny_model(venv=venv)
    data = training_data()
    digest = hashlib.sha256(
        b"\0".join([data, TRAINING_SCRIPT.read_bytes(), str(TINY_MODEL_VERSION).encode()])
    ).hexdigest()[:12]
    dest = dest or CACHE_DIR / f"{FORMATTED_TEACHER_NAME}-{FORMATTED_TEACHER_VERSION}-{digest}"
    if (dest / COMPLETE_MARKER).exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{dest}.lock", "w") as lock:
        # Parallel sessions: one trains it, the others wait and reuse it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / COMPLETE_MARKER).exists():
            return dest
        staging = dest.with_name(f"{dest.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        (staging / TRAINING_FILE).write_bytes(data)
        started = time.monotonic()
        result = subprocess.run(
            [
                str(venv / "bin" / "python"),
                str(TRAINING_SCRIPT),
                str(base),
                str(staging / TRAINING_FILE),
                str(staging),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if result.returncode != 0:
            raise RuntimeError(f"formatted_teacher.py failed:\n{result.stderr[-4000:]}")
        (staging / "training.log").write_text(result.stdout + result.stderr)
        seconds = time.monotonic() - started
        (staging / COMPLETE_MARKER).write_text(f"trained in {seconds:.0f} s\n")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    return dest
