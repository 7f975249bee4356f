"""Dashboard sign-in through the GitHub simulator's OAuth web flow, sessions, CSRF, and the
maintainers' actions (retry, cancel, redeliver).

Most tests run labbot in-process (FastAPI's TestClient) on PostgreSQL and Redis, talking over
real HTTP to the simulator for the sign-in; the last one runs the real `labbot serve` and
`labbot worker` processes and signs in the way a browser does, following every redirect."""

from __future__ import annotations

import base64
import html
import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import get_settings
from app.db.models import (
    Build,
    Delivery,
    DeliveryStatus,
    Job,
    JobKind,
    JobState,
    PullRequest,
    Repository,
)
from app.db.session import session_scope
from app.jobs import record_worker
from app.simulator.admin_client import SimulatorAdmin
from bots import messages
from tests.conftest import (
    Backend,
    Labbot,
    delivery_status,
    wait_until,
    webhook_headers,
)

ORG = "acme"
TEAM = "taxonomy-maintainers"
REPO = "acme/taxonomy"
MAINTAINER = "mia"
OUTSIDER = "otto"  # a member of the organization, not of the maintainers' team
CLIENT_ID = "Iv1.dashboardtest01"
CLIENT_SECRET = "dashboard-oauth-client-secret-5c1f0a"
SESSION_SECRET = "dashboard-session-secret-" + "8e" * 20
PUBLIC_URL = "http://labbot.test"
CALLBACK = f"{PUBLIC_URL}/auth/callback"
HEAD = "a" * 40
NEW_HEAD = "b" * 40


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs of the simulator's authorize page, as a browser would submit them."""
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    return {name: html.unescape(value) for name, value in found}


def choose(sim: SimulatorAdmin, authorize_url: str, login: str) -> httpx.Response:
    """Open the simulator's authorize page and click "Sign in as <login>"."""
    with httpx.Client() as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        assert f'name="login" value="{login}"' in page.text
        return browser.post(
            f"{sim.base_url}/login/oauth/authorize",
            data={**hidden_fields(page.text), "login": login},
        )


