"""One test per row 39-61 of shared/docs/bad-inputs.md, from the real files the row cites where
the corpus has them."""

from __future__ import annotations

import json
import os
import re
import tracemalloc
from typing import Any

import pytest

from bots.triage import (
    FileMode,
    InputFile,
    RepoConfig,
    triage_file,
    triage_files,
)
from bots.triage.evaluation import Comparison, load_labels
from bots.triage.findings import FileResult
from bots.triage.schema import supported_versions
from tests.triage.conftest import GOOD_ATTRIBUTION, INVALID, TAXONOMY, corpus_file

Corpus = tuple[Comparison, dict[str, FileResult]]
LABELS = load_labels(TAXONOMY)
MANIFEST = {
    str(pr["pr"]): pr["files"]
    for pr in json.loads((TAXONOMY / "prs_manifest.json").read_text())["prs"]
}


def rules(result: FileResult, severity: str | None = None) -> set[str]:
    return {f.rule for f in result.findings if severity is None or f.severity.value == severity}


def skill(extra: str = "", *, version: int = 3, examples: int = 5) -> bytes:
    seeds = "".join(
        f"  - question: What is item {i}?\n    answer: It is the item number {i}.\n"
        for i in range(examples)
    )
    return (
        f"version: {version}\ncreated_by: someone\ntask_description: Answer questions.\n"
        f"seed_examples:\n{seeds}{extra}"
    ).encode()


def check(content: bytes, path: str = "compositional_skills/a/b/qna.yaml") -> FileResult:
    return triage_file(path, content, siblings={"attribution.txt": GOOD_ATTRIBUTION})


# --- 39 ------------------------------------------------------------------------------------------
def test_39_syntax_errors_of_real_files_land_on_upstreams_line(corpus: Corpus) -> None:
    _, results = corpus
    cases = [
        (key, row["exception"])
        for key, row in LABELS.items()
        if (row.get("exception") or "").startswith(("ScannerError", "ParserError"))
    ]
    assert len(cases) >= 70
    for key, exception in cases:
        line, column = map(int, re.findall(r"line (\d+), column (\d+)", exception)[-1])
        [finding] = [f for f in results[key].findings if f.rule == "yaml/syntax"]
        assert finding.line == line, key
        assert finding.severity.value == "error"
        assert finding.hint


# --- 40 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"", "yaml/empty"),
        (b"# only a comment\n", "yaml/empty"),
        (b"- a\n- b\n", "yaml/not-mapping"),
        (b'["a", "b"]\n', "yaml/not-mapping"),
        (b"just a scalar\n", "yaml/not-mapping"),
        (b"42\n", "yaml/not-mapping"),
    ],
)
def test_40_empty_list_and_scalar_files_are_errors(content: bytes, rule: str) -> None:
    assert rules(check(content), "error") == {rule}


def test_40_real_top_level_list_files(corpus: Corpus) -> None:
    _, results = corpus
    keys = [
        k for k, row in LABELS.items() if any("not an object" in m for _s, m in row["messages"])
    ]
    assert keys
    for key in keys:
        assert "yaml/not-mapping" in rules(results[key], "error") or "layout/filename" in rules(
            results[key]
        )


# --- 41 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "payload",
    [
        b"created_by: !!python/object/apply:os.system ['touch {marker}']\n",
        b"created_by: !!python/object/new:os.system ['touch {marker}']\n",
        b"created_by: !!python/name:os.system\n",
        b"created_by: !<tag:yaml.org,2002:js/function> 'function(){ return 1 }'\n",
        b"created_by: !!binary aGVsbG8=\n",
        b"created_by: !custom x\n",
    ],
)
def test_41_unsafe_tags_are_refused_and_nothing_runs(payload: bytes, tmp_path: Any) -> None:
    marker = tmp_path / "executed"
    result = check(payload.replace(b"{marker}", str(marker).encode()))
    assert "yaml/tag" in rules(result, "error")
    assert not marker.exists()
    assert (
        "nothing was executed" in next(f for f in result.findings if f.rule == "yaml/tag").message
    )


# --- 42 ------------------------------------------------------------------------------------------
BOMB = (
    b"a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
    + b"".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n".encode()
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + b"created_by: x\n"
)


