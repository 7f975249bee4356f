"""Webhook deliveries: the payloads GitHub sends to an App, signed and posted to labbot.

Payloads are built while the state lock is held (they read the state), and sent after it is
released: labbot may call the REST API while it handles a delivery. Deliveries caused by an admin
action are sent synchronously so the action can report labbot's answer; those caused by labbot's
own REST writes (GitHub tells an App about its own labels and comments too) and redeliveries go
through one background thread, in order, as GitHub sends them asynchronously.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import httpx

from app.simulator.models import (
    CheckRun,
    Comment,
    DeliveryRecord,
    Installation,
    Issue,
    Label,
    Repo,
    utcnow,
)
from app.simulator.openapi import OpenAPISpec
from app.simulator.render import JsonObj, Renderer, node_id
from app.simulator.state import SimulatorState

log = logging.getLogger(__name__)

USER_AGENT = "GitHub-Hookshot/sim1a2b3c"
TIMEOUT_SECONDS = 10.0  # GitHub gives a receiver ten seconds
# Apps get these whatever they subscribed to.
ALWAYS_SENT = frozenset({"installation", "installation_repositories", "github_app_authorization"})
_RESPONSE_BODY_KEPT = 4096


class WebhookSender:
    def __init__(self, state: SimulatorState, *, check_payloads: OpenAPISpec | None = None) -> None:
        self.state = state
        self._spec = check_payloads  # when given, payloads are checked against its x-webhooks
        self._client = httpx.Client(timeout=TIMEOUT_SECONDS)
        self._queue: queue.Queue[tuple[int, DeliveryRecord]] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None

    # -- building ---------------------------------------------------------------------------

    def prepare(
        self, event: str, payload: JsonObj, *, installation: Installation, repository_id: int | None
    ) -> DeliveryRecord | None:
        """Build a delivery for `event` (state lock held); None when the App is not subscribed.
        It is recorded in the state's delivery log when it is sent."""
        config = self.state.config
        if event not in ALWAYS_SENT and event not in config.app.events:
            return None
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        guid = str(uuid.uuid4())
        headers = {
            "Accept": "*/*",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": str(config.hook_id),
            "X-GitHub-Hook-Installation-Target-ID": str(config.app.id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
        }
        self._sign(headers, body)
        record = DeliveryRecord(
            id=self.state.next_id("delivery"),
            guid=guid,
            event=event,
            action=payload.get("action"),
            installation_id=installation.id,
            repository_id=repository_id,
            url=config.webhook_url,
            headers=headers,
            body=body,
            delivered_at=utcnow(),
        )
        if self._spec is not None:
            record.payload_problem = self._spec.check_webhook(event, record.action, payload)
            if record.payload_problem:
                log.warning("simulator webhook off-schema: %s", record.payload_problem)
        return record

    def redelivery(self, original: DeliveryRecord) -> DeliveryRecord:
        """A new attempt of a stored delivery: same GUID and body, signed with today's secret."""
        headers = dict(original.headers)
        self._sign(headers, original.body)
        record = DeliveryRecord(
            id=self.state.next_id("delivery"),
            guid=original.guid,
            event=original.event,
            action=original.action,
            installation_id=original.installation_id,
            repository_id=original.repository_id,
            url=self.state.config.webhook_url,
            headers=headers,
            body=original.body,
            delivered_at=utcnow(),
            redelivery=True,
        )
        return record

    def _sign(self, headers: dict[str, str], body: bytes) -> None:
        headers.pop("X-Hub-Signature", None)
        headers.pop("X-Hub-Signature-256", None)
        if self.state.config.webhook_secret:
            secret = self.state.config.webhook_secret.encode()
            headers["X-Hub-Signature"] = "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()
            headers["X-Hub-Signature-256"] = (
                "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            )

    # -- sending ----------------------------------------------------------------------------

    def _log(self, records: Iterable[DeliveryRecord]) -> None:
        with self.state.lock:
            self.state.deliveries.extend(records)

    def send(self, record: DeliveryRecord) -> None:
        """POST one delivery now and record labbot's answer."""
        if record.url is None:
            with self.state.lock:
                record.status, record.status_code = "No webhook URL configured", None
            return
        started = time.monotonic()
        response: httpx.Response | None = None
        try:
            response = self._client.post(record.url, content=record.body, headers=record.headers)
            status = (
                "OK" if response.is_success else f"Invalid HTTP Response: {response.status_code}"
            )
        except httpx.TimeoutException:
            status = "timed out"
        except httpx.HTTPError as exc:
            status = f"failed to connect to host: {exc}"
        with self.state.lock:
            record.status = status
            record.duration = round(time.monotonic() - started, 3)
            record.delivered_at = utcnow()
            if response is not None:
                record.status_code = response.status_code
                record.response_headers = dict(response.headers)
                record.response_body = response.text[:_RESPONSE_BODY_KEPT]
        log.debug("delivered %s.%s %s: %s", record.event, record.action, record.guid, status)

    def send_now(self, records: list[DeliveryRecord]) -> None:
        self._log(records)
        for record in records:
            self.send(record)

    def send_later(self, records: list[DeliveryRecord]) -> None:
        self._log(records)
        generation = self.state.generation
        for record in records:
            with self._idle:
                self._pending += 1
            self._queue.put((generation, record))
        self._ensure_thread()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every queued delivery has been sent; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _ensure_thread(self) -> None:
        with self._idle:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            generation, record = self._queue.get()
            try:
                if generation == self.state.generation:
                    self.send(record)
                else:
                    record.status = "dropped: the simulator was reset"
            except Exception:  # a broken delivery must not stop the ones behind it
                log.exception("webhook delivery %s failed", record.guid)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()


class Events:
    """Builds the deliveries one operation causes (state lock held), then sends them."""

    def __init__(self, sender: WebhookSender, renderer: Renderer, *, enabled: bool = True) -> None:
        self.sender = sender
        self.r = renderer
        self.state = sender.state
        self.enabled = enabled  # off: the operation sends no events (redeliveries still go out)
        self.records: list[DeliveryRecord] = []

    def _emit(self, event: str, repo: Repo, body: JsonObj, sender: str) -> None:
        inst = self.state.installation_for(repo)
        if inst is None or not self.enabled:
            return  # an App hears only about repositories it is installed on
        base = self.state.repo_by_full_name(repo.fork_of) if repo.fork_of else repo
        payload = dict(body)
        payload["repository"] = self.r.repo(base, full=False)
        owner = self.state.account(base.owner)
        if owner.type == "Organization":
            payload["organization"] = self.r.organization(owner)
        payload["installation"] = {"id": inst.id, "node_id": node_id("Installation", inst.id)}
        payload["sender"] = self.r.user(sender)
        record = self.sender.prepare(event, payload, installation=inst, repository_id=base.id)
        if record is not None:
            self.records.append(record)

    def pull_request(
        self, repo: Repo, issue: Issue, action: str, sender: str, **extra: Any
    ) -> None:
        body: JsonObj = {
            "action": action,
            "number": issue.number,
            "pull_request": self.r.pull(repo, issue),
        }
        body.update(extra)
        self._emit("pull_request", repo, body, sender)

    def labeled(self, repo: Repo, issue: Issue, label: Label, action: str, sender: str) -> None:
        event = "pull_request" if issue.pull else "issues"
        body: JsonObj = {"action": action}
        if issue.pull:
            body.update(number=issue.number, pull_request=self.r.pull(repo, issue))
        else:
            body["issue"] = self.r.issue(repo, issue)
        body["label"] = self.r.label(repo, label)
        self._emit(event, repo, body, sender)

    def issues(self, repo: Repo, issue: Issue, action: str, sender: str) -> None:
        self._emit("issues", repo, {"action": action, "issue": self.r.issue(repo, issue)}, sender)

    def issue_comment(
        self,
        repo: Repo,
        issue: Issue,
        comment: Comment,
        action: str,
        sender: str,
        old_body: str | None = None,
    ) -> None:
        body: JsonObj = {"action": action}
        if old_body is not None:
            body["changes"] = {"body": {"from": old_body}}
        body["issue"] = self.r.issue(repo, issue)
        body["comment"] = self.r.comment(repo, comment)
        self._emit("issue_comment", repo, body, sender)

    def check_run(self, repo: Repo, run: CheckRun, action: str, sender: str) -> None:
        check_run = self.r.check_run(repo, run)
        check_run["check_suite"] = self._check_suite(repo, run)
        self._emit("check_run", repo, {"action": action, "check_run": check_run}, sender)

    def _check_suite(self, repo: Repo, run: CheckRun) -> JsonObj:
        runs = [r for r in self.state.check_runs.values() if r.suite_id == run.suite_id]
        done = all(r.status == "completed" for r in runs)
        branch = next(
            (
                i.pull.head_ref
                for i in repo.issues.values()
                if i.pull and i.pull.head_sha == run.head_sha
            ),
            None,
        )
        commit = repo.git.get_commit(run.head_sha)
        return {
            "id": run.suite_id,
            "node_id": node_id("CheckSuite", run.suite_id),
            "head_branch": branch,
            "head_sha": run.head_sha,
            "status": "completed" if done else "in_progress",
            "conclusion": run.conclusion if done else None,
            "url": f"{self.r.api}/repos/{repo.full_name}/check-suites/{run.suite_id}",
            "before": commit.parents[0] if commit and commit.parents else None,
            "after": run.head_sha,
            "pull_requests": self.r.check_run(repo, run)["pull_requests"],
            "app": self.r.integration(),
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        }

    def installation(self, inst: Installation, action: str, sender: str) -> None:
        if not self.enabled:
            return
        payload: JsonObj = {
            "action": action,
            "installation": self.r.installation(inst),
            "repositories": [
                self.r.repo_ref(self.state.repo_by_full_name(n)) for n in sorted(inst.repos)
            ],
            "requester": None,
            "sender": self.r.user(sender),
        }
        record = self.sender.prepare("installation", payload, installation=inst, repository_id=None)
        if record is not None:
            self.records.append(record)

    # -- after the lock ---------------------------------------------------------------------

    def send_now(self) -> list[DeliveryRecord]:
        self.sender.send_now(self.records)
        return self.records

    def send_later(self) -> None:
        if self.records:
            self.sender.send_later(self.records)
