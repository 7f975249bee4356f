"""The dashboard in headless Chromium, against the seeded `labbot serve`:

- every page loads without console errors or failed requests (its live part refreshes once
  too), with a full-page screenshot of each under test-artifacts/screenshots/pages/;
- the /pulls and /jobs filter forms narrow the rows, links keep the filters, bad values are
  told, not failed on;
- live updates: a job changed in the database shows on /jobs and on its page without a reload,
  and its log tail follows its log file;
- the maintainers' actions through a real GitHub sign-in (the simulator's OAuth web flow):
  retry, cancel, redeliver for a maintainer; nothing for an outsider or an anonymous browser.

Rows the tests change are their own (inserted by the fixtures here), never the seeded ones the
other tests look at.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect
from sqlalchemy import Engine, delete, func, insert, select, update

from app.db.models import Delivery, DeliveryStatus, Job, JobKind, JobState, PullRequest
from bots import messages
from tests.browser.conftest import Dashboard, GitHubSignIn, PageProblems, sign_in
from tests.seed import PullRef

LIVE_TIMEOUT_MS = 8_000  # live.js refreshes every 2 s (the overview every 3 s)
NO_SUCH_JOB = 987_654_321
LINKS_PER_SHAPE = 4  # links of the same shape checked on a page
Screenshot = Callable[..., Path]


def now() -> datetime:
    return datetime.now(UTC)


def cells(rows: Locator, column: int) -> list[str]:
    """The text of one column (1-based) of table rows."""
    return [text.strip() for text in rows.locator(f"td:nth-child({column})").all_inner_texts()]


def refresh_live_parts(page: Page) -> None:
    """Has live.js refresh every live element now (it does so when the tab comes back)."""
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")


# --- 1. every page --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageCase:
    path: str
    heading: str | re.Pattern[str]
    status: int = 200
    shows: tuple[str, ...] = ()  # CSS selectors of what must be visible
    heading_at: str = "main h2"


@pytest.fixture(scope="session")
def bench_pull(dashboard: Dashboard, dashboard_http: httpx.Client) -> PullRef:
    """A pull request whose page has triage findings and PR-bench results."""
    for pull in dashboard.seeded.pulls:
        text = dashboard_http.get(pull.path).text
        if 'class="findings"' in text and 'id="bench"' in text:
            return pull
    pytest.fail("the seed has no pull request with both findings and bench results")


@pytest.fixture(scope="session")
def page_cases(dashboard: Dashboard, bench_pull: PullRef) -> dict[str, PageCase]:
    seeded = dashboard.seeded
    return {
        "overview": PageCase(
            "/", "Queues", shows=("#queues", "#workers", "#running"), heading_at="main h3"
        ),
        "pulls": PageCase("/pulls", "Pull requests", shows=("table.pulls",)),
        "pull-with-findings-and-bench": PageCase(
            bench_pull.path,
            f"{bench_pull.repo}#{bench_pull.number}: {bench_pull.title}",
            shows=("table.findings", "#bench table.bench-files", "#bench table.bench-mmlu"),
        ),
        "jobs": PageCase("/jobs", "Jobs", shows=("#jobs table.jobs", ".pager a[rel=next]")),
        "job-running": PageCase(
            f"/jobs/{seeded.job(JobKind.sdg, JobState.running)}",
            re.compile(r"^Job \d+: sdg\s+for instructlab-demo/"),
            shows=("#job-state .s-running", "#job-state .bar", "pre.log"),
        ),
        "job-failed": PageCase(
            f"/jobs/{seeded.job(JobKind.train, JobState.failed)}",
            re.compile(r"^Job \d+: train\s+for instructlab-demo/"),
            shows=("#job-state .s-failed", "pre.log"),
        ),
        "builds": PageCase("/builds", "Builds", shows=("table.builds", "figure.trend svg circle")),
        "build-succeeded": PageCase(
            f"/builds/{seeded.build('succeeded').id}",
            f"Build {seeded.build('succeeded').name}",
            shows=("table.scores", "table.build-pulls"),
        ),
        "deliveries": PageCase("/deliveries", "Webhook deliveries", shows=("table.deliveries",)),
        "help": PageCase("/help", re.compile("."), shows=("code",)),
        "not-found": PageCase(f"/jobs/{NO_SUCH_JOB}", "Not found", status=404),
    }


PAGE_NAMES = (
    "overview",
    "pulls",
    "pull-with-findings-and-bench",
    "jobs",
    "job-running",
    "job-failed",
    "builds",
    "build-succeeded",
    "deliveries",
    "help",
    "not-found",
)


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_page_loads_cleanly(
    name: str,
    page: Page,
    page_cases: dict[str, PageCase],
    page_problems: PageProblems,
    screenshot: Screenshot,
    dashboard_http: httpx.Client,
    checked_links: dict[str, int],
) -> None:
    case = page_cases[name]
    if case.status == 404:  # the answer, and Chromium's console line about it
        page_problems.allow(rf"\b404\b.*{re.escape(case.path)}\b")
    response = page.goto(case.path)
    assert response is not None
    assert response.status == case.status, f"{case.path}: HTTP {response.status}"
    expect(page).to_have_title(re.compile("labbot"))
    expect(page.locator(case.heading_at).first).to_have_text(case.heading)
    for selector in case.shows:
        expect(page.locator(selector).first).to_be_visible()
    expect(page.get_by_role("link", name=messages.DASHBOARD_SIGN_IN)).to_be_visible()
    live = page.locator("[data-live]")
    if live.count():
        # Its live part refreshes from its fragment without an error.
        with page.expect_response(lambda r: "/fragments/" in r.url) as fragment:
            refresh_live_parts(page)
        assert fragment.value.status == 200
        expect(page.locator("[data-live-stale]")).to_have_count(0)
    page_problems.check()
    assert screenshot(page, f"pages/{name}").stat().st_size > 0
    dead = dead_links(page, dashboard_http, checked_links)
    assert not dead, f"{case.path} links to pages that fail: {dead}"


def dead_links(page: Page, http: httpx.Client, checked: dict[str, int]) -> dict[str, int]:
    """The page's links to this dashboard that answer an error (each URL asked once a run)."""
    origin = str(http.base_url).rstrip("/")
    hrefs: list[str] = page.eval_on_selector_all(
        "a[href]",  # SVG links too (their .href is no string)
        "links => links.map(a => new URL(a.getAttribute('href'), document.baseURI).href)",
    )
    dead = {}
    shapes: dict[str, int] = {}
    for href in sorted({h.split("#")[0] for h in hrefs if h.startswith(origin + "/")}):
        # A few links of each shape (/jobs/N, /pulls/o/r/N, ...): the rest are made alike.
        shape = re.sub(r"\d+", "N", href)
        shapes[shape] = shapes.get(shape, 0) + 1
        if shapes[shape] > LINKS_PER_SHAPE:
            continue
        if href not in checked:
            checked[href] = http.get(href).status_code
        if checked[href] >= 400:
            dead[href.removeprefix(origin)] = checked[href]
    return dead


