"""The yamllint rules upstream runs, re-implemented over libyaml's tokens.

Upstream runs yamllint with ``{extends: relaxed, rules: {line-length: disable}}``. Under that
configuration these rules report, with this split:

* errors: trailing-spaces, new-line-at-end-of-file, new-lines (unix), key-duplicates, anchors
  (undeclared aliases), syntax errors;
* warnings: empty-lines (max 2, none at start or end), indentation (spaces and sequence style
  "consistent"), colons, commas, hyphens, braces and brackets (at most one space inside).

Key duplicates, undeclared aliases and syntax errors come from the loader (``yamlload``), which
reports them for every file. The rest is here: same positions and texts as yamllint 1.38, checked
against yamllint on the real contributor corpus (tests/triage/test_lint.py), at a fraction of its
cost because libyaml scans the tokens. ``# yamllint disable...`` directives are honoured.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from typing import cast

import yaml

from bots.triage import messages as M
from bots.triage.findings import Finding, make

_WHITESPACE = frozenset(string.whitespace)
_DIRECTIVE = re.compile(r"^# yamllint (disable|enable|disable-line)((?: rule:\S+)*)\s*$")
_DISABLE_FILE = re.compile(r"^#\s*yamllint disable-file\s*$")

# (rule, line, column, message id, values)
Problem = tuple[str, int, int, str, dict[str, object]]


class _Tok:
    """The parts of a libyaml token the rules use (0-based lines and columns)."""

    __slots__ = ("kind", "start", "end", "line", "col", "end_line", "end_col", "value", "is_scalar")

    def __init__(self, tok: yaml.Token) -> None:
        start, end = tok.start_mark, tok.end_mark
        self.kind: type[yaml.Token] = type(tok)
        self.start: int = start.index
        self.end: int = end.index
        self.line: int = start.line
        self.col: int = start.column
        self.end_line: int = end.line
        self.end_col: int = end.column
        self.value: str | None = getattr(tok, "value", None)
        self.is_scalar = self.kind is yaml.ScalarToken


def _tokens(text: str) -> tuple[list[_Tok], int]:
    """The tokens, and how many of them the token rules judge.

    libyaml scans the whole file when it can. When it stops at an error, the file is scanned
    again the way yamllint does it, with PyYAML's own scanner (it accepts a few things libyaml
    refuses, such as a tab starting block scalar text): a token is judged only once the two
    after it were scanned, so rules stop a little before the error.
    """
    result: list[_Tok] = []
    loader = yaml.CBaseLoader(text)
    try:
        while loader.check_token():
            tok = loader.get_token()
            if tok is not None:
                result.append(_convert(tok))
    except yaml.YAMLError:
        return _tokens_until_error(text)
    finally:
        loader.dispose()
    return result, len(result)


def _tokens_until_error(text: str) -> tuple[list[_Tok], int]:
    seen: list[yaml.Token] = []
    judged = 0

    def remember(tok: yaml.Token | None) -> None:
        if tok is not None and not (seen and seen[-1] is tok):
            seen.append(tok)

    loader = yaml.BaseLoader(text)
    # PyYAML's pure-Python scanner methods have no annotations in the stubs
    get_token = cast(Callable[[], yaml.Token | None], loader.get_token)
    peek_token = cast(Callable[[], yaml.Token | None], loader.peek_token)
    try:
        current = get_token()
        remember(current)
        while current is not None:
            following = get_token()
            remember(following)
            if loader.check_token():
                remember(peek_token())
            judged += 1
            current = following
    except yaml.YAMLError:
        pass
    finally:
        loader.dispose()
    return [_convert(tok) for tok in seen], judged


def _convert(tok: yaml.Token) -> _Tok:
    return _Tok(tok)


def syntax_error_position(text: str) -> tuple[int, int] | None:
    """Where yamllint places a file's syntax error (PyYAML's parser, 1-based)."""
    try:
        for _event in yaml.parse(text, Loader=yaml.BaseLoader):
            pass
    except yaml.MarkedYAMLError as exc:
        if exc.problem_mark is not None:
            return exc.problem_mark.line + 1, exc.problem_mark.column + 1
    except yaml.YAMLError:
        return None
    return None


# ---- line rules


def _line_problems(text: str) -> Iterator[Problem]:
    length = len(text)
    start = 0
    line_no = 1
    blank_run = 0
    while True:
        newline = text.find("\n", start)
        end = length if newline == -1 else newline
        if newline != -1 and end > start and text[end - 1] == "\r":
            end -= 1
        # trailing-spaces: whitespace at the end, reported where it begins, if it begins with a
        # space or a tab.
        if end > 0:
            pos = end
            while pos > start and text[pos - 1] in _WHITESPACE:
                pos -= 1
            if pos != end and text[pos] in " \t":
                yield ("trailing-spaces", line_no, pos - start + 1, "lint/trailing-spaces", {})
        if line_no == 1 and length > end and text[end] != "\n":
            yield ("new-lines", 1, end - start + 1, "lint/new-lines", {})
        if newline == -1:
            if end > start:
                yield (
                    "new-line-at-end-of-file",
                    line_no,
                    end - start + 1,
                    "lint/new-line-at-end-of-file",
                    {},
                )
            break
        # empty-lines: judged at the last blank line of a run; at most 2 inside the document,
        # none at its start or its end.
        if end == start:
            blank_run += 1
            following = text[newline + 1 : newline + 3]
            next_blank = following.startswith("\n") or following == "\r\n"
            if not next_blank and not (line_no == 1 and length == 1):
                at_start = blank_run == line_no
                at_end = newline == length - 1
                allowed = 0 if (at_start or at_end) else 2
                if blank_run > allowed:
                    yield (
                        "empty-lines",
                        line_no,
                        1,
                        "lint/empty-lines",
                        {"found": blank_run, "allowed": allowed},
                    )
        else:
            blank_run = 0
        start = newline + 1
        line_no += 1


# ---- token rules: spacing


def _spacing(text: str, tokens: list[_Tok], idx: int) -> Iterator[Problem]:  # noqa: C901 - one branch per token kind
    tok = tokens[idx]
    prev = tokens[idx - 1] if idx > 0 else None
    nxt = tokens[idx + 1] if idx + 1 < len(tokens) else None

    def before(rule: str, maximum: int, desc: str) -> Iterator[Problem]:
        if prev is None or prev.end_line != tok.line:
            return
        if prev.end != 0 and text[prev.end - 1] == "\n":
            return
        if tok.start - prev.end > maximum:
            yield (rule, tok.line + 1, tok.col, "lint/spacing", {"description": desc})

    def after(
        rule: str, maximum: int, desc_max: str, minimum: int = -1, desc_min: str = ""
    ) -> Iterator[Problem]:
        if nxt is None or nxt.line != tok.end_line:
            return
        spaces = nxt.start - tok.end
        if maximum != -1 and spaces > maximum:
            yield (rule, tok.line + 1, nxt.col, "lint/spacing", {"description": desc_max})
        elif minimum != -1 and spaces < minimum:
            yield (rule, tok.line + 1, nxt.col + 1, "lint/spacing", {"description": desc_min})

    kind = tok.kind
    if kind is yaml.ValueToken:
        after_alias = (
            prev is not None and prev.kind is yaml.AliasToken and tok.start - prev.end == 1
        )
        if not after_alias:
            yield from before("colons", 0, M.LINT_BEFORE.format(what="colon"))
            yield from after("colons", 1, M.LINT_AFTER_MANY.format(what="colon"))
    elif kind is yaml.KeyToken:
        if tok.start < tok.end and text[tok.start] == "?":
            yield from after("colons", 1, M.LINT_AFTER_MANY.format(what="question mark"))
    elif kind is yaml.FlowEntryToken:
        if prev is not None and prev.end_line < tok.line:
            yield (
                "commas",
                tok.line + 1,
                max(1, tok.col),
                "lint/spacing",
                {"description": M.LINT_BEFORE.format(what="comma")},
            )
        else:
            yield from before("commas", 0, M.LINT_BEFORE.format(what="comma"))
        yield from after(
            "commas",
            1,
            M.LINT_AFTER_MANY.format(what="comma"),
            1,
            M.LINT_AFTER_FEW.format(what="comma"),
        )
    elif kind is yaml.BlockEntryToken:
        yield from after("hyphens", 1, M.LINT_AFTER_MANY.format(what="hyphen"))
    elif kind in (yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken):
        rule, noun = _BRACKET_NAMES[kind]
        closing = _CLOSING[kind]
        empty = nxt is not None and nxt.kind is closing
        what = M.LINT_EMPTY.format(what=noun) if empty else noun
        yield from after(
            rule,
            1,
            M.LINT_INSIDE_MANY.format(what=what),
            0,
            M.LINT_INSIDE_FEW.format(what=what),
        )
    elif kind in (yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken):
        rule, noun = _BRACKET_NAMES[kind]
        opening = _OPENING[kind]
        if prev is None or prev.kind is not opening:
            yield from before(rule, 1, M.LINT_INSIDE_MANY.format(what=noun))


_SPACING_KINDS = frozenset(
    {
        yaml.ValueToken,
        yaml.KeyToken,
        yaml.FlowEntryToken,
        yaml.BlockEntryToken,
        yaml.FlowMappingStartToken,
        yaml.FlowSequenceStartToken,
        yaml.FlowMappingEndToken,
        yaml.FlowSequenceEndToken,
    }
)
_BRACKET_NAMES: dict[type[yaml.Token], tuple[str, str]] = {
    yaml.FlowMappingStartToken: ("braces", "braces"),
    yaml.FlowMappingEndToken: ("braces", "braces"),
    yaml.FlowSequenceStartToken: ("brackets", "brackets"),
    yaml.FlowSequenceEndToken: ("brackets", "brackets"),
}
_CLOSING = {
    yaml.FlowMappingStartToken: yaml.FlowMappingEndToken,
    yaml.FlowSequenceStartToken: yaml.FlowSequenceEndToken,
}
_OPENING = {
    yaml.FlowMappingEndToken: yaml.FlowMappingStartToken,
    yaml.FlowSequenceEndToken: yaml.FlowSequenceStartToken,
}


# ---- token rules: indentation


class _Ctx:
    """Kinds of parent the indentation rule tracks (plain ints: this runs per token)."""

    root = 0
    block_map = 1
    flow_map = 2
    block_seq = 3
    flow_seq = 4
    entry = 5
    key = 6
    value = 7


class _Frame:
    __slots__ = ("ctx", "indent", "line_indent", "explicit_key", "implicit_seq")

    def __init__(
        self,
        ctx: int,
        indent: int,
        line_indent: int = 0,
        explicit_key: bool = False,
        implicit_seq: bool = False,
    ) -> None:
        self.ctx = ctx
        self.indent = indent
        self.line_indent = line_indent
        self.explicit_key = explicit_key
        self.implicit_seq = implicit_seq


class _Unexpected(Exception):
    """The token stream does not have the shape the rule expects."""


_INVISIBLE = (yaml.StreamStartToken, yaml.StreamEndToken, yaml.BlockEndToken)
_ENDS_VALUE = (
    yaml.BlockEndToken,
    yaml.FlowMappingEndToken,
    yaml.FlowSequenceEndToken,
    yaml.KeyToken,
)
_PROPERTIES = (yaml.AnchorToken, yaml.TagToken)


class _Indentation:
    """Indentation with ``spaces: consistent`` and ``indent-sequences: consistent``: the first
    nested block fixes the width, the first list under a key fixes whether lists are indented;
    only the first token of each line is judged, against what its parents expect."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.stack = [_Frame(_Ctx.root, 0)]
        self.width: int | None = None
        self.indent_lists: bool | None = None
        self.last_line = -1  # 1-based line where the last visible token really ends
        self.line_indent = 0

    def _width_from(self, base: int, tok: _Tok) -> int:
        if self.width is None:
            self.width = tok.col - base
        return base + self.width

    def _real_end_line(self, tok: _Tok) -> int:
        line = tok.end_line + 1
        if not tok.is_scalar:
            return line
        pos = tok.end - 1
        while pos >= tok.start - 1 and self.text[pos] in _WHITESPACE:
            if self.text[pos] == "\n":
                line -= 1
            pos -= 1
        return line

    def check(
        self, tok: _Tok, prev: _Tok | None, nxt: _Tok | None, after: _Tok | None
    ) -> Iterator[Problem]:
        visible = tok.kind not in _INVISIBLE and not (tok.is_scalar and tok.value == "")
        first = visible and tok.line + 1 > self.last_line
        top = self.stack[-1]
        if first:
            found = tok.col
            expected = top.indent
            if tok.kind in (yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken):
                expected = top.line_indent
            elif top.ctx is _Ctx.key and top.explicit_key and tok.kind is not yaml.ValueToken:
                expected = self._width_from(expected, tok)
            if found != expected:
                if expected < 0:
                    yield (
                        "indentation",
                        tok.line + 1,
                        found + 1,
                        "lint/indentation-at-least",
                        {"expected": found + 1},
                    )
                else:
                    yield (
                        "indentation",
                        tok.line + 1,
                        found + 1,
                        "lint/indentation",
                        {"expected": expected, "found": found},
                    )
        if visible:
            self.last_line = self._real_end_line(tok)
            if first:
                self.line_indent = tok.col
        self._push(tok, prev, nxt, after)
        self._pop(tok, nxt)

    def _push(self, tok: _Tok, prev: _Tok | None, nxt: _Tok | None, after: _Tok | None) -> None:
        kind = tok.kind
        top = self.stack[-1]
        if kind is yaml.BlockMappingStartToken:
            if nxt is None or nxt.kind is not yaml.KeyToken or nxt.line != tok.line:
                raise _Unexpected
            self.stack.append(_Frame(_Ctx.block_map, tok.col))
        elif kind in (yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken):
            if nxt is None:
                raise _Unexpected
            indent = nxt.col if nxt.line == tok.line else self._width_from(self.line_indent, nxt)
            ctx = _Ctx.flow_map if kind is yaml.FlowMappingStartToken else _Ctx.flow_seq
            self.stack.append(_Frame(ctx, indent, line_indent=self.line_indent))
        elif kind is yaml.BlockSequenceStartToken:
            if nxt is None or nxt.kind is not yaml.BlockEntryToken or nxt.line != tok.line:
                raise _Unexpected
            self.stack.append(_Frame(_Ctx.block_seq, tok.col))
        elif (
            kind is yaml.BlockEntryToken
            and nxt is not None
            and nxt.kind
            not in (
                yaml.BlockEntryToken,
                yaml.BlockEndToken,
            )
        ):
            # libyaml emits no sequence start for a list that is not indented under its key.
            if top.ctx is not _Ctx.block_seq:
                self.stack.append(_Frame(_Ctx.block_seq, tok.col, implicit_seq=True))
            if nxt.line == tok.end_line or nxt.col == tok.col:
                indent = nxt.col
            else:
                indent = self._width_from(tok.col, nxt)
            self.stack.append(_Frame(_Ctx.entry, indent))
        elif kind is yaml.KeyToken:
            explicit = tok.start < tok.end and self.text[tok.start] == "?"
            self.stack.append(_Frame(_Ctx.key, top.indent, explicit_key=explicit))
        elif kind is yaml.ValueToken:
            if top.ctx is not _Ctx.key:
                raise _Unexpected
            self._push_value(top, prev, nxt, after)

    def _push_value(
        self, key: _Frame, prev: _Tok | None, nxt: _Tok | None, after: _Tok | None
    ) -> None:
        if nxt is None or prev is None:
            raise _Unexpected
        # "key: &anchor" or "key: !!tag" followed by the value on the next line
        if (
            nxt.kind in _PROPERTIES
            and after is not None
            and nxt.line == prev.line
            and nxt.line < after.line
        ):
            nxt = after
        if nxt.kind in _ENDS_VALUE:
            return
        if key.explicit_key:
            indent = self._width_from(key.indent, nxt)
        elif nxt.line == prev.line:
            indent = nxt.col
        elif nxt.kind in (yaml.BlockSequenceStartToken, yaml.BlockEntryToken):
            indent = self._list_indent(key, nxt)
        else:
            indent = self._width_from(key.indent, nxt)
        self.stack.append(_Frame(_Ctx.value, indent))

    def _list_indent(self, key: _Frame, nxt: _Tok) -> int:
        if self.indent_lists is None:
            if nxt.col == key.indent:
                self.indent_lists = False
                return key.indent
            self.indent_lists = True
            return self._width_from(key.indent, nxt)
        if not self.indent_lists:
            return key.indent
        if self.width is None and nxt.col == key.indent:
            return -1  # should be indented, by a width nothing has fixed yet
        return self._width_from(key.indent, nxt)

    def _pop(self, tok: _Tok, nxt: _Tok | None) -> None:
        kind = tok.kind
        consumed = False
        stack = self.stack
        while True:
            top = stack[-1]
            if not consumed and (
                (top.ctx is _Ctx.flow_seq and kind is yaml.FlowSequenceEndToken)
                or (top.ctx is _Ctx.flow_map and kind is yaml.FlowMappingEndToken)
                or (
                    top.ctx in (_Ctx.block_map, _Ctx.block_seq)
                    and kind is yaml.BlockEndToken
                    and not top.implicit_seq
                )
            ):
                stack.pop()
                consumed = True
            elif (
                top.ctx is _Ctx.entry
                and kind is not yaml.BlockEntryToken
                and stack[-2].implicit_seq
                and kind not in _PROPERTIES
                and (nxt is None or nxt.kind is not yaml.BlockEntryToken)
            ):
                del stack[-2:]
            elif (
                top.ctx is _Ctx.entry
                and nxt is not None
                and nxt.kind
                in (
                    yaml.BlockEntryToken,
                    yaml.BlockEndToken,
                )
            ):
                stack.pop()
            elif top.ctx is _Ctx.value and kind is not yaml.ValueToken and kind not in _PROPERTIES:
                if stack[-2].ctx is not _Ctx.key:
                    raise _Unexpected
                del stack[-2:]
            elif top.ctx is _Ctx.key and nxt is not None and nxt.kind in _ENDS_VALUE:
                stack.pop()  # a key without a value (a set entry)
            else:
                break
            if not stack:
                raise _Unexpected


