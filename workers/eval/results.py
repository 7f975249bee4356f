"""What a bench job found, as stored in ``bench/results.json`` and shown on the PR and the
dashboard: per question and per file the base and trained ratings, PR-MMLU accuracy per leaf,
the regression guard, the judge's error rate, and the conclusion the thresholds give."""

from __future__ import annotations

from statistics import fmean
from typing import Literal

from pydantic import BaseModel

from app.config import Settings

Verdict = Literal["improved", "regressed", "unchanged", "unscored"]
Conclusion = Literal["success", "neutral", "failure"]


class ScoredQuestion(BaseModel):
    id: str
    group: str  # the qna.yaml file, or the guard's category
    question: str
    reference: str
    base_answer: str
    trained_answer: str
    base_rating: float | None
    trained_rating: float | None
    base_reasoning: str = ""
    trained_reasoning: str = ""
    base_error: str | None = None
    trained_error: str | None = None

    @property
    def delta(self) -> float | None:
        return _delta(self.base_rating, self.trained_rating)


class GroupScore(BaseModel):
    name: str  # a qna.yaml file or a guard category
    questions: int
    base: float | None  # mean rating of the answers the judge could rate
    trained: float | None
    delta: float | None
    verdict: Verdict


class LeafAccuracy(BaseModel):
    leaf: str
    questions: int
    base: float  # share answered right, 0..1 (unscored questions count as wrong)
    trained: float
    delta: float


class BenchResults(BaseModel):
    head_sha: str
    base_model: str
    trained_model: str
    judge_model: str
    files: list[GroupScore]
    questions: list[ScoredQuestion]
    mmlu: list[LeafAccuracy]
    guard: GroupScore | None
    guard_categories: list[GroupScore]
    guard_questions: list[ScoredQuestion]
    guard_version: int
    judgments: int
    judge_errors: int
    conclusion: Conclusion
    reasons: list[str]

    @property
    def error_rate(self) -> float:
        return self.judge_errors / self.judgments if self.judgments else 0.0


def _delta(base: float | None, trained: float | None) -> float | None:
    return None if base is None or trained is None else round(trained - base, 3)


def _mean(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(fmean(present), 3) if present else None


def group_scores(questions: list[ScoredQuestion], key: str, threshold: float) -> list[GroupScore]:
    groups: dict[str, list[ScoredQuestion]] = {}
    for question in questions:
        groups.setdefault(getattr(question, key), []).append(question)
    return [score_group(name, members, threshold) for name, members in sorted(groups.items())]


def score_group(name: str, members: list[ScoredQuestion], threshold: float) -> GroupScore:
    base = _mean([q.base_rating for q in members])
    trained = _mean([q.trained_rating for q in members])
    delta = _delta(base, trained)
    verdict: Verdict
    if delta is None:
        verdict = "unscored"
    elif delta >= threshold:
        verdict = "improved"
    elif delta <= -threshold:
        verdict = "regressed"
    else:
        verdict = "unchanged"
    return GroupScore(
        name=name, questions=len(members), base=base, trained=trained, delta=delta, verdict=verdict
    )


def leaf_accuracy(
    leaf: str, answers: list[int], base: list[int | None], trained: list[int | None]
) -> LeafAccuracy:
    def accuracy(chosen: list[int | None]) -> float:
        right = sum(1 for c, a in zip(chosen, answers, strict=True) if c == a)
        return round(right / len(answers), 4) if answers else 0.0

    base_accuracy, trained_accuracy = accuracy(base), accuracy(trained)
    return LeafAccuracy(
        leaf=leaf,
        questions=len(answers),
        base=base_accuracy,
        trained=trained_accuracy,
        delta=round(trained_accuracy - base_accuracy, 4),
    )


def conclude(
    files: list[GroupScore],
    mmlu: list[LeafAccuracy],
    guard: GroupScore | None,
    judgments: int,
    judge_errors: int,
    settings: Settings,
) -> tuple[Conclusion, list[str]]:
    """failure: a file regressed, a leaf's PR-MMLU accuracy or the guard dropped past its
    threshold; neutral: nothing improved, or too many judgments could not be read; else
    success. The reasons say which, in words for the PR."""
    failures: list[str] = []
    regressed = [f.name for f in files if f.verdict == "regressed"]
    if regressed:
        failures.append(f"{len(regressed)} file(s) scored lower after training")
    dropped = [m.leaf for m in mmlu if m.delta < -settings.eval_mmlu_max_drop]
    if dropped:
        failures.append(f"PR-MMLU accuracy dropped for {len(dropped)} leaf/leaves")
    if (
        guard is not None
        and guard.delta is not None
        and guard.delta < -settings.eval_guard_max_drop
    ):
        failures.append(
            f"the regression guard dropped by {-guard.delta:.2f} "
            f"(more than {settings.eval_guard_max_drop:g})"
        )
    if failures:
        return "failure", failures
    neutral: list[str] = []
    error_rate = judge_errors / judgments if judgments else 0.0
    if error_rate > settings.eval_max_error_rate:
        neutral.append(
            f"{error_rate:.0%} of the judgments could not be read "
            f"(more than {settings.eval_max_error_rate:.0%})"
        )
    improved = [f for f in files if f.verdict == "improved"] + [m for m in mmlu if m.delta > 0]
    if not improved:
        neutral.append("no file or leaf improved")
    if neutral:
        return "neutral", neutral
    return "success", [f"{len(improved)} file(s) or leaf/leaves improved, none regressed"]
