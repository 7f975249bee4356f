"""Reading judgments: the format labbot asks for, the forms real judge models write instead,
and replies that must count as errors."""

from __future__ import annotations

import pytest

from workers.eval.judge import judge_messages, parse_judgment


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        # The format the prompt asks for (the stop sequence cuts [End]).
        ("[Explanation]\nCorrect and complete.\n[Rating]\n9\n", 9.0),
        ("[Explanation]\nWrong year.\n[Rating]\n2\n[End]", 2.0),
        ("[Explanation]\nGood.\n[Rating]\n**10**", 10.0),
        ("[explanation] fine [rating] 7/10", 7.0),
        # MT-Bench-trained judges (Prometheus, Mixtral as judge).
        (
            "The assistant's answer matches the reference on every point but is terse.\n\n"
            "Rating: [[8]]",
            8.0,
        ),
        ("Explanation: partially correct. Rating: [[5.5]]", 5.5),
        ("Overall the answer is helpful. Score: 6/10", 6.0),
        ("I would give this answer a 4 out of 10: it misses the main point.", 4.0),
        ("Rating: 3", 3.0),
        # The same rating twice is still one decision.
        ("Rating: [[7]]. To repeat, my rating is [[7]].", 7.0),
    ],
)
def test_realistic_judgments_are_read(reply: str, rating: float) -> None:
    judgment = parse_judgment(reply)
    assert judgment is not None
    assert judgment.rating == rating


def test_the_reasoning_is_kept() -> None:
    judgment = parse_judgment("[Explanation]\nIt names the wrong river.\n[Rating]\n3\n")
    assert judgment is not None
    assert judgment.reasoning == "It names the wrong river."
    mt_bench = parse_judgment("It names the wrong river. Rating: [[3]]")
    assert mt_bench is not None
    assert mt_bench.reasoning.startswith("It names the wrong river")


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "The answer is fine.",
        "[Explanation]\nfine\n[Rating]\n",  # no value
        "[Explanation]\nfine\n[Rating]\neleven",
        "Rating: [[11]]",  # out of range
        "Rating: [[0]]",
        "Rating: [[7]] ... on reflection, Rating: [[3]]",  # undecided
        "Score: 12/10",
        "[[",
        "\x00\x01 binary garbage \ufffd",
        "Rating: [[-3]]",
    ],
)
def test_malformed_judgments_are_none(reply: str) -> None:
    assert parse_judgment(reply) is None


def test_the_prompt_carries_question_reference_and_answer() -> None:
    messages = judge_messages("What is 2+2?", "5", reference="4")
    user = messages[-1]["content"]
    assert "What is 2+2?" in user
    assert "[Reference answer]\n4" in user
    assert "5" in user
    without = judge_messages("Write a haiku.", "An old pond", reference="")[-1]["content"]
    assert "[Reference answer]" not in without
