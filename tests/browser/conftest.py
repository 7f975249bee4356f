"""Fixtures for the dashboard's browser tests.

- ``dashboard`` (session): a fresh PostgreSQL database, migrated and seeded small by
  tests/seed.py (``dashboard.seeded`` has the ids, PR numbers and guids), and a real
  `labbot serve` process on a free port in front of it. The sweeper is held off so the seeded
  rows stay as seeded. Extra settings: override ``dashboard_env`` (session scope).
- ``browser`` (session): headless Chromium, Debian's /usr/bin/chromium (or
  LABBOT_TEST_CHROMIUM) launched by Playwright; a missing binary fails the tests with what to
  do (scripts/test installs it), never a skip.
- ``context`` / ``page``: a fresh browser context per test with ``base_url`` set, so
  ``page.goto("/pulls")`` works. ``page_problems`` records console errors, uncaught page
  errors, failed requests and HTTP responses >= 400 while the test runs; the test fails at
  teardown when there were any (``page_problems.allow(regex)`` for the ones a test causes on
  purpose, ``page_problems.check()`` to fail earlier).
- ``screenshot(page, name)`` (a function here and a fixture): a full-page PNG at
  test-artifacts/screenshots/<name>.png in the repository (kept after the run; "/" in the name
  makes folders). A failed test's page is saved under screenshots/failures/.
- ``dashboard_http``: an httpx client on the server, for the JSON API.
- ``dashboard_db`` (session): a SQLAlchemy engine on the dashboard's database, for tests that
  change rows behind the server's back (live updates) or check what an action did.
- Sign-in: the server's GitHub is the in-process simulator (``github_sim``, session), with an
  OAuth app and a maintainers' team set up by the ``github_sign_in`` fixture (``MAINTAINER`` is
  in ``MAINTAINERS_TEAM``, ``OUTSIDER`` only in the organization). ``sign_in(page, github,
  login)`` goes through the web flow as a person does: the header's "Sign in with GitHub" link,
  then the simulator's "Sign in as <login>" button.
- The broker is a Redis database of the browser tests' own (``BROWSER_REDIS_URL``, emptied at
  the end): what the maintainers' actions publish never reaches other tests' workers.

Every test under tests/browser gets the ``browser`` marker (``-m "not browser"`` leaves them
out).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Response,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import Engine, create_engine

from app.cli import die_with_parent
from app.db.migrate import upgrade
from app.simulator.admin_client import SimulatorAdmin
from bots import messages
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    REPO_ROOT,
    Process,
    backend_env,
    free_port,
    wait_http_ok,
)
from tests.fixtures.simulator import RunningSimulator
from tests.seed import ORG, Seeded, create_database, drop_database, seed

HERE = Path(__file__).resolve().parent
CHROMIUM = Path(os.environ.get("LABBOT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
SEED_PULLS, SEED_JOBS, SEED_BUILDS = 30, 200, 5  # plus one build job per build
VIEWPORT = {"width": 1280, "height": 800}
DEFAULT_TIMEOUT_MS = 10_000
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
# A Redis database no other test uses (the rest use /15, the benchmarks /11 to /14).
BROWSER_REDIS_URL = os.environ.get("LABBOT_TEST_BROWSER_REDIS", "redis://127.0.0.1:6379/10")

# GitHub sign-in on the simulator.
OAUTH_CLIENT_ID = "Iv1.browsertests0001"
OAUTH_CLIENT_SECRET = "browser-tests-oauth-client-secret-9d2e41"
SESSION_SECRET = "browser-tests-session-secret-" + "5a" * 20
MAINTAINERS_TEAM = "taxonomy-maintainers"
MAINTAINER = "mia-maintainer"  # a member of ORG/MAINTAINERS_TEAM
OUTSIDER = "otto-outsider"  # a member of ORG, not of the team


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps each phase's report on the item: the page fixture saves a screenshot on failure."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


# --- the server -------------------------------------------------------------------------------


@dataclass
class Dashboard:
    base_url: str
    database_url: str
    artifacts_dir: Path
    env: dict[str, str]
    seeded: Seeded
    process: Process

    def url(self, path: str = "/") -> str:
        return f"{self.base_url}{path}"

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's output (tracebacks of 500s land there)."""
        return self.process.output()[-chars:]


