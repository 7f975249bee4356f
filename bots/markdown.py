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