@pytest.fixture(scope="session")
def checked_links() -> dict[str, int]:
    return {}


@pytest.mark.parametrize("state", ["succeeded", "failed"])
def test_build_page_links_only_artifacts_that_exist(
    state: str, page: Page, dashboard: Dashboard, dashboard_http: httpx.Client
) -> None:
    page.goto(f"/builds/{dashboard.seeded.build(state).id}")
    expect(page.locator("ul.artifacts")).to_be_visible()
    assert dead_links(page, dashboard_http, {}) == {}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/pulls/instructlab-demo/taxonomy/99999", messages.PULL_NOT_FOUND),
        (f"/builds/{NO_SUCH_JOB}", messages.BUILD_NOT_FOUND),
    ],
)
def test_missing_rows_answer_the_404_page(
    path: str, message: str, page: Page, page_problems: PageProblems
) -> None:
    page_problems.allow(rf"\b404\b.*{re.escape(path)}\b")
    response = page.goto(path)
    assert response is not None
    assert response.status == 404
    expect(page.locator("main h2")).to_have_text("Not found")
    expect(page.locator("main")).to_contain_text(message)
    expect(page.locator("main").get_by_role("link", name="Jobs")).to_be_visible()


@pytest.mark.parametrize("path", ["/no-such-page", "/jobs/not-a-number"])
def test_unknown_paths_answer_the_404_page(
    path: str, page: Page, page_problems: PageProblems
) -> None:
    page_problems.allow(rf"\b404\b.*{re.escape(path)}\b")
    response = page.goto(path)
    assert response is not None
    assert response.status == 404
    expect(page.locator("main h2")).to_have_text("Not found", timeout=1_000)


