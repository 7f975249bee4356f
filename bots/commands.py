"""Commands in PR comments. One registry carries each verb's usage, description and who may run
it; the help reply is generated from it. labbot reacts 👀 when it sees a command and 🚀 when a
command has started a job. Only `created` comments on open pull requests count; comments by
bots (labbot included) are ignored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from app.config import get_settings
from app.db.models import JobKind, JobState, PullRequest
from app.db.session import session_scope
from app.github.factory import github_port
from app.github.port import GitHubPort
from app.jobs import publish_job, submit_job
from bots import messages
from bots.command_parsing import Invocation, parse_commands
from bots.payloads import IssueCommentEvent
from bots.registry import EventContext, Ignore, Router

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


@dataclass(frozen=True)
class Command:
    verb: str
    usage: str
    description: str
    who: str
    run: Callable[[CommandContext], bool]  # True when it started a job


def _help(ctx: CommandContext) -> bool:
    ctx.github.upsert_comment(ctx.repo, ctx.number, "help", help_text())
    return False


def _retest(ctx: CommandContext) -> bool:
    """Triage again on the PR's current head."""
    with session_scope() as session:
        pull = session.scalars(
            select(PullRequest).where(
                PullRequest.repository_id == ctx.event.repository.id,
                PullRequest.number == ctx.number,
            )
        ).one_or_none()
        if pull is None:
            raise Ignore("pull request not recorded yet")
        head = ctx.github.get_pull_request(ctx.repo, ctx.number).head_sha
        job = submit_job(
            session,
            JobKind.triage,
            repository_id=pull.repository_id,
            pull_request_id=pull.id,
            head_sha=head,
            requested_by=ctx.event.comment.user.login,
        ).job
    if job.state is JobState.queued:
        publish_job(job)
    return True


COMMANDS: dict[str, Command] = {
    command.verb: command
    for command in (
        Command("help", "/lab help", messages.COMMAND_HELP, messages.WHO_ANYONE, _help),
        Command("retest", "/lab retest", messages.COMMAND_RETEST, messages.WHO_ANYONE, _retest),
    )
}


def help_text() -> str:
    rows = [messages.HELP_HEADER, "", "| command | what it does | who |", "|---|---|---|"]
    rows += [f"| `{c.usage}` | {c.description} | {c.who} |" for c in COMMANDS.values()]
    return "\n".join([*rows, "", messages.HELP_FOOTER])


def _is_bot(login: str, account_type: str) -> bool:
    return account_type == "Bot" or login.endswith("[bot]")


@router.on("issue_comment", "created")
def run_comment_commands(ctx: EventContext) -> None:
    event = IssueCommentEvent.model_validate(ctx.raw)
    if event.issue.pull_request is None:
        raise Ignore("comment on an issue, not a pull request")
    author = event.comment.user
    if _is_bot(author.login, author.type):
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
        started |= command.run(CommandContext(event, installation_id, github, invocation))
    if started:
        github.add_reaction(event.repository.full_name, event.comment.id, "rocket")