def exchange(sim: SimulatorAdmin, **form: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{sim.base_url}/login/oauth/access_token",
        data=form,
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


# --- the simulator's web flow ----------------------------------------------------------------


def test_simulator_oauth_web_flow(sim: SimulatorAdmin) -> None:
    sim.register_oauth_app(CLIENT_ID, CLIENT_SECRET, callback_url=CALLBACK)
    sim.add_team_member(ORG, TEAM, MAINTAINER)
    sim.add_org_member(ORG, OUTSIDER)
    query = {"client_id": CLIENT_ID, "redirect_uri": CALLBACK, "state": "s1", "scope": "read:org"}
    authorize = f"{sim.base_url}/login/oauth/authorize?{urllib.parse.urlencode(query)}"

    # A redirect_uri off the registered callback goes back to the callback with GitHub's error.
    elsewhere = {**query, "redirect_uri": "http://evil.test/auth/callback"}
    mismatch = httpx.get(f"{sim.base_url}/login/oauth/authorize", params=elsewhere)
    assert mismatch.status_code == 302
    assert mismatch.headers["location"].startswith(f"{CALLBACK}?error=redirect_uri_mismatch")
    unknown = httpx.get(f"{sim.base_url}/login/oauth/authorize", params={"client_id": "nope"})
    assert unknown.status_code == 404

    # Cancelling on the page answers access_denied, with the state.
    with httpx.Client() as browser:
        page = browser.get(authorize)
        denied = browser.post(
            f"{sim.base_url}/login/oauth/authorize",
            data={**hidden_fields(page.text), "decision": "cancel"},
        )
    back = urllib.parse.parse_qs(urllib.parse.urlsplit(denied.headers["location"]).query)
    assert (back["error"], back["state"]) == (["access_denied"], ["s1"])

    chosen = choose(sim, authorize, MAINTAINER)
    assert chosen.status_code == 302
    location = urllib.parse.urlsplit(chosen.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    params = dict(urllib.parse.parse_qsl(location.query))
    assert params["state"] == "s1"
    code = params["code"]

    wrong_secret = exchange(sim, client_id=CLIENT_ID, client_secret="wrong", code=code)
    assert wrong_secret["error"] == "incorrect_client_credentials"
    assert "access_token" not in wrong_secret
    # Form-encoded unless JSON is asked for, as on github.com.
    plain = httpx.post(
        f"{sim.base_url}/login/oauth/access_token",
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code},
    )
    token = dict(urllib.parse.parse_qsl(plain.text))["access_token"]
    assert token.startswith("gho_")
    again = exchange(sim, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=code)
    assert again["error"] == "bad_verification_code"  # single use

    late = urllib.parse.parse_qs(
        urllib.parse.urlsplit(choose(sim, authorize, OUTSIDER).headers["location"]).query
    )["code"][0]
    assert sim.expire_oauth_codes() == 1
    expired = exchange(sim, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=late)
    assert expired["error"] == "bad_verification_code"

    # Someone signed in on the simulator: authorize redirects at once; a redirect_uri that is
    # not the one authorized is refused at the exchange.
    sim.sign_in(OUTSIDER)
    at_once = httpx.get(authorize)
    assert at_once.status_code == 302
    outsider_code = urllib.parse.parse_qs(urllib.parse.urlsplit(at_once.headers["location"]).query)
    other_uri = exchange(
        sim,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        code=outsider_code["code"][0],
        redirect_uri=f"{CALLBACK}/other",
    )
    assert other_uri["error"] == "redirect_uri_mismatch"

    # The token is the user's on the REST API (checked against GitHub's OpenAPI description).
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    with httpx.Client(base_url=sim.api_url, headers=auth) as api:
        assert api.get("/user").json()["login"] == MAINTAINER
        membership = api.get(f"/orgs/{ORG}/teams/{TEAM}/memberships/{MAINTAINER}")
        assert (membership.status_code, membership.json()["state"]) == (200, "active")
        assert api.get(f"/orgs/{ORG}/teams/{TEAM}/memberships/{OUTSIDER}").status_code == 404
        assert [t["slug"] for t in api.get("/user/teams").json()] == [TEAM]
    minted = [(t["login"], t["client_id"], t["scopes"]) for t in sim.oauth_tokens()]
    assert minted == [(MAINTAINER, CLIENT_ID, ["read:org"])]


# --- labbot in-process -------------------------------------------------------------------------


@pytest.fixture
def world(sim: SimulatorAdmin) -> SimulatorAdmin:
    sim.register_oauth_app(CLIENT_ID, CLIENT_SECRET, callback_url=CALLBACK)
    sim.add_team_member(ORG, TEAM, MAINTAINER)
    sim.add_org_member(ORG, OUTSIDER)
    return sim


@pytest.fixture
def open_dashboard(
    postgres_backend: Backend, world: SimulatorAdmin, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., TestClient]]:
    """labbot in-process, its sign-in on the simulator; keyword arguments are more settings."""
    base = {
        "LABBOT_PUBLIC_URL": PUBLIC_URL,
        "LABBOT_GITHUB_API_URL": world.api_url,
        "LABBOT_GITHUB_WEB_URL": world.base_url,
        "LABBOT_GITHUB_OAUTH_CLIENT_ID": CLIENT_ID,
        "LABBOT_GITHUB_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        "LABBOT_SESSION_SECRET": SESSION_SECRET,
        "LABBOT_MAINTAINER_TEAMS": json.dumps([f"{ORG}/{TEAM}"]),
    }
    with ExitStack() as stack:

        def open_one(**extra: str) -> TestClient:
            for key, value in {**base, **extra}.items():
                monkeypatch.setenv(key, value)
            get_settings.cache_clear()
            from app.main import create_app

            return stack.enter_context(TestClient(create_app()))

        yield open_one