# --- 2. filters --------------------------------------------------------------------------------


def submit_filters(page: Page) -> None:
    with page.expect_navigation():
        page.locator("form.filters").get_by_role("button", name="Filter").click()


def test_pull_filters_narrow_the_rows_and_links_keep_them(
    page: Page, dashboard: Dashboard, screenshot: Screenshot
) -> None:
    pulls = dashboard.seeded.pulls
    rows = page.locator("table.pulls tr:has(td)")
    form = page.locator("form.filters")

    page.goto("/pulls")  # open ones by default
    opened = {f"{p.repo}#{p.number}" for p in pulls if p.state == "open"}
    expect(rows).to_have_count(len(opened))
    assert {text.split()[0] for text in cells(rows, 1)} == opened

    form.locator("select[name=state]").select_option("all")
    form.locator("select[name=kind]").select_option("knowledge")
    submit_filters(page)
    knowledge = [p for p in pulls if p.kind == "knowledge"]
    expect(rows).to_have_count(len(knowledge))
    assert set(cells(rows, 3)) == {"knowledge"}
    assert "state=all" in page.url
    assert "kind=knowledge" in page.url
    screenshot(page, "pages/pulls-filtered")

    # An author link in a row keeps the state and kind, and adds the author.
    authors: dict[str, int] = {}
    for p in knowledge:
        authors[p.author] = authors.get(p.author, 0) + 1
    author = max(authors, key=lambda a: (authors[a], a))
    with page.expect_navigation():
        rows.locator("td:nth-child(2)").get_by_role("link", name=author, exact=True).first.click()
    expect(rows).to_have_count(authors[author])
    assert set(cells(rows, 2)) == {author}
    assert set(cells(rows, 3)) == {"knowledge"}
    expect(form.locator("select[name=state]")).to_have_value("all")
    expect(form.locator("select[name=kind]")).to_have_value("knowledge")
    expect(form.locator("input[name=author]")).to_have_value(author)

    # Typing another author and submitting, as a person would.
    others = [p for p in pulls if p.author != author and p.kind == "skill"]
    other = others[0].author
    form.locator("select[name=kind]").select_option("skill")
    form.locator("input[name=author]").fill(other)
    submit_filters(page)
    expected = [p for p in pulls if p.author == other and p.kind == "skill"]
    expect(rows).to_have_count(len(expected))
    assert set(cells(rows, 2)) == {other}

    # A label badge keeps the other filters too.
    label = "needs-ok-to-test"
    page.goto("/pulls?state=all")
    with page.expect_navigation():
        rows.get_by_role("link", name=label, exact=True).first.click()
    labelled = [p for p in pulls if label in p.labels]
    expect(rows).to_have_count(len(labelled))
    for row in rows.all():
        assert label in row.locator("td:nth-child(5) a.badge").all_inner_texts()
    assert "state=all" in page.url
    assert f"label={label}" in page.url
    expect(form.locator("input[name=label]")).to_have_value(label)

    # Nothing matching is said so.
    form.locator("input[name=author]").fill("nobody-at-all")
    submit_filters(page)
    expect(rows).to_have_count(0)
    expect(page.get_by_text(messages.DASHBOARD_NO_MATCHING_PULLS)).to_be_visible()


def count_jobs(db: Engine, *where: Any) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count(Job.id)).where(*where)).scalar_one())