def test_42_alias_bomb_is_refused_without_being_expanded() -> None:
    tracemalloc.start()
    result = check(BOMB)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "yaml/alias-limit" in rules(result, "error")
    # 9**9 values if it were expanded; refused while the document is still small.
    assert peak < 20 * 1024 * 1024


def test_42_recursive_alias_is_refused() -> None:
    assert "yaml/alias-limit" in rules(check(b"a: &a [*a]\n"), "error")


# --- 43 ------------------------------------------------------------------------------------------
def test_43_merge_key_works() -> None:
    content = (
        b"version: 3\ncreated_by: someone\ntask_description: t\n"
        b"base: &base {answer: Shared answer for all of them.}\n"
    )
    result = check(content)
    assert not rules(result) & {"yaml/syntax", "yaml/alias-limit", "yaml/tag"}
    merged = skill().replace(
        b"seed_examples:\n",
        b"x-defaults: &d\n  answer: The same answer.\nseed_examples:\n",
    )
    assert "yaml/alias-limit" not in rules(check(merged))
    from bots.triage.yamlload import load_yaml

    loaded = load_yaml(b"d: &d {a: 1, b: 2}\ne:\n  <<: *d\n  b: 3\n")
    assert loaded.data == {"d": {"a": 1, "b": 2}, "e": {"a": 1, "b": 3}}
    assert not loaded.findings


# --- 44 ------------------------------------------------------------------------------------------
def test_44_duplicate_keys_are_errors_at_the_second_key(corpus: Corpus) -> None:
    _, results = corpus
    key = "429/compositional_skills/extraction/information/named_entities/school_mascots/qna.yaml"
    [finding] = [f for f in results[key].findings if f.rule == "yaml/duplicate-key"]
    text = corpus_file(key).decode().splitlines()
    assert text[finding.line - 1].startswith("created_by")
    assert "created_by" in finding.message
    assert "line 1" in finding.message
    # version 1 file: upstream does not lint it, PyYAML keeps the last value
    assert LABELS[key]["ci_verdict"] == "valid"


def test_44_duplicate_key_in_a_seed_example() -> None:
    content = skill().replace(
        b"    answer: It is the item number 2.\n", b"    answer: a\n    answer: b\n"
    )
    [finding] = [f for f in check(content).findings if f.rule == "yaml/duplicate-key"]
    assert finding.severity.value == "error"
    assert "answer" in finding.message


# --- 45 ------------------------------------------------------------------------------------------
def test_45_yes_answer_must_be_a_string() -> None:
    content = skill().replace(b"answer: It is the item number 3.", b"answer: Yes")
    [finding] = [f for f in check(content).findings if f.rule == "schema/type"]
    line = content.decode().splitlines()[finding.line - 1]
    assert line.strip() == "answer: Yes"
    assert "must be a string" in finding.message
    assert "Yes" in finding.hint


# --- 46 ------------------------------------------------------------------------------------------
def test_46_percent_in_content_does_not_crash(corpus: Corpus) -> None:
    _, results = corpus
    key = "550/compositional_skills/extraction/information/named_entities/value_with_unit/qna.yaml"
    assert "%" in corpus_file(key).decode()
    result = results[key]
    assert "internal/error" not in rules(result)
    assert result.errors  # its seed examples carry an unknown 'attribution' key


@pytest.mark.parametrize("text", ["100% %s %d %(x)s", "{} {0} {x} {{", "é中文🙂\u202e\u0000"])
def test_46_user_text_in_messages_is_safe(text: str) -> None:
    key = text.replace("\u0000", "\\0")  # written as a YAML escape
    content = skill(f'"{key}": 1\n')
    result = check(content)
    finding = next(f for f in result.findings if f.rule == "schema/unknown-field")
    assert "\u202e" not in finding.message
    assert "\x00" not in finding.message
    json.dumps(triage_files([InputFile("compositional_skills/a/qna.yaml", content)]).to_dict())


# --- 47 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"version: 24", "Unsupported version 24"),
        (b"version: 0", "Unsupported version 0"),
        (b"version: '3'", "whole number"),
        (b"version: three", "whole number"),
        (b"version: true", "whole number"),
        (b"version:", "whole number"),
    ],
)
def test_47_unknown_version_is_a_clean_error(line: bytes, expected: str) -> None:
    result = check(skill().replace(b"version: 3", line))
    [finding] = [f for f in result.findings if f.rule == "schema/version"]
    assert expected in finding.message
    assert "site-packages" not in finding.message
    assert not re.search(r"/\w+/", finding.message)
    assert finding.line == 1


