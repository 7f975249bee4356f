"""The dashboard opens in a real browser without errors, and the fixtures catch errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from bots.commands import COMMANDS
from tests.browser.conftest import Dashboard, PageProblems


def test_overview_loads_without_console_errors(
    page: Page, dashboard: Dashboard, screenshot: Callable[..., Path]
) -> None:
    response = page.goto("/")
    assert response is not None
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    expect(page).to_have_title(re.compile("labbot"))
    expect(page.get_by_role("link", name="Help")).to_be_visible()
    assert screenshot(page, "smoke/overview").stat().st_size > 0


def test_help_page_lists_the_commands(page: Page, screenshot: Callable[..., Path]) -> None:
    response = page.goto("/help")
    assert response is not None
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    for command in COMMANDS.values():
        expect(page.get_by_text(command.usage, exact=True).first).to_be_visible()
    assert screenshot(page, "smoke/help").stat().st_size > 0


def test_the_page_fixture_records_console_errors_and_failed_requests(
    page: Page, page_problems: PageProblems
) -> None:
    page.goto("/help")
    page.evaluate("console.error('a console error from the test')")
    page.evaluate("setTimeout(() => { throw new Error('an uncaught error from the test') })")
    status = page.evaluate("fetch('/no-such-page-for-the-test').then(r => r.status)")
    assert status == 404
    page.wait_for_timeout(200)  # the listeners run on the driver's side
    found = "\n".join(page_problems.unexpected())
    assert "console error: a console error from the test" in found
    assert "uncaught exception: an uncaught error from the test" in found
    assert re.search(r"HTTP 404: GET http://127\.0\.0\.1:\d+/no-such-page-for-the-test", found)
    page_problems.clear()  # these were on purpose: the test itself passes