def sign_in(client: TestClient, sim: SimulatorAdmin, login: str, next_path: str = "/help") -> Any:
    """The whole round trip: /login, the simulator's page, the callback."""
    start = client.get("/login", params={"next": next_path}, follow_redirects=False)
    assert start.status_code == 303
    authorize = start.headers["location"]
    assert authorize.startswith(f"{sim.base_url}/login/oauth/authorize?")
    chosen = choose(sim, authorize, login)
    assert chosen.status_code == 302, chosen.text
    back = urllib.parse.urlsplit(chosen.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    done = client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == next_path
    return done


def session_of(client: TestClient) -> dict[str, Any]:
    info: dict[str, Any] = client.get("/auth/session").json()
    return info


@pytest.fixture
def seeded() -> dict[str, int]:
    """A pull request at HEAD and jobs in each state, as the pipeline leaves them."""
    with session_scope() as session:
        session.add(Repository(id=777, full_name=REPO))
        session.flush()
        pull = PullRequest(repository_id=777, number=1, author="contributor", head_sha=HEAD)
        session.add(pull)
        session.flush()
        jobs = {
            "failed": Job(kind=JobKind.triage, state=JobState.failed, error="it broke"),
            "cancelled_sdg": Job(kind=JobKind.sdg, state=JobState.cancelled),
            "queued": Job(kind=JobKind.sdg, state=JobState.queued),
            "running": Job(kind=JobKind.train, state=JobState.running, attempts=1),
        }
        for job in jobs.values():
            job.repository_id, job.pull_request_id, job.head_sha = 777, pull.id, HEAD
            job.requested_by, job.trigger, job.progress = "someone", "command:x", {}
            session.add(job)
        session.flush()
        return {name: job.id for name, job in jobs.items()} | {"pull": pull.id}


def jobs_now() -> list[tuple[int, JobKind, JobState, str | None, str | None, str | None]]:
    with session_scope() as session:
        return [
            (j.id, j.kind, j.state, j.requested_by, j.trigger, j.error)
            for j in session.scalars(select(Job).order_by(Job.id))
        ]


def post(client: TestClient, path: str, **form: str) -> Any:
    return client.post(path, data=form, follow_redirects=False)


def test_sign_in_round_trip_session_cookie_and_sign_out(
    open_dashboard: Callable[..., TestClient], world: SimulatorAdmin
) -> None:
    client = open_dashboard()
    anonymous = client.get("/help")
    assert anonymous.status_code == 200  # public by default
    assert messages.DASHBOARD_SIGN_IN in anonymous.text
    assert session_of(client) == {"login": None, "maintainer": False, "csrf_token": None}

    done = sign_in(client, world, MAINTAINER)
    cookie_header = done.headers["set-cookie"]
    assert cookie_header.startswith("labbot_session=")
    assert "httponly" in cookie_header.lower()
    assert "samesite=lax" in cookie_header.lower()
    assert "secure" not in cookie_header.lower()  # http public URL; https sets it
    cookie = client.cookies["labbot_session"]
    stored = json.loads(base64.b64decode(cookie.split(".")[0]))
    assert set(stored) == {"login", "maintainer", "signed_in_at", "csrf", "flash"}
    assert (stored["login"], stored["maintainer"]) == (MAINTAINER, True)
    assert "gho_" not in cookie
    assert "gho_" not in json.dumps(stored)
    assert world.oauth_tokens()[0]["login"] == MAINTAINER  # a token was minted, then dropped

    page = client.get("/help")
    assert page.status_code == 200
    assert MAINTAINER in page.text
    assert messages.DASHBOARD_SIGN_OUT in page.text
    assert messages.DASHBOARD_SIGNED_IN_MAINTAINER.format(login=MAINTAINER) in page.text
    assert "gho_" not in page.text
    info = session_of(client)
    assert (info["login"], info["maintainer"]) == (MAINTAINER, True)

    refused = post(client, "/logout")  # no CSRF token
    assert refused.status_code == 403
    assert session_of(client)["login"] == MAINTAINER
    out = post(client, "/logout", csrf_token=info["csrf_token"])
    assert (out.status_code, out.headers["location"]) == (303, "/")
    assert session_of(client)["login"] is None


def test_bad_state_or_missing_session_is_refused(
    open_dashboard: Callable[..., TestClient], world: SimulatorAdmin
) -> None:
    client = open_dashboard()
    world.sign_in(MAINTAINER)
    start = client.get("/login", follow_redirects=False)
    granted = httpx.get(start.headers["location"])
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(granted.headers["location"]).query))
    forged = client.get("/auth/callback", params={**params, "state": "forged"})
    assert forged.status_code == 400
    assert html.escape(messages.LOGIN_STATE_MISMATCH) in forged.text
    # The state is single use: the real one no longer works either.
    replayed = client.get("/auth/callback", params=params)
    assert replayed.status_code == 400
    # A callback in a browser that never started a sign-in.
    stranger = open_dashboard()
    assert stranger.get("/auth/callback", params=params).status_code == 400
    assert session_of(client)["login"] is None
    assert world.oauth_tokens() == []  # the code was never exchanged


