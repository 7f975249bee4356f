"""verify_app against the simulator's GET /app."""

from __future__ import annotations

from app.github.verify import verify_app
from app.simulator.admin_client import SimulatorAdmin
from tests.github.conftest import APP_ID, app_key, make_settings

FULL = {
    "checks": "write",
    "contents": "read",
    "issues": "write",
    "pull_requests": "write",
    "metadata": "read",
}
EVENTS = ["check_run", "issue_comment", "pull_request"]


def configure(sim: SimulatorAdmin, permissions: dict[str, str], events: list[str]) -> None:
    sim.configure(
        app={
            "id": APP_ID,
            "slug": "labbot",
            "name": "labbot",
            "permissions": permissions,
            "events": events,
            "public_key_pem": app_key()[1],
        }
    )


def test_app_with_everything_needed_is_ok(sim: SimulatorAdmin) -> None:
    configure(sim, FULL, EVENTS)
    report = verify_app(make_settings(sim, app=True))
    assert report.ok
    assert report.checked
    assert report.problems == []
    text = report.render()
    assert "Everything labbot needs is in place." in text
    # GitHub sends installation events to every App; not listing it is only a note.
    assert any("installation" in note for note in report.notes)


def test_missing_and_weak_permissions_and_events_are_named(sim: SimulatorAdmin) -> None:
    weak = dict(FULL, issues="read", administration="write")
    del weak["checks"]
    configure(sim, weak, ["pull_request"])
    report = verify_app(make_settings(sim, app=True))
    assert not report.ok
    assert report.checked
    problems = "\n".join(report.problems)
    assert "Permission 'checks' is missing" in problems
    assert "Permission 'issues' is read, too weak; labbot needs write" in problems
    assert "not subscribed to 'issue_comment'" in problems
    assert "not subscribed to 'check_run'" in problems
    assert len(report.problems) == 4
    assert any("administration: write" in note for note in report.notes)
    text = report.render()
    assert "NO  checks: has none, needs write" in text
    assert "NO  issue_comment" in text
    assert "ok  pull_request" in text


def test_slug_mismatch_is_reported(sim: SimulatorAdmin) -> None:
    configure(sim, FULL, EVENTS)
    report = verify_app(make_settings(sim, app=True, github_app_slug="labbot-staging"))
    assert not report.ok
    assert "slug is 'labbot'" in report.problems[0]


def test_wrong_key_is_explained(sim: SimulatorAdmin) -> None:
    configure(sim, FULL, EVENTS)
    other = make_settings(sim, app=True, github_app_id=APP_ID + 1)
    report = verify_app(other)
    assert not report.ok
    assert not report.checked
    assert "refused the App's JWT (401)" in report.problems[0]


def test_unusable_private_key_is_a_config_problem(sim: SimulatorAdmin) -> None:
    report = verify_app(make_settings(sim, app=True, github_private_key="not a pem"))
    assert not report.ok
    assert not report.checked
    assert "cannot sign a JWT" in report.problems[0]
    assert "not a pem" not in report.render()


def test_token_mode_says_app_checks_need_app_credentials(sim: SimulatorAdmin) -> None:
    report = verify_app(make_settings(sim))
    assert report.mode == "token"
    assert not report.ok
    assert not report.checked
    assert "App checks need App credentials" in report.render()
