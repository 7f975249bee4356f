"""Knowledge documents: fetched with the real git binary from real local repositories (file://
URLs, allowed by the settings the way https://github.com/ is in production), then chunked."""

from __future__ import annotations

import os
import random
import re
import socket
import string
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.config import Settings
from workers.sdg import documents
from workers.sdg.documents import DocumentError, chunk_document, fetch_document, glob_pattern

INTRO = "# Introduction\n\nPlanets orbit the Sun.\n"
ADVANCED = "# Advanced\n\nMoons orbit planets.\n"
GIT_ENV = {
    **{name: os.environ[name] for name in ("PATH",) if name in os.environ},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass(frozen=True)
class DocumentRepo:
    root: Path  # the allowed source prefix is file://<root>/
    url: str
    commit: str

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "sdg_document_sources": [f"file://{self.root}/"],
            "sdg_document_timeout_seconds": 60.0,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]


def make_repo(root: Path, name: str, files: dict[str, bytes], allow_filter: bool) -> DocumentRepo:
    repo = root / name
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet")
    if allow_filter:
        # What GitHub does: partial clone filters and fetching objects by id.
        git(repo, "config", "uploadpack.allowFilter", "true")
        git(repo, "config", "uploadpack.allowAnySHA1InWant", "true")
    for path, content in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(content)
    (repo / "docs" / "escape.md").symlink_to("../../../../../../etc/passwd")
    (repo / "docs" / "alias.md").symlink_to("intro.md")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", "document")
    return DocumentRepo(root, f"file://{repo}", git(repo, "rev-parse", "HEAD"))


