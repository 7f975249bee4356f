"""Asking the models, through the SDG client: answers to questions, the choice each model
prefers in a multiple-choice question (by log-likelihood, as MMLU is scored), and the judge's
ratings, with an unreadable judgment asked once more before it counts as an error."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workers.eval.judge import Judgment, judge_messages, parse_judgment
from workers.eval.questions import MultipleChoiceQuestion, Question
from workers.sdg.teacher import Reply, Sampling, Teacher

Progress = Callable[[int, int], None]
# Deterministic answers, so a rerun asks the same thing; a judgment that cannot be read is
# asked again with some sampling, since the same greedy prompt would give the same reply.
JUDGE_RETRY_TEMPERATURE = 0.7


@dataclass(frozen=True)
class Answer:
    text: str
    skipped: str | None = None  # why the model was not asked (too long for its context)


@dataclass(frozen=True)
class Rated:
    judgment: Judgment | None  # None: not readable after the retry, or no answer to rate
    raw: list[str]  # the judge's replies, first attempt first
    error: str | None = None


def answer_questions(
    model: Teacher, questions: Sequence[Question], max_tokens: int, progress: Progress
) -> list[Answer]:
    replies = model.chat(
        [[{"role": "user", "content": q.question}] for q in questions],
        Sampling(max_tokens=max_tokens, temperature=0.0),
        on_progress=progress,
    )
    return [_answer(reply) for reply in replies]


def _answer(reply: Reply) -> Answer:
    if reply.skipped is not None or not reply.texts:
        return Answer("", reply.skipped or "no answer")
    return Answer(reply.texts[0].strip())


def choose_answers(
    model: Teacher, questions: Sequence[MultipleChoiceQuestion], progress: Progress
) -> list[int | None]:
    """The choice each question's continuation is likeliest for (None: could not be scored)."""
    prompts: list[str] = []
    spans: list[tuple[int, int]] = []  # each prompt's continuation: [start, end) characters
    for question in questions:
        context = question.prompt()
        for continuation in question.continuations():
            prompts.append(context + continuation)
            spans.append((len(context), len(context) + len(continuation)))
    replies = model.complete(prompts, Sampling(max_tokens=1, echo_logprobs=True), progress)
    scores = [
        _continuation_logprob(reply, span) for reply, span in zip(replies, spans, strict=True)
    ]
    chosen: list[int | None] = []
    position = 0
    for question in questions:
        options = scores[position : position + len(question.choices)]
        position += len(question.choices)
        if any(score is None for score in options):
            chosen.append(None)
            continue
        values = [score if score is not None else -math.inf for score in options]
        chosen.append(max(range(len(values)), key=values.__getitem__))
    return chosen


def _continuation_logprob(reply: Reply, span: tuple[int, int]) -> float | None:
    if reply.skipped is not None or not reply.logprobs:
        return None
    start, end = span
    values = [value for offset, value in reply.logprobs[0] if start <= offset < end]
    if not values or any(value is None for value in values):
        return None  # the continuation's first token was merged into the context's last one
    return sum(value for value in values if value is not None)


@dataclass(frozen=True)
class JudgeRequest:
    question: str
    answer: str
    reference: str
    context: str = ""


def rate_answers(
    judge: Teacher, requests: Sequence[JudgeRequest], max_tokens: int, progress: Progress
) -> list[Rated]:
    """The judge's rating of each answer; an empty answer is not sent (it rates as an error)."""
    rated: list[Rated | None] = [
        None if r.answer else Rated(None, [], "the model gave no answer") for r in requests
    ]
    to_ask = [i for i, r in enumerate(requests) if r.answer]
    raw: dict[int, list[str]] = {i: [] for i in to_ask}
    for attempt, temperature in enumerate((0.0, JUDGE_RETRY_TEMPERATURE)):
        if not to_ask:
            break
        prompt = judge_messages  # one template for both attempts
        replies = judge.chat(
            [prompt(**_variables(requests[i])) for i in to_ask],
            Sampling(
                max_tokens=max_tokens,
                temperature=temperature,
                stop=("[End]",),
                seed=attempt or None,
            ),
            on_progress=progress if attempt == 0 else None,
        )
        unreadable = []
        for index, reply in zip(to_ask, replies, strict=True):
            if reply.skipped is not None:
                rated[index] = Rated(None, raw[index], f"not sent to the judge: {reply.skipped}")
                continue
            text = reply.texts[0] if reply.texts else ""
            raw[index].append(text)
            judgment = parse_judgment(text)
            if judgment is not None:
                rated[index] = Rated(judgment, raw[index])
            else:
                unreadable.append(index)
        to_ask = unreadable
    for index in to_ask:
        rated[index] = Rated(None, raw[index], "the judgment could not be read")
    return [r if r is not None else Rated(None, [], "not rated") for r in rated]


def _variables(request: JudgeRequest) -> dict[str, str]:
    return {
        "question": request.question,
        "answer": request.answer,
        "reference": request.reference,
        "context": request.context,
    }
