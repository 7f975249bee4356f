"""``labbot triage``: the triage checks from a terminal or a CI job.

    labbot triage [PATH ...] [--root DIR] [--diff-base REF] [--format text|json|github]
                  [--config FILE]

Checks the given files, or the files changed against REF in the git checkout at --root, or every
file under the taxonomy roots of --root. Paths are reported relative to --root. Exit status: 0 no
errors, 1 errors, 2 usage errors. git runs with argument lists (never a shell); modes come from
``git ls-files -s``/``lstat``, so symlinks and submodules are reported, never followed.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click

from bots.triage import messages
from bots.triage.config import CONFIG_PATH, RepoConfig, RepoConfigError, load_repo_config
from bots.triage.engine import triage_files
from bots.triage.findings import FileMode, FileResult, InputFile, Severity, TriageReport

GIT_TIMEOUT_S = 60


class _GitError(click.ClickException):
    exit_code = 2


def _git(root: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            check=False,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _GitError(messages.CLI_GIT_FAILED.format(problem=messages.clean(exc, 200))) from exc
    if done.returncode != 0:
        problem = messages.clean(done.stderr.decode("utf-8", "replace"), 300)
        raise _GitError(messages.CLI_GIT_FAILED.format(problem=problem))
    return done.stdout


def _split_z(data: bytes) -> list[str]:
    return [part.decode("utf-8", "surrogateescape") for part in data.split(b"\0") if part]


def _index_modes(root: Path, paths: list[str]) -> dict[str, FileMode]:
    """Modes recorded by git (120000 symlink, 160000 submodule) for tracked paths."""
    if not paths:
        return {}
    out = _git(root, "ls-files", "-s", "-z", "--", *paths)
    modes: dict[str, FileMode] = {}
    for entry in _split_z(out):
        meta, _, path = entry.partition("\t")
        modes[path] = FileMode.parse(meta.split(" ", 1)[0])
    return modes


def _read(root: Path, rel: str, mode: FileMode | None, max_bytes: int) -> InputFile:
    full = root / rel
    try:
        info = full.lstat()
    except FileNotFoundError:
        return InputFile(rel, None, mode or FileMode.regular, deleted=True)
    if stat.S_ISLNK(info.st_mode) or mode is FileMode.symlink:
        return InputFile(rel, None, FileMode.symlink)
    if mode is FileMode.submodule or stat.S_ISDIR(info.st_mode):
        return InputFile(rel, None, FileMode.submodule)
    if info.st_size > max_bytes:
        return InputFile(rel, None, mode or FileMode.regular, size=info.st_size)
    with open(full, "rb") as handle:  # lstat said regular: no link is followed
        content = handle.read(max_bytes + 1)
    return InputFile(rel, content, mode or FileMode.regular)


def _walk(root: Path, top: Path) -> Iterator[str]:
    """Files under ``top`` as paths relative to ``root``, without following links."""
    if top.is_symlink() or not top.is_dir():
        yield top.relative_to(root).as_posix()
        return
    for folder, dirs, files in os.walk(top, followlinks=False):
        dirs.sort()
        base = Path(folder)
        for name in sorted(files) + [d for d in dirs if (base / d).is_symlink()]:
            yield (base / name).relative_to(root).as_posix()
        dirs[:] = [d for d in dirs if d != ".git" and not (base / d).is_symlink()]


def _is_git(root: Path) -> bool:
    return (root / ".git").exists()


def _changed(root: Path, ref: str) -> tuple[list[str], set[str]]:
    """Changed and deleted paths between the merge base of REF and the working tree."""
    out = _git(root, "diff", "--name-status", "-z", "--no-renames", "--merge-base", ref, "--")
    fields = _split_z(out)
    changed: list[str] = []
    deleted: set[str] = set()
    for status, path in zip(fields[::2], fields[1::2], strict=False):
        changed.append(path)
        if status.startswith("D"):
            deleted.add(path)
    return changed, deleted


def _taxonomy_files(root: Path, config: RepoConfig) -> list[str]:
    roots = [r for r in config.triage.accepted_roots if (root / r).exists()]
    if not roots:
        return []
    if _is_git(root):
        return _split_z(_git(root, "ls-files", "-z", "--", *roots))
    return [rel for r in roots for rel in _walk(root, root / r)]


def _load_config(root: Path, config_path: Path | None) -> tuple[RepoConfig, FileResult | None]:
    if config_path is not None:
        try:
            return RepoConfig.from_yaml(config_path.read_bytes()), None
        except (OSError, RepoConfigError) as exc:
            raise click.UsageError(
                messages.CLI_BAD_CONFIG.format(path=config_path, problem=messages.clean(exc, 300))
            ) from exc
    default = root / CONFIG_PATH
    if default.is_file() and not default.is_symlink():
        config, findings = load_repo_config(default.read_bytes())
        if findings:
            return config, FileResult(CONFIG_PATH, findings=findings)
        return config, None
    return RepoConfig(), None


def _relative(root: Path, given: Path) -> str:
    candidate = given if given.is_absolute() else Path.cwd() / given
    # Resolve the folder, not the file: a symlink must be reported as one.
    try:
        parent = candidate.parent.resolve(strict=True)
    except (FileNotFoundError, RuntimeError) as exc:
        raise click.UsageError(messages.CLI_PATH_MISSING.format(path=given)) from exc
    full = parent / candidate.name
    if not full.exists() and not full.is_symlink():
        raise click.UsageError(messages.CLI_PATH_MISSING.format(path=given))
    try:
        return full.relative_to(root).as_posix()
    except ValueError as exc:
        raise click.UsageError(
            messages.CLI_PATH_OUTSIDE_ROOT.format(path=given, root=root)
        ) from exc


def escape_data(text: str) -> str:
    """GitHub workflow-command message escaping."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """GitHub workflow-command property escaping (file=, title=)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _render(report: TriageReport, fmt: str) -> Iterator[str]:
    if fmt == "json":
        yield report.to_json(indent=2)
        return
    for result in report.files:
        for f in result.findings:
            if fmt == "github":
                level = "error" if f.severity is Severity.error else "warning"
                message = f"{f.message} ({f.hint})" if f.hint else f.message
                yield (
                    f"::{level} file={escape_property(result.path)},line={f.line},col={f.column},"
                    f"title={escape_property(f.rule)}::{escape_data(message)}"
                )
            else:
                yield messages.CLI_LINE.format(
                    path=result.path,
                    line=f.line,
                    column=f.column,
                    severity=f.severity.value,
                    rule=f.rule,
                    message=f.message,
                )
                if f.hint:
                    yield messages.CLI_HINT.format(hint=f.hint)
    if not report.files:
        yield messages.CLI_NO_FILES
    yield messages.CLI_SUMMARY.format(**report.summary())
    if report.errors:
        yield report.blocking_sentence()


