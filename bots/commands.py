"""Commands in PR comments. One registry carries each verb's usage, description and who may run
it; the help reply, the welcome section under the triage summary and the dashboard's help
page are generated from it. labbot reacts 👀 when it sees a command and 🚀 when a
command has started a job. Only `created` comments on open pull requests count; comments by
bots (labbot included) are ignored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from app.config import get_settings
from app.db.models import JobKind, JobState, PullRequest, TestApproval
from app.db.session import session_scope
from app.github.factory import github_port
from app.github.port import GitHubPort
from app.jobs import GPU_KINDS, publish_job, submit_job
from bots import messages
from bots.command_parsing import Invocation, parse_commands
from bots.payloads import IssueCommentEvent
from bots.pipeline import Request, audit_refusal, cancel, notify, request_job, untrusted_refusal
from bots.registry import EventContext, Ignore, Router
from bots.repo_config import repo_config
from bots.triage.config import LabelNames
from bots.trust import TrustUnknown, approved, is_trusted

router = Router()


@dataclass(frozen=True)
class CommandContext:
    event: IssueCommentEvent
    installation_id: int | None
    github: GitHubPort
    invocation: Invocation

    @property
    def repo(self) -> str:
        return self.event.repository.full_name

    @property
    def number(self) -> int:
        return self.event.issue.number

    @property
    def user(self) -> str:
        return self.event.comment.user.login

    def request(self) -> Request:
        verb = self.invocation.verb
        return Request(
            self.github,
            self.repo,
            self.event.repository.id,
            self.number,
            self.user,
            f"/lab {verb}",
            f"command:{verb}",
        )


@dataclass(frozen=True)
class Command:
    verb: str
    usage: str
    description: str
    who: str
    run: Callable[[CommandContext], bool]  # True when it started a job
    trusted_only: bool = False


def _help(ctx: CommandContext) -> bool:
    pull = ctx.github.get_pull_request(ctx.repo, ctx.number)
    names = repo_config(ctx.github, ctx.repo, pull.base_sha).labels
    ctx.github.upsert_comment(ctx.repo, ctx.number, "help", help_text(names))
    return False


def _pull_id(ctx: CommandContext) -> int:
    with session_scope() as session:
        pull_id = session.scalars(
            select(PullRequest.id).where(
                PullRequest.repository_id == ctx.event.repository.id,
                PullRequest.number == ctx.number,
            )
        ).one_or_none()
    if pull_id is None:
        raise Ignore("pull request not recorded yet")
    return pull_id


def _retest(ctx: CommandContext) -> bool:
    """Triage again on the PR's current head."""
    pull_id = _pull_id(ctx)
    head = ctx.github.get_pull_request(ctx.repo, ctx.number).head_sha
    with session_scope() as session:
        job = submit_job(
            session,
            JobKind.triage,
            repository_id=ctx.event.repository.id,
            pull_request_id=pull_id,
            head_sha=head,
            requested_by=ctx.user,
            trigger="command:retest",
        ).job
    if job.state is JobState.queued:
        publish_job(job)
    return True


def _stage(kind: JobKind) -> Callable[[CommandContext], bool]:
    def start(ctx: CommandContext) -> bool:
        return request_job(ctx.request(), kind, requester_checked=True).started

    return start


def _cancel(ctx: CommandContext) -> bool:
    pull_id = _pull_id(ctx)
    reason = messages.JOB_CANCELLED_BY.format(user=ctx.user)
    asked = cancel(ctx.github, ctx.repo, pull_id, JobState.cancelled, reason, kinds=GPU_KINDS)
    template = messages.CANCELLED_SOME if asked else messages.CANCELLED_NOTHING
    notify(ctx.github, ctx.repo, ctx.number, template.format(user=ctx.user, count=asked))
    return False


def _ok_to_test(ctx: CommandContext) -> bool:
    """Trust the PR's current head: record the approval for exactly that SHA."""
    pull_id = _pull_id(ctx)
    pull = ctx.github.get_pull_request(ctx.repo, ctx.number)
    with session_scope() as session:
        if not approved(session, pull_id, pull.head_sha):
            session.add(
                TestApproval(pull_request_id=pull_id, head_sha=pull.head_sha, approved_by=ctx.user)
            )
    label = repo_config(ctx.github, ctx.repo, pull.base_sha).labels.needs_ok_to_test
    ctx.github.remove_label(ctx.repo, ctx.number, label)
    text = messages.OK_TO_TEST_RECORDED.format(user=ctx.user, sha=pull.head_sha[:7])
    notify(ctx.github, ctx.repo, ctx.number, text)
    return False


