"""lint.py against yamllint itself (the library upstream runs), with upstream's configuration:
identical problems on every yaml file of the shared data and on edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

from bots.triage.lint import lint
from bots.triage.yamlload import load_yaml
from tests.triage.conftest import INVALID, TAXONOMY

UPSTREAM_CONFIG = YamlLintConfig("{extends: relaxed, rules: {line-length: disable}}")
# Reported by the loader for every file, not by lint.py.
LOADER_RULES = {None, "key-duplicates", "anchors"}

Problem = tuple[int, int, str, str, str]


def theirs(text: str) -> list[Problem]:
    return sorted(
        (p.line, p.column, p.level, p.rule, p.desc)
        for p in linter.run(text, UPSTREAM_CONFIG)
        if p.rule not in LOADER_RULES
    )


def ours(text: str) -> list[Problem]:
    syntax = any(f.rule == "yaml/syntax" for f in load_yaml(text.encode()).findings)
    return sorted(
        (f.line, f.column, f.severity.value, f.rule.split("/", 1)[1], f.message)
        for f in lint(text, syntax_error=syntax)
    )


def yaml_files() -> list[Path]:
    roots = [TAXONOMY, INVALID]
    return [
        p
        for root in roots
        for p in sorted(root.rglob("*"))
        if p.is_file() and (p.suffix in (".yaml", ".yml") or "qna" in p.name)
    ]


def test_same_problems_as_yamllint_on_every_shared_yaml_file() -> None:
    files = yaml_files()
    assert len(files) > 1600
    different = []
    for path in files:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
        if theirs(text) != ours(text):
            different.append(path)
    assert different == []


EDGE_CASES = [
    "a: 1\n",
    "a: 1",
    "a: 1\r\nb: 2\r\n",
    "a: 1  \nb: 2\t\n",
    "   \na: 1\n",
    "\n\na: 1\n",
    "a: 1\n\n\n\nb: 2\n",
    "a: 1\n\n",
    "\n",
    "a:    1\n",
    "a :  1\n",
    "- a\n-   b\n",
    "a: [1,2 , 3]\n",
    "a: [ 1, 2 ]\n",
    "a: [  1, 2  ]\n",
    "a: {b: 1,c: 2}\n",
    "a: {  b: 1  }\n",
    "a: { }\n",
    "a: [ ]\n",
    "a:\n    b: 1\n    c:\n        d: 2\n",
    "a:\n  b: 1\n   c: 2\n",
    "a:\n- b\n- c\nd:\n  - e\n",
    "a:\n  - b\nd:\n- e\n",
    "a:\n  - b:\n      c: 1\n  -   d\n",
    "a: |\n  text\n    more\nb: >\n    folded\n",
    "a: &x\n  b: 1\nc: *x\n",
    "a: !!str\n  b\n",
    "? complex\n: value\n",
    "a:\n  - [1,\n     2]\n  - {b: 1,\n     c: 2}\n",
    "seed_examples:\n- question: q\n  answer: |\n    a\n  context: c\n",
    "a: b\n# yamllint disable rule:trailing-spaces\nc: d   \n# yamllint enable\ne: f  \n",
    "a: b  # yamllint disable-line\nc: d  \n",
    "# yamllint disable-file\na: b   \n",
    "a: b\nc: [1, 2\n",
    "a: 'unterminated\n",
    "a: b: c\n",
    "- - - a\n",
    "a:\n\t- b\n",
    "key: value # comment  \n",
    "---\na: 1\n...\n",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_same_problems_as_yamllint_on_edge_cases(text: str) -> None:
    assert ours(text) == theirs(text)


def test_error_warning_split_matches_the_relaxed_config() -> None:
    text = "a: 1  \nb:    2\n\n\n\nc: 3"
    levels = {(rule, level) for _l, _c, level, rule, _d in ours(text)}
    assert levels == {
        ("trailing-spaces", "error"),
        ("colons", "warning"),
        ("empty-lines", "warning"),
        ("new-line-at-end-of-file", "error"),
    }
