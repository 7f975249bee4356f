"""``labbot triage`` (the click command in bots/triage/cli.py) on real git checkouts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bots.triage.cli import escape_data, escape_property, triage
from tests.triage.conftest import GOOD_ATTRIBUTION
from tests.triage.test_bad_inputs import skill

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(root: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


def write(root: Path, rel: str, content: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "taxonomy"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, "compositional_skills/writing/poems/qna.yaml", skill())
    write(root, "compositional_skills/writing/poems/attribution.txt", GOOD_ATTRIBUTION)
    write(root, "README.md", b"# taxonomy\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "checkout", "-q", "-b", "contribution")
    return root


def run(*args: str) -> Result:
    return CliRunner().invoke(triage, list(args), catch_exceptions=False)


def test_clean_file_exits_0(repo: Path) -> None:
    result = run("--root", str(repo), str(repo / "compositional_skills/writing/poems/qna.yaml"))
    assert result.exit_code == 0, result.output
    assert "1 file(s) checked: 0 error(s)" in result.output


def test_all_taxonomy_files_when_no_path(repo: Path) -> None:
    result = run("--root", str(repo), "--format", "json")
    data = json.loads(result.output[: result.output.rindex("}") + 1])
    assert [f["path"] for f in data["files"]] == [
        "compositional_skills/writing/poems/attribution.txt",
        "compositional_skills/writing/poems/qna.yaml",
    ]
    assert result.exit_code == 0


def test_diff_base_checks_changed_files_only(repo: Path) -> None:
    odd = "compositional_skills/writing/Dad jokes & puns/qna.yaml"
    write(repo, odd, skill(version=1, examples=2))
    (repo / "outside.yaml").write_bytes(b"a: !!python/object/apply:os.system [id]\n")
    os.symlink("../../../outside.yaml", repo / "compositional_skills/writing/link.yaml")
    (repo / "README.md").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "contribution")
    result = run("--root", str(repo), "--diff-base", "main", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.output[: result.output.rindex("}") + 1])
    by_path = {f["path"]: {x["rule"] for x in f["findings"]} for f in data["files"]}
    assert set(by_path) == {odd, "outside.yaml", "compositional_skills/writing/link.yaml"}
    assert "examples/too-few" in by_path[odd]
    assert "layout/path-style" in by_path[odd]
    assert "layout/symlink" in by_path["compositional_skills/writing/link.yaml"]
    # the link target was never read: its unsafe tag would show as yaml/tag
    assert "yaml/tag" not in by_path["compositional_skills/writing/link.yaml"]
    assert (
        "layout/unexpected-file" in by_path["outside.yaml"]
        or "layout/filename" in by_path["outside.yaml"]
    )


def test_github_format_escapes(repo: Path) -> None:
    rel = "compositional_skills/a,b:c/qna.yaml"
    write(repo, rel, skill('"100% {x}\\nnext": 1\n'))
    result = run("--root", str(repo), "--format", "github", str(repo / rel))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("::")]
    assert lines
    assert all(line.startswith(("::error ", "::warning ")) for line in lines)
    unknown = next(line for line in lines if "schema/unknown-field" in line)
    assert "file=compositional_skills/a%2Cb%3Ac/qna.yaml," in unknown
    assert "title=schema/unknown-field::" in unknown
    assert "100%25" in unknown
    assert "\n" not in unknown


def test_escaping_rules() -> None:
    assert escape_data("a%b\r\nc") == "a%25b%0D%0Ac"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"


def test_config_file_is_used(repo: Path) -> None:
    one = skill(version=1, examples=1)
    write(repo, "compositional_skills/writing/poems/qna.yaml", one)
    assert run("--root", str(repo)).exit_code == 1
    write(repo, ".github/labbot.yml", b"triage:\n  min_examples:\n    skill: 1\n")
    assert run("--root", str(repo)).exit_code == 0
    config = repo.parent / "strict.yml"
    config.write_bytes(b"triage:\n  min_examples:\n    skill: 2\n")
    assert run("--root", str(repo), "--config", str(config)).exit_code == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--diff-base", "main", "x.yaml"],
        ["/etc/hostname"],
        ["does/not/exist.yaml"],
        ["--diff-base", "no-such-ref"],
        ["--format", "xml"],
    ],
)
def test_usage_errors_exit_2(repo: Path, args: list[str]) -> None:
    result = run("--root", str(repo), *args)
    assert result.exit_code == 2, result.output


def test_bad_config_file_is_a_usage_error(repo: Path) -> None:
    config = repo.parent / "bad.yml"
    config.write_bytes(b"triage:\n  typo: 1\n")
    result = run("--root", str(repo), "--config", str(config))
    assert result.exit_code == 2
    assert "typo" in result.output


def test_without_git(tmp_path: Path) -> None:
    write(tmp_path, "knowledge/a/qna.yaml", b"version: 3\n")
    result = run("--root", str(tmp_path))
    assert result.exit_code == 1
    assert "knowledge/a/qna.yaml:1:1: error" in result.output
    assert "to fix it" in result.output