def document_files() -> dict[str, bytes]:
    incompressible = random.Random(7).randbytes(3 * 1024 * 1024)
    return {
        "README.md": b"# Read me\n",
        "docs/intro.md": INTRO.encode(),
        "docs/guide/advanced.md": ADVANCED.encode(),
        "docs/notes.txt": b"not markdown\n",
        "docs/report.pdf": b"%PDF-1.4\n",
        "large/big.md": ("# Big\n\n" + "word " * 60_000).encode(),
        "latin1/bad.md": "caf\u00e9\n".encode("latin-1"),
        "lfs/pointer.md": b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n",
        "blob/noise.bin": incompressible,
        **{f"many/page{index:02}.md": f"# Page {index}\n".encode() for index in range(12)},
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> DocumentRepo:
    return make_repo(tmp_path_factory.mktemp("sources"), "document", document_files(), True)


@pytest.fixture(scope="module")
def unfiltered_source(tmp_path_factory: pytest.TempPathFactory) -> DocumentRepo:
    """A server that ignores partial clone filters sends every blob of the commit."""
    return make_repo(tmp_path_factory.mktemp("plain"), "document", document_files(), False)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "work"


# --- fetching -------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["filtered", "unfiltered"])
def test_fetch_returns_matched_markdown_files(
    server: str, source: DocumentRepo, unfiltered_source: DocumentRepo, dest: Path
) -> None:
    repo = source if server == "filtered" else unfiltered_source
    files = fetch_document(repo.url, repo.commit, ["docs/**/*.md"], dest, repo.settings())

    assert [(file.path, file.text) for file in files] == [
        ("docs/guide/advanced.md", ADVANCED),
        ("docs/intro.md", INTRO),
    ]
    # The scratch repository is removed; nothing was checked out.
    assert list(dest.iterdir()) == []


def test_fetch_accepts_surrounding_whitespace_and_upper_case_sha(
    source: DocumentRepo, dest: Path
) -> None:
    files = fetch_document(
        f" {source.url} ", source.commit.upper(), ["./README.md"], dest, source.settings()
    )
    assert [file.path for file in files] == ["README.md"]


def test_symlinks_are_ignored_and_named_when_nothing_else_matches(
    source: DocumentRepo, dest: Path
) -> None:
    files = fetch_document(source.url, source.commit, ["docs/*.md"], dest, source.settings())
    assert [file.path for file in files] == ["docs/intro.md"]

    with pytest.raises(DocumentError) as error:
        fetch_document(source.url, source.commit, ["docs/escape.md"], dest, source.settings())
    assert '"docs/escape.md" is a symbolic link' in str(error.value)
    assert "root:" not in str(error.value)


@pytest.mark.parametrize(
    "repo",
    [
        "http://github.com/owner/repo",
        "git@github.com:owner/repo.git",
        "ssh://git@github.com/owner/repo",
        "https://github.com.evil.com/owner/repo",
        "https://github.com@evil.com/owner/repo",
        "https://user:token@github.com/owner/repo",
        "https://evil.com/https://github.com/owner/repo",
        "https://github.com/../../evil.com/repo",
        "https://github.com/owner/repo?ref=main",
        "https://github.com/owner/re po",
        "https://github.com/",
        "file:///etc",
        "/srv/repo",
        "",
    ],
)
def test_repositories_outside_the_allowed_sources_are_refused(repo: str, dest: Path) -> None:
    with pytest.raises(DocumentError, match="is not allowed|is missing"):
        fetch_document(repo, "a" * 40, ["*.md"], dest, Settings())
    assert not dest.exists()  # refused before git ran


def test_a_source_without_trailing_slash_still_ends_at_a_boundary(dest: Path) -> None:
    settings = Settings(sdg_document_sources=["http://127.0.0.1"])
    for repo in ("http://127.0.0.10/repo", "http://127.0.0.1.evil.com/repo", "http://127.0.0.1x/r"):
        with pytest.raises(DocumentError, match="is not allowed"):
            fetch_document(repo, "a" * 40, ["*.md"], dest, settings)


@pytest.mark.parametrize("commit", ["1234", "HEAD", "main", "a1b2c3d", "g" * 40, "a" * 41, ""])
def test_commits_must_be_full_shas(commit: str, source: DocumentRepo, dest: Path) -> None:
    with pytest.raises(DocumentError, match="is not a full commit SHA"):
        fetch_document(source.url, commit, ["*.md"], dest, source.settings())


def test_an_unknown_commit_is_reported(source: DocumentRepo, dest: Path) -> None:
    unknown = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(DocumentError) as error:
        fetch_document(source.url, unknown, ["*.md"], dest, source.settings())
    assert str(error.value) == f"document.commit {unknown} was not found in {source.url}"
    assert not (dest / "document.git").exists()


def test_a_missing_repository_is_reported_without_local_details(
    source: DocumentRepo, dest: Path
) -> None:
    missing = f"file://{source.root}/missing"
    with pytest.raises(DocumentError) as error:
        fetch_document(missing, source.commit, ["*.md"], dest, source.settings())
    assert str(error.value) == f"{missing} was not found or is not public"


def test_a_tree_id_is_not_a_commit(source: DocumentRepo, dest: Path) -> None:
    tree = git(Path(source.url.removeprefix("file://")), "rev-parse", "HEAD^{tree}")
    with pytest.raises(DocumentError, match="is not a commit|was not found"):
        fetch_document(source.url, tree, ["*.md"], dest, source.settings())


def test_patterns_matching_no_markdown_file(source: DocumentRepo, dest: Path) -> None:
    with pytest.raises(DocumentError) as error:
        fetch_document(source.url, source.commit, ["nothing/*.md"], dest, source.settings())
    assert str(error.value) == (
        f'no markdown file in {source.url}@{source.commit} matches the patterns ["nothing/*.md"]'
    )

    with pytest.raises(DocumentError) as error:
        fetch_document(source.url, source.commit, ["docs/*.pdf"], dest, source.settings())
    assert '"docs/report.pdf" is not a markdown (.md) file' in str(error.value)


@pytest.mark.parametrize(
    "patterns",
    [[], ["/etc/passwd"], ["../outside.md"], ["docs/../../x.md"], ["C:\\docs\\a.md"], [""], [3]],
)
def test_bad_patterns_are_refused(patterns: list[str], source: DocumentRepo, dest: Path) -> None:
    with pytest.raises(DocumentError, match="document.patterns"):
        fetch_document(source.url, source.commit, patterns, dest, source.settings())


def test_total_size_limit(source: DocumentRepo, dest: Path) -> None:
    settings = source.settings(sdg_document_max_bytes=100 * 1024)
    with pytest.raises(DocumentError) as error:
        fetch_document(source.url, source.commit, ["large/*.md"], dest, settings)
    assert str(error.value) == "the document is larger than 100 KB"
    assert not (dest / "document.git").exists()


def test_file_count_limit(source: DocumentRepo, dest: Path) -> None:
    settings = source.settings(sdg_document_max_files=5)
    with pytest.raises(DocumentError, match="match 12 markdown files .*at most 5 are allowed"):
        fetch_document(source.url, source.commit, ["many/*.md"], dest, settings)
    files = fetch_document(source.url, source.commit, ["many/page0[0-4].md"], dest, settings)
    assert len(files) == 5


def test_a_repository_too_large_to_fetch_is_stopped(
    unfiltered_source: DocumentRepo, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This server ignores the blob filter, so the 3 MB of noise arrive with the trees.
    monkeypatch.setattr(documents, "FETCH_OVERHEAD_BYTES", 512 * 1024)
    settings = unfiltered_source.settings(sdg_document_max_bytes=512 * 1024)
    with pytest.raises(DocumentError, match="is too large to fetch: over 1 MB"):
        fetch_document(unfiltered_source.url, unfiltered_source.commit, ["*.md"], dest, settings)


def test_files_must_be_utf8_text_not_lfs_pointers(source: DocumentRepo, dest: Path) -> None:
    with pytest.raises(DocumentError, match='"latin1/bad.md" is not valid UTF-8'):
        fetch_document(source.url, source.commit, ["latin1/*.md"], dest, source.settings())
    with pytest.raises(DocumentError, match='"lfs/pointer.md" is stored with Git LFS'):
        fetch_document(source.url, source.commit, ["lfs/*.md"], dest, source.settings())


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def test_a_server_that_never_answers_times_out(silent_server: int, dest: Path) -> None:
    settings = Settings(sdg_document_sources=["http://127.0.0.1"], sdg_document_timeout_seconds=1.0)
    url = f"http://127.0.0.1:{silent_server}/owner/repo.git"
    started = time.monotonic()
    with pytest.raises(DocumentError) as error:
        fetch_document(url, "a" * 40, ["*.md"], dest, settings)
    assert time.monotonic() - started < 10
    assert str(error.value) == f"fetching the document from {url} took longer than 1 s"


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("*.md", ["README.md"], ["docs/intro.md"]),
        ("docs/*.md", ["docs/intro.md"], ["docs/guide/advanced.md", "docs/intro.mdx"]),
        ("docs/**/*.md", ["docs/intro.md", "docs/a/b/c.md"], ["other/docs/x.md"]),
        ("**/intro.md", ["intro.md", "docs/intro.md"], ["docs/preintro.md"]),
        ("docs/**", ["docs/a.md", "docs/a/b.md"], ["docsx/a.md"]),
        ("docs/", ["docs/a/b.md"], ["a.md"]),
        ("page?.md", ["page1.md"], ["page10.md", "page/.md"]),
        ("page[!0].md", ["page1.md"], ["page0.md"]),
        ("a+b(c).md", ["a+b(c).md"], ["aab(c).md"]),
        ("docs[+-0]x.md", ["docs+x.md", "docs0x.md"], ["docs/x.md"]),
        ("*a*b*.md", ["xaybz.md", "ab.md", "aab.md"], ["ba.md", "a/b.md"]),
        ("**/a/**/b/*.md", ["a/b/c.md", "x/a/y/z/b/c.md"], ["a/c.md", "b/a/c.md", "a/b/x/c.md"]),
        ("a/**/**/b.md", ["a/b.md", "a/x/y/b.md"], ["b.md"]),
    ],
)
def test_glob_patterns(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = glob_pattern(pattern)
    assert [path for path in matches if not regex.fullmatch(path)] == []
    assert [path for path in misses if regex.fullmatch(path)] == []


def test_hostile_patterns_match_in_linear_time(source: DocumentRepo, dest: Path) -> None:
    deep = "/".join(["d"] * 60) + "/" + "a" * 200
    started = time.monotonic()
    assert not glob_pattern("*a" * 40 + "b").fullmatch("a" * 250)
    assert not glob_pattern("**/d/" * 30 + "x.md").fullmatch(deep)
    assert time.monotonic() - started < 1

    with pytest.raises(DocumentError, match='"\\[z-a\\].md" is not a file pattern'):
        fetch_document(source.url, source.commit, ["[z-a].md"], dest, source.settings())


# --- chunking -------------------------------------------------------------------------------


def words(text: str) -> int:
    return len(text.split())


def no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def assert_slices_in_order(chunks: list[str], text: str) -> None:
    position = 0
    for chunk in chunks:
        found = text.find(chunk, position)
        assert found >= 0, chunk[:60]
        assert not text[position:found].strip()  # only whitespace between chunks
        position = found + len(chunk)
    assert not text[position:].strip()


def sentence(rng: random.Random, length: int) -> str:
    return (
        " ".join(
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(length)
        ).capitalize()
        + "."
    )


def markdown(rng: random.Random, sections: int) -> str:
    parts = []
    for index in range(sections):
        parts.append(f"{'#' * rng.randint(1, 3)} Section {index}\n")
        for _ in range(rng.randint(1, 5)):
            parts.append(" ".join(sentence(rng, rng.randint(3, 25)) for _ in range(4)) + "\n")
        if index % 3 == 0:
            parts.append("```python\n# a comment, not a heading\n\nprint('x')\n```\n")
        if index % 4 == 0:
            parts.append("- item one\n- item two\n- item three\n")
    return "\n".join(parts)


@pytest.mark.parametrize("budget", [8, 40, 150, 500])
def test_chunks_respect_the_budget_and_keep_all_content(budget: int) -> None:
    text = markdown(random.Random(budget), 40)
    chunks = chunk_document(text, words, budget)

    assert chunks
    assert all(chunk.strip() == chunk and chunk for chunk in chunks)
    assert max(words(chunk) for chunk in chunks) <= budget
    assert no_space("".join(chunks)) == no_space(text)
    assert_slices_in_order(chunks, text)


def test_sections_that_fit_start_their_own_chunks() -> None:
    rng = random.Random(1)
    # Each section is 60-70% of the budget, so no two fit together.
    sections = [f"## Part {i}\n\n{sentence(rng, 60)}\n\n{sentence(rng, 4)}\n" for i in range(6)]
    chunks = chunk_document("\n".join(sections), words, 100)
    assert chunks == [section.strip() for section in sections]


def test_small_sections_are_packed_whole() -> None:
    sections = [f"# S{i}\n\nalpha beta gamma.\n" for i in range(9)]  # 5 words each
    chunks = chunk_document("\n".join(sections), words, 16)
    assert chunks == ["\n\n".join(s.strip() for s in sections[i : i + 3]) for i in (0, 3, 6)]


def test_an_overlong_section_splits_at_paragraphs_then_sentences() -> None:
    rng = random.Random(2)
    paragraphs = [" ".join(sentence(rng, 10) for _ in range(3)) for _ in range(4)]  # 30 words
    text = "# Long\n\n" + "\n\n".join(paragraphs) + "\n\n# Next\n\nshort.\n"
    chunks = chunk_document(text, words, 35)
    # The heading goes with the first paragraph; the next section never joins the last one.
    assert chunks == [f"# Long\n\n{paragraphs[0]}", *paragraphs[1:], "# Next\n\nshort."]

    chunks = chunk_document(text, words, 25)
    assert all(chunk.endswith(".") or chunk.startswith("#") for chunk in chunks)
    assert max(words(chunk) for chunk in chunks) <= 25


def test_headings_inside_code_fences_and_setext_headings() -> None:
    text = (
        "Title\n=====\n\nintro words here.\n\n"
        "```\n# comment one\n# comment two\n```\n\n"
        "Second\n------\n\nmore words here.\n"
    )
    chunks = chunk_document(text, words, 14)  # 13 words in the first section
    assert chunks == [
        "Title\n=====\n\nintro words here.\n\n```\n# comment one\n# comment two\n```",
        "Second\n------\n\nmore words here.",
    ]


def test_an_overlong_word_is_cut_hard() -> None:
    text = "short words then " + "x" * 35 + " end"
    chunks = chunk_document(text, len, 10)
    assert max(len(chunk) for chunk in chunks) <= 10
    assert ["x" * 10, "x" * 10, "x" * 10, "x" * 5] == [c for c in chunks if set(c) == {"x"}]
    assert no_space("".join(chunks)) == no_space(text)


def test_counts_that_are_not_additive_still_respect_the_budget() -> None:
    def costly_joins(text: str) -> int:  # every blank line costs three tokens
        return words(text) + 3 * text.count("\n\n")

    text = "\n\n".join(f"para {i} has five words" for i in range(30))
    chunks = chunk_document(text, costly_joins, 20)
    assert max(costly_joins(chunk) for chunk in chunks) <= 20
    assert_slices_in_order(chunks, text)


def test_empty_documents_give_no_chunks() -> None:
    assert chunk_document("", words, 10) == []
    assert chunk_document(" \n\n\t\n", words, 10) == []
    with pytest.raises(ValueError, match="budget"):
        chunk_document("text", words, 0)


def counting(counter: Callable[[str], int]) -> tuple[Callable[[str], int], list[int]]:
    seen: list[int] = []

    def count(text: str) -> int:
        seen.append(len(text))
        return counter(text)

    return count, seen


def test_chunking_a_large_document_counts_each_character_a_few_times() -> None:
    text = markdown(random.Random(3), 2_000)  # about 2 MB
    count, seen = counting(words)
    started = time.monotonic()
    chunks = chunk_document(text, count, 500)
    elapsed = time.monotonic() - started
    assert sum(seen) < 6 * len(text)
    assert len(seen) < 3 * len(re.findall(r"\n\s*\n", text)) + 3 * len(chunks)
    assert elapsed < 10
    assert no_space("".join(chunks)) == no_space(text)


def test_hard_cuts_of_a_huge_word_count_few_prefixes() -> None:
    text = "y" * 200_000
    count, seen = counting(len)
    chunks = chunk_document(text, count, 500)
    assert [len(chunk) for chunk in chunks] == [500] * 400
    assert sum(seen) < 4 * len(text)


@pytest.fixture(scope="module")
def bpe_tokenizer() -> Callable[[str], int]:
    """A byte-level BPE tokenizer trained here, like the teacher's: joined pieces can count
    fewer or more tokens than their parts."""
    from tests.sdg.tiny_model import build_tokenizer, english_corpus

    tokenizer = build_tokenizer(english_corpus()).backend_tokenizer
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.mark.parametrize("budget", [16, 120, 500])
def test_chunks_fit_a_real_tokenizer(bpe_tokenizer: Callable[[str], int], budget: int) -> None:
    text = markdown(random.Random(budget), 150) + "\n\nÉté à Zürich — 東京の夏。" * 20
    chunks = chunk_document(text, bpe_tokenizer, budget)
    assert max(bpe_tokenizer(chunk) for chunk in chunks) <= budget
    assert_slices_in_order(chunks, text)