def test_job_filters_narrow_the_rows_and_pages_keep_them(
    page: Page, dashboard: Dashboard, dashboard_db: Engine, screenshot: Screenshot
) -> None:
    rows = page.locator("#jobs table.jobs tr:has(td)")
    form = page.locator("form.filters")
    pager = page.locator("#jobs .pager")

    page.goto("/jobs")
    form.locator("select[name=state]").select_option("failed")
    form.locator("select[name=kind]").select_option("triage")
    submit_filters(page)
    failed_triage = count_jobs(
        dashboard_db, Job.state == JobState.failed, Job.kind == JobKind.triage
    )
    assert failed_triage > 1
    expect(rows).to_have_count(failed_triage)
    assert set(cells(rows, 2)) == {"triage"}
    assert set(cells(rows, 3)) == {"failed"}
    expect(pager).to_contain_text(f"1–{failed_triage} of {failed_triage}")
    screenshot(page, "pages/jobs-filtered")
    # The live refresh keeps the filters too.
    with page.expect_response(lambda r: "/fragments/jobs?" in r.url) as fragment:
        refresh_live_parts(page)
    assert "state=failed" in fragment.value.url
    assert "kind=triage" in fragment.value.url
    expect(rows).to_have_count(failed_triage)
    assert set(cells(rows, 3)) == {"failed"}

    # More than a page: "older" keeps the filter, and so does "newer".
    page.get_by_role("link", name="clear").click()
    page.wait_for_url(lambda url: url.endswith("/jobs"))
    form.locator("select[name=state]").select_option("succeeded")
    submit_filters(page)
    succeeded = count_jobs(dashboard_db, Job.state == JobState.succeeded)
    assert succeeded > 50
    expect(pager).to_contain_text(f"1–50 of {succeeded}")
    with page.expect_navigation():
        pager.get_by_role("link", name=re.compile("older")).click()
    assert "state=succeeded" in page.url
    assert "page=2" in page.url
    expect(pager).to_contain_text(f"51–{min(100, succeeded)} of {succeeded}")
    assert set(cells(rows, 3)) == {"succeeded"}
    expect(form.locator("select[name=state]")).to_have_value("succeeded")
    with page.expect_navigation():
        pager.get_by_role("link", name=re.compile("newer")).click()
    assert "state=succeeded" in page.url
    assert "page=2" not in page.url
    expect(pager).to_contain_text(f"1–50 of {succeeded}")

    # The repository, an author typed in, and a time: queued since a day ago.
    staging = "instructlab-demo/taxonomy-staging"
    author = next(p.author for p in dashboard.seeded.pulls if p.repo == staging)
    pulls_of_author = {f"{p.repo}#{p.number}" for p in dashboard.seeded.pulls if p.author == author}
    page.goto("/jobs")
    form.locator("select[name=repository]").select_option(staging)
    form.locator("input[name=author]").fill(author)
    submit_filters(page)
    expect(rows.first).to_be_visible()
    for requested_by, pull in zip(cells(rows, 6), cells(rows, 4), strict=True):
        assert requested_by == author or pull.split()[0] in pulls_of_author, (requested_by, pull)
        assert pull.startswith(f"{staging}#")

    since = (now() - timedelta(days=1)).replace(microsecond=0, tzinfo=None)
    page.goto("/jobs")
    form.locator("input[name=since]").fill(since.strftime("%Y-%m-%dT%H:%M:%S"))
    submit_filters(page)
    recent = count_jobs(dashboard_db, Job.queued_at >= since.replace(tzinfo=UTC))
    assert 0 < recent
    expect(pager).to_contain_text(f"of {recent}")
    for queued in cells(rows, 7):
        assert queued >= since.strftime("%Y-%m-%d %H:%M:%S"), queued
    expect(form.locator("input[name=since]")).to_have_value(since.strftime("%Y-%m-%dT%H:%M:%S"))


def test_bad_filter_values_show_a_message_not_an_error(page: Page) -> None:
    notices = page.locator("main p.notice")

    response = page.goto("/jobs?state=bogus&since=last-tuesday&page=x")
    assert response is not None
    assert response.status == 200
    states = ", ".join(s.value for s in JobState)
    expect(notices).to_have_text(
        [
            messages.DASHBOARD_FILTER_UNKNOWN.format(name="state", value="bogus", choices=states),
            messages.DASHBOARD_FILTER_BAD_TIME.format(name="since", value="last-tuesday"),
            messages.DASHBOARD_FILTER_BAD_PAGE.format(value="x"),
        ]
    )
    expect(page.locator("#jobs table.jobs tr:has(td)")).to_have_count(50)  # unfiltered

    # Typed into the form: an author far too long.
    page.locator("form.filters input[name=author]").fill("x" * 250)
    submit_filters(page)
    expect(notices).to_have_text([messages.DASHBOARD_FILTER_TOO_LONG.format(name="author")])

    response = page.goto("/pulls?kind=weird")
    assert response is not None
    assert response.status == 200
    expect(notices).to_have_text(
        [
            messages.DASHBOARD_FILTER_UNKNOWN.format(
                name="kind", value="weird", choices="knowledge, skill, mixed, none"
            )
        ]
    )
    expect(page.locator("table.pulls")).to_be_visible()


