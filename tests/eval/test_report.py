"""The results comment: tables and per-question details, with every text from the PR or a
model escaped (mentions, HTML, Markdown tables, huge answers), and the thresholds' verdicts."""

from __future__ import annotations

import re

from app.config import Settings
from bots.markdown import escape_block
from workers.eval.questions import Question
from workers.eval.report import COMMENT_BUDGET, Links, bench_comment, precheck_comment
from workers.eval.results import (
    BenchResults,
    GroupScore,
    LeafAccuracy,
    ScoredQuestion,
    conclude,
    group_scores,
    leaf_accuracy,
    score_group,
)

LINKS = Links(
    job="https://labbot.example/jobs/7",
    pull="https://labbot.example/pulls/org/taxonomy/3",
    artifacts="https://labbot.example/jobs/7/artifacts",
)
HOSTILE = (
    "@octocat @org/team please look </pre></details><script>alert(1)</script> "
    "<img src=x onerror=alert(1)> | col | col |\n|---|---|\n[click](https://evil.example) "
    "#1 ```` <!-- labbot:bench:abc --> &amp;"
)


def question(n: int, base: float | None, trained: float | None, text: str = "q") -> ScoredQuestion:
    return ScoredQuestion(
        id=f"compositional_skills/x#{n}",
        group="compositional_skills/x/qna.yaml",
        question=text,
        reference=text,
        base_answer=text,
        trained_answer=text,
        base_rating=base,
        trained_rating=trained,
        base_reasoning=text,
        trained_reasoning=text,
    )


def results(questions: list[ScoredQuestion], **overrides: object) -> BenchResults:
    files = group_scores(questions, "group", 0.5)
    values: dict[str, object] = {
        "head_sha": "a" * 40,
        "base_model": "base",
        "trained_model": "trained",
        "judge_model": "judge",
        "files": files,
        "questions": questions,
        "mmlu": [],
        "guard": None,
        "guard_categories": [],
        "guard_questions": [],
        "guard_version": 1,
        "judgments": 2 * len(questions),
        "judge_errors": 0,
        "conclusion": "success",
        "reasons": ["r"],
    }
    values.update(overrides)
    return BenchResults.model_validate(values)


def outside_pre(body: str) -> str:
    return re.sub(r"<pre>.*?</pre>", "", body, flags=re.DOTALL)


def test_hostile_text_cannot_add_markup_or_mentions() -> None:
    body = bench_comment(results([question(1, 3, 8, HOSTILE)]), LINKS)
    # Inside the blocks: HTML-escaped, mentions defused.
    assert "<script>" not in body
    assert "<img" not in body
    assert "&lt;/pre&gt;&lt;/details&gt;&lt;script&gt;" in body
    assert "@octocat" not in body
    assert "@\u200docto" in body
    assert "@org/team" not in body
    # Every <pre> opened is closed by labbot, and the details blocks balance.
    assert body.count("<pre>") == body.count("</pre>")
    assert body.count("<details>") == body.count("</details>")
    # Outside the blocks nothing of the hostile text remains.
    assert "evil.example" not in outside_pre(body)
    assert "<!-- labbot:bench:abc -->" not in body


def test_hostile_file_names_stay_in_their_cell() -> None:
    scored = question(1, 3, 8).model_copy(update={"group": "knowledge/`x` @admin | y/qna.yaml"})
    body = bench_comment(results([scored]), LINKS)
    row = next(line for line in body.splitlines() if line.startswith("| `knowledge/"))
    # Seven cell borders, the name's own pipe escaped, its backticks unable to end the code.
    assert len(re.findall(r"(?<!\\)\|", row)) == 7, row
    assert row.startswith("| `knowledge/'x' @admin \\| y/qna.yaml` |")


def test_huge_answers_are_cut_with_a_link_and_the_comment_fits() -> None:
    huge = "word " * 50_000
    body = bench_comment(results([question(n, 2, 9, huge) for n in range(1, 60)]), LINKS)
    assert len(body) <= COMMENT_BUDGET
    assert "full text" in body
    assert f"{LINKS.pull}#q-" in body
    assert "more question(s) on the dashboard" in body
    assert body.count("<details>") == body.count("</details>")


