"""Repositories and git data: repository, contents, blobs, trees, commits, collaborator roles."""

from __future__ import annotations

import posixpath

from app.simulator.errors import ApiError, not_found
from app.simulator.gitstore import MODE_SUBMODULE, MODE_SYMLINK, MODE_TREE, TreeItem
from app.simulator.models import LEGACY_PERMISSION, Repo
from app.simulator.render import JsonObj, b64_lines, node_id
from app.simulator.rest.context import Context, RestResponse, handles

# The contents API inlines files up to 1 MB; bigger ones come back with encoding "none".
CONTENT_INLINE_LIMIT = 1024 * 1024
RAW_MEDIA = ("application/vnd.github.raw", "application/vnd.github.v3.raw")
RAW_TYPE = "application/vnd.github.raw"


@handles("repos/get", need=("metadata", "read"))
def get_repo(ctx: Context) -> RestResponse:
    return RestResponse(200, ctx.render.repo(ctx.repo()))


def _commit_for(ctx: Context, repo: Repo, ref: str | None) -> str:
    sha = ctx.state.resolve_ref(repo, ref or repo.default_branch)
    if sha is None:
        raise ApiError(404, f"No commit found for the ref {ref}")
    return sha


@handles("repos/get-content", need=("contents", "read"))
def get_content(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    ref = ctx.query.get("ref") or repo.default_branch
    sha = _commit_for(ctx, repo, ref)
    commit = repo.git.get_commit(sha)
    assert commit is not None
    path = ctx.params["path"].strip("/")
    item = repo.git.lookup(commit.tree, path)
    if item is None:
        raise not_found()
    if item.mode == MODE_TREE:
        listing = [
            ctx.render.content_entry(
                repo, ref, f"{path}/{child.name}" if path else child.name, child, in_listing=True
            )
            for _, child in repo.git.walk(item.sha, recursive=False)
        ]
        return RestResponse(200, listing)
    if item.mode == MODE_SYMLINK:
        # "If the symlink's target is a normal file in the repository, then the API responds
        # with the content of the file. Otherwise, the API responds with an object describing
        # the symlink itself."
        target = _blob_text(repo, item)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        target_item = (
            None
            if resolved.startswith("../") or target.startswith("/")
            else repo.git.lookup(commit.tree, resolved)
        )
        if target_item is not None and target_item.mode not in (
            MODE_TREE,
            MODE_SYMLINK,
            MODE_SUBMODULE,
        ):
            return _file(ctx, repo, ref, resolved, target_item)
        if ctx.accepts(*RAW_MEDIA):
            return RestResponse(200, target.encode(), media_type=RAW_TYPE)
        entry = ctx.render.content_entry(repo, ref, path, item, in_listing=False)
        entry["target"] = target
        return RestResponse(200, entry)
    if item.mode == MODE_SUBMODULE:
        entry = ctx.render.content_entry(repo, ref, path, item, in_listing=False)
        entry["submodule_git_url"] = (
            f"{ctx.render.html}/{repo.owner}/{posixpath.basename(path)}.git"
        )
        return RestResponse(200, entry)
    return _file(ctx, repo, ref, path, item)


def _file(ctx: Context, repo: Repo, ref: str, path: str, item: TreeItem) -> RestResponse:
    blob = repo.git.get_blob(item.sha)
    data = blob.data if blob is not None else b""
    if ctx.accepts(*RAW_MEDIA):
        return RestResponse(200, data, media_type=RAW_TYPE)
    entry = ctx.render.content_entry(repo, ref, path, item, in_listing=False)
    if len(data) <= CONTENT_INLINE_LIMIT:
        entry.update(content=b64_lines(data), encoding="base64")
    else:
        entry.update(content="", encoding="none")
    return RestResponse(200, entry)


def _blob_text(repo: Repo, item: TreeItem) -> str:
    blob = repo.git.get_blob(item.sha)
    return blob.data.decode("utf-8", "replace") if blob is not None else ""


@handles("git/get-blob", need=("contents", "read"))
def get_blob(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    sha = ctx.params["file_sha"]
    blob = repo.git.get_blob(sha)
    if blob is None:
        raise not_found()
    if ctx.accepts(*RAW_MEDIA):
        return RestResponse(200, blob.data, media_type=RAW_TYPE)
    return RestResponse(
        200,
        {
            "sha": sha,
            "node_id": node_id("Blob", int(sha[:8], 16)),
            "size": len(blob.data),
            "url": f"{ctx.render.api}/repos/{repo.full_name}/git/blobs/{sha}",
            "content": b64_lines(blob.data),
            "encoding": "base64",
        },
    )


@handles("git/get-tree", need=("contents", "read"))
def get_tree(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    wanted = ctx.params["tree_sha"]
    tree_sha: str | None = wanted if repo.git.get_tree(wanted) is not None else None
    if tree_sha is None:
        commit_sha = ctx.state.resolve_ref(repo, wanted)
        commit = repo.git.get_commit(commit_sha) if commit_sha else None
        if commit is None:
            raise not_found()
        tree_sha = commit.tree
    # "Setting this parameter to any value returns the objects or subtrees" (even 0 or false).
    recursive = "recursive" in ctx.query
    entries = [
        ctx.render.tree_entry(repo, path, item)
        for path, item in repo.git.walk(tree_sha, recursive=recursive)
    ]
    return RestResponse(
        200,
        {
            "sha": tree_sha,
            "url": f"{ctx.render.api}/repos/{repo.full_name}/git/trees/{tree_sha}",
            "tree": entries,
            "truncated": False,
        },
    )


@handles("repos/get-commit", need=("contents", "read"))
def get_commit(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    ref = ctx.params["ref"]
    sha = ctx.state.resolve_ref(repo, ref)
    if sha is None:
        raise ApiError(422, f"No commit found for SHA: {ref}")
    out = ctx.render.commit(repo, sha)
    commit = repo.git.get_commit(sha)
    assert commit is not None
    parent = repo.git.snapshot(commit.parents[0]) if commit.parents else {}
    changes = repo.git.diff(parent, repo.git.snapshot(sha))
    additions = sum(c.additions for c in changes)
    deletions = sum(c.deletions for c in changes)
    out["stats"] = {"additions": additions, "deletions": deletions, "total": additions + deletions}
    out["files"] = [ctx.render.file_change(repo, sha, c) for c in changes]
    return RestResponse(200, out)


@handles("repos/get-collaborator-permission-level", need=("metadata", "read"))
def get_collaborator_permission(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    login = ctx.params["username"]
    role = ctx.state.role_of(repo, login)
    user: JsonObj | None = ctx.render.user(login)
    if user is not None:
        user["role_name"] = role
        user["permissions"] = {
            "admin": role == "admin",
            "maintain": role in ("admin", "maintain"),
            "push": role in ("admin", "maintain", "write"),
            "triage": role in ("admin", "maintain", "write", "triage"),
            "pull": role != "none",
        }
    return RestResponse(
        200, {"permission": LEGACY_PERMISSION[role], "role_name": role, "user": user}
    )
