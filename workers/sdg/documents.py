"""Knowledge documents: fetched from the contributor's repository at one commit, then cut into
chunks that fit the teacher's prompt.

The repository, commit and patterns come from a pull request, so all three are hostile. The
fetch takes only what is needed from an allow-listed source: a shallow, blob-less fetch of the
commit (trees only), then the blobs of the matched markdown files. Nothing is checked out:
contents are read from the object store, so a symlink or a crafted path in the tree can never
touch the disk. Git runs with a clean environment (no system or user config, no prompts, no
credential helpers, only the allowed protocols), a deadline and a cap on what it may write.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.config import Settings

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-fA-F]{40}$")
_GIT_PROTOCOLS = ("https", "http", "file")
_REGULAR_FILE_MODES = ("100644", "100755")
_SYMLINK_MODE = "120000"
_GITLINK_MODE = "160000"
_MAX_PATTERNS = 100
_MAX_PATTERN_LENGTH = 500
# Trees, commit and pack indexes on top of the document itself; a repository whose trees alone
# need more than this at one commit is not a document repository.
FETCH_OVERHEAD_BYTES = 64 * 1024 * 1024
_POLL_SECONDS = 0.1
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"
# Passed to git so it still works behind a proxy or with a private CA; nothing else is inherited.
_PASSED_ENVIRONMENT = (
    "PATH",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
)


class DocumentError(Exception):
    """The document cannot be used; the message is fit to show the contributor."""


@dataclass(frozen=True)
class DocumentFile:
    path: str  # inside the document repository, "/"-separated
    text: str


# --- fetching -------------------------------------------------------------------------------


def fetch_document(
    repo: str, commit: str, patterns: list[str], dest: Path, settings: Settings
) -> list[DocumentFile]:
    """The markdown files of ``repo`` at ``commit`` matching ``patterns``, sorted by path.

    ``dest`` is a scratch directory (created if missing); the git repository made in it is
    removed before returning. Raises DocumentError for every problem with the reference, the
    repository or its files."""
    repo = _checked_repo(repo, settings.sdg_document_sources)
    commit = _checked_commit(commit)
    matchers = _checked_patterns(patterns)
    where = f"{repo}@{commit}"

    git_dir = dest / "document.git"
    if git_dir.exists():  # left by an earlier attempt of the same job
        shutil.rmtree(git_dir)
    dest.mkdir(parents=True, exist_ok=True)
    git = _Git(
        git_dir,
        _protocols(settings.sdg_document_sources),
        deadline=time.monotonic() + settings.sdg_document_timeout_seconds,
        timeout_seconds=settings.sdg_document_timeout_seconds,
        disk_budget=settings.sdg_document_max_bytes + FETCH_OVERHEAD_BYTES,
        repo=repo,
    )
    try:
        git.run(["init", "--quiet", "--bare", "--template=", str(git_dir)], init=True)
        git.run(["remote", "add", "origin", repo])
        # Commit and trees only; blobs come later, and only those of the matched files.
        fetched = git.run(
            ["fetch", "--quiet", "--depth=1", "--filter=blob:none", "--no-tags", "origin", commit],
            check=False,
        )
        if fetched.returncode != 0:
            raise DocumentError(_fetch_failure(repo, commit, fetched.stderr))
        kind = git.run(["cat-file", "-t", commit], check=False)
        if kind.returncode != 0 or kind.stdout.strip() != b"commit":
            raise DocumentError(f"document.commit {commit} is not a commit in {repo}")

        entries = _tree_entries(git.run(["ls-tree", "-r", "-z", "--full-tree", commit]).stdout)
        selected, ignored = _select(entries, matchers)
        if not selected:
            raise DocumentError(
                f"no markdown file in {where} matches the patterns {_show_list(patterns)}"
                + (f" (ignored: {'; '.join(ignored[:5])})" if ignored else "")
            )
        if len(selected) > settings.sdg_document_max_files:
            raise DocumentError(
                f"the patterns match {len(selected)} markdown files in {where}; "
                f"at most {settings.sdg_document_max_files} are allowed"
            )
        oids = sorted({oid for _, oid in selected})
        wanted = git.run(
            [
                "-c",
                "fetch.negotiationAlgorithm=noop",
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--recurse-submodules=no",
                "--filter=blob:none",
                "--stdin",
                "origin",
            ],
            stdin=_lines(oids),
            check=False,
        )
        if wanted.returncode != 0:
            raise DocumentError(_fetch_failure(repo, commit, wanted.stderr))
        sizes = _object_sizes(git.run(["cat-file", "--batch-check"], stdin=_lines(oids)).stdout)
        total = sum(sizes.get(oid, 0) for _, oid in selected)
        if total > settings.sdg_document_max_bytes:
            raise DocumentError(
                f"the document is larger than {_size(settings.sdg_document_max_bytes)}"
            )
        contents = _object_contents(git.run(["cat-file", "--batch"], stdin=_lines(oids)).stdout)
        if any(oid not in contents for oid in oids):
            log.warning("document blobs missing after the fetch from %s at %s", repo, commit)
            raise DocumentError(f"the document files could not be fetched from {repo}")
        files = [DocumentFile(path, _text(path, contents[oid])) for path, oid in selected]
    finally:
        shutil.rmtree(git_dir, ignore_errors=True)
    if not any(file.text.strip() for file in files):
        raise DocumentError(f"the markdown files matched in {where} are empty")
    return files


def _checked_repo(repo: object, sources: Sequence[str]) -> str:
    if not isinstance(repo, str) or not repo.strip():
        raise DocumentError("document.repo is missing")
    repo = repo.strip()
    allowed = ", ".join(sources) or "nowhere"
    refused = DocumentError(
        f"document.repo {_show(repo)} is not allowed: documents are fetched from {allowed}"
    )
    if any(ord(char) < 0x21 or char in "\\\x7f" for char in repo):
        raise refused
    parts = urlsplit(repo)
    # Credentials or a second host hidden in the authority ("https://github.com@evil/"), a
    # query or fragment, and dot segments would all let a URL that starts right go elsewhere.
    if "@" in parts.netloc or parts.query or parts.fragment or "?" in repo or "#" in repo:
        raise refused
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        raise refused
    if parts.scheme not in _GIT_PROTOCOLS or not any(_under(repo, source) for source in sources):
        raise refused
    return repo


def _under(repo: str, source: str) -> bool:
    """``repo`` starts with ``source`` at a boundary: "https://github.com" must not admit
    "https://github.com.evil.com/", only a path or a port after it; and something must follow."""
    if not source or not repo.startswith(source) or len(repo) == len(source):
        return False
    if source.endswith("/"):
        return True
    rest = repo[len(source) :]
    return rest.startswith("/") or re.match(r"^:\d+/", rest) is not None


def _protocols(sources: Sequence[str]) -> str:
    schemes = {urlsplit(source).scheme for source in sources} & set(_GIT_PROTOCOLS)
    return ":".join(sorted(schemes)) or "https"


def _checked_commit(commit: object) -> str:
    if not isinstance(commit, str) or not _SHA.match(commit.strip()):
        raise DocumentError(f"document.commit {_show(str(commit))} is not a full commit SHA")
    return commit.strip().lower()


def _checked_patterns(patterns: object) -> list[re.Pattern[str]]:
    if not isinstance(patterns, list) or not patterns:
        raise DocumentError("document.patterns must list at least one file pattern")
    if len(patterns) > _MAX_PATTERNS:
        raise DocumentError(f"document.patterns has more than {_MAX_PATTERNS} entries")
    matchers = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise DocumentError("document.patterns has an empty entry")
        text = pattern.strip()
        problem = None
        if len(text) > _MAX_PATTERN_LENGTH or any(ord(char) < 0x20 for char in text):
            problem = "is not a file pattern"
        elif text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text) or "\\" in text:
            problem = "must be a path inside the repository"
        elif ".." in text.split("/"):
            problem = "must not go up with .."
        if not problem:
            try:
                matchers.append(glob_pattern(text))
            except re.error:
                problem = "is not a file pattern"
        if problem:
            raise DocumentError(f"document.patterns entry {_show(pattern)} {problem}")
    return matchers


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """A regular expression for a glob over "/"-separated repository paths: ``*``, ``?`` and
    ``[...]`` stay inside one directory level, ``**`` as a whole level spans any number of
    levels, a trailing "/" means everything below. "./" at the start is dropped.

    Each ``*`` or ``**`` but the last of its kind matches as an atomic group taking the
    earliest fit (which is always the right one for globs), so a hostile pattern with many
    wildcards cannot make matching backtrack exponentially. Raises re.error for a bad class."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    if pattern.endswith("/"):
        pattern += "**"
    # Blocks of ordinary segments between "**" levels; repeated "**" levels act as one.
    blocks: list[list[str]] = [[]]
    for segment in pattern.split("/"):
        if segment in ("", "."):
            continue
        if segment == "**":
            if blocks[-1] or len(blocks) == 1:
                blocks.append([])
        else:
            blocks[-1].append(_segment_regex(segment))
    if len(blocks) == 1:
        return re.compile("/".join(blocks[0]), re.DOTALL)
    first, *middle, last = blocks
    regex = "/".join(first) + "/" if first else ""
    for block in middle:
        regex += f"(?>(?:[^/]+/)*?{'/'.join(block)}/)"
    regex += "(?:[^/]+/)*" + "/".join(last) if last else ".*"
    return re.compile(regex, re.DOTALL)