def test_47_real_pr_1233_version_24(corpus: Corpus) -> None:
    _, results = corpus
    result = results["1233/knowledge/tech_industry/telekom/qna.yaml"]
    assert result.version == 24
    [finding] = [f for f in result.findings if f.rule == "schema/version"]
    assert finding.message == (
        "Unsupported version 24; supported versions are "
        + ", ".join(map(str, supported_versions()))
    )


# --- 48 ------------------------------------------------------------------------------------------
def test_48_knowledge_below_v3_needs_version_3(corpus: Corpus) -> None:
    _, results = corpus
    keys = [
        k
        for k, row in LABELS.items()
        if any("is not supported for knowledge" in m for _s, m in row["messages"])
    ]
    assert len(keys) >= 150
    for key in keys:
        if key.startswith("465/"):
            continue  # over the size cap: not parsed (row 57)
        [finding] = [f for f in results[key].findings if f.rule == "schema/knowledge-version"]
        assert "requires version 3" in finding.message


# --- 49 ------------------------------------------------------------------------------------------
def test_49_minimum_examples_per_kind_and_version(corpus: Corpus) -> None:
    _, results = corpus
    for key, row in LABELS.items():
        if (
            row.get("kind") != "skill"
            or row.get("version") != 1
            or key.split("/")[1] != "compositional_skills"
        ):
            continue
        if key.startswith("712/"):
            continue  # beyond the PR's file cap
        flagged = "examples/too-few" in rules(results[key], "error")
        if row.get("n_seed") is None:
            assert not flagged  # seed_examples missing or not a list: the schema says so
            continue
        assert flagged == (row["n_seed"] < 3), key


def test_49_minimums_are_configurable() -> None:
    config = RepoConfig.from_yaml(
        b"triage:\n  min_examples:\n    skill: {default: 3, 1: 1}\n"
        b"    knowledge_contexts: 6\n    knowledge_qna: 4\n"
    )
    one = skill(version=1, examples=1)
    result = triage_file("compositional_skills/a/qna.yaml", one, config)
    assert "examples/too-few" not in rules(result)
    assert "examples/too-few" in rules(triage_file("compositional_skills/a/qna.yaml", one))
    knowledge = (INVALID / "instructlab-schema/knowledge/knowledge_valid/qna.yaml").read_bytes()
    result = triage_file(
        "knowledge/a/qna.yaml", knowledge, config, siblings={"attribution.txt": GOOD_ATTRIBUTION}
    )
    messages = [f.message for f in result.findings if f.rule == "examples/too-few"]
    assert any("at least 6" in m for m in messages)
    assert any("at least 4" in m for m in messages)


# --- 50 ------------------------------------------------------------------------------------------
def test_50_empty_fields_and_extra_keys_point_at_the_field(corpus: Corpus) -> None:
    _, results = corpus
    empties = [
        k
        for k, row in LABELS.items()
        if any("None is not of type" in m for _s, m in row["messages"])
    ]
    extras = [
        k
        for k, row in LABELS.items()
        if any("'attribution' was unexpected" in m for _s, m in row["messages"])
    ]
    assert len(empties) >= 25
    assert len(extras) >= 10
    for key in empties:
        text = corpus_file(key).decode("utf-8-sig").splitlines()
        found = [
            f for f in results[key].findings if f.rule == "schema/type" and "not empty" in f.message
        ]
        assert found, key
        for finding in found:
            field = finding.message.split(" must be")[0].rsplit(".", 1)[-1].split("[")[0]
            assert field in text[finding.line - 1], (key, finding)
    for key in extras:
        text = corpus_file(key).decode("utf-8-sig").splitlines()
        found = [f for f in results[key].findings if f.rule == "schema/unknown-field"]
        assert any("attribution" in text[f.line - 1] for f in found), key


# --- 51 ------------------------------------------------------------------------------------------
def test_51_misnamed_files_are_flagged(corpus: Corpus) -> None:
    _, results = corpus
    misnamed = [k for k in LABELS if not k.endswith("/qna.yaml")]
    assert len(misnamed) >= 40
    for key in misnamed:
        assert "layout/filename" in rules(results[key], "error"), key


