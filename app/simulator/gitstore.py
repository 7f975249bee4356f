"""A tiny content-addressed git object store.

Blobs, trees and commits are hashed exactly as git hashes them, so SHAs, tree modes (symlinks as
120000, submodules as 160000 gitlinks) and "what changed between two commits" behave as on GitHub.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

MODE_FILE = "100644"
MODE_EXECUTABLE = "100755"
MODE_SYMLINK = "120000"
MODE_SUBMODULE = "160000"
MODE_TREE = "040000"

# What the trees API calls each mode.
OBJECT_TYPE = {
    MODE_FILE: "blob",
    MODE_EXECUTABLE: "blob",
    MODE_SYMLINK: "blob",
    MODE_SUBMODULE: "commit",
    MODE_TREE: "tree",
}


@dataclass(frozen=True)
class Blob:
    data: bytes


@dataclass(frozen=True)
class TreeItem:
    name: str
    mode: str
    sha: str


@dataclass(frozen=True)
class Tree:
    items: tuple[TreeItem, ...]


@dataclass(frozen=True)
class Commit:
    tree: str
    parents: tuple[str, ...]
    message: str
    author: str
    timestamp: int


@dataclass(frozen=True)
class FileEntry:
    """A leaf of a snapshot: a blob (file, executable, symlink) or a submodule's commit."""

    mode: str
    sha: str


@dataclass(frozen=True)
class FileChange:
    """One row of a pull request's "files changed"."""

    filename: str
    status: str  # added, removed, modified, renamed
    sha: str
    mode: str
    additions: int
    deletions: int
    patch: str | None
    previous_filename: str | None = None


def _hash(kind: str, body: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(body)}\0".encode() + body, usedforsecurity=False).hexdigest()


