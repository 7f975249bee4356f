"""Safe YAML loading that remembers where every value came from.

libyaml (PyYAML's C parser) composes the node graph; our own constructor turns nodes into plain
Python values. Only the standard scalar, list and mapping tags are accepted, so nothing is ever
instantiated or executed; duplicate keys are reported instead of silently dropped; aliases are
counted before they are expanded, so a "billion laughs" file is refused in microseconds while a
merge key ``<<: *anchor`` still works; and a position map (path -> line, column) lets every later
check point at the offending node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from bots.triage import messages
from bots.triage.findings import Finding, make

Key = Any  # a constructed mapping key (str, int, bool, ...) or a list index
Path = tuple[Key, ...]
Position = tuple[int, int]

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(
    _TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_SEQ_TAG = _TAG + "seq"
_MAP_TAG = _TAG + "map"
_MERGE_TAG = _TAG + "merge"

# Characters the YAML reader refuses (YAML 1.1 "printable" set); found here first so the message
# can name the character and its position.
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
# libyaml recurses while composing: absurd nesting (a few kilobytes of "[[[[" or "- - - -") crashes
# the process or takes minutes, so it is refused before the parser sees it.
_LINE_INDICATORS = re.compile(r"^[ \t]*(?:[-?:][ \t]+)+", re.MULTILINE)
_BRACKETS = re.compile(r"[\[\]{}]")

_CONSTRUCTOR = SafeConstructor()

_UTF16_32_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Limits:
    max_nodes: int = 100_000
    max_depth: int = 64


@dataclass
class Loaded:
    """The outcome of loading one YAML file. ``data`` is None unless ``ok``."""

    text: str | None
    data: Any = None
    ok: bool = False
    empty: bool = False
    bom: bool = False
    findings: list[Finding] = field(default_factory=list)
    value_pos: dict[Path, Position] = field(default_factory=dict)
    key_pos: dict[Path, Position] = field(default_factory=dict)

    def position(self, path: Path, *, key: bool = False) -> Position:
        """Line and column of the node at ``path`` (its key with ``key=True``), else of the
        nearest ancestor that has one."""
        probe = tuple(path)
        while True:
            if key and probe in self.key_pos:
                return self.key_pos[probe]
            if probe in self.value_pos:
                return self.value_pos[probe]
            if probe in self.key_pos:
                return self.key_pos[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]


class _Refused(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def line_col(text: str, index: int) -> Position:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, index) + 1
    start = text.rfind("\n", 0, index) + 1
    return line, index - start + 1


def decode(content: bytes) -> tuple[str | None, bool, list[Finding]]:
    """UTF-8 text (BOM tolerated), whether a BOM was there, and the findings."""
    for bom, name in _UTF16_32_BOMS:
        if content.startswith(bom):
            return None, False, [make("yaml/encoding-utf16", 1, 1, encoding=name)]
    has_bom = content.startswith(_UTF8_BOM)
    raw = content[len(_UTF8_BOM) :] if has_bom else content
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        bad = raw[exc.start : exc.start + 1].hex().upper()
        return None, has_bom, [make("yaml/encoding", line, col, byte=bad)]
    findings = [make("yaml/bom", 1, 1)] if has_bom else []
    return text, has_bom, findings


def _syntax_finding(exc: yaml.YAMLError, text: str) -> Finding:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        line, col = mark.line + 1, mark.column + 1
        problem = exc.problem or messages.PROBLEM_DEFAULT
        if exc.context:
            problem = f"{exc.context}: {problem}"
    elif isinstance(exc, yaml.reader.ReaderError):
        line, col = line_col(text, exc.position)
        problem = exc.reason
    else:
        line, col, problem = 1, 1, messages.PROBLEM_DEFAULT
    lowered = problem.lower()
    hint = messages.SYNTAX_HINT_DEFAULT
    lines = text.split("\n", line)
    at = lines[line - 1][col - 1 : col] if len(lines) >= line else ""
    if at == "\t" or "'\\t'" in problem or "tab" in lowered:
        hint = messages.SYNTAX_HINTS["tab"]
    else:
        for needle, text_hint in messages.SYNTAX_HINTS.items():
            if needle in lowered:
                hint = text_hint
                break
    return make("yaml/syntax", line, col, problem=problem, hint=hint)


def _precheck(text: str, limits: Limits) -> Finding | None:
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        line, col = line_col(text, bad.start())
        return make("yaml/control-char", line, col, char=messages.char_name(bad.group()))
    depth = deepest = 0
    # Counts brackets inside strings too: only absurd files reach the limit.
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif depth:
            depth -= 1
    if deepest > limits.max_depth:
        return make("yaml/too-deep", 1, 1, limit=limits.max_depth)
    for match in _LINE_INDICATORS.finditer(text):
        if len(match.group()) > 2 * limits.max_depth:
            indicators = sum(1 for char in match.group() if char in "-?:")
            if indicators > limits.max_depth:
                line, col = line_col(text, match.start())
                return make("yaml/too-deep", line, col, limit=limits.max_depth)
    return None


def load_yaml(content: bytes, limits: Limits | None = None) -> Loaded:
    """Decode and load one YAML document; never raises for bad input."""
    limits = limits or Limits()
    text, bom, findings = decode(content)
    loaded = Loaded(text=text, bom=bom, findings=findings)
    if text is None:
        return loaded
    refused = _precheck(text, limits)
    if refused is not None:
        loaded.findings.append(refused)
        return loaded
    # libyaml and PyYAML's own parser (the one upstream's yaml.safe_load uses) disagree about
    # tabs: libyaml refuses one starting block scalar text, PyYAML one after a plain value.
    # Where tabs occur PyYAML decides, so verdicts stay upstream's; elsewhere libyaml is faster.
    loader_cls: type[yaml.CSafeLoader] | type[yaml.SafeLoader] = (
        yaml.SafeLoader if "\t" in text else yaml.CSafeLoader
    )
    try:
        root = _compose(loader_cls, text)
    except yaml.YAMLError as exc:
        loaded.findings.append(_syntax_finding(exc, text))
        return loaded
    except RecursionError:
        loaded.findings.append(make("yaml/too-deep", 1, 1, limit=limits.max_depth))
        return loaded
    if root is None:
        loaded.empty = True
        return loaded
    builder = _Builder(loaded, limits)
    try:
        if "&" in text:  # without anchors there are no aliases to expand
            builder.measure(root, 0, set())
        loaded.data = builder.build(root, ())
    except _Refused as refusal:
        loaded.findings.append(refusal.finding)
        loaded.data = None
        return loaded
    loaded.ok = not builder.fatal
    if not loaded.ok:
        loaded.data = None
    return loaded


def _compose(loader_cls: type[yaml.CSafeLoader] | type[yaml.SafeLoader], text: str) -> Any:
    loader = loader_cls(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _pos(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, loaded: Loaded, limits: Limits) -> None:
        self.loaded = loaded
        self.limits = limits
        self.sizes: dict[int, int] = {}
        self.fatal = False

    def measure(self, node: yaml.Node, depth: int, active: set[int]) -> int:
        """Expanded size of ``node`` (aliases counted each time they are used), memoised so a
        bomb is measured in time linear in the distinct nodes."""
        ident = id(node)
        known = self.sizes.get(ident)
        if known is not None:
            return known
        if depth > self.limits.max_depth:
            raise _Refused(make("yaml/too-deep", *_pos(node), limit=self.limits.max_depth))
        if ident in active:
            raise _Refused(make("yaml/recursive-alias", *_pos(node)))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            active.add(ident)
            for child in node.value:
                total += self.measure(child, depth + 1, active)
                if total > self.limits.max_nodes:
                    break
            active.discard(ident)
        elif isinstance(node, yaml.MappingNode):
            active.add(ident)
            for key_node, value_node in node.value:
                total += self.measure(key_node, depth + 1, active)
                total += self.measure(value_node, depth + 1, active)
                if total > self.limits.max_nodes:
                    break
            active.discard(ident)
        if total > self.limits.max_nodes:
            raise _Refused(make("yaml/alias-limit", *_pos(node), limit=self.limits.max_nodes))
        self.sizes[ident] = total
        return total

    def _record(self, path: Path, node: yaml.Node) -> None:
        self.loaded.value_pos.setdefault(path, _pos(node))

    def _tag_error(self, node: yaml.Node) -> None:
        self.loaded.findings.append(make("yaml/tag", *_pos(node), tag=node.tag))
        self.fatal = True

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self._tag_error(node)
            return None
        try:
            return _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, node)
        except (yaml.YAMLError, ValueError, OverflowError):
            # e.g. an explicit !!int on text that is no number, or a bad timestamp
            self.loaded.findings.append(
                make(
                    "yaml/syntax",
                    *_pos(node),
                    problem=messages.PROBLEM_BAD_SCALAR.format(
                        value=repr(node.value), tag=node.tag.rsplit(":", 1)[-1]
                    ),
                    hint=messages.SYNTAX_HINT_DEFAULT,
                )
            )
            self.fatal = True
            return None

    def build(self, node: yaml.Node, path: Path) -> Any:
        if len(path) > self.limits.max_depth:
            raise _Refused(make("yaml/too-deep", *_pos(node), limit=self.limits.max_depth))
        self._record(path, node)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._tag_error(node)
                return None
            return [self.build(child, (*path, index)) for index, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                self._tag_error(node)
                return None
            return self._build_mapping(node, path, merging=False)
        return None

    def _build_mapping(
        self, node: yaml.MappingNode, path: Path, *, merging: bool
    ) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_seen: dict[str, int] = {}
        sources: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources.extend(self._merge_sources(value_node))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._add(make("yaml/complex-key", *_pos(key_node)))
                self.fatal = True
                continue
            key = self._scalar(key_node)
            line, col = _pos(key_node)
            raw = key_node.value
            first = first_seen.get(raw)
            if first is None and _hashable(key) and key in result:
                first = self.loaded.key_pos.get((*path, key), (line, col))[0]
            if first is not None:
                self._add(make("yaml/duplicate-key", line, col, key=raw, first_line=first))
            first_seen.setdefault(raw, line)
            if not _hashable(key):
                continue
            child_path = (*path, key)
            if merging:
                self.loaded.key_pos.setdefault(child_path, (line, col))
            else:
                self.loaded.key_pos[child_path] = (line, col)
                self.loaded.value_pos.pop(child_path, None)
            result[key] = self.build(value_node, child_path)
        # Explicit keys win over merged ones; earlier merge sources win over later ones.
        for source in sources:
            for key, value in self._build_mapping(source, path, merging=True).items():
                result.setdefault(key, value)
        return result

    def _add(self, finding: Finding) -> None:
        # A merged anchor is walked once per use: report each problem once.
        if finding not in self.loaded.findings:
            self.loaded.findings.append(finding)

    def _merge_sources(self, value_node: yaml.Node) -> list[yaml.MappingNode]:
        if isinstance(value_node, yaml.MappingNode):
            return [value_node]
        if isinstance(value_node, yaml.SequenceNode) and all(
            isinstance(item, yaml.MappingNode) for item in value_node.value
        ):
            return [item for item in value_node.value if isinstance(item, yaml.MappingNode)]
        self._add(
            make(
                "yaml/syntax",
                *_pos(value_node),
                problem=messages.PROBLEM_BAD_MERGE,
                hint=messages.SYNTAX_HINT_DEFAULT,
            )
        )
        self.fatal = True
        return []


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
