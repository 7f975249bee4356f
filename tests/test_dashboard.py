"""Dashboard pages served by the API process."""

from __future__ import annotations

import html
from typing import Any

from bots.commands import COMMANDS, help_text, label_rows
from bots.triage.config import LabelNames


def test_help_page_lists_every_command_and_label_from_the_registry(client: Any) -> None:
    page = client.get("/help")
    assert page.status_code == 200
    text = html.unescape(page.text)
    for command in COMMANDS.values():
        assert command.usage in text
        assert command.description in text
    for label, meaning in label_rows(LabelNames()):
        assert label in text
        assert meaning in text


def test_help_reply_uses_the_repository_label_names() -> None:
    renamed = LabelNames(build_ready="ready-for-training")
    assert "`ready-for-training`" in help_text(renamed)
    assert "`community-build-ready`" not in help_text(renamed)