@pytest.mark.parametrize(
    "name",
    [
        "qna.yml",
        "qna.txt",
        "qna.yaml.txt",
        "qna.yamil",
        "qna2.yaml",
        "template_qna.yaml",
        ".DS_Store",
        "QNA.yaml",
        "qna.yaml ",
        "attributiuon.txt",
        "attribution.txt ",
    ],
)
def test_51_misnamed_names(name: str) -> None:
    result = triage_files([InputFile(f"knowledge/a/b/{name}", b"x: 1\n")]).files[0]
    assert "layout/filename" in rules(result, "error")


# --- 52 ------------------------------------------------------------------------------------------
def test_52_attribution_required_for_version_above_1(corpus: Corpus) -> None:
    _, results = corpus
    for key, row in LABELS.items():
        if row.get("attribution") is None or key.startswith("712/"):
            continue
        missing = "attribution/missing" in rules(results[key], "error")
        assert missing == (row["attribution"] == "missing"), key
    empty = triage_file(
        "compositional_skills/a/qna.yaml", skill(), siblings={"attribution.txt": b" \n"}
    )
    assert any(
        f.message.endswith("is empty") for f in empty.findings if f.rule == "attribution/missing"
    )


# --- 53 ------------------------------------------------------------------------------------------
def test_53_odd_paths_are_data(corpus: Corpus) -> None:
    _, results = corpus
    odd = [k for k in results if re.search(r"[ &]|[^\x00-\x7f]", k)]
    assert any(" &" in k for k in odd)
    assert any(k.endswith(" ") for k in odd)
    for key in odd:
        assert "internal/error" not in rules(results[key])
    assert "layout/filename" in rules(
        results["1001/knowledge/fast_food/hungry_jacks/attribution.txt "]
    )
    path = "compositional_skills/Ünïcode & spaces/$(touch x); `id`/qna.yaml"
    result = triage_files([InputFile(path, skill())]).files[0]
    assert result.path == path
    assert "layout/path-style" in rules(result)


# --- 54, 55, 56: layout from the manifests ------------------------------------------------------
def manifest_pr(number: str) -> list[InputFile]:
    return [
        InputFile(e["path"], None, deleted=True)
        if e["status"] == "D"
        else InputFile(e["path"], None, FileMode.parse(e["mode"]), size=e["size"])
        for e in MANIFEST[number]
    ]


def test_54_symlink_is_refused_never_read() -> None:
    files = manifest_pr("590")
    link = next(f for f in files if f.mode is FileMode.symlink)
    report = triage_files(files)
    result = report.result(link.path)
    assert result is not None
    assert "layout/symlink" in rules(result, "error")
    # content present (as a careless caller might pass the link target) is still not read
    trap = InputFile(
        "compositional_skills/a/qna.yaml", b"!!python/object/apply:os.system []", FileMode.symlink
    )
    assert rules(triage_files([trap]).files[0]) == {"layout/symlink"}


@pytest.mark.parametrize("number", ["646", "721", "742", "751", "769", "873"])
def test_55_submodule_is_refused(number: str) -> None:
    report = triage_files(manifest_pr(number))
    gitlinks = [r for r in report.files if "layout/submodule" in rules(r, "error")]
    assert gitlinks


@pytest.mark.parametrize("number", ["17", "358", "506", "590"])
def test_56_unexpected_files_fail(number: str) -> None:
    report = triage_files(manifest_pr(number))
    unexpected = [
        r for r in report.files if rules(r, "error") & {"layout/unexpected-file", "layout/filename"}
    ]
    assert unexpected
    assert not report.ok


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("train_merlinite-7b.jsonl", "layout/unexpected-file"),
        ("compositional_skills/a/generated.jsonl", "layout/unexpected-file"),
        ("compositional_skills/a/tool.py", "layout/unexpected-file"),
        ("Dockerfile", "layout/unexpected-file"),
        ("models/merlinite-7b-Q4_K_M.gguf", "layout/unexpected-file"),
        ("knowledge/a/doc.pdf", "layout/unexpected-file"),
        ("notes/todo.md", "layout/unexpected-file"),
        ("README.md", "layout/outside-taxonomy"),
        ("docs/contributing.md", "layout/outside-taxonomy"),
        ("foundational_skills/a/qna.yaml", "layout/root"),
        ("qna.yaml", "layout/root"),
    ],
)
def test_56_layout_table(path: str, rule: str) -> None:
    result = triage_files([InputFile(path, skill())]).files[0]
    assert rule in rules(result)