def _segment_regex(segment: str) -> str:
    """One directory level of a glob; the same earliest-fit rule for its ``*``."""
    pieces: list[list[str]] = [[]]  # the parts between stars
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            if pieces[-1] or len(pieces) == 1:
                pieces.append([])
        elif char == "?":
            pieces[-1].append("[^/]")
        elif char == "[" and (close := _class_end(segment, index)) > 0:
            body = segment[index + 1 : close]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            escaped = "".join("\\" + c if c in "\\^[]" else c for c in body)
            # A range such as "+-0" spans "/": a class never matches across levels.
            pieces[-1].append(f"[^/{escaped}]" if negate else f"(?!/)[{escaped}]")
            index = close
        else:
            pieces[-1].append(re.escape(char))
        index += 1
    if len(pieces) == 1:
        return "".join(pieces[0])
    first, *middle, last = pieces
    return (
        "".join(first)
        + "".join(f"(?>[^/]*?{''.join(piece)})" for piece in middle)
        + "[^/]*"
        + "".join(last)
    )


def _class_end(segment: str, start: int) -> int:
    """Index of the "]" closing the class opened at ``start``, or -1 (then "[" is literal)."""
    index = start + 1
    if index < len(segment) and segment[index] in "!^":
        index += 1
    if index < len(segment) and segment[index] == "]":
        index += 1  # a leading "]" is part of the class
    close = segment.find("]", index)
    return close


