"""Escaping for text that comes from a pull request and ends up in Markdown on GitHub: it must
not inject markup, links, HTML or @mentions into labbot's comments."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")


def escape(text: str) -> str:
    """Literal text inside Markdown: specials backslashed, mentions defused, one line."""
    text = " ".join(text.split())
    text = _SPECIAL.sub(r"\\\1", text)
    # A zero-width joiner after @ keeps the text readable but stops GitHub from notifying.
    return _MENTION.sub("@\u200d", text)


def code(text: str) -> str:
    """Inline code that cannot be broken out of (backticks inside are replaced)."""
    cleaned = " ".join(text.split()).replace("`", "'")
    return f"`{cleaned}`"


_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def escape_block(text: str, limit: int) -> tuple[str, bool]:
    """Text of any length and content for the inside of a ``<pre>`` block: cut to ``limit``
    characters (True when cut), HTML-escaped so it cannot close the block or open a tag, and
    mentions defused. Line breaks are kept."""
    cut = len(text) > limit
    if cut:
        text = text[:limit].rstrip() + " …"
    return _MENTION.sub("@\u200d", text.translate(_HTML)), cut


def table_code(text: str) -> str:
    """Inline code inside a Markdown table cell: a ``|`` would end the cell even in code."""
    return code(text).replace("|", "\\|")
