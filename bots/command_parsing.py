"""Finding commands in a PR comment: `/lab <verb> [args]` or `@<app-slug> <verb> [args]`, each at
the start of its own line. Text inside fenced or indented code blocks and in `>` quotes is not a
command (quoting someone's command must not run it again)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_QUOTE = re.compile(r"^\s{0,3}>")
_INDENTED_CODE = re.compile(r"^( {4}|\t)")


@dataclass(frozen=True)
class Invocation:
    verb: str
    args: tuple[str, ...]
    line: str


def _plain_lines(body: str) -> list[str]:
    """The comment's lines outside code blocks and quotes."""
    lines: list[str] = []
    fence: str | None = None
    for line in body.replace("\r\n", "\n").split("\n"):
        opener = _FENCE.match(line)
        if fence is not None:
            if opener and opener.group(1) == fence:
                fence = None
            continue
        if opener:
            fence = opener.group(1)
            continue
        if _QUOTE.match(line) or _INDENTED_CODE.match(line):
            continue
        lines.append(line)
    return lines


def parse_commands(body: str, app_slug: str) -> list[Invocation]:
    prefix = re.compile(
        rf"^\s{{0,3}}(?:/lab|@{re.escape(app_slug)})(?:\s+(?P<rest>.*))?$", re.IGNORECASE
    )
    found: list[Invocation] = []
    for line in _plain_lines(body):
        match = prefix.match(line.rstrip())
        if match is None:
            continue
        rest = (match.group("rest") or "").strip()
        try:
            words = shlex.split(rest)
        except ValueError:  # an unbalanced quote: take the words as they are
            words = rest.split()
        verb = words[0].lower() if words else ""
        found.append(Invocation(verb, tuple(words[1:]), line.strip()))
    return found