# ---- directives


def _comments(text: str, tokens: list[_Tok]) -> Iterator[tuple[int, int, str, bool]]:
    """(line, column, comment text, inline) for comments between tokens, 1-based."""
    for idx, tok in enumerate(tokens):
        nxt = tokens[idx + 1] if idx + 1 < len(tokens) else None
        if nxt is not None and tok.end_line == nxt.line and tok.kind is not yaml.StreamStartToken:
            continue
        stop = len(text) if nxt is None else nxt.start
        chunk = text[tok.end : stop]
        line, col, offset = tok.end_line + 1, tok.end_col + 1, tok.end
        for piece in chunk.split("\n"):
            pos = piece.find("#")
            if pos != -1:
                comment = piece[pos:]
                line_start = text.rfind("\n", 0, offset + pos) + 1
                inline = text[line_start : offset + pos].strip() != ""
                yield line, col + pos, comment.rstrip("\r"), inline
            offset += len(piece) + 1
            line += 1
            col = 1


def _disabled_lines(
    text: str, tokens: list[_Tok], total_lines: int
) -> dict[int, frozenset[str] | None]:
    """Per line, the rules turned off there (None: all of them)."""
    events: dict[int, list[tuple[str, bool, frozenset[str]]]] = {}
    for line, _col, comment, inline in _comments(text, tokens):
        match = _DIRECTIVE.match(comment)
        if match is None:
            continue
        rules = frozenset(item[5:] for item in match.group(2).split())
        events.setdefault(line, []).append((match.group(1), inline, rules))
    result: dict[int, frozenset[str] | None] = {}
    current: frozenset[str] | None = frozenset()
    next_line: frozenset[str] | None = frozenset()
    for line in range(1, total_lines + 1):
        this_line: frozenset[str] | None = next_line
        next_line = frozenset()
        for verb, inline, rules in events.get(line, []):
            if verb == "disable":
                if not rules:
                    current = None
                elif current is not None:
                    current = current | rules
            elif verb == "enable":
                if not rules:
                    current = frozenset()
                elif current is not None:
                    current = current - rules
            elif inline:
                this_line = None if not rules or this_line is None else this_line | rules
            else:
                next_line = rules if rules else None
        if current is None or this_line is None:
            result[line] = None
        elif current or this_line:
            result[line] = current | this_line
    return result


