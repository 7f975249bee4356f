"""Check runs. Annotations accumulate across updates, as on GitHub; the 50-per-request limit and
the 65,535-character summary/text limits come from the OpenAPI schema and are enforced there."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.simulator.errors import ApiError
from app.simulator.models import CheckRun, Repo, utcnow
from app.simulator.rest.context import Context, RestResponse, handles, json_body

CHECKS_READ = ("checks", "read")
CHECKS_WRITE = ("checks", "write")


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(
            422, f"Invalid request.\n\n{value!r} is not a valid ISO 8601 timestamp."
        ) from exc


def _check(run: CheckRun, body: dict[str, Any]) -> None:
    """Refuse what GitHub refuses beyond the schema, before anything changes."""
    status = "completed" if body.get("conclusion") else body.get("status", run.status)
    if status == "completed" and not (body.get("conclusion") or run.conclusion):
        raise ApiError(
            422, 'Invalid request.\n\n"conclusion" is required when "status" is "completed".'
        )
    output = body.get("output")
    for ann in (output.get("annotations") or []) if isinstance(output, dict) else []:
        if ann["start_line"] != ann["end_line"] and ("start_column" in ann or "end_column" in ann):
            raise ApiError(
                422,
                "Invalid request.\n\nAnnotations only support start_column and end_column on "
                "the same line.",
            )
    for key in ("started_at", "completed_at"):
        _time(body.get(key))


def _apply(run: CheckRun, body: dict[str, Any]) -> bool:
    """Apply a create/update body; True when the run became completed."""
    _check(run, body)
    was_completed = run.status == "completed"
    for key in ("name", "details_url", "external_id"):
        if key in body:
            setattr(run, key, body[key])
    if "started_at" in body:
        run.started_at = _time(body["started_at"])
    if "status" in body:
        run.status = body["status"]
    if body.get("conclusion"):
        # "Providing conclusion will automatically set the status parameter to completed."
        run.conclusion = body["conclusion"]
        run.status = "completed"
    if "completed_at" in body:
        run.completed_at = _time(body["completed_at"])
    if run.status == "completed" and run.completed_at is None:
        run.completed_at = utcnow()
    output = body.get("output")
    if isinstance(output, dict):
        for key in ("title", "summary", "text"):
            if key in output:
                setattr(run, key, output[key])
        # Annotations are appended: each update adds up to 50 more.
        run.annotations.extend(dict(ann) for ann in output.get("annotations") or [])
    return run.status == "completed" and not was_completed


def _head_commit(ctx: Context, repo: Repo, head_sha: str) -> str:
    if ctx.state.resolve_ref(repo, head_sha) != head_sha:
        raise ApiError(422, f"No commit found for SHA: {head_sha}")
    return head_sha


@handles("checks/create", need=CHECKS_WRITE)
def create_check_run(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    body = json_body(ctx)
    head_sha = _head_commit(ctx, repo, str(body["head_sha"]))
    run = CheckRun(
        id=ctx.state.next_id("check_run"),
        repo=repo.full_name,
        name=str(body["name"]),
        head_sha=head_sha,
        suite_id=ctx.state.check_suite_id(repo, head_sha),
        app_id=ctx.state.config.app.id,
        started_at=utcnow(),
    )
    _apply(run, body)
    ctx.state.check_runs[run.id] = run
    ctx.events.check_run(repo, run, "created", ctx.caller.login)
    if run.status == "completed":
        ctx.events.check_run(repo, run, "completed", ctx.caller.login)
    return RestResponse(201, ctx.render.check_run(repo, run))


@handles("checks/get", need=CHECKS_READ)
def get_check_run(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    return RestResponse(
        200, ctx.render.check_run(repo, ctx.state.check_run(repo, ctx.int_param("check_run_id")))
    )


@handles("checks/update", need=CHECKS_WRITE)
def update_check_run(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    run = ctx.state.check_run(repo, ctx.int_param("check_run_id"))
    if _apply(run, json_body(ctx)):
        ctx.events.check_run(repo, run, "completed", ctx.caller.login)
    return RestResponse(200, ctx.render.check_run(repo, run))


@handles("checks/list-annotations", need=CHECKS_READ)
def list_annotations(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    run = ctx.state.check_run(repo, ctx.int_param("check_run_id"))
    return ctx.page(run.annotations, lambda ann: ctx.render.annotation(repo, run, ann))


@handles("checks/list-for-ref", need=CHECKS_READ)
def list_for_ref(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    ref = ctx.params["ref"]
    sha = ctx.state.resolve_ref(repo, ref)
    if sha is None:
        raise ApiError(422, f"No commit found for SHA: {ref}")
    query = ctx.query
    runs = [
        r for r in ctx.state.check_runs.values() if r.repo == repo.full_name and r.head_sha == sha
    ]
    if "check_name" in query:
        runs = [r for r in runs if r.name == query["check_name"]]
    if "status" in query:
        runs = [r for r in runs if r.status == query["status"]]
    if "app_id" in query:
        runs = [r for r in runs if str(r.app_id) == query["app_id"]]
    if query.get("filter", "latest") == "latest":
        latest: dict[str, CheckRun] = {}
        for run in runs:
            latest[run.name] = run  # ids grow, so the last one seen is the newest
        runs = list(latest.values())
    runs.sort(key=lambda r: -r.id)
    total = len(runs)
    return ctx.page(
        runs,
        lambda r: ctx.render.check_run(repo, r),
        wrap=lambda page: {"total_count": total, "check_runs": page},
    )


@handles("checks/rerequest-run", need=CHECKS_WRITE)
def rerequest_run(ctx: Context) -> RestResponse:
    repo = ctx.repo()
    run = ctx.state.check_run(repo, ctx.int_param("check_run_id"))
    ctx.events.check_run(repo, run, "rerequested", ctx.caller.login)
    return RestResponse(201, {})
