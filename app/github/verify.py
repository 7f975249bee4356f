"""``labbot verify-app``: does the GitHub App have the permissions and events labbot needs?

Asks ``GET /app`` with the App's JWT and compares the answer with ``REQUIRED_PERMISSIONS`` and
``REQUIRED_EVENTS``, saying in plain words what is missing and why labbot needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.config import ConfigError, Settings
from app.github.auth import app_context
from app.github.client import RetryPolicy, Transport
from app.github.port import GitHubError

_LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}

# permission -> (level needed, why labbot needs it)
REQUIRED_PERMISSIONS: dict[str, tuple[str, str]] = {
    "checks": ("write", "to publish the ilab/* check runs and their annotations"),
    "contents": ("read", "to read the taxonomy files a pull request changes"),
    "issues": ("write", "to label pull requests and post or edit its summary comment"),
    "pull_requests": ("write", "to read pull requests and their changed files, and label them"),
    "metadata": ("read", "to see the repositories it is installed on"),
}

REQUIRED_EVENTS: dict[str, str] = {
    "pull_request": "to triage a pull request when it is opened, pushed to or labelled",
    "issue_comment": "to hear slash commands such as /retest in pull request comments",
    "check_run": "to act on the Re-run button of its checks",
    "installation": "to learn when it is installed, suspended or removed",
}

# GitHub delivers these to every App whether or not the App lists them.
ALWAYS_DELIVERED = frozenset({"installation"})


@dataclass
class VerifyReport:
    mode: Literal["app", "token"]
    ok: bool
    checked: bool  # False when nothing could be asked of GitHub (token mode, bad key, refusal)
    app_slug: str | None = None
    app_name: str | None = None
    api_url: str = ""
    permissions: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines: list[str] = []
        if self.mode == "token":
            lines.append(f"labbot runs with a plain token against {self.api_url}.")
        else:
            who = f'"{self.app_name or self.app_slug}"' if (self.app_name or self.app_slug) else "?"
            lines.append(f"GitHub App {who} (slug {self.app_slug or '?'}) at {self.api_url}")
        if self.checked:
            lines.append("")
            lines.append("Permissions:")
            for name, (needed, why) in REQUIRED_PERMISSIONS.items():
                has = self.permissions.get(name, "none")
                mark = "ok " if _LEVELS.get(has, 0) >= _LEVELS[needed] else "NO "
                lines.append(f"  {mark} {name}: has {has}, needs {needed} ({why})")
            lines.append("Events:")
            for event, why in REQUIRED_EVENTS.items():
                subscribed = event in self.events or event in ALWAYS_DELIVERED
                lines.append(f"  {'ok ' if subscribed else 'NO '} {event} ({why})")
        if self.problems:
            lines.append("")
            lines.append(f"{len(self.problems)} problem(s):")
            lines.extend(f"  - {p}" for p in self.problems)
        if self.notes:
            lines.append("")
            lines.extend(f"Note: {n}" for n in self.notes)
        lines.append("")
        if self.ok:
            lines.append("Everything labbot needs is in place.")
        elif self.checked:
            lines.append(
                "Fix these in the App's settings (GitHub > Settings > Developer settings > "
                "GitHub Apps > the App > Permissions & events); each installation must then "
                "accept the new permissions."
            )
        return "\n".join(lines)


def verify_app(settings: Settings, *, policy: RetryPolicy | None = None) -> VerifyReport:
    api_url = settings.github_api_url.rstrip("/")
    if settings.github_app_id is None:
        return VerifyReport(
            mode="token",
            ok=False,
            checked=False,
            api_url=api_url,
            problems=[
                "App checks need App credentials: set LABBOT_GITHUB_APP_ID and "
                "LABBOT_GITHUB_PRIVATE_KEY (or LABBOT_GITHUB_PRIVATE_KEY_PATH). A plain token has "
                "no App permissions or event subscriptions to check."
            ],
        )
    report = VerifyReport(mode="app", ok=False, checked=False, api_url=api_url)
    try:
        context = app_context(settings)
    except ConfigError as exc:
        report.problems.append(str(exc))
        return report
    transport = Transport(policy or RetryPolicy.from_settings(settings), 0.0)

    def call() -> tuple[int, str, str, dict[str, str], list[str]]:
        app = context.integration.get_app()
        return app.id, app.slug, app.name, dict(app.permissions or {}), list(app.events or [])

    try:
        app_id, slug, name, permissions, events = transport.run_read(call, "GET /app")
    except GitHubError as exc:
        if exc.status == 401:
            report.problems.append(
                "GitHub refused the App's JWT (401): LABBOT_GITHUB_APP_ID and the private key "
                "do not belong together, the key was revoked, or this machine's clock is off."
            )
        else:
            report.problems.append(f"Could not read the App from GitHub: {exc}")
        return report

    report.checked = True
    report.app_slug, report.app_name = slug, name
    report.permissions, report.events = permissions, sorted(events)
    if app_id != settings.github_app_id:
        report.problems.append(
            f"GitHub answered for App id {app_id}, "
            f"not LABBOT_GITHUB_APP_ID={settings.github_app_id}."
        )
    if slug and slug != settings.github_app_slug:
        report.problems.append(
            f"LABBOT_GITHUB_APP_SLUG is {settings.github_app_slug!r} but the App's slug is "
            f"{slug!r}; labbot would not recognise its own comments ({slug}[bot])."
        )
    for perm, (needed, why) in REQUIRED_PERMISSIONS.items():
        has = permissions.get(perm, "none")
        if has == "none" or perm not in permissions:
            report.problems.append(f"Permission {perm!r} is missing; labbot needs {needed} {why}.")
        elif _LEVELS.get(has, 0) < _LEVELS[needed]:
            report.problems.append(
                f"Permission {perm!r} is {has}, too weak; labbot needs {needed} {why}."
            )
    for event, why in REQUIRED_EVENTS.items():
        if event in events:
            continue
        if event in ALWAYS_DELIVERED:
            report.notes.append(
                f"The App does not list the {event!r} event; GitHub sends it to every App anyway."
            )
        else:
            report.problems.append(
                f"The App is not subscribed to {event!r}; labbot needs it {why}."
            )
    extra = sorted(p for p in permissions if p not in REQUIRED_PERMISSIONS)
    if extra:
        report.notes.append(
            "The App also holds permissions labbot does not use: "
            + ", ".join(f"{p}: {permissions[p]}" for p in extra)
            + ". Dropping them limits the damage a leaked key can do."
        )
    report.ok = not report.problems
    return report