def test_maintainer_retries_and_cancels_jobs(
    open_dashboard: Callable[..., TestClient], world: SimulatorAdmin, seeded: dict[str, int]
) -> None:
    client = open_dashboard()
    sign_in(client, world, MAINTAINER)
    csrf = session_of(client)["csrf_token"]
    before = {row[0] for row in jobs_now()}

    # A failed triage job runs again as a new job, asked for by the maintainer.
    failed = seeded["failed"]
    retried = post(client, f"/jobs/{failed}/retry", csrf_token=csrf, next=f"/jobs/{failed}")
    assert (retried.status_code, retried.headers["location"]) == (303, f"/jobs/{failed}")
    new = [row for row in jobs_now() if row[0] not in before]
    assert [row[1:5] for row in new] == [
        (JobKind.triage, JobState.queued, MAINTAINER, "dashboard:retry")
    ]
    with session_scope() as session:
        job = session.get(Job, new[0][0])
        assert job is not None
        assert (job.head_sha, job.pull_request_id) == (HEAD, seeded["pull"])
        assert job.published_at is not None  # handed to the broker
    page = client.get("/help")
    assert messages.ACTION_JOB_RETRIED.format(job=failed, new=new[0][0]) in page.text
    # The job pages show maintainers the buttons (the _job_actions.html partial).
    assert f'action="/jobs/{failed}/retry"' in client.get(f"/jobs/{failed}").text
    assert f'action="/jobs/{new[0][0]}/cancel"' in client.get(f"/jobs/{new[0][0]}").text

    # A job still queued is not retried; a GPU job needs a worker serving its queue.
    count = len(jobs_now())
    post(client, f"/jobs/{seeded['queued']}/retry", csrf_token=csrf)
    no_worker = post(client, f"/jobs/{seeded['cancelled_sdg']}/retry", csrf_token=csrf)
    assert no_worker.status_code == 303
    assert len(jobs_now()) == count
    text = html.unescape(client.get("/help").text)
    assert messages.ACTION_JOB_RETRY_ACTIVE.format(job=seeded["queued"], state="queued") in text
    assert (
        messages.ACTION_JOB_RETRY_NO_WORKER.format(job=seeded["cancelled_sdg"], queue="sdg") in text
    )

    # Cancel: the queued job ends now, the running one is asked to stop.
    reason = messages.JOB_CANCELLED_ON_DASHBOARD.format(user=MAINTAINER)
    assert post(client, f"/jobs/{seeded['queued']}/cancel", csrf_token=csrf).status_code == 303
    assert post(client, f"/jobs/{seeded['running']}/cancel", csrf_token=csrf).status_code == 303
    with session_scope() as session:
        queued = session.get(Job, seeded["queued"])
        running = session.get(Job, seeded["running"])
        assert queued is not None
        assert running is not None
        assert (queued.state, queued.error) == (JobState.cancelled, reason)
        assert (running.state, running.error) == (JobState.running, reason)
        assert running.cancel_requested_at is not None

    # With a GPU worker about, the cancelled sdg job is retried.
    record_worker("gpu-host:1", ["sdg"])
    before = {row[0] for row in jobs_now()}
    post(client, f"/jobs/{seeded['cancelled_sdg']}/retry", csrf_token=csrf)
    new = [row for row in jobs_now() if row[0] not in before]
    assert [row[1:5] for row in new] == [
        (JobKind.sdg, JobState.queued, MAINTAINER, "dashboard:retry")
    ]

    # Once the pull request moved on to a newer commit, the old commit's job is not retried.
    with session_scope() as session:
        pull = session.get(PullRequest, seeded["pull"])
        assert pull is not None
        pull.head_sha = NEW_HEAD
    count = len(jobs_now())
    post(client, f"/jobs/{seeded['queued']}/retry", csrf_token=csrf)
    assert len(jobs_now()) == count
    moved = messages.ACTION_JOB_RETRY_MOVED_ON.format(
        job=seeded["queued"], sha=HEAD[:7], head=NEW_HEAD[:7]
    )
    assert moved in html.unescape(client.get("/help").text)