@pytest.fixture(scope="session")
def dashboard_env(github_sim: RunningSimulator) -> dict[str, str]:
    """Settings added to the dashboard server's environment (override with session scope).
    By default: GitHub is the simulator, with sign-in through its OAuth web flow."""
    return {
        "LABBOT_GITHUB_API_URL": github_sim.api_url,
        "LABBOT_GITHUB_WEB_URL": github_sim.base_url,
        "LABBOT_GITHUB_OAUTH_CLIENT_ID": OAUTH_CLIENT_ID,
        "LABBOT_GITHUB_OAUTH_CLIENT_SECRET": OAUTH_CLIENT_SECRET,
        "LABBOT_SESSION_SECRET": SESSION_SECRET,
        "LABBOT_MAINTAINER_TEAMS": json.dumps([f"{ORG}/{MAINTAINERS_TEAM}"]),
    }


@pytest.fixture(scope="session")
def browser_broker_url() -> Iterator[str]:
    """The dashboard's broker: a Redis database of its own, emptied when the session ends."""
    client = redis.Redis.from_url(BROWSER_REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {BROWSER_REDIS_URL}: {exc}")
    try:
        yield BROWSER_REDIS_URL
    finally:
        try:
            client.flushdb()
        except redis.RedisError:
            pass
        client.close()


@pytest.fixture(scope="session")
def dashboard(
    tmp_path_factory: pytest.TempPathFactory,
    browser_broker_url: str,
    dashboard_env: dict[str, str],
) -> Iterator[Dashboard]:
    """A real `labbot serve` (PostgreSQL + Redis, one uvicorn process, no worker) on a database
    (and a broker) of its own, seeded with tests/seed.py (SEED_PULLS, SEED_JOBS, SEED_BUILDS)."""
    try:
        name, database_url = create_database(POSTGRES_ADMIN_URL, "labbot_browser")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {POSTGRES_ADMIN_URL}: {exc}")
    work = tmp_path_factory.mktemp("dashboard")
    artifacts = work / "artifacts"
    try:
        upgrade(database_url)
        seeded = seed(
            database_url,
            pulls=SEED_PULLS,
            jobs=SEED_JOBS,
            builds=SEED_BUILDS,
            artifacts_dir=artifacts,
        )
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **backend_env("postgres", database_url, browser_broker_url, work),
            "LABBOT_ARTIFACTS_DIR": str(artifacts),
            "LABBOT_PUBLIC_URL": base_url,
            # No housekeeping during the tests: the seeded queued and running jobs and the
            # deliveries still "received" stay as they are (nothing is published to Redis).
            "LABBOT_SWEEP_INTERVAL_SECONDS": "86400",
            "LABBOT_REDELIVER_INTERVAL_SECONDS": "0",
            **dashboard_env,
        }
        process = _start_api(["serve", "--port", str(port), "--no-worker"], env, work / "api.log")
        try:
            try:
                wait_http_ok(f"{base_url}/healthz", timeout=90, process=process)
            except AssertionError as exc:
                pytest.fail(f"labbot serve did not come up: {exc}\n{process.output()[-4000:]}")
            yield Dashboard(base_url, database_url, artifacts, env, seeded, process)
        finally:
            process.stop()
    finally:
        drop_database(POSTGRES_ADMIN_URL, name)


def _start_api(args: list[str], env: dict[str, str], log: Path) -> Process:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOT_")}
    full_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=full_env,
        cwd=REPO_ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
    )
    return Process(proc, log)


@pytest.fixture(scope="session")
def dashboard_http(dashboard: Dashboard) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard.base_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def dashboard_db(dashboard: Dashboard) -> Iterator[Engine]:
    """The dashboard's database, for changing rows behind the server's back."""
    engine = create_engine(dashboard.database_url, pool_size=2)
    yield engine
    engine.dispose()


# --- sign-in with GitHub (the simulator) ---------------------------------------------------------


@dataclass(frozen=True)
class GitHubSignIn:
    """The simulator the dashboard signs people in with."""

    admin: SimulatorAdmin
    web_url: str
    maintainer: str = MAINTAINER
    outsider: str = OUTSIDER


@pytest.fixture(scope="session")
def _simulator_admin(github_sim: RunningSimulator) -> Iterator[SimulatorAdmin]:
    admin = SimulatorAdmin(github_sim.base_url)
    admin.reset()
    yield admin
    admin.close()


@pytest.fixture
def github_sign_in(
    _simulator_admin: SimulatorAdmin,
    github_sim: RunningSimulator,
    dashboard: Dashboard,
    page_problems: PageProblems,
) -> GitHubSignIn:
    """The dashboard's OAuth app, a maintainer and an outsider on the simulator (set up again
    for each test: another test's ``sim`` fixture may have reset the simulator), and nobody
    signed in there, so its authorize page asks who you are."""
    # The simulator's authorize page names no icon: Chromium asks for /favicon.ico there.
    page_problems.allow(rf"\b404\b.*{re.escape(github_sim.base_url)}/favicon\.ico\b")
    admin = _simulator_admin
    admin.register_oauth_app(
        OAUTH_CLIENT_ID,
        OAUTH_CLIENT_SECRET,
        name="labbot dashboard",
        callback_url=dashboard.url("/auth/callback"),
    )
    admin.add_team_member(ORG, MAINTAINERS_TEAM, MAINTAINER)
    admin.add_org_member(ORG, OUTSIDER)
    admin.sign_in(None)
    return GitHubSignIn(admin, github_sim.base_url)


