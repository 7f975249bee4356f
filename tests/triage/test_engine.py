"""The engine's API: input files and modes, sibling lookup, the report's JSON and sentence,
configuration, and the checks that have no bad-inputs row of their own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bots.triage import (
    FileMode,
    InputFile,
    RepoConfig,
    RepoConfigError,
    TriageReport,
    load_repo_config,
    triage_file,
    triage_files,
)
from bots.triage import engine as engine_module
from bots.triage.attribution import check_attribution, normalize_license
from bots.triage.config import DEFAULT_LICENSES
from bots.triage.findings import FileResult
from bots.triage.yamlload import load_yaml
from tests.triage.conftest import GOOD_ATTRIBUTION
from tests.triage.test_bad_inputs import rules, skill

SKILL = "compositional_skills/writing/poems/qna.yaml"


def test_report_json_has_exactly_the_documented_keys() -> None:
    files = [
        InputFile(SKILL, skill(examples=1)),
        InputFile("compositional_skills/writing/poems/attribution.txt", GOOD_ATTRIBUTION),
        InputFile("README.md", b"# hi\n"),
    ]
    report = triage_files(files)
    data = json.loads(report.to_json())
    assert set(data) == {"files", "summary"}
    assert set(data["summary"]) == {"files", "errors", "warnings"}
    assert data["summary"] == report.summary() == {"files": 3, "errors": 1, "warnings": 1}
    first = data["files"][0]
    assert set(first) == {"path", "kind", "version", "findings"}
    assert (first["path"], first["kind"], first["version"]) == (SKILL, "skill", 3)
    assert set(first["findings"][0]) == {"rule", "severity", "line", "column", "message", "hint"}
    bare = report.to_dict(with_hints=False)["files"][0]["findings"][0]
    assert set(bare) == {"rule", "severity", "line", "column", "message"}
    assert data["files"][2]["kind"] is None
    assert data["files"][2]["version"] is None


def test_blocking_sentence() -> None:
    ok = triage_files(
        [
            InputFile(SKILL, skill()),
            InputFile(SKILL.replace("qna.yaml", "attribution.txt"), GOOD_ATTRIBUTION),
        ]
    )
    assert ok.ok
    assert ok.blocking_sentence().startswith("Nothing blocks")
    assert TriageReport().blocking_sentence().startswith("Nothing blocks")
    bad = triage_files([InputFile(SKILL, skill(examples=2).replace(b"version: 3", b"version: 1"))])
    sentence = bad.blocking_sentence()
    assert sentence.count(".") >= 1
    assert "\n" not in sentence
    assert SKILL in sentence
    assert "line 4" in sentence
    assert "at least 3" in sentence
    assert "to fix it" in sentence


def test_deleted_files_are_skipped_and_siblings_come_from_the_pr_first() -> None:
    folder = "knowledge/history/x"
    looked_up: list[str] = []

    def lookup(path: str) -> bytes | None:
        looked_up.append(path)
        return GOOD_ATTRIBUTION

    report = triage_files(
        [
            InputFile(f"{folder}/qna.yaml", skill()),
            InputFile(f"{folder}/gone.yaml", None, deleted=True),
            InputFile(f"{folder}/also_gone.yaml", None),
        ],
        lookup=lookup,
    )
    assert [r.path for r in report.files] == [f"{folder}/qna.yaml"]
    assert looked_up == [f"{folder}/attribution.txt"]
    assert "attribution/missing" not in rules(report.files[0])
    # the PR deletes the attribution: the base branch copy does not count
    report = triage_files(
        [
            InputFile(f"{folder}/qna.yaml", skill()),
            InputFile(f"{folder}/attribution.txt", None, deleted=True),
        ],
        lookup=lookup,
    )
    assert "attribution/missing" in rules(report.files[0])


def test_a_failing_check_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine_module.check_schema  # type: ignore[attr-defined]

    def explode(loaded: Any, data: Any, root: Any) -> Any:
        if data.get("created_by") == "boom":
            raise RuntimeError("secret internals /usr/lib/python3")
        return real(loaded, data, root)

    monkeypatch.setattr(engine_module, "check_schema", explode)
    report = triage_files(
        [
            InputFile("compositional_skills/a/qna.yaml", skill().replace(b"someone", b"boom")),
            InputFile("compositional_skills/b/qna.yaml", skill()),
        ]
    )
    broken, fine = report.files
    assert rules(broken) == {"internal/error"}
    assert "RuntimeError" in broken.findings[0].message
    assert "/usr/lib" not in broken.findings[0].message
    assert "internal/error" not in rules(fine)
    assert fine.version == 3


def test_failing_lookup_is_contained() -> None:
    def lookup(path: str) -> bytes | None:
        raise OSError("network down")

    report = triage_files([InputFile(SKILL, skill())], lookup=lookup)
    assert rules(report.files[0], "error") == {"attribution/missing"}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("100644", FileMode.regular),
        ("100755", FileMode.executable),
        ("120000", FileMode.symlink),
        ("160000", FileMode.submodule),
        (0o120000, FileMode.symlink),
        ("symlink", FileMode.symlink),
    ],
)
def test_modes_parse_from_git(mode: Any, expected: FileMode) -> None:
    assert FileMode.parse(mode) is expected


def test_positions_come_from_the_node_map() -> None:
    content = (
        b"version: 3\n"
        b"created_by: someone\n"
        b"task_description: t\n"
        b"seed_examples:\n"
        + b"".join(b"  - question: q%d\n    answer: a%d\n" % (i, i) for i in range(4))
        + b"  - question: 42\n"
        b"    answer:\n"
        b"    extra: x\n"
    )
    result = triage_file(SKILL, content, siblings={"attribution.txt": GOOD_ATTRIBUTION})
    found = {(f.rule, f.line, f.column) for f in result.findings}
    assert ("schema/type", 13, 15) in found  # question: 42
    assert ("schema/type", 14, 12) in found  # answer: (empty)
    assert ("schema/unknown-field", 15, 5) in found  # extra
    assert all(f.line != 1 for f in result.findings if f.rule.startswith("schema/"))


def test_knowledge_minimums_and_placeholders() -> None:
    content = (
        b"version: 3\ncreated_by: me\ndomain: d\ndocument_outline: o\n"
        b"document:\n  repo: https://github.com/o/r\n  commit: " + b"a" * 40 + b"\n"
        b"  patterns: [doc.md]\nseed_examples:\n"
        + b"".join(
            b"  - context: Context number %d with real text.\n    questions_and_answers:\n" % i
            + b"".join(
                b"      - {question: Q%d%d?, answer: A%d%d.}\n" % (i, j, i, j) for j in range(3)
            )
            for i in range(5)
        )
    )
    result = triage_file(
        "knowledge/x/qna.yaml", content, siblings={"attribution.txt": GOOD_ATTRIBUTION}
    )
    assert result.kind == "knowledge"
    assert result.errors == 0, result.findings
    placeholder = content.replace(b"A00.", b"TBD")
    result = triage_file(
        "knowledge/x/qna.yaml", placeholder, siblings={"attribution.txt": GOOD_ATTRIBUTION}
    )
    assert rules(result, "error") == {"examples/empty"}


def test_duplicate_examples_and_llm_output_are_warnings() -> None:
    content = (
        skill()
        .replace(b"It is the item number 2.", b"It is the item number 1.")
        .replace(b"What is item 2?", b"What is item 1?")
    )
    content = content.replace(b"It is the item number 4.", b"As an AI language model, I think 4.")
    result = triage_file(SKILL, content, siblings={"attribution.txt": GOOD_ATTRIBUTION})
    found = {f.rule: f for f in result.findings}
    assert found["examples/duplicate"].severity.value == "warning"
    assert found["content/llm-output"].severity.value == "warning"
    assert "As an AI language model" in found["content/llm-output"].message
    line = content.decode().splitlines()[found["content/llm-output"].line - 1]
    assert line[found["content/llm-output"].column - 1 :].startswith("As an AI")


def test_avoid_topics_and_rule_settings_from_config() -> None:
    config = RepoConfig.from_yaml(
        b"triage:\n  avoid_topics: [gambling]\n  rules:\n    content/*: error\n"
        b"    layout/path-style: off\n"
    )
    content = skill().replace(b"It is the item number 1.", b"About Gambling odds.")
    result = triage_file("compositional_skills/Bad Name/qna.yaml", content, config)
    found = {f.rule: f for f in result.findings}
    assert found["content/avoid-topic"].severity.value == "error"
    assert "layout/path-style" not in found


def test_pii_allow_list() -> None:
    content = skill().replace(b"It is the item number 1.", b"Mail jane.roe@corp-mail.com now.")
    assert "pii/email-address" in rules(triage_file(SKILL, content))
    config = RepoConfig.from_yaml(b"triage:\n  pii:\n    allow: ['*@corp-mail.com']\n")
    assert "pii/email-address" not in rules(triage_file(SKILL, content, config))


def test_repo_config_defaults_labels_and_errors() -> None:
    config, findings = load_repo_config(None)
    assert findings == []
    assert config == RepoConfig()
    assert config.labels.triage_requested_changes == "triage-requested-changes"
    assert config.triage.licenses == list(DEFAULT_LICENSES)
    custom = RepoConfig.from_yaml(
        b"other_section: {kept: for others}\nlabels:\n  skill: kind/skill\n"
        b"triage:\n  licenses: [CC BY 4.0, apache 2.0]\n"
    )
    assert custom.labels.skill == "kind/skill"
    assert custom.triage.licenses == ["CC-BY-4.0", "Apache-2.0"]
    config, findings = load_repo_config(b"triage:\n  min_exampels: 3\n  pii:\n    min_score: 7\n")
    assert config == RepoConfig()  # a broken file cannot switch checks off
    assert {f.rule for f in findings} == {"config/invalid"}
    assert [f.line for f in findings] == [2, 4]
    with pytest.raises(RepoConfigError):
        RepoConfig.from_yaml(b"triage: [not, a, mapping]\n")
    with pytest.raises(RepoConfigError):
        RepoConfig.from_yaml(b"triage: !!python/object/apply:os.system [x]\n")


def test_config_file_in_the_pr_is_validated() -> None:
    report = triage_files([InputFile(".github/labbot.yml", b"triage:\n  licences: [MIT]\n")])
    assert rules(report.files[0]) == {"config/invalid"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CC-BY-SA-4.0", "CC-BY-SA-4.0"),
        ("CC BY-SA 4.0", "CC-BY-SA-4.0"),
        ("Creative Commons Attribution-ShareAlike 4.0 International License", "CC-BY-SA-4.0"),
        ("Creative Commons Attribution 4.0 International (CC BY 4.0)", "CC-BY-4.0"),
        ("Apache License Version 2.0.", "Apache-2.0"),
        ("apache 2.0", "Apache-2.0"),
        ("MIT License", "MIT"),
        ("CC0 1.0 Universal", "CC0-1.0"),
        ("CDLA-Permissive-2.0", "CDLA-Permissive-2.0"),
        ("public domain", None),
        ("IBM", None),
        ("CC BY-NC-SA 4.0", None),
    ],
)
def test_licence_spellings(text: str, expected: str | None) -> None:
    assert normalize_license(text) == expected


def test_attribution_file_checks() -> None:
    licences = list(DEFAULT_LICENSES)
    assert check_attribution(GOOD_ATTRIBUTION.decode(), licences) == []
    variants = "[Title of work] = X\nlink: https://x.org\nversion: 2\nlicense: MIT\nauthor: Me\n"
    assert check_attribution(variants, licences) == []
    bad = check_attribution(
        "Title of work: X\nLink to work: somewhere\nLicense of the work: IBM\n", licences
    )
    assert {f.rule for f in bad} == {"attribution/field", "attribution/license", "attribution/link"}
    licence = next(f for f in bad if f.rule == "attribution/license")
    assert licence.line == 3
    assert "IBM" in licence.message
    report = triage_files([InputFile("knowledge/a/attribution.txt", b"")])
    assert rules(report.files[0]) == {"attribution/missing"}


def test_file_results_sorted_and_internal_api_types() -> None:
    result = triage_file(SKILL, skill().replace(b"version: 3", b"version: 3   "))
    assert isinstance(result, FileResult)
    assert [(f.line, f.column) for f in result.findings] == sorted(
        (f.line, f.column) for f in result.findings
    )


def test_loader_position_map_and_merge_positions() -> None:
    loaded = load_yaml(b"a:\n  - x: 1\n    y: [1, 2]\n")
    assert loaded.position(("a",), key=True) == (1, 1)
    assert loaded.position(("a", 0, "y", 1)) == (3, 12)
    assert loaded.position(("a", 0, "missing")) == (2, 5)
