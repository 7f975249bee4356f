"""Every user-facing text of the triage engine: finding messages and hints, the blocking sentence,
the CLI's words. Templates are ours; values are user text and are substituted, never parsed, so a
``%`` or ``{}`` in a contributor's file cannot break (or inject into) a message.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

ERROR: Literal["error"] = "error"
WARNING: Literal["warning"] = "warning"


@dataclass(frozen=True)
class Entry:
    rule: str
    severity: Literal["error", "warning"]
    message: str
    hint: str


def _e(rule: str, severity: Literal["error", "warning"], message: str, hint: str) -> Entry:
    return Entry(rule, severity, message, hint)


ALLOWED_ROOTS_TEXT = "compositional_skills/ or knowledge/"

# Keyed by message id; several ids may share one rule id (variants of one check).
CATALOG: dict[str, Entry] = {
    # --- layout -------------------------------------------------------------------------------
    "layout/filename": _e(
        "layout/filename",
        ERROR,
        'Taxonomy files must be named "qna.yaml"; "{name}" is not a valid name',
        "Rename the file to qna.yaml (lower case, .yaml, nothing before or after) and keep one "
        "qna.yaml per taxonomy folder.",
    ),
    "layout/filename-attribution": _e(
        "layout/filename",
        ERROR,
        'Attribution files must be named "attribution.txt"; "{name}" is not a valid name',
        "Rename the file to attribution.txt and keep it in the same folder as qna.yaml.",
    ),
    "layout/filename-junk": _e(
        "layout/filename",
        ERROR,
        '"{name}" is not a taxonomy file: a taxonomy folder holds only qna.yaml and '
        "attribution.txt",
        "Remove the file from the pull request (editors and file managers create it; add it to "
        "your global .gitignore).",
    ),
    "layout/root": _e(
        "layout/root",
        ERROR,
        'Taxonomy files must sit under {roots}; "{path}" does not',
        "Move the folder under compositional_skills/ (skills) or knowledge/ (knowledge), following "
        "the taxonomy path of your contribution.",
    ),
    "layout/root-refused": _e(
        "layout/root",
        ERROR,
        'New contributions under "{root}/" are not accepted',
        "Contribute a compositional skill under compositional_skills/ or knowledge under "
        "knowledge/ instead.",
    ),
    "layout/unexpected-generated": _e(
        "layout/unexpected-file",
        ERROR,
        'Generated data "{name}" does not belong in a taxonomy pull request',
        "Remove generated files (train_*.jsonl, test_*.jsonl, ...); the bot generates data itself.",
    ),
    "layout/unexpected-code": _e(
        "layout/unexpected-file",
        ERROR,
        'Code or build file "{name}" does not belong in a taxonomy pull request',
        "Remove it from the pull request; contributions only add qna.yaml and attribution.txt.",
    ),
    "layout/unexpected-binary": _e(
        "layout/unexpected-file",
        ERROR,
        'Binary or model file "{name}" does not belong in a taxonomy pull request',
        "Remove it; knowledge documents live in a separate GitHub repository referenced from "
        "qna.yaml (document.repo).",
    ),
    "layout/unexpected-file": _e(
        "layout/unexpected-file",
        ERROR,
        'Unexpected file "{name}": a taxonomy folder holds only qna.yaml and attribution.txt',
        "Remove it from the pull request; knowledge documents go in a separate GitHub repository "
        "referenced from qna.yaml.",
    ),
    "layout/outside-taxonomy": _e(
        "layout/outside-taxonomy",
        WARNING,
        '"{path}" is outside the taxonomy; a maintainer needs to review this change',
        "If this is not intended, remove the change; contributions only touch "
        "compositional_skills/ or knowledge/.",
    ),
    "layout/path-style": _e(
        "layout/path-style",
        WARNING,
        'Folder name "{segment}" is not lower_snake_case',
        "Use lower case letters, digits and underscores in taxonomy folder names, e.g. "
        '"{suggestion}".',
    ),
    "layout/symlink": _e(
        "layout/symlink",
        ERROR,
        '"{path}" is a symbolic link; links are refused and never followed',
        "Replace the link with a regular file, or remove it from the pull request.",
    ),
    "layout/submodule": _e(
        "layout/submodule",
        ERROR,
        '"{path}" is a git submodule; submodules are refused',
        "Remove the submodule (git rm --cached PATH); reference knowledge documents through "
        "document.repo and document.commit in qna.yaml.",
    ),
    "layout/file-too-large": _e(
        "layout/file-too-large",
        ERROR,
        "File is {size} bytes, over the limit of {limit} bytes; it was not read",
        "Keep seed examples short and few (a handful per file); split very large contributions.",
    ),
    "layout/pr-too-large": _e(
        "layout/pr-too-large",
        ERROR,
        "The pull request's files add up to more than {limit} bytes; this file was not read",
        "Split the contribution into smaller pull requests.",
    ),
    "layout/too-many-files": _e(
        "layout/too-many-files",
        ERROR,
        "The pull request changes {count} files, over the limit of {limit}; this file was not "
        "checked",
        "Split the contribution into smaller pull requests (one taxonomy leaf per PR is best).",
    ),
    "layout/unreadable": _e(
        "layout/unreadable",
        ERROR,
        "The content of this file could not be read",
        "Check that the file is a regular text file committed to the pull request's branch.",
    ),
    # --- YAML loading ---------------------------------------------------------------------------
    "yaml/encoding": _e(
        "yaml/encoding",
        ERROR,
        "File is not valid UTF-8 (byte 0x{byte} cannot be decoded)",
        "Save the file as UTF-8 (without other encodings such as Latin-1 or UTF-16).",
    ),
    "yaml/encoding-utf16": _e(
        "yaml/encoding",
        ERROR,
        "File is encoded as {encoding}; only UTF-8 is accepted",
        "Save the file as UTF-8.",
    ),
    "yaml/bom": _e(
        "yaml/bom",
        WARNING,
        "File starts with a UTF-8 byte-order mark; it was ignored",
        "Save the file as UTF-8 without BOM.",
    ),
    "yaml/control-char": _e(
        "yaml/syntax",
        ERROR,
        "File contains the control character {char}, which YAML does not allow",
        "Remove the character (it is often pasted invisibly from a word processor).",
    ),
    "yaml/syntax": _e(
        "yaml/syntax",
        ERROR,
        "YAML syntax error: {problem}",
        "{hint}",
    ),
    "yaml/tag": _e(
        "yaml/tag",
        ERROR,
        'The YAML tag "{tag}" is not allowed; nothing was executed',
        "Remove the tag: qna.yaml holds plain strings, numbers, lists and mappings only.",
    ),
    "yaml/duplicate-key": _e(
        "yaml/duplicate-key",
        ERROR,
        'Duplicate key "{key}" (first at line {first_line}); YAML loaders silently keep only the '
        "last one",
        "Keep one {key} in this mapping; if it starts a new seed example, add the missing '- ' "
        "before it.",
    ),
    "yaml/complex-key": _e(
        "yaml/complex-key",
        ERROR,
        "A mapping key must be a plain value, not a list or a mapping",
        "Use a plain word as the key (for example question or answer).",
    ),
    "yaml/alias-limit": _e(
        "yaml/alias-limit",
        ERROR,
        "Anchors and aliases expand to more than {limit} values; the file was refused",
        "Write the values out instead of nesting aliases (a nested alias expansion is a "
        '"billion laughs" attack pattern).',
    ),
    "yaml/recursive-alias": _e(
        "yaml/alias-limit",
        ERROR,
        "An alias refers to a value that contains it (recursive anchor)",
        "Remove the recursive alias.",
    ),
    "yaml/too-deep": _e(
        "yaml/too-deep",
        ERROR,
        "Values are nested more than {limit} levels deep; the file was refused",
        "qna.yaml needs only a few levels of nesting; flatten the structure.",
    ),
    "yaml/empty": _e(
        "yaml/empty",
        ERROR,
        "The file is empty",
        "Fill in the qna.yaml template (version, created_by, task_description or domain, "
        "seed_examples).",
    ),
    "yaml/not-mapping": _e(
        "yaml/not-mapping",
        ERROR,
        "The top level must be a mapping of keys to values, not {found}",
        "Start the file with keys such as version: 3 and created_by: YOUR_GITHUB_NAME.",
    ),
    # --- yamllint-equivalent rules ({extends: relaxed, rules: {line-length: disable}}) -----------
    "lint/trailing-spaces": _e(
        "lint/trailing-spaces",
        ERROR,
        "trailing spaces",
        "Remove the spaces or tabs at the end of the line (most editors can trim them on save).",
    ),
    "lint/new-line-at-end-of-file": _e(
        "lint/new-line-at-end-of-file",
        ERROR,
        "no new line character at the end of file",
        "End the last line with a newline.",
    ),
    "lint/new-lines": _e(
        "lint/new-lines",
        ERROR,
        "wrong new line character: expected \\n",
        "Save the file with Unix line endings (LF), not Windows ones (CRLF).",
    ),
    "lint/empty-lines": _e(
        "lint/empty-lines",
        WARNING,
        "too many blank lines ({found} > {allowed})",
        "Remove the extra blank lines.",
    ),
    "lint/indentation": _e(
        "lint/indentation",
        WARNING,
        "wrong indentation: expected {expected} but found {found}",
        "Indent nested items by the same number of spaces throughout the file (2 is usual).",
    ),
    "lint/indentation-at-least": _e(
        "lint/indentation",
        WARNING,
        "wrong indentation: expected at least {expected}",
        "Indent nested items by the same number of spaces throughout the file (2 is usual).",
    ),
    "lint/indentation-unknown": _e(
        "lint/indentation",
        WARNING,
        "cannot infer indentation: unexpected token",
        "Indent nested items by the same number of spaces throughout the file (2 is usual).",
    ),
    "lint/spacing": _e(
        "lint/{kind}",
        WARNING,
        "{description}",
        "Use one space after ':', ',' and '-', none before them, and at most one inside brackets.",
    ),
    # --- schema ---------------------------------------------------------------------------------
    "schema/version": _e(
        "schema/version",
        ERROR,
        "Unsupported version {version}; supported versions are {supported}",
        "Use version: 3 (the current taxonomy format).",
    ),
    "schema/version-type": _e(
        "schema/version",
        ERROR,
        "version must be a whole number such as 3, not {found}",
        "Write version: 3 without quotes.",
    ),
    "schema/knowledge-version": _e(
        "schema/knowledge-version",
        ERROR,
        "Version {version} is not supported for knowledge; knowledge requires version 3",
        "Convert the file to the version 3 knowledge format (document_outline, seed_examples with "
        "context and questions_and_answers, document).",
    ),
    "schema/required": _e(
        "schema/required",
        ERROR,
        '{where} is missing the required field "{field}"',
        'Add "{field}:" with a value.',
    ),
    "schema/unknown-field": _e(
        "schema/unknown-field",
        ERROR,
        'Unknown field "{field}" in {where}',
        "{suggestion}",
    ),
    "schema/type": _e(
        "schema/type",
        ERROR,
        "{where} must be {expected}, not {found}",
        "{hint}",
    ),
    "schema/empty": _e(
        "schema/empty",
        ERROR,
        "{where} must not be empty",
        "Fill in a value.",
    ),
    "schema/min-items": _e(
        "schema/min-items",
        ERROR,
        "{where} must have at least {minimum} items, found {found}",
        "Add more entries.",
    ),
    "schema/duplicate-item": _e(
        "schema/duplicate-item",
        ERROR,
        "{where} contains the same entry twice",
        "Remove or change the repeated entry.",
    ),
    "schema/invalid": _e(
        "schema/invalid",
        ERROR,
        "{where}: {problem}",
        "Compare the file with the qna.yaml template for this version.",
    ),
    # --- examples policy ------------------------------------------------------------------------
    "examples/too-few": _e(
        "examples/too-few",
        ERROR,
        "A skill needs at least {minimum} seed examples; this one has {found}",
        "Add seed examples until there are at least {minimum}, each with a question and an answer.",
    ),
    "examples/too-few-contexts": _e(
        "examples/too-few",
        ERROR,
        "Knowledge needs at least {minimum} seed examples (contexts); this one has {found}",
        "Add contexts from your document, each with its questions and answers.",
    ),
    "examples/too-few-qna": _e(
        "examples/too-few",
        ERROR,
        "Each knowledge context needs at least {minimum} questions and answers; this one has "
        "{found}",
        "Add questions and answers about this context.",
    ),
    "examples/empty": _e(
        "examples/empty",
        ERROR,
        '{where} is empty or a placeholder ("{value}")',
        "Write a real {field}.",
    ),
    "examples/duplicate-example": _e(
        "examples/duplicate",
        WARNING,
        "This question and answer repeat the example at line {first_line}",
        "Remove the copy or write a different example; repeats add nothing to data generation.",
    ),
    "examples/duplicate-answer": _e(
        "examples/duplicate",
        WARNING,
        "This answer repeats the one at line {first_line}",
        "Check that the answer belongs to this question.",
    ),
    "examples/too-long": _e(
        "examples/too-long",
        WARNING,
        "{where} is {length} characters long; data generation may reject it (limit {limit})",
        "Shorten it; seed examples work best when they are concise.",
    ),
    # --- attribution ----------------------------------------------------------------------------
    "attribution/missing": _e(
        "attribution/missing",
        ERROR,
        "Version {version} needs an attribution.txt beside qna.yaml; none was found",
        "Add attribution.txt in the same folder with Title of work, Link to work, Revision, "
        "License of the work and Creator names.",
    ),
    "attribution/empty": _e(
        "attribution/missing",
        ERROR,
        "attribution.txt beside qna.yaml is empty",
        "Fill in Title of work, Link to work, Revision, License of the work and Creator names.",
    ),
    "attribution/missing-field": _e(
        "attribution/field",
        ERROR,
        'attribution.txt has no "{field}" line',
        'Add a line "{field}: ..."',
    ),
    "attribution/empty-field": _e(
        "attribution/field",
        ERROR,
        '"{field}" is empty',
        "Fill in the {field}.",
    ),
    "attribution/license": _e(
        "attribution/license",
        ERROR,
        'License "{license}" is not accepted; accepted licences: {allowed}',
        "Contribute only content under one of the accepted licences and give its SPDX id "
        "(for example CC-BY-SA-4.0).",
    ),
    "attribution/link": _e(
        "attribution/link",
        WARNING,
        'Link to work "{link}" is not a web address',
        "Give the https:// address where the work can be found.",
    ),
    # --- knowledge document reference -----------------------------------------------------------
    "document/repo": _e(
        "document/repo",
        ERROR,
        'document.repo "{repo}" is not an https://github.com/OWNER/REPO address',
        "Put the document in a public GitHub repository and give its https://github.com/... URL "
        "(no ssh, http, credentials or other hosts).",
    ),
    "document/commit": _e(
        "document/commit",
        ERROR,
        'document.commit "{commit}" is not a full 40-character commit SHA',
        "Give the full commit SHA (git rev-parse HEAD in the document repository), not a branch, "
        "tag, HEAD or short SHA.",
    ),
    "document/pattern": _e(
        "document/pattern",
        ERROR,
        'document.patterns entry "{pattern}" {problem}',
        "Use paths relative to the repository root, such as docs/*.md.",
    ),
    "document/no-patterns": _e(
        "document/pattern",
        ERROR,
        "document.patterns must list at least one file pattern",
        "Add the path of the document in the repository, such as docs/my_topic.md.",
    ),
    # --- PII ------------------------------------------------------------------------------------
    "pii/found": _e(
        "pii/{entity}",
        WARNING,
        "Possible {label} ({masked}) in {where}",
        "Remove personal data from seed examples, or replace it with a documentation value "
        "({example}).",
    ),
    # --- content --------------------------------------------------------------------------------
    "content/avoid-topic": _e(
        "content/avoid-topic",
        WARNING,
        '{where} mentions "{topic}", which is on this repository\'s list of topics to avoid',
        "Check the contribution guidelines; remove the topic or ask a triager.",
    ),
    "content/llm-output": _e(
        "content/llm-output",
        WARNING,
        '{where} reads like pasted chatbot output ("{phrase}")',
        "Write the answer yourself, in the voice the model should learn, without assistant "
        "boilerplate.",
    ),
    # --- repository configuration ---------------------------------------------------------------
    "config/invalid": _e(
        "config/invalid",
        ERROR,
        "labbot configuration: {problem}",
        "Fix .github/labbot.yml; until then labbot uses its defaults.",
    ),
    # --- the engine itself ----------------------------------------------------------------------
    "internal/error": _e(
        "internal/error",
        ERROR,
        "labbot could not check this file (internal error {error})",
        "Ask a maintainer to look at labbot's logs; other files were checked.",
    ),
}

# Pieces used by several checks.
SENTENCE_NOTHING_BLOCKS = "Nothing blocks this pull request: every file passed the checks."
SENTENCE_NO_FILES = "Nothing blocks this pull request: it changes no file labbot checks."

PII_LABELS: dict[str, tuple[str, str]] = {
    "EMAIL_ADDRESS": ("e-mail address", "someone@example.com"),
    "PHONE_NUMBER": ("phone number", "555-0100 to 555-0199"),
    "CREDIT_CARD": ("credit card number", "a made-up number that fails the Luhn check"),
    "US_SSN": ("US social security number", "a made-up number"),
    "IBAN_CODE": ("IBAN", "a made-up number"),
    "IP_ADDRESS": ("IP address", "192.0.2.x, 198.51.100.x, 203.0.113.x or 2001:db8::"),
    "STREET_ADDRESS": ("street address", "a made-up address"),
}

SYNTAX_HINTS: dict[str, str] = {
    "block scalar": "After | or > only an indentation digit or +/- may follow; put the text on the "
    "next lines, indented.",
    "simple key": "Put a space after the colon in key: value, and quote values that contain "
    "': ' or start with a special character.",
    "mapping values": "Quote the value (it contains ': '), or put a space after the colon of the "
    "key.",
    "quoted scalar": "Close the quotes, or escape the quote character inside the text.",
    "block mapping": "Check the indentation: keys of one mapping must start in the same column.",
    "block collection": "Check the indentation: each '- ' item of a list starts in the same "
    "column.",
    "undefined alias": "Define the anchor (&name) before using the alias (*name).",
    "tab": "Replace the tab by spaces: YAML does not allow tabs for indentation or here.",
}
SYNTAX_HINT_DEFAULT = "Check the YAML around this position (indentation, quotes, colons)."

TYPE_NAMES: dict[str, str] = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "array": "a list",
    "object": "a mapping",
    "boolean": "true or false",
    "null": "empty",
}
TYPE_HINT_BOOL = "YAML reads an unquoted {value} as true/false; put the text in quotes."
TYPE_HINT_NULL = "Give the field a value, or remove it if it is optional."
TYPE_HINT_NUMBER = "YAML reads an unquoted number as a number; put it in quotes."
TYPE_HINT_DEFAULT = "Compare the file with the qna.yaml template."
# How a value YAML read is named in "must be X, not Y".
FOUND_EMPTY = "empty"
FOUND_BOOL = "true/false"
FOUND_NUMBER = "a number"
FOUND_STRING = "a string"
FOUND_LIST = "a list"
FOUND_MAPPING = "a mapping"
FOUND_DATE = "a date"
FOUND_SCALAR = "a single value"
PROBLEM_DEFAULT = "invalid YAML"
PROBLEM_BAD_SCALAR = "cannot read {value} as {tag}"
PROBLEM_BAD_MERGE = "a merge key (<<) needs a mapping or a list of mappings"
CONFIG_NOT_MAPPING = "the file must be a mapping"
CONFIG_PER_VERSION = "expected a number or a mapping of version to number"
CONFIG_UNKNOWN_VERSION = "unknown version {key} (use default, 1, 2, 3)"
CONFIG_NEGATIVE = "minimums cannot be negative"
# yamllint's own descriptions, so the two read the same
LINT_BEFORE = "too many spaces before {what}"
LINT_AFTER_MANY = "too many spaces after {what}"
LINT_AFTER_FEW = "too few spaces after {what}"
LINT_INSIDE_MANY = "too many spaces inside {what}"
LINT_INSIDE_FEW = "too few spaces inside {what}"
LINT_EMPTY = "empty {what}"
UNKNOWN_FIELD_SUGGESTION = 'Did you mean "{suggestion}"? Allowed here: {allowed}.'
UNKNOWN_FIELD_ALLOWED = "Remove it; allowed here: {allowed}."
WHERE_TOP = "the file"
PATTERN_ABSOLUTE = "is absolute (starts with /)"
PATTERN_PARENT = "leaves the repository (contains ..)"
PATTERN_EMPTY = "is empty"
PATTERN_URL = "is a URL, not a path inside the repository"


def blocking_sentence(
    *, errors: int, files: int, path: str, line: int, message: str, hint: str
) -> str:
    first = clean(message, 160).rstrip(".")
    fix = clean(hint, 200).rstrip(".")
    plural_e = "error" if errors == 1 else "errors"
    plural_f = "file" if files == 1 else "files"
    more = "" if errors == 1 else f" (and {errors - 1} more)"
    return (
        f"{errors} {plural_e} in {files} {plural_f} block this pull request, first "
        f"{clean(path, 120)} line {line}: {first}{more}; to fix it: {fix}."
    )


# --- CLI
CLI_NO_FILES = "No taxonomy files to check."
CLI_SUMMARY = "{files} file(s) checked: {errors} error(s), {warnings} warning(s)."
CLI_NOT_A_GIT_CHECKOUT = "{root} is not a git checkout: {problem}"
CLI_GIT_FAILED = "git failed: {problem}"
CLI_BAD_CONFIG = "Cannot use --config {path}: {problem}"
CLI_PATH_OUTSIDE_ROOT = "{path} is not inside --root {root}"
CLI_PATH_MISSING = "{path} does not exist"
CLI_PATHS_AND_DIFF = "Give file paths or --diff-base, not both."
CLI_HINT = "    hint: {hint}"
CLI_LINE = "{path}:{line}:{column}: {severity} [{rule}] {message}"
CLI_HELP_ROOT = "Root of the taxonomy checkout; reported paths are relative to it."
CLI_HELP_DIFF = "Check the files changed against REF (git)."
CLI_HELP_FORMAT = "github prints workflow-command annotations."
CLI_HELP_CONFIG = "Repository configuration (default: ROOT/.github/labbot.yml when present)."
CLI_NO_GIT = "no .git"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean(value: object, limit: int = 80) -> str:
    """One line of user text, safe for any channel: no control or bidi characters, bounded."""
    text = (
        value if isinstance(value, str) else repr(value) if isinstance(value, bytes) else str(value)
    )
    text = _CONTROL.sub(" ", text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: max(1, limit - 1)].rstrip() + "…"
    return text


def char_name(char: str) -> str:
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    return f"{code} {name}".strip() if name else code


# Longer values where the value is our own text around a short user excerpt.
_LIMITS = {"hint": 240, "suggestion": 240, "problem": 200, "description": 120, "allowed": 200}


def render(message_id: str, /, **values: object) -> tuple[str, str]:
    """The message and hint of a catalogue entry with ``values`` substituted safely."""
    entry = CATALOG[message_id]
    safe = _SafeDict(
        {k: clean(v, 200 if k in ("hint", "suggestion") else 80) for k, v in values.items()}
    )
    return entry.message.format_map(safe), entry.hint.format_map(safe)


def rule_of(message_id: str, /, **values: object) -> str:
    return CATALOG[message_id].rule.format_map(_SafeDict({k: clean(v) for k, v in values.items()}))


class _SafeDict(dict[str, str]):
    # A placeholder a caller forgot renders visibly instead of raising inside a check.
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