# ---- entry point


def lint(text: str, *, syntax_error: bool = False) -> list[Finding]:
    """The relaxed-config yamllint findings for ``text``, without syntax errors and duplicate
    keys (the loader reports those). With ``syntax_error``, the first problem at or after the
    syntax error is left out, as yamllint replaces it by the syntax error."""
    first_line = text.split("\n", 1)[0]
    if _DISABLE_FILE.match(first_line):
        return []
    problems = list(_line_problems(text))
    tokens, judged = _tokens(text)
    indentation = _Indentation(text)
    indentation_ok = True
    count = len(tokens)
    for idx in range(judged):
        tok = tokens[idx]
        if tok.kind in _SPACING_KINDS:
            problems.extend(_spacing(text, tokens, idx))
        if indentation_ok:
            prev = tokens[idx - 1] if idx > 0 else None
            nxt = tokens[idx + 1] if idx + 1 < count else None
            after = tokens[idx + 2] if idx + 2 < count else None
            try:
                problems.extend(indentation.check(tok, prev, nxt, after))
            except (_Unexpected, IndexError):
                problems.append(
                    ("indentation", tok.line + 1, tok.col + 1, "lint/indentation-unknown", {})
                )
                indentation_ok = False
    if "yamllint" in text:
        problems = _apply_directives(problems, _disabled_lines(text, tokens, text.count("\n") + 1))
    problems.sort(key=lambda p: (p[1], p[2]))
    if syntax_error:
        where = syntax_error_position(text)
        if where is not None:
            for idx, problem in enumerate(problems):
                if where[0] <= problem[1] and where[1] <= problem[2]:
                    del problems[idx]
                    break
    return [make(msg, line, col, kind=rule, **values) for rule, line, col, msg, values in problems]


def _apply_directives(
    problems: list[Problem], disabled: dict[int, frozenset[str] | None]
) -> list[Problem]:
    kept = []
    for problem in problems:
        if problem[1] in disabled:
            rules = disabled[problem[1]]
            if rules is None or problem[0] in rules:
                continue
        kept.append(problem)
    return kept