class GitStore:
    """Objects of one repository (and its forks: pull request heads live here as on GitHub)."""

    def __init__(self) -> None:
        self.objects: dict[str, Blob | Tree | Commit] = {}

    # -- writing ---------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        sha = _hash("blob", data)
        self.objects.setdefault(sha, Blob(data))
        return sha

    def write_tree(self, snapshot: Mapping[str, FileEntry]) -> str:
        """Write the nested trees for a flat {path: entry} snapshot; returns the root tree SHA."""
        children: dict[str, dict[str, FileEntry]] = {}
        items: list[TreeItem] = []
        for path, entry in snapshot.items():
            head, sep, rest = path.partition("/")
            if sep:
                children.setdefault(head, {})[rest] = entry
            else:
                items.append(TreeItem(head, entry.mode, entry.sha))
        for name, sub in children.items():
            items.append(TreeItem(name, MODE_TREE, self.write_tree(sub)))
        # git orders tree entries by name, comparing directories as if they ended in "/".
        items.sort(key=lambda i: i.name + "/" if i.mode == MODE_TREE else i.name)
        body = b"".join(
            f"{i.mode.lstrip('0')} {i.name}".encode() + b"\0" + bytes.fromhex(i.sha) for i in items
        )
        sha = _hash("tree", body)
        self.objects.setdefault(sha, Tree(tuple(items)))
        return sha

    def commit(
        self,
        snapshot: Mapping[str, FileEntry],
        parents: tuple[str, ...],
        message: str,
        author: str,
        timestamp: int,
    ) -> str:
        tree = self.write_tree(snapshot)
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
        ident = f"{author} <{author}@users.noreply.github.com> {timestamp} +0000"
        lines += [f"author {ident}", f"committer {ident}", "", message, ""]
        sha = _hash("commit", "\n".join(lines).encode())
        self.objects[sha] = Commit(tree, parents, message, author, timestamp)
        return sha

    # -- reading ---------------------------------------------------------------------------

    def get_commit(self, sha: str) -> Commit | None:
        obj = self.objects.get(sha)
        return obj if isinstance(obj, Commit) else None

    def get_tree(self, sha: str) -> Tree | None:
        obj = self.objects.get(sha)
        return obj if isinstance(obj, Tree) else None

    def get_blob(self, sha: str) -> Blob | None:
        obj = self.objects.get(sha)
        return obj if isinstance(obj, Blob) else None

    def snapshot(self, commit_sha: str) -> dict[str, FileEntry]:
        commit = self.get_commit(commit_sha)
        if commit is None:
            return {}
        return {
            path: FileEntry(item.mode, item.sha)
            for path, item in self.walk(commit.tree, recursive=True)
            if item.mode != MODE_TREE
        }

    def walk(
        self, tree_sha: str, *, recursive: bool, prefix: str = ""
    ) -> Iterator[tuple[str, TreeItem]]:
        tree = self.get_tree(tree_sha)
        if tree is None:
            return
        for item in tree.items:
            path = prefix + item.name
            yield path, item
            if recursive and item.mode == MODE_TREE:
                yield from self.walk(item.sha, recursive=True, prefix=path + "/")

    def lookup(self, tree_sha: str, path: str) -> TreeItem | None:
        """The entry at `path` below a tree; the root itself for an empty path."""
        item = TreeItem("", MODE_TREE, tree_sha)
        for part in filter(None, path.split("/")):
            tree = self.get_tree(item.sha) if item.mode == MODE_TREE else None
            if tree is None:
                return None
            found = next((i for i in tree.items if i.name == part), None)
            if found is None:
                return None
            item = found
        return item

    def size(self, item: TreeItem) -> int:
        blob = self.get_blob(item.sha)
        return len(blob.data) if blob is not None else 0

    # -- comparing -------------------------------------------------------------------------

    def diff(self, old: Mapping[str, FileEntry], new: Mapping[str, FileEntry]) -> list[FileChange]:
        """Files changed from `old` to `new`, sorted by path; exact moves count as renames."""
        removed = {p: e for p, e in old.items() if p not in new}
        added = {p: e for p, e in new.items() if p not in old}
        renamed_from: dict[str, str] = {}
        by_sha = {e.sha: p for p, e in removed.items()}
        for path, entry in added.items():
            source = by_sha.pop(entry.sha, None)
            if source is not None:
                renamed_from[path] = source
                del removed[source]
        changes: list[FileChange] = []
        for path in sorted(set(old) | set(new)):
            before, after = old.get(path), new.get(path)
            if path in renamed_from and after is not None:
                changes.append(
                    FileChange(
                        path, "renamed", after.sha, after.mode, 0, 0, None, renamed_from[path]
                    )
                )
            elif before is not None and after is None and path in removed:
                changes.append(self._change(path, "removed", before, None))
            elif before is None and after is not None:
                changes.append(self._change(path, "added", None, after))
            elif before is not None and after is not None and before != after:
                changes.append(self._change(path, "modified", before, after))
        return changes

    def _text(self, entry: FileEntry | None) -> list[str] | None:
        """Lines of an entry for a patch; None for binary content (GitHub shows no patch)."""
        if entry is None:
            return []
        if entry.mode == MODE_SUBMODULE:
            return [f"Subproject commit {entry.sha}\n"]
        blob = self.get_blob(entry.sha)
        data = blob.data if blob is not None else b""
        if b"\0" in data:
            return None
        try:
            return data.decode("utf-8").splitlines(keepends=True)
        except UnicodeDecodeError:
            return None

    def _change(
        self, path: str, status: str, before: FileEntry | None, after: FileEntry | None
    ) -> FileChange:
        entry = after or before
        assert entry is not None
        old_lines, new_lines = self._text(before), self._text(after)
        patch: str | None = None
        additions = deletions = 0
        if old_lines is not None and new_lines is not None:
            # GitHub's `patch` starts at the first hunk header, without the ---/+++ lines.
            body = list(difflib.unified_diff(old_lines, new_lines, n=3, lineterm="\n"))[2:]
            additions = sum(1 for line in body if line.startswith("+"))
            deletions = sum(1 for line in body if line.startswith("-"))
            patch = "".join(line if line.endswith("\n") else line + "\n" for line in body).rstrip(
                "\n"
            )
        return FileChange(path, status, entry.sha, entry.mode, additions, deletions, patch)