COMMANDS: dict[str, Command] = {
    command.verb: command
    for command in (
        Command("help", "/lab help", messages.COMMAND_HELP, messages.WHO_ANYONE, _help),
        Command("retest", "/lab retest", messages.COMMAND_RETEST, messages.WHO_ANYONE, _retest),
        Command(
            "precheck",
            "/lab precheck",
            messages.COMMAND_PRECHECK,
            messages.WHO_TRUSTED,
            _stage(JobKind.precheck),
            trusted_only=True,
        ),
        Command(
            "generate",
            "/lab generate",
            messages.COMMAND_GENERATE,
            messages.WHO_TRUSTED,
            _stage(JobKind.sdg),
            trusted_only=True,
        ),
        Command(
            "train",
            "/lab train",
            messages.COMMAND_TRAIN,
            messages.WHO_TRUSTED,
            _stage(JobKind.train),
            trusted_only=True,
        ),
        Command(
            "bench",
            "/lab bench",
            messages.COMMAND_BENCH,
            messages.WHO_TRUSTED,
            _stage(JobKind.bench),
            trusted_only=True,
        ),
        Command(
            "cancel",
            "/lab cancel",
            messages.COMMAND_CANCEL,
            messages.WHO_TRUSTED,
            _cancel,
            trusted_only=True,
        ),
        Command(
            "ok-to-test",
            "/lab ok-to-test",
            messages.COMMAND_OK_TO_TEST,
            messages.WHO_TRUSTED,
            _ok_to_test,
            trusted_only=True,
        ),
    )
}


def label_rows(names: LabelNames) -> list[tuple[str, str]]:
    """The labels triagers apply, with what each does (help, welcome and dashboard list them)."""
    return [
        (names.generate_ready, messages.LABEL_GENERATE_READY),
        (names.build_ready, messages.LABEL_BUILD_READY),
    ]


def _tables(names: LabelNames) -> list[str]:
    rows = ["| command | what it does | who |", "|---|---|---|"]
    rows += [f"| `{c.usage}` | {c.description} | {c.who} |" for c in COMMANDS.values()]
    rows += ["", "| label | what it does |", "|---|---|"]
    rows += [f"| `{label}` | {meaning} |" for label, meaning in label_rows(names)]
    return rows


def help_text(names: LabelNames | None = None) -> str:
    tables = _tables(names or LabelNames())
    return "\n".join([messages.HELP_HEADER, "", *tables, "", messages.HELP_FOOTER])


def welcome_text(names: LabelNames | None = None) -> str:
    """The collapsed section under the triage summary that introduces labbot to a contributor."""
    tables = _tables(names or LabelNames())
    return "\n".join(
        [messages.WELCOME_SUMMARY, "", messages.WELCOME_INTRO, "", *tables, "", "</details>"]
    )


def _allowed(ctx: CommandContext, command: Command) -> bool:
    """Checked through the API now, failing closed; a refusal says who may run it."""
    if not command.trusted_only:
        return True
    request = ctx.request()
    try:
        if is_trusted(ctx.github, ctx.repo, ctx.user, get_settings()):
            return True
        refusal = untrusted_refusal(ctx.user, request.action, ctx.repo)
    except TrustUnknown:
        refusal = messages.REFUSED_PERMISSION_UNKNOWN.format(user=ctx.user, action=request.action)
    audit_refusal(request, refusal)
    notify(ctx.github, ctx.repo, ctx.number, refusal)
    return False


@router.on("issue_comment", "created")
def run_comment_commands(ctx: EventContext) -> None:
    event = IssueCommentEvent.model_validate(ctx.raw)
    if event.issue.pull_request is None:
        raise Ignore("comment on an issue, not a pull request")
    author = event.comment.user
    if author.is_bot:
        raise Ignore("comment by a bot")
    if event.issue.state != "open":
        raise Ignore("pull request is closed")
    settings = get_settings()
    invocations = parse_commands(event.comment.body, settings.github_app_slug)
    if not invocations:
        raise Ignore("no command in the comment")
    installation_id = ctx.payload.installation.id if ctx.payload.installation else None
    github = github_port(settings, installation_id)
    github.add_reaction(event.repository.full_name, event.comment.id, "eyes")
    started = False
    for invocation in invocations:
        command = COMMANDS.get(invocation.verb, COMMANDS["help"])
        command_ctx = CommandContext(event, installation_id, github, invocation)
        if _allowed(command_ctx, command):
            started |= command.run(command_ctx)
    if started:
        github.add_reaction(event.repository.full_name, event.comment.id, "rocket")