def _tree_entries(listing: bytes) -> list[tuple[str, str, str]]:
    """(mode, object id, path) of every entry of ``git ls-tree -r -z``; paths that are not
    UTF-8 get a placeholder mode so they are reported, never matched."""
    entries = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _type, oid = meta.decode("ascii").split(" ")
        try:
            path = raw_path.decode("utf-8")
        except UnicodeDecodeError:
            entries.append(("bad-name", oid, raw_path.decode("utf-8", "replace")))
            continue
        entries.append((mode, oid, path))
    return entries


def _select(
    entries: list[tuple[str, str, str]], matchers: list[re.Pattern[str]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The (path, object id) of matched markdown blobs, and why other matched entries were
    left out (for the message when nothing is left)."""
    selected: list[tuple[str, str]] = []
    ignored: list[str] = []
    for mode, oid, path in entries:
        if not any(matcher.fullmatch(path) for matcher in matchers):
            continue
        shown = _show(path)
        if mode == _SYMLINK_MODE:
            ignored.append(f"{shown} is a symbolic link")
        elif mode == _GITLINK_MODE:
            ignored.append(f"{shown} is a submodule")
        elif mode not in _REGULAR_FILE_MODES or not _safe_path(path):
            ignored.append(f"{shown} has an unusable name")
        elif not path.lower().endswith(".md"):
            ignored.append(f"{shown} is not a markdown (.md) file")
        else:
            selected.append((path, oid))
    selected.sort()
    return selected, ignored


def _safe_path(path: str) -> bool:
    segments = path.split("/")
    return all(
        segment not in ("", ".", "..") and segment.lower() != ".git" for segment in segments
    ) and not any(ord(char) < 0x20 or ord(char) == 0x7F for char in path)


def _lines(values: Sequence[str]) -> bytes:
    return "".join(f"{value}\n" for value in values).encode("ascii")


def _object_sizes(output: bytes) -> dict[str, int]:
    sizes = {}
    for line in output.decode("ascii", "replace").splitlines():
        fields = line.split(" ")
        if len(fields) == 3 and fields[1] == "blob":
            sizes[fields[0]] = int(fields[2])
    return sizes


def _object_contents(output: bytes) -> dict[str, bytes]:
    """Parse ``git cat-file --batch``: "<oid> <type> <size>\\n<content>\\n" per object."""
    contents = {}
    position = 0
    while position < len(output):
        header_end = output.index(b"\n", position)
        fields = output[position:header_end].split(b" ")
        position = header_end + 1
        if len(fields) != 3:  # "<oid> missing"
            continue
        size = int(fields[2])
        contents[fields[0].decode("ascii")] = output[position : position + size]
        position += size + 1
    return contents


def _text(path: str, data: bytes) -> str:
    shown = _show(path)
    if data.startswith(_LFS_POINTER):
        raise DocumentError(f"{shown} is stored with Git LFS, which is not supported")
    if b"\0" in data:
        raise DocumentError(f"{shown} is not a text file")
    try:
        text = data.decode("utf-8-sig")  # a leading byte order mark is tolerated
    except UnicodeDecodeError as error:
        raise DocumentError(
            f"{shown} is not valid UTF-8 (byte {error.start}); save it as UTF-8"
        ) from None
    return text.replace("\r\n", "\n")


def _fetch_failure(repo: str, commit: str, stderr: bytes) -> str:
    """A contributor-facing reason from git's stderr, which is logged but never shown (it can
    name local paths)."""
    detail = stderr.decode("utf-8", "replace")
    log.info("document fetch from %s at %s failed: %s", repo, commit, detail.strip()[-2000:])
    lowered = detail.lower()
    if any(
        marker in lowered
        for marker in ("not our ref", "couldn't find remote ref", "no such remote ref")
    ):
        return f"document.commit {commit} was not found in {repo}"
    if any(
        marker in lowered
        for marker in (
            "repository not found",
            "does not appear to be a git repository",
            "terminal prompts disabled",
            "could not read username",
            "authentication failed",
            "error: 404",
            "returned error: 403",
        )
    ):
        return f"{repo} was not found or is not public"
    if any(
        marker in lowered
        for marker in ("could not resolve host", "failed to connect", "connection refused")
    ):
        return f"{repo} could not be reached"
    return f"document.commit {commit} could not be fetched from {repo}"


def _show(value: str, limit: int = 80) -> str:
    """A contributor value quoted for a message: control characters and length tamed."""
    cleaned = "".join(char if char.isprintable() else "?" for char in value)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return f'"{cleaned}"'


def _show_list(values: Sequence[object]) -> str:
    return "[" + ", ".join(_show(str(value), 60) for value in list(values)[:10]) + "]"


def _size(count: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


class _Git:
    """Runs git on one bare repository under a shared deadline and disk budget."""

    def __init__(
        self,
        git_dir: Path,
        protocols: str,
        *,
        deadline: float,
        timeout_seconds: float,
        disk_budget: int,
        repo: str,
    ) -> None:
        self.git_dir = git_dir
        self.deadline = deadline
        self.timeout_seconds = timeout_seconds
        self.disk_budget = disk_budget
        self.repo = repo
        env = {name: os.environ[name] for name in _PASSED_ENVIRONMENT if name in os.environ}
        env.update(
            {
                "HOME": str(git_dir.parent),
                "LC_ALL": "C",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "",
                "SSH_ASKPASS": "",
                "GIT_ALLOW_PROTOCOL": protocols,
                "GIT_LFS_SKIP_SMUDGE": "1",
                # Every blob is fetched on purpose; a lazy fetch would be a bug to report.
                "GIT_NO_LAZY_FETCH": "1",
                "GIT_CEILING_DIRECTORIES": str(git_dir.parent),
            }
        )
        self.env = env
        self.options = [
            "-c",
            "core.hooksPath=" + os.devnull,
            "-c",
            "http.followRedirects=false",
            "-c",
            "credential.helper=",
            "-c",
            "submodule.recurse=false",
            "-c",
            "fetch.recurseSubmodules=false",
            "-c",
            "gc.auto=0",
            "-c",
            "maintenance.auto=false",
            "-c",
            "protocol.version=2",
        ]

    def run(
        self, args: list[str], *, stdin: bytes = b"", check: bool = True, init: bool = False
    ) -> subprocess.CompletedProcess[bytes]:
        command = ["git", *self.options]
        if not init:
            command.append(f"--git-dir={self.git_dir}")
        command.extend(args)
        if time.monotonic() >= self.deadline:
            raise self._timed_out()
        # Its own process group, so a timeout also stops git-remote-https and upload-pack.
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.git_dir.parent,
            start_new_session=True,
        )
        pending: bytes | None = stdin  # input goes with the first call only
        while True:
            remaining = self.deadline - time.monotonic()
            try:
                stdout, stderr = process.communicate(
                    pending, timeout=max(0.0, min(_POLL_SECONDS, remaining))
                )
                break
            except subprocess.TimeoutExpired:
                pending = None
                if time.monotonic() >= self.deadline:
                    self._kill(process)
                    raise self._timed_out() from None
                if _disk_usage(self.git_dir) > self.disk_budget:
                    self._kill(process)
                    raise DocumentError(
                        f"{self.repo} is too large to fetch: over {_size(self.disk_budget)} "
                        "at that commit"
                    ) from None
        if _disk_usage(self.git_dir) > self.disk_budget:
            raise DocumentError(
                f"{self.repo} is too large to fetch: over {_size(self.disk_budget)} at that commit"
            )
        result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
        if check and result.returncode != 0:
            # Our own commands on a repository we made: a failure here is not the contributor's.
            log.warning("git %s failed: %s", args[0], stderr.decode("utf-8", "replace")[-2000:])
            raise DocumentError(f"the document from {self.repo} could not be read")
        return result

    def _timed_out(self) -> DocumentError:
        return DocumentError(
            f"fetching the document from {self.repo} took longer than {self.timeout_seconds:g} s"
        )

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()


def _disk_usage(root: Path) -> int:
    total = 0
    for directory, _subdirs, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                continue  # git renames temporary files as it goes
    return total


# --- chunking -------------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+")
_WHITESPACE = re.compile(r"\s+")

Span = tuple[int, int]


def chunk_document(text: str, count_tokens: Callable[[str], int], budget: int) -> list[str]:
    """``text`` (markdown) cut into chunks of at most ``budget`` tokens, in order.

    Boundaries are sought at headings first, then blank lines, line breaks, sentence ends and
    spaces; a word longer than the budget is cut where it must be. Whole pieces that fit are
    packed together greedily. Chunks are slices of ``text`` stripped of surrounding whitespace,
    so every other character is kept, in order. Tokens are counted on pieces and on each chunk
    once (plus a recount where joining pieces costs more than their sum), never per character.
    """
    if budget < 1:
        raise ValueError("budget must be at least 1 token")
    chunker = _Chunker(text, count_tokens, budget)
    spans = chunker.split((0, len(text)), 0)
    return [chunk for start, end in spans if (chunk := text[start:end].strip())]


class _Chunker:
    def __init__(self, text: str, count_tokens: Callable[[str], int], budget: int) -> None:
        self.text = text
        self.count_tokens = count_tokens
        self.budget = budget
        self.levels: list[Callable[[Span], list[int]]] = [
            self._heading_starts,
            self._paragraph_starts,
            self._line_starts,
            self._sentence_starts,
            self._word_starts,
        ]

    def count(self, span: Span) -> int:
        return self.count_tokens(self.text[span[0] : span[1]].strip())

    def split(self, span: Span, level: int) -> list[Span]:
        """Chunks of ``span``, trying boundaries of ``level`` and finer ones."""
        if not self.text[span[0] : span[1]].strip():
            return []
        if level == 0 and self.count(span) <= self.budget:
            return [span]
        if level == len(self.levels):
            return self._hard_split(span)
        starts = sorted({start for start in self.levels[level](span) if span[0] < start < span[1]})
        if not starts:
            return self.split(span, level + 1)
        bounds = [span[0], *starts, span[1]]
        pieces = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
        chunks: list[Span] = []
        group: list[Span] = []
        group_tokens = 0
        for piece in pieces:
            if not self.text[piece[0] : piece[1]].strip():
                continue
            tokens = self.count(piece)
            if tokens > self.budget:
                # Split on its own: its parts never join neighbours across this boundary.
                chunks.extend(self._pack(group))
                group, group_tokens = [], 0
                chunks.extend(self.split(piece, level + 1))
                continue
            if group and group_tokens + tokens > self.budget:
                chunks.extend(self._pack(group))
                group, group_tokens = [], 0
            group.append(piece)
            group_tokens += tokens
        chunks.extend(self._pack(group))
        return chunks

    def _pack(self, group: list[Span]) -> list[Span]:
        """Join consecutive pieces whose token sums fit; counts are not always additive (the
        joining whitespace, merges across the seam), so the joined span is counted and pieces
        are moved to the next chunk until it fits. A single piece was counted already."""
        chunks = []
        while group:
            take = len(group)
            while take > 1 and self.count((group[0][0], group[take - 1][1])) > self.budget:
                take -= 1
            chunks.append((group[0][0], group[take - 1][1]))
            group = group[take:]
        return chunks

    def _hard_split(self, span: Span) -> list[Span]:
        """Cut an overlong word: the longest prefix within budget, found by doubling then
        bisecting its length (a few counts per chunk). At least one character per chunk."""
        chunks = []
        start, end = span
        while start < end:
            fits, step = start + 1, self.budget
            too_long = 0
            while fits < end:
                probe = min(end, start + step)
                tokens = self.count((start, probe))
                if tokens > self.budget:
                    too_long = probe
                    break
                fits = probe
                if tokens == self.budget:
                    break  # full at exactly the budget: good enough, no need to search further
                step *= 2
            if too_long:
                low, high = fits, too_long
                while high - low > 1:
                    middle = (low + high) // 2
                    if self.count((start, middle)) <= self.budget:
                        low = middle
                    else:
                        high = middle
                fits = low
            chunks.append((start, fits))
            start = fits
        return chunks

    def _lines(self, span: Span) -> list[tuple[int, str]]:
        """(offset, line) of the lines in ``span``, newline excluded."""
        lines = []
        offset = span[0]
        for line in self.text[span[0] : span[1]].split("\n"):
            lines.append((offset, line))
            offset += len(line) + 1
        return lines

    def _heading_starts(self, span: Span) -> list[int]:
        starts = []
        fence = ""
        previous: tuple[int, str] | None = None
        for offset, line in self._lines(span):
            opening = _FENCE.match(line)
            if fence:
                if (
                    opening
                    and opening.group(1)[0] == fence[0]
                    and len(opening.group(1)) >= len(fence)
                ):
                    fence = ""
            elif opening:
                fence = opening.group(1)
            elif _ATX_HEADING.match(line):
                starts.append(offset)
            elif previous is not None and previous[1].strip() and _SETEXT_UNDERLINE.match(line):
                starts.append(previous[0])  # "Title\n=====": the heading starts at its text
            previous = (offset, line)
        return starts

    def _paragraph_starts(self, span: Span) -> list[int]:
        return [match.end() for match in _BLANK_LINES.finditer(self.text, *span)]

    def _line_starts(self, span: Span) -> list[int]:
        return [offset for offset, _ in self._lines(span)[1:]]

    def _sentence_starts(self, span: Span) -> list[int]:
        return [match.end() for match in _SENTENCE_END.finditer(self.text, *span)]

    def _word_starts(self, span: Span) -> list[int]:
        return [match.end() for match in _WHITESPACE.finditer(self.text, *span)]