# --- rows of the tests' own ----------------------------------------------------------------------


@dataclass(frozen=True)
class PullIds:
    id: int
    repository_id: int
    head_sha: str


def open_pull(db: Engine, without_active: JobKind | None = None) -> PullIds:
    """An open, ready pull request; with ``without_active``, one with no active job of that
    kind at its head (a retry there makes a new job)."""
    with db.connect() as conn:
        query = select(PullRequest.id, PullRequest.repository_id, PullRequest.head_sha).where(
            PullRequest.state == "open", PullRequest.draft.is_(False)
        )
        if without_active is not None:
            active = select(Job.id).where(
                Job.pull_request_id == PullRequest.id,
                Job.head_sha == PullRequest.head_sha,
                Job.kind == without_active,
                Job.state.in_([JobState.queued, JobState.running]),
            )
            query = query.where(~active.exists())
        row = conn.execute(query.order_by(PullRequest.id)).first()
    if row is None:
        pytest.fail(f"no open pull request without an active {without_active} job")
    return PullIds(row.id, row.repository_id, row.head_sha)


def add_job(db: Engine, pull: PullIds, kind: JobKind, state: JobState, **values: Any) -> int:
    at = now()
    row: dict[str, Any] = {
        "kind": kind,
        "state": state,
        "repository_id": pull.repository_id,
        "pull_request_id": pull.id,
        # A commit of its own unless given: no clash with the seeded active jobs.
        "head_sha": uuid.uuid4().hex + uuid.uuid4().hex[:8],
        "requested_by": "browser-tests",
        "trigger": f"command:{kind.value}",
        "attempts": 0,
        "progress": {},
        "queued_at": at,
        "published_at": at,
        "updated_at": at,
        **values,
    }
    with db.begin() as conn:
        return int(conn.execute(insert(Job).values(**row).returning(Job.id)).scalar_one())


def job_state(db: Engine, job_id: int) -> tuple[JobState, str | None]:
    with db.connect() as conn:
        row = conn.execute(select(Job.state, Job.error).where(Job.id == job_id)).one()
    return JobState(row.state), row.error


# --- 3. live updates -----------------------------------------------------------------------------