def test_non_maintainers_anonymous_and_forged_posts_change_nothing(
    open_dashboard: Callable[..., TestClient], world: SimulatorAdmin, seeded: dict[str, int]
) -> None:
    client = open_dashboard()
    before = jobs_now()
    queued = seeded["queued"]

    anonymous = post(client, f"/jobs/{queued}/cancel", csrf_token="x")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=")

    sign_in(client, world, OUTSIDER)
    info = session_of(client)
    assert (info["login"], info["maintainer"]) == (OUTSIDER, False)
    for path in (f"/jobs/{queued}/cancel", f"/jobs/{seeded['failed']}/retry"):
        refused = post(client, path, csrf_token=info["csrf_token"])
        assert refused.status_code == 403
        assert messages.MAINTAINER_REQUIRED_TITLE in refused.text
    assert jobs_now() == before

    # A maintainer's POST without the session's CSRF token is refused too.
    maintainer = open_dashboard()
    sign_in(maintainer, world, MAINTAINER)
    good = session_of(maintainer)["csrf_token"]
    assert post(maintainer, f"/jobs/{queued}/cancel").status_code == 403
    assert (
        post(maintainer, f"/jobs/{queued}/cancel", csrf_token=good[:-2] + "xx").status_code == 403
    )
    assert post(
        maintainer, f"/jobs/{queued}/cancel", csrf_token=info["csrf_token"]
    ).status_code == (403)  # another session's token
    assert jobs_now() == before
    # The header works for scripts.
    header = maintainer.post(
        f"/jobs/{queued}/cancel", headers={"X-CSRF-Token": good}, follow_redirects=False
    )
    assert header.status_code == 303
    assert [row[2] for row in jobs_now() if row[0] == queued] == [JobState.cancelled]


def add_delivery(guid: str, status: DeliveryStatus) -> None:
    with session_scope() as session:
        body = b'{"action": "created"}'
        session.add(
            Delivery(guid=guid, event="issue_comment", action="created", status=status, body=body)
        )


def delivery_row(guid: str) -> tuple[DeliveryStatus, int]:
    with session_scope() as session:
        row = session.scalars(select(Delivery).where(Delivery.guid == guid)).one()
        return row.status, row.attempts


def test_redeliver_only_failed_deliveries_for_maintainers(
    open_dashboard: Callable[..., TestClient], world: SimulatorAdmin
) -> None:
    add_delivery("failed-1", DeliveryStatus.failed)
    add_delivery("done-1", DeliveryStatus.processed)
    outsider = open_dashboard()
    sign_in(outsider, world, OUTSIDER)
    refused = post(
        outsider, "/deliveries/failed-1/redeliver", csrf_token=session_of(outsider)["csrf_token"]
    )
    assert refused.status_code == 403
    assert delivery_row("failed-1") == (DeliveryStatus.failed, 0)

    client = open_dashboard()
    sign_in(client, world, MAINTAINER)
    csrf = session_of(client)["csrf_token"]
    assert 'action="/deliveries/failed-1/redeliver"' in client.get("/deliveries").text
    assert 'action="/deliveries/done-1/redeliver"' not in client.get("/deliveries").text
    done = post(client, "/deliveries/done-1/redeliver", csrf_token=csrf, next="/deliveries")
    assert (done.status_code, done.headers["location"]) == (303, "/deliveries")
    assert delivery_row("done-1") == (DeliveryStatus.processed, 0)
    failed = post(client, "/deliveries/failed-1/redeliver", csrf_token=csrf)
    assert failed.status_code == 303
    assert delivery_row("failed-1")[0] is DeliveryStatus.queued  # on the broker again
    text = html.unescape(client.get("/help").text)
    assert messages.ACTION_DELIVERY_NOT_FAILED.format(guid="done-1", status="processed") in text
    assert messages.ACTION_DELIVERY_REDELIVERED.format(guid="failed-1") in text
    assert post(client, "/deliveries/nope/redeliver", csrf_token=csrf).status_code == 404


