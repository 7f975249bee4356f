"""Issues (pull requests are issues too): labels, comments and reactions on comments.

Writes tell the App about themselves, as GitHub does: labelling sends `pull_request.labeled`
(or `issues.labeled`), commenting sends `issue_comment.created`, both with the App's bot as sender.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.simulator.errors import ApiError
from app.simulator.models import Issue, Repo
from app.simulator.rest.context import Context, RestResponse, handles, json_body, validation_failed

COMMENT_BODY_MAX = 65_536
ISSUES_READ = ("issues|pull_requests", "read")
ISSUES_WRITE = ("issues|pull_requests", "write")


def _issue(ctx: Context) -> tuple[Repo, Issue]:
    repo = ctx.repo()
    return repo, ctx.state.issue(repo, ctx.int_param("issue_number"))


@handles("issues/get", need=ISSUES_READ)
def get_issue(ctx: Context) -> RestResponse:
    repo, issue = _issue(ctx)
    return RestResponse(200, ctx.render.issue(repo, issue))


# -- labels ----------------------------------------------------------------------------------


def _label_names(body: Any) -> list[str]:
    items = body.get("labels", []) if isinstance(body, dict) else body
    if isinstance(items, str):
        items = [items]
    return [item["name"] if isinstance(item, dict) else str(item) for item in items or []]


def _labels_response(ctx: Context, repo: Repo, issue: Issue) -> RestResponse:
    return RestResponse(200, ctx.render.issue_labels(repo, issue))


@handles("issues/list-labels-on-issue", need=ISSUES_READ)
def list_issue_labels(ctx: Context) -> RestResponse:
    repo, issue = _issue(ctx)
    return ctx.page(
        [ctx.state.label(repo, n) for n in issue.labels], lambda lb: ctx.render.label(repo, lb)
    )


@handles("issues/add-labels", need=ISSUES_WRITE)
def add_labels(ctx: Context) -> RestResponse:
    repo, issue = _issue(ctx)
    for label in ctx.state.add_labels(repo, issue, _label_names(ctx.body)):
        ctx.events.labeled(repo, issue, label, "labeled", ctx.caller.login)
    return _labels_response(ctx, repo, issue)


@handles("issues/set-labels", need=ISSUES_WRITE)
def set_labels(ctx: Context) -> RestResponse:
    repo, issue = _issue(ctx)
    wanted = _label_names(ctx.body)
    wanted_lower = {n.lower() for n in wanted}
    for name in list(issue.labels):
        if name.lower() not in wanted_lower:
            removed = ctx.state.remove_label(repo, issue, name)
            if removed is not None:
                ctx.events.labeled(repo, issue, removed, "unlabeled", ctx.caller.login)
    for label in ctx.state.add_labels(repo, issue, wanted):
        ctx.events.labeled(repo, issue, label, "labeled", ctx.caller.login)
    return _labels_response(ctx, repo, issue)


@handles("issues/remove-all-labels", need=ISSUES_WRITE)
def remove_all_labels(ctx: Context) -> RestResponse:
    repo, issue = _issue(ctx)
    for name in list(issue.labels):
        removed = ctx.state.remove_label(repo, issue, name)
        if removed is not None:
            ctx.events.labeled(repo, issue, removed, "unlabeled", ctx.caller.login)
    return RestResponse(204)


@handles("issues/remove-label", need=ISSUES_WRITE)
def remove_label(ctx: Context) -> RestResponse:
    repo, issue = _issue(ctx)
    removed = ctx.state.remove_label(repo, issue, ctx.params["name"])
    if removed is None:
        raise ApiError(404, "Label does not exist")
    ctx.events.labeled(repo, issue, removed, "unlabeled", ctx.caller.login)
    return _labels_response(ctx, repo, issue)


@handles("issues/list-labels-for-repo", need=ISSUES_READ)
def list_repo_labels(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    labels = sorted(repo.labels.values(), key=lambda lb: lb.name.lower())
    return ctx.page(labels, lambda lb: ctx.render.label(repo, lb))


@handles("issues/get-label", need=ISSUES_READ)
def get_label(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    return RestResponse(
        200, ctx.render.label(repo, ctx.state.label(repo, ctx.params["name"], create=False))
    )


@handles("issues/create-label", need=ISSUES_WRITE)
def create_label(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    body = json_body(ctx)
    name = str(body["name"])
    if name.lower() in repo.labels:
        raise validation_failed("Label", "name", "already_exists")
    label = ctx.state.label(repo, name)
    label.color = str(body.get("color", label.color)).lstrip("#")
    label.description = body.get("description")
    return RestResponse(201, ctx.render.label(repo, label))


@handles("issues/update-label", need=ISSUES_WRITE)
def update_label(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    label = ctx.state.label(repo, ctx.params["name"], create=False)
    body = json_body(ctx)
    if "new_name" in body:
        new_name = str(body["new_name"])
        del repo.labels[label.name.lower()]
        for issue in repo.issues.values():
            issue.labels = [new_name if n == label.name else n for n in issue.labels]
        label.name = new_name
        repo.labels[new_name.lower()] = label
    if "color" in body:
        label.color = str(body["color"]).lstrip("#")
    if "description" in body:
        label.description = body["description"]
    return RestResponse(200, ctx.render.label(repo, label))


# -- comments --------------------------------------------------------------------------------


def _check_body_length(body: str) -> None:
    if len(body) > COMMENT_BODY_MAX:
        raise validation_failed(
            "IssueComment",
            "body",
            "custom",
            f"body is too long (maximum is {COMMENT_BODY_MAX} characters)",
        )


@handles("issues/list-comments", need=ISSUES_READ)
def list_comments(ctx: Context) -> RestResponse:
    repo, issue = _issue(ctx)
    comments = [repo.comments[i] for i in issue.comments]
    since = ctx.query.get("since")
    if since:
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
        comments = [c for c in comments if c.updated_at >= moment]
    return ctx.page(comments, lambda c: ctx.render.comment(repo, c))


@handles("issues/create-comment", need=ISSUES_WRITE)
def create_comment(ctx: Context) -> RestResponse:
    repo, issue = _issue(ctx)
    text = str(json_body(ctx)["body"])
    _check_body_length(text)
    comment = ctx.state.add_comment(
        repo, issue, ctx.caller.login, text, via_app=ctx.caller.kind == "installation"
    )
    ctx.events.issue_comment(repo, issue, comment, "created", ctx.caller.login)
    out = ctx.render.comment(repo, comment)
    return RestResponse(201, out, {"Location": out["url"]})


@handles("issues/get-comment", need=ISSUES_READ)
def get_comment(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    return RestResponse(
        200, ctx.render.comment(repo, ctx.state.comment(repo, ctx.int_param("comment_id")))
    )


@handles("issues/update-comment", need=ISSUES_WRITE)
def update_comment(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    comment = ctx.state.comment(repo, ctx.int_param("comment_id"))
    text = str(json_body(ctx)["body"])
    _check_body_length(text)
    old = ctx.state.edit_comment(comment, text)
    issue = repo.issues[comment.issue_number]
    ctx.events.issue_comment(repo, issue, comment, "edited", ctx.caller.login, old_body=old)
    return RestResponse(200, ctx.render.comment(repo, comment))


@handles("issues/delete-comment", need=ISSUES_WRITE)
def delete_comment(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    comment = ctx.state.comment(repo, ctx.int_param("comment_id"))
    issue = repo.issues[comment.issue_number]
    ctx.events.issue_comment(repo, issue, comment, "deleted", ctx.caller.login)
    ctx.state.delete_comment(repo, comment)
    return RestResponse(204)


# -- reactions -------------------------------------------------------------------------------


@handles("reactions/list-for-issue-comment", need=ISSUES_READ)
def list_reactions(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    comment = ctx.state.comment(repo, ctx.int_param("comment_id"))
    content = ctx.query.get("content")
    reactions = [r for r in comment.reactions if content is None or r.content == content]
    return ctx.page(reactions, ctx.render.reaction)


@handles("reactions/create-for-issue-comment", need=ISSUES_WRITE)
def create_reaction(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    comment = ctx.state.comment(repo, ctx.int_param("comment_id"))
    reaction, created = ctx.state.react(comment, ctx.caller.login, str(json_body(ctx)["content"]))
    return RestResponse(201 if created else 200, ctx.render.reaction(reaction))


@handles("reactions/delete-for-issue-comment", need=ISSUES_WRITE)
def delete_reaction(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    comment = ctx.state.comment(repo, ctx.int_param("comment_id"))
    reaction_id = ctx.int_param("reaction_id")
    comment.reactions = [r for r in comment.reactions if r.id != reaction_id]
    return RestResponse(204)