def test_jobs_list_and_job_page_follow_the_database_live(
    page: Page,
    context: BrowserContext,
    page_problems: PageProblems,
    dashboard: Dashboard,
    dashboard_db: Engine,
    screenshot: Screenshot,
) -> None:
    pull = open_pull(dashboard_db)
    job_id = add_job(dashboard_db, pull, JobKind.sdg, JobState.queued)
    folder = dashboard.artifacts_dir / "jobs" / str(job_id)
    folder.mkdir(parents=True)
    log = folder / "job.log"
    log.write_text(f"{now():%Y-%m-%dT%H:%M:%SZ} INFO job {job_id} (sdg) queued\n")
    with dashboard_db.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(log_path=str(log), artifacts_path=str(folder))
        )

    page.goto("/jobs")
    row = page.locator("#jobs tr").filter(has=page.locator(f'a[href="/jobs/{job_id}"]'))
    detail = context.new_page()
    page_problems.watch(detail)
    detail.goto(f"/jobs/{job_id}")
    state = detail.locator("#job-state th:text-is('State') + td")
    expect(row.locator("td").nth(2)).to_have_text("queued")
    expect(state).to_have_text("queued")
    expect(detail.locator("pre.log")).to_contain_text("queued")

    # queued -> running, with progress, and a line more in its log
    started = now()
    with dashboard_db.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=JobState.running,
                attempts=1,
                worker="labbot-sdg@gpu-h100-1",
                started_at=started,
                heartbeat_at=started,
                progress={"stage": "generating knowledge", "percent": 42},
                updated_at=started,
            )
        )
    appended = f"{now():%Y-%m-%dT%H:%M:%SZ} INFO stage: generating knowledge (step 120 of 400)"
    with log.open("a") as handle:
        handle.write(appended + "\n")
    expect(row.locator("td").nth(2)).to_have_text("running", timeout=LIVE_TIMEOUT_MS)
    expect(row.locator("td").nth(9)).to_have_text(
        "generating knowledge: 42%", timeout=LIVE_TIMEOUT_MS
    )
    expect(row.locator("td:nth-child(10) .bar > span")).to_have_attribute(
        "style", re.compile(r"width: 42%")
    )
    expect(state).to_have_text("running", timeout=LIVE_TIMEOUT_MS)
    expect(detail.locator("#job-state th:text-is('Progress') + td")).to_have_text(
        "generating knowledge: 42%"
    )
    expect(detail.locator("#job-state th:text-is('Worker') + td")).to_have_text(
        "labbot-sdg@gpu-h100-1"
    )
    # The log tail follows the file.
    expect(detail.locator("pre.log")).to_contain_text(appended, timeout=LIVE_TIMEOUT_MS)
    screenshot(detail, "live/job-running")

    # running -> succeeded
    finished = now()
    with dashboard_db.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state=JobState.succeeded, finished_at=finished, updated_at=finished)
        )
    with log.open("a") as handle:
        handle.write(f"{finished:%Y-%m-%dT%H:%M:%SZ} INFO job {job_id} succeeded\n")
    expect(row.locator("td").nth(2)).to_have_text("succeeded", timeout=LIVE_TIMEOUT_MS)
    expect(state).to_have_text("succeeded", timeout=LIVE_TIMEOUT_MS)
    expect(detail.locator("#job-state th:text-is('Finished') + td")).to_contain_text(
        f"{finished:%Y-%m-%d}"
    )
    expect(detail.locator("pre.log")).to_contain_text(f"job {job_id} succeeded")
    # A finished job's page stops refreshing.
    expect(detail.locator("#job-live[data-live]")).to_have_count(0)
    expect(page.locator("[data-live-stale]")).to_have_count(0)
    screenshot(page, "live/jobs-after")
    screenshot(detail, "live/job-succeeded")


# --- 4. the maintainers' actions ----------------------------------------------------------------


@dataclass(frozen=True)
class ActionRows:
    failed_job: int  # a failed triage job at its open PR's head: retry makes a new job
    queued_job: int  # a queued precheck job
    failed_delivery: str  # guid


@pytest.fixture
def action_rows(dashboard_db: Engine) -> Iterator[ActionRows]:
    pull = open_pull(dashboard_db, without_active=JobKind.triage)
    failed = add_job(
        dashboard_db,
        pull,
        JobKind.triage,
        JobState.failed,
        head_sha=pull.head_sha,
        trigger="event:pull_request",
        attempts=1,
        queued_at=now() - timedelta(seconds=6),
        started_at=now() - timedelta(seconds=5),
        finished_at=now() - timedelta(seconds=3),
        error=messages.JOB_CRASHED.format(error="GitHub answered 502 Bad Gateway"),
    )
    queued = add_job(dashboard_db, open_pull(dashboard_db), JobKind.precheck, JobState.queued)
    guid = str(uuid.uuid4())
    received = now() - timedelta(minutes=2)
    with dashboard_db.begin() as conn:
        conn.execute(
            insert(Delivery).values(
                guid=guid,
                event="issue_comment",
                action="created",
                repository="instructlab-demo/taxonomy",
                status=DeliveryStatus.failed,
                attempts=1,
                error="GitHubError: 502 Bad Gateway on POST /repos/instructlab-demo/taxonomy/...",
                body=b'{"action": "created", "comment": {"body": "/lab help"}}',
                received_at=received,
                updated_at=received,
                started_at=received,
                finished_at=received,
                handler_seconds=0.2,
            )
        )
    yield ActionRows(failed, queued, guid)
    # Retries made new queued jobs: none stays active for the next test's pull request.
    with dashboard_db.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.trigger == "dashboard:retry", Job.state == JobState.queued)
            .values(state=JobState.cancelled, finished_at=now())
        )
        conn.execute(delete(Delivery).where(Delivery.guid == guid))