def test_maintainer_starts_a_build(
    open_dashboard: Callable[..., TestClient], world: SimulatorAdmin, seeded: dict[str, int]
) -> None:
    client = open_dashboard()
    sign_in(client, world, MAINTAINER)
    csrf = session_of(client)["csrf_token"]
    post(client, "/builds/start", csrf_token=csrf, repository="no such thing")
    post(client, "/builds/start", csrf_token=csrf, repository=REPO)
    text = html.unescape(client.get("/help").text)
    assert messages.ACTION_BUILD_BAD_REPOSITORY in text
    assert messages.BUILD_NOTHING_NEW.format(repo=REPO) in text

    with session_scope() as session:
        session.add(
            PullRequest(
                repository_id=777, number=2, author="contributor", head_sha=NEW_HEAD, merged=True
            )
        )
    record_worker("gpu-host:2", ["train"])
    started = post(client, "/builds/start", csrf_token=csrf, repository=REPO, next="/builds")
    assert (started.status_code, started.headers["location"]) == (303, "/builds")
    with session_scope() as session:
        build = session.scalars(select(Build)).one()
        job = session.scalars(select(Job).where(Job.build_id == build.id)).one()
        assert (build.trigger, job.requested_by) == (f"dashboard:{MAINTAINER}", MAINTAINER)
        name = build.name
    assert messages.ACTION_BUILD_STARTED.format(name=name, pulls=1) in client.get("/help").text


def test_private_dashboard_needs_a_sign_in_but_probes_and_webhooks_stay_open(
    open_dashboard: Callable[..., TestClient], world: SimulatorAdmin
) -> None:
    client = open_dashboard(LABBOT_DASHBOARD_PUBLIC="false")
    page = client.get("/help", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Fhelp")
    api = client.get("/api/deliveries/nope")
    assert (api.status_code, api.json()) == (401, {"detail": messages.LOGIN_REQUIRED})
    assert client.get("/api/triage-runs/1").status_code == 401
    # What a page fetches by itself is told 401, not sent to sign in; the script stays open.
    fetched = client.get("/help", headers={"Sec-Fetch-Mode": "cors"}, follow_redirects=False)
    assert fetched.status_code == 401
    assert client.get("/static/live.js").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    body = b'{"zen": "Design for failure.", "hook_id": 1}'
    hook = client.post("/webhooks/github", content=body, headers=webhook_headers(body, "ping"))
    assert hook.status_code in (200, 202)

    sign_in(client, world, OUTSIDER, next_path="/help")  # any GitHub user may read
    assert client.get("/help").status_code == 200
    assert client.get("/api/deliveries/nope").status_code == 404


# --- real processes, the way a browser goes ------------------------------------------------------


@pytest.fixture
def labbot_env(sim: SimulatorAdmin) -> dict[str, str]:
    return {
        "LABBOT_GITHUB_WEB_URL": sim.base_url,
        "LABBOT_GITHUB_OAUTH_CLIENT_ID": CLIENT_ID,
        "LABBOT_GITHUB_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        "LABBOT_SESSION_SECRET": SESSION_SECRET,
        "LABBOT_MAINTAINER_TEAMS": json.dumps([f"{ORG}/{TEAM}"]),
    }


@pytest.mark.e2e
def test_browser_sign_in_and_redeliver_a_failed_delivery(
    labbot: Labbot, sim: SimulatorAdmin
) -> None:
    api = labbot.start_api()
    sim.register_oauth_app(
        CLIENT_ID, CLIENT_SECRET, callback_url=f"{labbot.base_url}/auth/callback"
    )
    sim.add_team_member(ORG, TEAM, MAINTAINER)
    sim.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)

    with httpx.Client(base_url=labbot.base_url, follow_redirects=True) as browser:
        page = browser.get("/login", params={"next": "/help"})
        assert str(page.url).startswith(f"{sim.base_url}/login/oauth/authorize?")
        signed_in = browser.post(
            f"{sim.base_url}/login/oauth/authorize",
            data={**hidden_fields(page.text), "login": MAINTAINER},
        )
        assert str(signed_in.url) == f"{labbot.base_url}/help"
        assert MAINTAINER in signed_in.text
        csrf = browser.get("/auth/session").json()["csrf_token"]

        # A command whose handler fails: GitHub refuses labbot's reaction once.
        pull = sim.open_pr(REPO, author="contributor", files={"README.md": "# more\n"})
        sim.fault(
            r"/repos/acme/taxonomy/issues/comments/\d+/reactions",
            422,
            method="POST",
            body={"message": "Validation Failed", "documentation_url": "https://docs.github.com"},
        )
        asked = sim.comment(REPO, pull.number, user="contributor", body="/lab help")
        assert asked.delivery is not None
        record = wait_until(
            lambda: (
                (r := delivery_status(labbot.base_url, asked.delivery or ""))
                and r["status"] in ("failed", "processed")
                and r
            ),
            30,
        )
        assert record["status"] == "failed"

        redelivered = browser.post(
            f"/deliveries/{asked.delivery}/redeliver",
            data={"csrf_token": csrf, "next": "/help"},
            follow_redirects=False,
        )
        assert (redelivered.status_code, redelivered.headers["location"]) == (303, "/help")
        again = wait_until(
            lambda: (
                (r := delivery_status(labbot.base_url, asked.delivery or ""))
                and r["status"] in ("failed", "processed")
                and r["attempts"] == 2
                and r
            ),
            30,
        )
        assert again["status"] == "processed"
        assert (
            messages.ACTION_DELIVERY_REDELIVERED.format(guid=asked.delivery)
            in browser.get("/help").text
        )

    comments = sim.state()["repos"][REPO]["issues"][str(pull.number)]["comments"]
    assert any("/lab retest" in c["body"] for c in comments)  # the help reply, at last
    # No token in what labbot wrote down.
    assert "gho_" not in api.output()
    assert "gho_" not in labbot.worker.output()
    with session_scope() as session:
        row = session.scalars(select(Delivery).where(Delivery.guid == asked.delivery)).one()
        assert row.status is DeliveryStatus.processed


