"""Pull requests: one, a list, and their changed files (GitHub lists at most 3,000)."""

from __future__ import annotations

from app.simulator.gitstore import FileChange
from app.simulator.rest.context import Context, RestResponse, handles

MAX_LISTED_FILES = 3000
DIFF_MEDIA = "application/vnd.github.diff"
DIFF_TYPE = "text/plain; charset=utf-8"


@handles("pulls/get", need=("pull_requests", "read"))
def get_pull(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    issue = ctx.state.pull(repo, ctx.int_param("pull_number"))
    if ctx.accepts(DIFF_MEDIA, "application/vnd.github.v3.diff"):
        changes = ctx.state.changed_files(repo, issue)
        return RestResponse(200, _unified_diff(changes).encode(), media_type=DIFF_TYPE)
    return RestResponse(200, ctx.render.pull(repo, issue))


@handles("pulls/list", need=("pull_requests", "read"))
def list_pulls(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    query = ctx.query
    state = query.get("state", "open")
    head = query.get("head")
    base = query.get("base")
    pulls = []
    for issue in sorted(repo.issues.values(), key=lambda i: -i.number):
        pull = issue.pull
        if pull is None or (state != "all" and issue.state != state):
            continue
        head_owner = pull.head_repo.split("/")[0]
        if head is not None and head not in (f"{head_owner}:{pull.head_ref}", pull.head_ref):
            continue
        if base is not None and base != pull.base_ref:
            continue
        pulls.append(issue)
    return ctx.page(pulls, lambda i: ctx.render.pull(repo, i))


@handles("pulls/list-files", need=("pull_requests", "read"))
def list_files(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    issue = ctx.state.pull(repo, ctx.int_param("pull_number"))
    assert issue.pull is not None
    head = issue.pull.head_sha
    changes = ctx.state.changed_files(repo, issue)[:MAX_LISTED_FILES]
    return ctx.page(changes, lambda c: ctx.render.file_change(repo, head, c))


def _unified_diff(changes: list[FileChange]) -> str:
    parts = []
    for c in changes:
        old = c.previous_filename or c.filename
        parts.append(f"diff --git a/{old} b/{c.filename}\n")
        if c.status == "added":
            parts.append(f"new file mode {c.mode}\n--- /dev/null\n+++ b/{c.filename}\n")
        elif c.status == "removed":
            parts.append(f"deleted file mode {c.mode}\n--- a/{old}\n+++ /dev/null\n")
        elif c.status == "renamed":
            parts.append(f"rename from {old}\nrename to {c.filename}\n")
            continue
        else:
            parts.append(f"--- a/{old}\n+++ b/{c.filename}\n")
        parts.append(f"{c.patch}\n" if c.patch is not None else "Binary files differ\n")
    return "".join(parts)
