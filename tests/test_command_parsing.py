"""Which lines of a comment are commands (prow's cases: code blocks, quotes, trailing spaces,
unknown verbs, mentions)."""

from __future__ import annotations

import pytest

from bots.command_parsing import parse_commands


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/lab help", [("help", ())]),
        ("/lab retest   ", [("retest", ())]),
        ("   /lab retest", [("retest", ())]),
        ("/LAB Retest", [("retest", ())]),
        ("@labbot retest", [("retest", ())]),
        ("@LabBot retest", [("retest", ())]),
        ("/lab frobnicate", [("frobnicate", ())]),
        ("/lab", [("", ())]),
        ('/lab generate "two words" x', [("generate", ("two words", "x"))]),
        ("/lab generate 'unbalanced", [("generate", ("'unbalanced",))]),
        ("thanks!\r\n/lab retest\r\n", [("retest", ())]),
        ("/lab retest\n/lab help", [("retest", ()), ("help", ())]),
        # Not commands:
        ("please /lab retest", []),
        ("/labretest", []),
        ("@labbot-other retest", []),
        ("@someone retest", []),
        ("> /lab retest", []),
        ("   > /lab retest", []),
        ("    /lab retest", []),
        ("\t/lab retest", []),
        ("```\n/lab retest\n```", []),
        ("~~~\n/lab retest\n~~~", []),
        ("```yaml\n/lab retest\n", []),  # an unclosed fence runs to the end
        ("```\n/lab help\n```\n/lab retest", [("retest", ())]),
        ("~~~\n```\n/lab help\n~~~\n/lab retest", [("retest", ())]),
    ],
)
def test_commands_in_comment(body: str, expected: list[tuple[str, tuple[str, ...]]]) -> None:
    found = [(c.verb, c.args) for c in parse_commands(body, "labbot")]
    assert found == expected