def sign_in(page: Page, github: GitHubSignIn, login: str, *, chooser: str | None = None) -> None:
    """Sign in from the page that is open, as a person does: the header's sign-in link, the
    simulator's "Sign in as <login>" button, back to the same page. ``chooser``: a screenshot
    name for the simulator's page."""
    back = page.url
    page.get_by_role("link", name=messages.DASHBOARD_SIGN_IN).click()
    page.wait_for_url(lambda url: url.startswith(f"{github.web_url}/login/oauth/authorize?"))
    button = page.get_by_role("button", name=f"Sign in as {login}", exact=True)
    expect(button).to_be_visible()
    if chooser:
        screenshot(page, chooser)
    button.click()
    page.wait_for_url(lambda url: url == back)
    expect(page.locator(".session-login")).to_have_text(login)


# --- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM}, which is missing. scripts/test "
            "(make test) installs Debian's package; by hand: apt-get install -y chromium. "
            "LABBOT_TEST_CHROMIUM may point at another Chromium binary."
        )
    try:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
    except PlaywrightError as exc:
        pytest.fail(f"Chromium at {CHROMIUM} did not start under Playwright: {exc}")
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, dashboard: Dashboard) -> Iterator[BrowserContext]:
    opened = browser.new_context(
        base_url=dashboard.base_url,
        viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]},
        locale="en-US",
        timezone_id="UTC",
        color_scheme="light",
    )
    opened.set_default_timeout(DEFAULT_TIMEOUT_MS)
    yield opened
    opened.close()


@dataclass
class PageProblems:
    """Console errors, uncaught exceptions, failed requests and HTTP errors seen in a page."""

    seen: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # console warnings: shown, not failed

    def allow(self, pattern: str) -> None:
        """Problems matching this regex (searched in the problem's text) are expected."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [p for p in self.seen if not any(a.search(p) for a in self.allowed)]

    def clear(self) -> None:
        self.seen.clear()

    def check(self) -> None:
        """Fails the test now if anything unexpected happened so far."""
        found = self.unexpected()
        if found:
            pytest.fail("the page had problems:\n  " + "\n  ".join(found), pytrace=False)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"uncaught exception: {error}"))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        where = message.location
        at = f" ({where.get('url')}:{where.get('lineNumber')})" if where.get("url") else ""
        if message.type in ("error", "assert"):
            self.seen.append(f"console {message.type}: {message.text}{at}")
        elif message.type == "warning":
            self.warnings.append(f"console warning: {message.text}{at}")

    def _request_failed(self, request: Request) -> None:
        self.seen.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            method = response.request.method
            self.seen.append(f"HTTP {response.status}: {method} {response.url}")


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(
    context: BrowserContext,
    page_problems: PageProblems,
    dashboard: Dashboard,
    request: pytest.FixtureRequest,
) -> Iterator[Page]:
    opened = context.new_page()
    page_problems.watch(opened)
    yield opened
    call = request.node.stash.get(REPORTS, {}).get("call")
    notes = list(page_problems.warnings)
    if call is not None and call.failed:
        try:
            notes.append(f"screenshot: {screenshot(opened, f'failures/{request.node.name}')}")
        except PlaywrightError as exc:
            notes.append(f"no screenshot: {exc}")
    if notes:
        request.node.add_report_section("teardown", "browser", "\n".join(notes))
    found = page_problems.unexpected()
    opened.close()
    if found and (call is None or call.passed):
        server = ""
        if any(p.startswith("HTTP 5") for p in found):
            server = f"\nserver log (tail):\n{dashboard.log_tail()}"
        pytest.fail("the page had problems:\n  " + "\n  ".join(found) + server, pytrace=False)


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Saves a PNG of the page at test-artifacts/screenshots/<name>.png and returns its path."""
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "-", part).strip("-.") for part in name.split("/")]
    relative = Path(*[part for part in parts if part] or ["page"])
    path = SCREENSHOTS / relative.with_name(f"{relative.name}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


@pytest.fixture(name="screenshot")
def screenshot_fixture() -> Callable[..., Path]:
    return screenshot