def snapshot(db: Engine, rows: ActionRows) -> dict[str, Any]:
    with db.connect() as conn:
        jobs = conn.execute(select(Job.id, Job.state, Job.error, Job.cancel_requested_at)).all()
        delivery = conn.execute(
            select(Delivery.status, Delivery.attempts, Delivery.updated_at).where(
                Delivery.guid == rows.failed_delivery
            )
        ).one()
    return {"jobs": sorted(tuple(j) for j in jobs), "delivery": tuple(delivery)}


def flash(page: Page) -> Locator:
    return page.locator("header .flash")


def test_maintainer_signs_in_then_retries_cancels_and_redelivers(
    page: Page,
    github_sign_in: GitHubSignIn,
    action_rows: ActionRows,
    dashboard_db: Engine,
    screenshot: Screenshot,
) -> None:
    failed, queued = action_rows.failed_job, action_rows.queued_job
    retry = page.get_by_role("button", name=messages.DASHBOARD_RETRY, exact=True)
    cancel = page.get_by_role("button", name=messages.DASHBOARD_CANCEL, exact=True)

    page.goto(f"/jobs/{failed}")
    expect(retry).to_have_count(0)  # nobody signed in
    maintainer = github_sign_in.maintainer
    sign_in(page, github_sign_in, maintainer, chooser="pages/login-chooser")
    expect(flash(page)).to_have_text(
        messages.DASHBOARD_SIGNED_IN_MAINTAINER.format(login=maintainer)
    )
    expect(page.locator("header .session .badge")).to_have_text(messages.DASHBOARD_MAINTAINER_BADGE)

    # Retry the failed job: a new queued job, asked for by the maintainer.
    expect(cancel).to_have_count(0)
    with page.expect_navigation():
        retry.click()
    expect(flash(page)).to_have_text(re.compile(rf"^Job {failed} was retried as job \d+\.$"))
    new = int(re.findall(r"\d+", flash(page).inner_text())[-1])
    assert page.url.endswith(f"/jobs/{failed}")
    screenshot(page, "actions/job-retried")
    with dashboard_db.connect() as conn:
        made = conn.execute(
            select(Job.kind, Job.state, Job.requested_by, Job.trigger).where(Job.id == new)
        ).one()
    assert tuple(made) == (JobKind.triage, JobState.queued, maintainer, "dashboard:retry")
    assert job_state(dashboard_db, failed)[0] is JobState.failed
    page.goto(f"/jobs/{new}")
    expect(cancel).to_be_visible()
    expect(retry).to_have_count(0)

    # Cancel the queued job: it ends now.
    page.goto(f"/jobs/{queued}")
    expect(retry).to_have_count(0)
    with page.expect_navigation():
        cancel.click()
    expect(flash(page)).to_have_text(messages.ACTION_JOB_CANCELLED.format(job=queued))
    expect(page.locator("#job-state th:text-is('State') + td")).to_have_text("cancelled")
    expect(cancel).to_have_count(0)
    expect(retry).to_be_visible()  # a cancelled job can run again
    screenshot(page, "actions/job-cancelled")
    assert job_state(dashboard_db, queued) == (
        JobState.cancelled,
        messages.JOB_CANCELLED_ON_DASHBOARD.format(user=maintainer),
    )

    # Even a maintainer's POST without the session's CSRF token does nothing.
    before = snapshot(dashboard_db, action_rows)
    forged = page.request.post(
        f"/jobs/{new}/cancel", form={"csrf_token": "not-the-token"}, max_redirects=0
    )
    assert forged.status == 403
    assert snapshot(dashboard_db, action_rows) == before

    # Redeliver the failed delivery.
    guid = action_rows.failed_delivery
    page.goto("/deliveries?status=failed")
    row = page.locator("table.deliveries tr").filter(has_text=guid)
    expect(row.locator("td").nth(3)).to_have_text("failed")
    with page.expect_navigation():
        row.get_by_role("button", name=messages.DASHBOARD_REDELIVER).click()
    # Published at once, or (the broker slow to answer) left to the sweeper: both leave failed.
    done = (messages.ACTION_DELIVERY_REDELIVERED, messages.ACTION_DELIVERY_REDELIVER_LATER)
    expect(flash(page)).to_have_text(
        re.compile("|".join(re.escape(text.format(guid=guid)) for text in done))
    )
    assert page.url.endswith("/deliveries?status=failed")
    expect(row).to_have_count(0)  # no longer failed
    with dashboard_db.connect() as conn:
        status = conn.execute(select(Delivery.status).where(Delivery.guid == guid)).scalar_one()
    assert status in (DeliveryStatus.queued, DeliveryStatus.received)
    page.goto("/deliveries")
    expect(
        page.locator("table.deliveries tr").filter(has_text=guid).locator("td").nth(3)
    ).to_have_text(status.value)
    screenshot(page, "actions/delivery-redelivered")