# --- 57, 58 ---------------------------------------------------------------------------------------
def test_57_large_file_is_capped_before_parsing(corpus: Corpus) -> None:
    _, results = corpus
    key = "465/knowledge/technical_manual/devfiles/qna.yaml"
    assert len(corpus_file(key)) > 600_000
    assert rules(results[key], "error") == {"layout/file-too-large"}
    # Refused on size alone: no YAML, lint or schema finding means it was never parsed.
    result = triage_file("knowledge/a/qna.yaml", b"a: " + b"x" * 2_000_000)
    assert rules(result) == {"layout/file-too-large"}


def test_58_unfetched_big_blob_and_too_many_files() -> None:
    big = InputFile("knowledge/a/qna.yaml", None, size=5_000_000)
    assert rules(triage_files([big]).files[0]) == {"layout/file-too-large"}
    # The default cap is GitHub's own listing limit (3,000); a repository may set a lower one.
    assert RepoConfig().triage.limits.max_files == 3000
    capped = RepoConfig.from_yaml(b"triage:\n  limits:\n    max_files: 300\n")
    many = [InputFile(f"compositional_skills/x{i}/qna.yaml", skill()) for i in range(301)]
    report = triage_files(many, capped)
    assert len(report.files) == 301  # nothing silently dropped
    assert rules(report.files[-1]) == {"layout/too-many-files"}
    assert "layout/too-many-files" not in rules(report.files[0])
    config = RepoConfig.from_yaml(b"triage:\n  limits:\n    max_pr_bytes: 2000\n")
    report = triage_files(many[:5], config)
    assert "layout/pr-too-large" in rules(report.files[-1])


# --- 59 ------------------------------------------------------------------------------------------
def knowledge(repo: str, commit: str, patterns: str = "\n    - doc.md") -> bytes:
    text = (INVALID / "instructlab-schema/knowledge/knowledge_valid/qna.yaml").read_text()
    text = re.sub(r"repo: .*", f"repo: {repo}", text)
    text = re.sub(r"commit: .*", f"commit: {commit}", text)
    return re.sub(r"patterns:(\n\s+- .*)+", f"patterns:{patterns}", text).encode()


SHA = "a" * 40


@pytest.mark.parametrize(
    ("repo", "commit", "patterns", "rule"),
    [
        ("git@github.com:owner/repo.git", SHA, "\n    - doc.md", "document/repo"),
        ("http://github.com/owner/repo", SHA, "\n    - doc.md", "document/repo"),
        ("https://github.ibm.com/owner/repo", SHA, "\n    - doc.md", "document/repo"),
        ("https://gitlab.com/owner/repo", SHA, "\n    - doc.md", "document/repo"),
        ("https://user:token@github.com/owner/repo", SHA, "\n    - doc.md", "document/repo"),
        ("https://github.com:8443/owner/repo", SHA, "\n    - doc.md", "document/repo"),
        ("https://169.254.169.254/latest", SHA, "\n    - doc.md", "document/repo"),
        ("https://github.com/owner", SHA, "\n    - doc.md", "document/repo"),
        ("https://github.com/owner/repo", "HEAD", "\n    - doc.md", "document/commit"),
        ("https://github.com/owner/repo", "main", "\n    - doc.md", "document/commit"),
        ("https://github.com/owner/repo", "tbd", "\n    - doc.md", "document/commit"),
        ("https://github.com/owner/repo", "a0c3c8e", "\n    - doc.md", "document/commit"),
        ("https://github.com/owner/repo", SHA, "\n    - /etc/passwd", "document/pattern"),
        ("https://github.com/owner/repo", SHA, "\n    - ../secrets/*.md", "document/pattern"),
        ("https://github.com/owner/repo", SHA, "\n    - docs/../../x.md", "document/pattern"),
        ("https://github.com/owner/repo", SHA, " []", "document/pattern"),
        ("https://github.com/owner/repo.git", SHA, "\n    - docs/*.md", None),
    ],
)
def test_59_document_reference(repo: str, commit: str, patterns: str, rule: str | None) -> None:
    result = check(knowledge(repo, commit, patterns), "knowledge/a/b/qna.yaml")
    document_rules = {r for r in rules(result, "error") if r.startswith("document/")}
    assert document_rules == ({rule} if rule else set())


