"""The bench results comment (one per head commit, edited in place on reruns), the check run's
summary, and the precheck comment. Every piece of text that came from the PR or from a model
is escaped: it cannot add markup, HTML, links or @mentions to labbot's comments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bots import messages
from bots.markdown import code, escape, escape_block, table_code
from workers.eval.results import BenchResults, GroupScore, ScoredQuestion

if TYPE_CHECKING:
    from workers.eval.questions import Question

# GitHub refuses comments over 65,536 characters; per-question details stop before that.
COMMENT_BUDGET = 60_000
TEXT_LIMIT = 1_200  # characters of one answer, question or judgment in a comment
ARTIFACTS = ("answers.jsonl", "judgments.jsonl", "mmlu.jsonl", "results.json")
VERDICT_WORDS = {
    "improved": "improved",
    "regressed": "regressed",
    "unchanged": "no change",
    "unscored": "not scored",
}


@dataclass(frozen=True)
class Links:
    job: str  # the job's dashboard page
    pull: str  # the PR's dashboard page (full per-question text)
    artifacts: str  # base URL of the job's artifacts


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _delta(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def purpose(head_sha: str) -> str:
    return f"bench:{head_sha[:12]}"


def bench_comment(results: BenchResults, links: Links) -> str:
    lines = [
        messages.BENCH_HEADER.format(sha=results.head_sha[:12]),
        "",
        messages.BENCH_CONCLUSION[results.conclusion].format(reasons="; ".join(results.reasons)),
        "",
        messages.BENCH_MODELS.format(
            base=code(results.base_model),
            trained=code(results.trained_model),
            judge=code(results.judge_model),
        ),
        "",
    ]
    lines += files_table(results.files)
    verdicts = [f.verdict for f in results.files]
    lines += [
        "",
        messages.BENCH_TALLY.format(
            improved=verdicts.count("improved"),
            regressed=verdicts.count("regressed"),
            unchanged=verdicts.count("unchanged") + verdicts.count("unscored"),
            judgments=results.judgments,
            errors=results.judge_errors,
            rate=_percent(results.error_rate),
        ),
    ]
    if results.mmlu:
        lines += ["", messages.BENCH_MMLU_HEADER, ""]
        lines += ["| leaf | questions | before | after | delta |", "|---|---|---|---|---|"]
        lines += [
            f"| {table_code(m.leaf)} | {m.questions} | {_percent(m.base)} | "
            f"{_percent(m.trained)} | {100 * m.delta:+.0f} pts |"
            for m in results.mmlu
        ]
    if results.guard is not None:
        lines += ["", messages.BENCH_GUARD_HEADER.format(version=results.guard_version), ""]
        lines += _guard_table(results.guard, results.guard_categories)
    details = _question_details(results.questions, links)
    lines += ["", messages.BENCH_QUESTIONS_HEADER, ""]
    budget = COMMENT_BUDGET - sum(len(line) + 1 for line in lines) - 2_000
    shown = 0
    for block in details:
        if len(block) > budget:
            lines.append(
                messages.BENCH_MORE_QUESTIONS.format(count=len(details) - shown, url=links.pull)
            )
            break
        lines.append(block)
        budget -= len(block)
        shown += 1
    files = " · ".join(f"[{name}]({links.artifacts}/bench/{name})" for name in ARTIFACTS)
    lines += ["", messages.BENCH_ARTIFACTS.format(files=files, job=links.job, pull=links.pull)]
    return "\n".join(lines)


def files_table(files: list[GroupScore]) -> list[str]:
    rows = ["| file | questions | before | after | delta | |", "|---|---|---|---|---|---|"]
    rows += [
        f"| {table_code(f.name)} | {f.questions} | {_score(f.base)} | {_score(f.trained)} | "
        f"{_delta(f.delta)} | {VERDICT_WORDS[f.verdict]} |"
        for f in files
    ]
    return rows


def _guard_table(guard: GroupScore, categories: list[GroupScore]) -> list[str]:
    rows = ["| questions | before | after | delta | |", "|---|---|---|---|---|"]
    rows.append(
        f"| {guard.questions} | {_score(guard.base)} | {_score(guard.trained)} | "
        f"{_delta(guard.delta)} | {VERDICT_WORDS[guard.verdict]} |"
    )
    if categories:
        rows += ["", "<details><summary>" + messages.BENCH_GUARD_BY_CATEGORY + "</summary>", ""]
        rows += ["| category | before | after | delta |", "|---|---|---|---|"]
        rows += [
            f"| {escape(c.name)} | {_score(c.base)} | {_score(c.trained)} | {_delta(c.delta)} |"
            for c in categories
        ]
        rows += ["", "</details>"]
    return rows


def _block(label: str, text: str, link: str) -> str:
    escaped, cut = escape_block(text, TEXT_LIMIT)
    more = f" ([{messages.BENCH_FULL_TEXT}]({link}))" if cut else ""
    return f"{label}{more}\n<pre>{escaped}</pre>\n"


def _question_details(questions: list[ScoredQuestion], links: Links) -> list[str]:
    blocks = []
    for q in questions:
        link = f"{links.pull}#{anchor(q.id)}"
        summary = (
            f"{code(q.id)}: {_score(q.base_rating)} → {_score(q.trained_rating)} "
            f"({_delta(q.delta)})"
        )
        parts = [f"<details><summary>{summary}</summary>\n"]
        parts.append(_block(f"**{messages.BENCH_QUESTION}**", q.question, link))
        parts.append(_block(f"**{messages.BENCH_REFERENCE}**", q.reference, link))
        for who, answer, rating, reasoning, error in (
            ("base", q.base_answer, q.base_rating, q.base_reasoning, q.base_error),
            ("trained", q.trained_answer, q.trained_rating, q.trained_reasoning, q.trained_error),
        ):
            label = messages.BENCH_ANSWER[who].format(rating=_score(rating))
            parts.append(_block(f"**{label}**", answer or "", link))
            judged = reasoning or (error or "")
            parts.append(_block(f"*{messages.BENCH_JUDGE}*", judged, link))
        parts.append("</details>\n")
        blocks.append("\n".join(parts))
    return blocks


def anchor(question_id: str) -> str:
    """The id of a question's section on the dashboard's PR page."""
    return "q-" + "".join(ch if ch.isalnum() else "-" for ch in question_id)


def check_summary(results: BenchResults, links: Links) -> str:
    lines = [
        messages.BENCH_CONCLUSION[results.conclusion].format(reasons="; ".join(results.reasons)),
        "",
        *files_table(results.files),
    ]
    if results.guard is not None:
        lines += [
            "",
            messages.BENCH_GUARD_LINE.format(
                before=_score(results.guard.base),
                after=_score(results.guard.trained),
                delta=_delta(results.guard.delta),
            ),
        ]
    lines += ["", messages.BENCH_CHECK_LINKS.format(pull=links.pull)]
    return "\n".join(lines)


def precheck_comment(
    head_sha: str,
    model: str,
    questions: list[Question],
    answers: list[str],
    ratings: list[float | None] | None,
    links: Links,
) -> str:
    lines = [
        messages.PRECHECK_HEADER.format(sha=head_sha[:12], model=code(model)),
        "",
        messages.PRECHECK_INTRO,
        "",
    ]
    if ratings is not None:
        present = [r for r in ratings if r is not None]
        mean = sum(present) / len(present) if present else None
        lines += [messages.PRECHECK_MEAN.format(mean=_score(mean), count=len(present)), ""]
    budget = COMMENT_BUDGET - 2_000
    for index, (question, answer) in enumerate(zip(questions, answers, strict=True)):
        rating = ratings[index] if ratings is not None else None
        rated = f" ({messages.PRECHECK_RATING.format(rating=_score(rating))})" if ratings else ""
        link = f"{links.pull}#{anchor(question.id)}"
        block = "\n".join(
            [
                f"<details><summary>{code(question.id)}{rated}</summary>\n",
                _block(f"**{messages.BENCH_QUESTION}**", question.question, link),
                _block(f"**{messages.PRECHECK_CONTRIBUTOR}**", question.reference, link),
                _block(f"**{messages.PRECHECK_MODEL}**", answer, link),
                "</details>\n",
            ]
        )
        if len(block) > budget:
            lines.append(
                messages.BENCH_MORE_QUESTIONS.format(count=len(questions) - index, url=links.job)
            )
            break
        budget -= len(block)
        lines.append(block)
    lines.append(messages.PRECHECK_FOOTER.format(job=links.job))
    return "\n".join(lines)