def test_table_shows_before_after_delta_and_verdict() -> None:
    qs = [question(1, 3, 8), question(2, 4, 7)]
    body = bench_comment(results(qs), LINKS)
    assert "| `compositional_skills/x/qna.yaml` | 2 | 3.50 | 7.50 | +4.00 | improved |" in body
    for name in ("answers.jsonl", "judgments.jsonl", "mmlu.jsonl", "results.json"):
        assert f"({LINKS.artifacts}/bench/{name})" in body


def test_escape_block_keeps_lines_and_cuts() -> None:
    text, cut = escape_block("a <b>\n@c", 100)
    assert (text, cut) == ("a &lt;b&gt;\n@\u200dc", False)
    text, cut = escape_block("x" * 50, 10)
    assert cut
    assert len(text) < 20


def test_groups_and_verdicts_by_threshold() -> None:
    up = score_group("f", [question(1, 3, 4)], 0.5)
    assert (up.base, up.trained, up.delta, up.verdict) == (3, 4, 1, "improved")
    assert score_group("f", [question(1, 5, 5.4)], 0.5).verdict == "unchanged"
    assert score_group("f", [question(1, 6, 5)], 0.5).verdict == "regressed"
    assert score_group("f", [question(1, None, 5)], 0.5).verdict == "unscored"
    # An unreadable judgment leaves the question out of its side's mean.
    mixed = score_group("f", [question(1, 2, None), question(2, 4, 8)], 0.5)
    assert (mixed.base, mixed.trained) == (3, 8)


def test_leaf_accuracy_counts_unscored_as_wrong() -> None:
    acc = leaf_accuracy("knowledge/x", [0, 1, 2, 3], [0, None, 1, 3], [0, 1, 2, None])
    assert (acc.base, acc.trained, acc.delta) == (0.5, 0.75, 0.25)


def conclusion(
    files: list[GroupScore],
    mmlu: list[LeafAccuracy] | None = None,
    guard: GroupScore | None = None,
    errors: int = 0,
) -> str:
    return conclude(files, mmlu or [], guard, 10, errors, Settings())[0]


def test_conclusions_follow_the_thresholds() -> None:
    improved = score_group("a", [question(1, 3, 8)], 0.5)
    unchanged = score_group("b", [question(1, 5, 5)], 0.5)
    regressed = score_group("c", [question(1, 8, 3)], 0.5)
    assert conclusion([improved, unchanged]) == "success"
    assert conclusion([improved, regressed]) == "failure"
    assert conclusion([unchanged]) == "neutral"
    assert conclusion([improved], errors=3) == "neutral"  # 30% unreadable > 20%
    guard_drop = score_group("all", [question(1, 7, 6)], 0.5)
    assert conclusion([improved], guard=guard_drop) == "failure"
    small_drop = score_group("all", [question(1, 7, 6.8)], 0.5)
    assert conclusion([improved], guard=small_drop) == "success"
    mmlu_drop = leaf_accuracy("k", [0] * 10, [0] * 10, [0] * 9 + [1])
    assert conclusion([improved], [mmlu_drop]) == "failure"
    mmlu_gain = leaf_accuracy("k", [0] * 10, [1] * 10, [0] * 10)
    assert conclusion([unchanged], [mmlu_gain]) == "success"


def test_precheck_comment_puts_answers_beside_the_contributors() -> None:
    questions = [Question("compositional_skills/x#1", "f", "What? @here", "Contributor <b>")]
    body = precheck_comment("b" * 40, "base-model", questions, ["Model @someone"], [6.0], LINKS)
    assert "Contributor &lt;b&gt;" in body
    assert "Model @\u200dsomeone" in body
    assert "@here" not in body
    assert "rated 6.00" in body
    assert "`bbbbbbbbbbbb`" in body