@pytest.mark.parametrize("number", ["1240", "1415", "1071", "1072", "1233"])
def test_59_real_document_references(corpus: Corpus, number: str) -> None:
    _, results = corpus
    found = {
        f.rule
        for key, result in results.items()
        if key.startswith(number + "/")
        for f in result.findings
        if f.rule.startswith("document/") or f.rule == "schema/version"
    }
    assert found


# --- 60 ------------------------------------------------------------------------------------------
def test_60_bom_is_tolerated(corpus: Corpus) -> None:
    _, results = corpus
    key = "670/compositional_skills/writing/freeform/brainstorming/million_dollar_ideas/qna.yaml"
    assert corpus_file(key).startswith(b"\xef\xbb\xbf")
    assert rules(results[key], "warning") >= {"yaml/bom"}
    assert "yaml/syntax" not in rules(results[key])
    assert LABELS[key]["ci_verdict"] == "valid"


def test_60_tabs_and_non_utf8() -> None:
    tab = check(b"version: 3\nseed_examples:\n\t- question: q\n")
    [finding] = [f for f in tab.findings if f.rule == "yaml/syntax"]
    assert finding.line == 3
    assert "tab" in finding.hint
    latin1 = check(skill().replace(b"someone", "caf\xe9".encode("latin-1")))
    [finding] = [f for f in latin1.findings if f.rule == "yaml/encoding"]
    assert finding.line == 2
    assert "0xE9" in finding.message
    utf16 = check(skill().decode().encode("utf-16"))
    assert "UTF-16" in next(f for f in utf16.findings if f.rule == "yaml/encoding").message


def test_60_tabs_get_upstreams_verdict(corpus: Corpus) -> None:
    _, results = corpus
    # a tab starting block scalar text: PyYAML (upstream) accepts it, libyaml would not
    key = "1147/knowledge/nobel_laureates/india/qna.yaml"
    assert b"\t" in corpus_file(key)
    assert "yaml/syntax" not in rules(results[key])
    # a tab after a plain value: PyYAML refuses it, libyaml would not
    [finding] = [f for f in check(b"created_by: me\t\n").findings if f.rule == "yaml/syntax"]
    assert (finding.line, finding.column) == (1, 15)


# --- 61 ------------------------------------------------------------------------------------------
def test_61_pii_in_examples_is_flagged_with_span_and_masked() -> None:
    from bots.triage.pii import luhn

    digits = "492912345678901"
    card = digits + next(d for d in "0123456789" if luhn(digits + d))  # Luhn-valid
    grouped = " ".join(card[i : i + 4] for i in range(0, 16, 4))
    answer = f"Write to jane.roe@gmail.com or call 415-867-5309; card {grouped}"
    content = skill().replace(b"It is the item number 1.", json.dumps(answer).encode())
    result = check(content)
    found = {f.rule: f for f in result.findings if f.rule.startswith("pii/")}
    assert set(found) == {"pii/email-address", "pii/phone-number", "pii/credit-card"}
    assert found["pii/credit-card"].severity.value == "error"
    assert found["pii/email-address"].severity.value == "warning"
    email = found["pii/email-address"]
    line = content.decode().splitlines()[email.line - 1]
    assert email.end_line == email.line
    assert email.end_column is not None
    assert line[email.column - 1 : email.end_column - 1] == "jane.roe@gmail.com"
    for finding in found.values():
        assert "jane.roe@gmail.com" not in finding.message
        assert "867-5309" not in finding.message


def test_61_documentation_values_are_not_pii() -> None:
    answer = (
        "Mail someone@example.com or info@redhat.com, call 555-0123 or 1-800-555-1212, "
        "ping 192.0.2.1 and 2001:db8::1, version 1.2.3.4, released 2024-05-01, "
        "see https://en.wikipedia.org/w/index.php?oldid=1219312266"
    )
    content = skill().replace(b"It is the item number 1.", json.dumps(answer).encode())
    assert not [f for f in check(content).findings if f.rule.startswith("pii/")]


def test_61_os_environment_untouched() -> None:
    # nothing in the engine reads the environment or the network
    assert "LABBOT_NO_SUCH" not in os.environ