def test_outsider_sees_no_buttons_and_forged_posts_are_refused(
    page: Page,
    github_sign_in: GitHubSignIn,
    action_rows: ActionRows,
    dashboard_db: Engine,
    page_problems: PageProblems,
    screenshot: Screenshot,
) -> None:
    outsider = github_sign_in.outsider
    page.goto(f"/jobs/{action_rows.queued_job}")
    sign_in(page, github_sign_in, outsider)
    expect(flash(page)).to_have_text(messages.DASHBOARD_SIGNED_IN.format(login=outsider))
    expect(page.locator("header .session .badge")).to_have_count(0)
    expect(page.get_by_role("button", name=messages.DASHBOARD_CANCEL)).to_have_count(0)
    page.goto(f"/jobs/{action_rows.failed_job}")
    expect(page.locator("#job-state .s-failed")).to_be_visible()
    expect(page.get_by_role("button", name=messages.DASHBOARD_RETRY)).to_have_count(0)
    page.goto("/deliveries?status=failed")
    expect(
        page.locator("table.deliveries tr").filter(has_text=action_rows.failed_delivery)
    ).to_have_count(1)
    expect(page.get_by_role("button", name=messages.DASHBOARD_REDELIVER)).to_have_count(0)

    session = page.request.get("/auth/session").json()
    assert (session["login"], session["maintainer"]) == (outsider, False)
    token = session["csrf_token"]
    assert token
    before = snapshot(dashboard_db, action_rows)
    for path in (
        f"/jobs/{action_rows.queued_job}/cancel",
        f"/jobs/{action_rows.failed_job}/retry",
        f"/deliveries/{action_rows.failed_delivery}/redeliver",
        "/builds/start",
    ):
        forged = page.request.post(
            path,
            form={"csrf_token": token, "repository": "instructlab-demo/taxonomy"},
            max_redirects=0,
        )
        assert forged.status == 403, (path, forged.status)
        assert messages.MAINTAINER_REQUIRED_TITLE in forged.text()
    assert snapshot(dashboard_db, action_rows) == before

    # The same form submitted from the page: the browser shows the refusal.
    # The refusal, and Chromium's console line about it.
    page_problems.allow(rf"\b403\b.*/jobs/{action_rows.queued_job}/cancel\b")
    page.goto(f"/jobs/{action_rows.queued_job}")
    with page.expect_navigation():
        page.evaluate(
            """([action, token]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                const field = document.createElement("input");
                field.type = "hidden";
                field.name = "csrf_token";
                field.value = token;
                form.appendChild(field);
                document.body.appendChild(form);
                form.submit();
            }""",
            [f"/jobs/{action_rows.queued_job}/cancel", token],
        )
    expect(page.locator("main h2")).to_have_text(messages.MAINTAINER_REQUIRED_TITLE)
    screenshot(page, "actions/outsider-refused")
    assert snapshot(dashboard_db, action_rows) == before


def test_anonymous_posts_are_refused(
    page: Page, action_rows: ActionRows, dashboard_db: Engine
) -> None:
    page.goto("/help")
    before = snapshot(dashboard_db, action_rows)
    for path in (
        f"/jobs/{action_rows.queued_job}/cancel",
        f"/jobs/{action_rows.failed_job}/retry",
        f"/deliveries/{action_rows.failed_delivery}/redeliver",
        "/builds/start",
    ):
        refused = page.request.post(path, form={"csrf_token": "guessed"}, max_redirects=0)
        assert refused.status == 303, (path, refused.status)
        assert refused.headers["location"].startswith("/login?next="), refused.headers
        # What a script fetches is told 401 rather than sent to sign in.
        fetched = page.request.post(
            path, form={"csrf_token": "guessed"}, headers={"Sec-Fetch-Mode": "cors"}
        )
        assert fetched.status == 401, (path, fetched.status)
    assert snapshot(dashboard_db, action_rows) == before
