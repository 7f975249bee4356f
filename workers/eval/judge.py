"""The judge: a model that rates an answer 1 to 10 against a reference (PR-bench and the
regression guard). Its prompt is ``prompts/judge.yaml``; its replies are read by
:func:`parse_judgment`, which also accepts the forms judge models commonly write instead
("Rating: [[7]]" from MT-Bench-trained judges, "Score: 7/10")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from workers.sdg.prompts import PromptTemplate, load

PROMPTS_DIR = Path(__file__).with_name("prompts")
MIN_RATING, MAX_RATING = 1, 10

# "[[7]]", "[[7.5]]" (MT-Bench), then "Rating: 7", "Score: 7/10", "7/10", "7 out of 10".
_DOUBLE_BRACKETS = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_LABELLED = re.compile(
    r"\b(?:rating|score|grade)\b\s*(?:is|of)?\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?)"
    r"(?:\s*(?:/|out of)\s*10)?",
    re.IGNORECASE,
)
_OUT_OF_TEN = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:/|out of)\s*10\b", re.IGNORECASE)


@dataclass(frozen=True)
class Judgment:
    rating: float  # 1..10
    reasoning: str


def judge_prompt() -> PromptTemplate:
    return load("judge", PROMPTS_DIR)


def judge_messages(
    question: str, answer: str, reference: str = "", context: str = ""
) -> list[dict[str, str]]:
    return judge_prompt().messages(
        question=question, answer=answer, reference=reference, context=context
    )


def parse_judgment(text: str) -> Judgment | None:
    """The rating and reasoning in a judge's reply, or None when there is no single rating from
    1 to 10 in it (none, several that disagree, or one out of range). Never raises."""
    text = text.split("[End]")[0]
    fields = judge_prompt().parse(text)
    if fields is not None:
        return Judgment(float(fields["Rating"]), fields.get("Explanation", "").strip())
    for pattern in (_DOUBLE_BRACKETS, _LABELLED, _OUT_OF_TEN):
        found = [(match.start(), float(match.group(1))) for match in pattern.finditer(text)]
        if not found:
            continue
        ratings = {rating for _, rating in found}
        if len(ratings) != 1:
            return None  # a judge that names two different ratings has not decided
        rating = ratings.pop()
        if not MIN_RATING <= rating <= MAX_RATING:
            return None
        reasoning = text[: found[0][0]].strip() or text.strip()
        return Judgment(rating, reasoning)
    return None