@click.command("triage")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help=messages.CLI_HELP_ROOT,
)
@click.option("--diff-base", metavar="REF", help=messages.CLI_HELP_DIFF)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help=messages.CLI_HELP_FORMAT,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=messages.CLI_HELP_CONFIG,
)
def triage(
    paths: tuple[Path, ...],
    root: Path,
    diff_base: str | None,
    fmt: str,
    config_path: Path | None,
) -> None:
    """Check taxonomy contributions (qna.yaml, attribution.txt and the files around them)."""
    if paths and diff_base:
        raise click.UsageError(messages.CLI_PATHS_AND_DIFF)
    root = root.resolve()
    config, config_result = _load_config(root, config_path)
    max_bytes = config.triage.limits.max_file_bytes
    deleted: set[str] = set()
    if paths:
        rel_paths = [r for given in paths for r in _walk(root, root / _relative(root, given))]
    elif diff_base:
        if not _is_git(root):
            raise click.UsageError(
                messages.CLI_NOT_A_GIT_CHECKOUT.format(root=root, problem=messages.CLI_NO_GIT)
            )
        rel_paths, deleted = _changed(root, diff_base)
    else:
        rel_paths = _taxonomy_files(root, config)
    modes = _index_modes(root, rel_paths) if _is_git(root) else {}
    files = [
        InputFile(rel, None, deleted=True)
        if rel in deleted
        else _read(root, rel, modes.get(rel), max_bytes)
        for rel in dict.fromkeys(rel_paths)
    ]

    def lookup(rel: str) -> bytes | None:
        found = _read(root, rel, None, max_bytes)
        return found.content if found.mode is FileMode.regular else None

    report = triage_files(files, config, lookup=lookup)
    if config_result is not None and report.result(CONFIG_PATH) is None:
        report.files.insert(0, config_result)
    for line in _render(report, fmt):
        click.echo(line)
    raise SystemExit(1 if report.errors else 0)