# --- settings --------------------------------------------------------------------------------


def test_session_secret_is_required_outside_development_once_sign_in_is_configured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from pydantic import SecretStr

    from app.config import ConfigError, Settings
    from app.dashboard.auth import session_secret

    base: dict[str, Any] = {
        "environment": "production",
        "webhook_secret": SecretStr("a-real-webhook-secret-1b2c"),
        "github_token": SecretStr("ghs_realtoken000000000000000000000000"),
    }
    Settings(**base).check_safe_to_start()  # no sign-in configured: no session secret needed
    oauth: dict[str, Any] = {
        "github_oauth_client_id": CLIENT_ID,
        "github_oauth_client_secret": CLIENT_SECRET,
    }
    for missing in (None, SecretStr("changeme"), SecretStr("")):
        with pytest.raises(ConfigError, match="LABBOT_SESSION_SECRET"):
            Settings(**base, **oauth, session_secret=missing).check_safe_to_start()
    Settings(**base, **oauth, session_secret=SecretStr(SESSION_SECRET)).check_safe_to_start()

    # Development without one: a random key of this process, announced without its value.
    development = Settings(environment="development", session_secret=None, **oauth)
    with caplog.at_level("WARNING"):
        key = session_secret(development)
    assert len(key) == 64
    assert session_secret(development) == key
    assert messages.SESSION_SECRET_EPHEMERAL in caplog.text
    assert key not in caplog.text


def test_session_cookie_is_secure_behind_https(
    open_dashboard: Callable[..., TestClient],
) -> None:
    client = open_dashboard(LABBOT_PUBLIC_URL="https://labbot.example")
    start = client.get("/login", follow_redirects=False)
    assert start.status_code == 303
    redirect = urllib.parse.parse_qs(urllib.parse.urlsplit(start.headers["location"]).query)
    assert redirect["redirect_uri"] == ["https://labbot.example/auth/callback"]
    assert redirect["scope"] == ["read:org"]
    cookie = start.headers["set-cookie"].lower()
    assert "; secure" in cookie
    assert "httponly" in cookie
