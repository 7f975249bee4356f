"""Pull requests: the filterable list with each PR's triage state, latest jobs and one sentence
saying what it waits for, and each PR's page (findings, job timeline, generated samples, loss
curve, evaluation results). The query functions serve the pages and the JSON API alike; a page
is a handful of queries whatever the row count."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection, String, and_, bindparam, case, cast, func, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from app.dashboard.common import (
    AnyRow,
    AnySelect,
    Paging,
    Problems,
    choice,
    not_found,
    paging,
    reading,
    text,
    when,
)
from app.dashboard.jobs import (
    FINAL_HEADER,
    JobFiles,
    artifact,
    job_files,
    job_row,
    job_select,
    jsonl,
    loss_charts,
    preview,
    repositories,
)
from app.dashboard.schemas import (
    FindingRow,
    JobBadge,
    JobRow,
    PullDetail,
    PullPage,
    PullRow,
    TriageSummary,
    aware,
)
from app.dashboard.templating import templates
from app.db.models import (
    Job,
    JobKind,
    JobState,
    PullRequest,
    Repository,
    TestApproval,
    TriageFinding,
    TriageRun,
)
from app.jobs import QUEUE_OF
from bots import messages
from bots.job_checks import RETRY_COMMANDS, progress_line
from bots.triage.config import LabelNames
from workers.eval.report import anchor
from workers.eval.results import BenchResults

log = logging.getLogger(__name__)
router = APIRouter()

PULL_STATES = ("open", "closed", "merged", "all")
PULL_KINDS = ("knowledge", "skill", "mixed", "none")
MAX_FINDINGS = 500  # on the page; every one is at /api/triage-runs/{id}
MAX_TIMELINE = 100
BENCH_ARTIFACT = "bench/results.json"  # written by workers/eval/stage.py
PRECHECK_ARTIFACT = "precheck/answers.jsonl"
# The default label names: a repository may rename them in .github/labbot.yml, which lives on
# GitHub; the dashboard reads only its database.
LABELS = LabelNames()
ACTIVE = (JobState.queued, JobState.running)
PIPELINE_ORDER = list(JobKind)  # triage, precheck, sdg, train, bench, build


@dataclass(frozen=True)
class PullFilters:
    state: str = "open"
    kind: str | None = None
    author: str | None = None
    label: str | None = None
    repository: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str], problems: Problems) -> PullFilters:
        return cls(
            state=choice(params, "state", PULL_STATES, problems, default="open") or "open",
            kind=choice(params, "kind", PULL_KINDS, problems),
            author=text(params, "author", problems),
            label=text(params, "label", problems),
            repository=text(params, "repository", problems),
        )

    def params(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "kind": self.kind,
            "author": self.author,
            "label": self.label,
            "repository": self.repository,
        }

    def where(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.state == "open":
            conditions.append(PullRequest.state == "open")
        elif self.state == "closed":
            conditions += [PullRequest.state == "closed", PullRequest.merged.is_(False)]
        elif self.state == "merged":
            conditions.append(PullRequest.merged.is_(True))
        if self.kind is not None:
            conditions.append(PullRequest.kind == self.kind)
        if self.author is not None:
            conditions.append(PullRequest.author == self.author)
        if self.label is not None:
            # Labels are a JSON list written by json.dumps: the label's JSON string, quotes
            # included, appears in it exactly when the PR carries the label (both databases).
            conditions.append(
                cast(PullRequest.labels, String).contains(json.dumps(self.label), autoescape=True)
            )
        if self.repository is not None:
            conditions.append(
                PullRequest.repository_id.in_(
                    select(Repository.id).where(Repository.full_name == self.repository)
                )
            )
        return conditions


@dataclass(frozen=True)
class LatestJob:
    """The newest job of one kind on a PR, with what the sentence needs."""

    id: int
    kind: JobKind
    state: JobState
    head_sha: str | None
    progress: dict[str, Any]
    conclusion: str | None


PULL_COLUMNS = (
    PullRequest.id,
    PullRequest.number,
    PullRequest.title,
    PullRequest.author,
    PullRequest.state,
    PullRequest.draft,
    PullRequest.merged,
    PullRequest.merged_at,
    PullRequest.head_sha,
    PullRequest.labels,
    PullRequest.kind,
    PullRequest.updated_at,
    Repository.full_name.label("repository"),
    # A triager's ok-to-test for the current head (see pull_select: at most one row).
    TestApproval.id.is_not(None).label("approved"),
)


def pull_select() -> AnySelect:
    """PRs with their repository and whether their head was marked ok to test (the unique
    (PR, SHA) constraint on approvals keeps it one row per PR)."""
    return (
        select(*PULL_COLUMNS)
        .join(Repository, Repository.id == PullRequest.repository_id)
        .outerjoin(
            TestApproval,
            and_(
                TestApproval.pull_request_id == PullRequest.id,
                TestApproval.head_sha == PullRequest.head_sha,
            ),
        )
    )


TRIAGE_COLUMNS = (
    TriageRun.id,
    TriageRun.pull_request_id,
    TriageRun.head_sha,
    TriageRun.status,
    TriageRun.conclusion,
    TriageRun.errors,
    TriageRun.warnings,
    TriageRun.summary,
    TriageRun.created_at,
)


# --- queries ----------------------------------------------------------------------------------


def list_pulls(conn: Connection, filters: PullFilters, page: Paging) -> PullPage:
    """A page of pull requests, last updated first: the count, the rows, then their triage
    runs and latest jobs (four queries)."""
    where = filters.where()
    total, shown, has_next = page.read(
        conn,
        select(func.count(PullRequest.id)).where(*where),
        pull_select().where(*where).order_by(PullRequest.updated_at.desc(), PullRequest.id.desc()),
    )
    runs = triage_runs(conn, {r.id: r.head_sha for r in shown})
    jobs = latest_jobs(conn, [r.id for r in shown])
    return PullPage(
        page=page.page,
        per_page=page.per_page,
        total=total,
        has_next=has_next,
        items=[pull_row(r, runs.get(r.id), jobs.get(r.id, [])) for r in shown],
    )


_RANKED_RUNS = (
    select(
        *TRIAGE_COLUMNS,
        func.row_number()
        .over(partition_by=TriageRun.pull_request_id, order_by=TriageRun.id.desc())
        .label("rank"),
    )
    .where(
        tuple_(TriageRun.pull_request_id, TriageRun.head_sha).in_(
            bindparam("heads", expanding=True)
        )
    )
    .subquery()
)
# Built once: a page pays for running it, not for building and compiling it.
LATEST_RUNS = select(_RANKED_RUNS).where(_RANKED_RUNS.c.rank == 1)


def triage_runs(conn: Connection, heads: Mapping[int, str]) -> dict[int, TriageSummary]:
    """The latest triage run of each PR (``heads``: PR id to its head SHA) for that head: one
    query."""
    if not heads:
        return {}
    rows = conn.execute(LATEST_RUNS, {"heads": list(heads.items())}).all()
    return {row.pull_request_id: _triage(row) for row in rows}


def _triage(row: AnyRow) -> TriageSummary:
    return TriageSummary(
        id=row.id,
        head_sha=row.head_sha,
        status=str(row.status),
        conclusion=row.conclusion,
        errors=row.errors,
        warnings=row.warnings,
        summary=row.summary,
        created_at=aware(row.created_at),
    )


_RANKED_JOBS = (
    select(
        Job.id,
        Job.pull_request_id,
        Job.kind,
        Job.state,
        Job.head_sha,
        # Only a running job's progress is shown: the others' are not read.
        case((Job.state == JobState.running, Job.progress), else_=None).label("progress"),
        Job.result["conclusion"].as_string().label("conclusion"),
        func.row_number()
        .over(partition_by=(Job.pull_request_id, Job.kind), order_by=Job.id.desc())
        .label("rank"),
    )
    .where(Job.pull_request_id.in_(bindparam("pull_ids", expanding=True)))
    .subquery()
)
LATEST_JOBS = (
    select(_RANKED_JOBS).where(_RANKED_JOBS.c.rank == 1).order_by(_RANKED_JOBS.c.id.desc())
)


def latest_jobs(conn: Connection, pull_ids: Sequence[int]) -> dict[int, list[LatestJob]]:
    """The newest job of each kind per PR, newest first: one query (a window over the PRs'
    jobs, found through their index; no scan of the whole table)."""
    if not pull_ids:
        return {}
    rows = conn.execute(LATEST_JOBS, {"pull_ids": list(pull_ids)}).all()
    found: dict[int, list[LatestJob]] = {}
    for row in rows:
        found.setdefault(row.pull_request_id, []).append(
            LatestJob(
                row.id,
                JobKind(row.kind),
                JobState(row.state),
                row.head_sha,
                row.progress if isinstance(row.progress, dict) else {},
                row.conclusion,
            )
        )
    return found


def pull_row(row: AnyRow, run: TriageSummary | None, jobs: list[LatestJob]) -> PullRow:
    return PullRow(**_pull_fields(row, run, jobs))


def _pull_fields(row: AnyRow, run: TriageSummary | None, jobs: list[LatestJob]) -> dict[str, Any]:
    labels = [str(label) for label in row.labels or []]
    state = "merged" if row.merged else str(row.state)
    return {
        "id": row.id,
        "repository": row.repository,
        "number": row.number,
        "title": row.title,
        "author": row.author,
        "state": state,
        "draft": bool(row.draft),
        "merged_at": aware(row.merged_at),
        "head_sha": row.head_sha,
        "labels": labels,
        "kind": row.kind,
        "updated_at": aware(row.updated_at),
        "triage": run,
        "jobs": [
            JobBadge(
                id=j.id,
                kind=j.kind,
                state=j.state,
                head_sha=j.head_sha,
                current=j.head_sha == row.head_sha,
            )
            for j in sorted(jobs, key=lambda j: PIPELINE_ORDER.index(j.kind))
        ],
        "blocking": blocking_sentence(
            state=state,
            draft=bool(row.draft),
            merged_at=row.merged_at,
            head_sha=row.head_sha,
            labels=labels,
            run=run,
            jobs=jobs,
            approved=bool(row.approved),
        ),
        "url": f"/pulls/{row.repository}/{row.number}",
    }


@dataclass(frozen=True)
class PullPageData:
    detail: PullDetail
    files: dict[int, JobFiles]  # where each job of the timeline keeps its artifacts


def get_pull(conn: Connection, repo: str, number: int) -> PullPageData | None:
    """One PR with its latest triage run's findings and its jobs: four queries."""
    row = conn.execute(
        pull_select().where(Repository.full_name == repo, PullRequest.number == number)
    ).one_or_none()
    if row is None:
        return None
    run = triage_runs(conn, {row.id: row.head_sha}).get(row.id)
    findings: list[FindingRow] = []
    findings_total = 0
    if run is not None:
        findings = [
            FindingRow(**f._mapping)
            for f in conn.execute(
                select(
                    TriageFinding.path,
                    TriageFinding.line,
                    TriageFinding.column,
                    TriageFinding.severity,
                    TriageFinding.rule,
                    TriageFinding.message,
                    TriageFinding.hint,
                )
                .where(TriageFinding.triage_run_id == run.id)
                .order_by(TriageFinding.path, TriageFinding.line, TriageFinding.column)
                .limit(MAX_FINDINGS)
            )
        ]
        findings_total = max(len(findings), run.errors + run.warnings)
    timeline_rows = conn.execute(
        job_select(Job.result["conclusion"].as_string().label("conclusion"))
        .where(Job.pull_request_id == row.id)
        .order_by(Job.id.desc())
        .limit(MAX_TIMELINE)
    ).all()
    latest: dict[JobKind, LatestJob] = {}
    for job in timeline_rows:
        kind = JobKind(job.kind)
        if kind not in latest:
            progress = job.progress if isinstance(job.progress, dict) else {}
            state = JobState(job.state)
            latest[kind] = LatestJob(job.id, kind, state, job.head_sha, progress, job.conclusion)
    detail = PullDetail(
        **_pull_fields(row, run, list(latest.values())),
        findings=findings,
        findings_total=findings_total,
        timeline=[job_row(job) for job in timeline_rows],
    )
    return PullPageData(detail, {job.id: job_files(job) for job in timeline_rows})


# --- what is blocking ---------------------------------------------------------------------------


def blocking_sentence(
    *,
    state: str,
    draft: bool,
    merged_at: Any,
    head_sha: str,
    labels: Sequence[str],
    run: TriageSummary | None,
    jobs: Sequence[LatestJob],
    approved: bool,
) -> str:
    """One sentence: what the PR waits for, from its state, its latest triage run for the head,
    the latest job of each kind (newest first), and whether its head was marked ok to test.
    Follows the gates of ``bots.pipeline`` (closed, draft, trust, the stage before)."""
    sha = head_sha[:7]
    if state == "merged":
        merged = f" on {when(aware(merged_at))[:10]}" if merged_at else ""
        return messages.BLOCKING_MERGED.format(date=merged)
    if state == "closed":
        return messages.BLOCKING_CLOSED
    if draft:
        return messages.BLOCKING_DRAFT
    on_head = [job for job in jobs if job.head_sha == head_sha]
    triage = next((job for job in on_head if job.kind is JobKind.triage), None)
    retriage = triage is not None and triage.state in ACTIVE
    if run is None or run.conclusion is None:  # no verdict for this head yet
        if retriage:
            return messages.BLOCKING_TRIAGE_RUNNING.format(sha=sha)
        if triage is not None and triage.state is JobState.failed:
            return messages.BLOCKING_TRIAGE_FAILED.format(sha=sha)
        return messages.BLOCKING_NOT_TRIAGED.format(sha=sha)
    if run.errors:
        return messages.BLOCKING_TRIAGE_ERRORS.format(errors=run.errors, sha=sha)
    stages = [job for job in on_head if job.kind not in (JobKind.triage, JobKind.build)]
    stages.sort(key=lambda job: job.id, reverse=True)
    active = next((job for job in stages if job.state in ACTIVE), None)
    if active is not None:
        return _active_sentence(active)
    if stages:
        return _finished_sentence(stages[0], sha)
    if retriage:
        return messages.BLOCKING_TRIAGE_RUNNING.format(sha=sha)
    if LABELS.needs_ok_to_test in labels and not approved:
        return messages.BLOCKING_OK_TO_TEST.format(sha=sha)
    return messages.BLOCKING_TRIAGE_PASSED.format(label=LABELS.generate_ready)


def _kind_name(kind: JobKind) -> str:
    return messages.DASHBOARD_KIND_NAMES.get(kind.value, kind.value)


def _active_sentence(job: LatestJob) -> str:
    if job.state is JobState.queued:
        return messages.BLOCKING_JOB_QUEUED.format(
            kind=_kind_name(job.kind), queue=QUEUE_OF.get(job.kind, job.kind.value)
        )
    line = progress_line(job.progress)
    return messages.BLOCKING_JOB_RUNNING.format(
        kind=_kind_name(job.kind), progress=f" ({line})" if line else ""
    )


def _finished_sentence(job: LatestJob, sha: str) -> str:
    kind = _kind_name(job.kind)
    command = RETRY_COMMANDS.get(job.kind, "")
    if job.state is JobState.failed:
        return messages.BLOCKING_JOB_FAILED.format(kind=kind, sha=sha, command=command)
    if job.state is not JobState.succeeded:
        return messages.BLOCKING_JOB_CANCELLED.format(kind=kind, sha=sha, command=command)
    if job.kind is JobKind.bench:
        conclusion = messages.DASHBOARD_CONCLUSIONS.get(job.conclusion or "", "")
        return messages.BLOCKING_RESULTS_READY.format(
            conclusion=f" ({conclusion})" if conclusion else ""
        )
    if job.kind is JobKind.train:
        return messages.BLOCKING_TRAINED
    if job.kind is JobKind.sdg:
        return messages.BLOCKING_DATA_READY.format(label=LABELS.build_ready)
    return messages.BLOCKING_PRECHECK_READY.format(label=LABELS.generate_ready)


# --- pages --------------------------------------------------------------------------------------


@router.get("/pulls", response_class=HTMLResponse)
def pulls_page(request: Request) -> HTMLResponse:
    """Taxonomy pull requests (open ones first by default), filterable."""
    problems = Problems()
    filters = PullFilters.parse(request.query_params, problems)
    page = paging(request.query_params, problems)
    with reading() as conn:
        result = list_pulls(conn, filters, page)
        names = repositories(conn)
    context = {
        "result": result,
        "filters": filters,
        "params": filters.params(),
        "problems": problems,
        "repositories": names,
        "states": PULL_STATES,
        "kinds": PULL_KINDS,
        "labels": sorted(set(LABELS.model_dump().values())),
    }
    return templates.TemplateResponse(request, "pulls.html", context)


@router.get("/pulls/{owner}/{name}/{number}", response_class=HTMLResponse)
def pull_page(request: Request, owner: str, name: str, number: int) -> HTMLResponse:
    """One pull request: what blocks it, its triage findings, its jobs, the generated samples,
    the training loss, and what evaluating it found (the same tables as the PR's results
    comment, with every question in full)."""
    repo = f"{owner}/{name}"
    with reading() as conn:
        found = get_pull(conn, repo, number)
    if found is None:
        return not_found(request, messages.PULL_NOT_FOUND)
    pull = found.detail
    sdg_job = _latest(pull.timeline, JobKind.sdg)
    train_job = _latest(pull.timeline, JobKind.train, started=True)
    bench_job = _latest(pull.timeline, JobKind.bench)
    precheck_job = _latest(pull.timeline, JobKind.precheck)
    context = {
        **_live_context(repo, pull),
        "sdg_job": sdg_job,
        "preview": preview(found.files[sdg_job.id]) if sdg_job else {},
        "train_job": train_job,
        "loss_charts": loss_charts(found.files[train_job.id]) if train_job else [],
        "bench_job": bench_job,
        "bench": _bench_results(found.files[bench_job.id]) if bench_job else None,
        "precheck_job": precheck_job,
        "precheck": (
            jsonl(artifact(found.files[precheck_job.id], PRECHECK_ARTIFACT)) if precheck_job else []
        ),
        "anchor": anchor,
    }
    return templates.TemplateResponse(request, "pull.html", context)


@router.get(
    "/fragments/pulls/{owner}/{name}/{number}",
    response_class=HTMLResponse,
    include_in_schema=False,
)
def pull_fragment(request: Request, owner: str, name: str, number: int) -> HTMLResponse:
    """The live part of a PR's page (what blocks it, its triage and its jobs); the last one
    once none of its jobs is queued or running."""
    repo = f"{owner}/{name}"
    with reading() as conn:
        found = get_pull(conn, repo, number)
    if found is None:
        return not_found(request, messages.PULL_NOT_FOUND)
    context = _live_context(repo, found.detail)
    response = templates.TemplateResponse(request, "_pull_live.html", context)
    if not context["active"]:
        response.headers.update(FINAL_HEADER)
    return response


def _live_context(repo: str, pull: PullDetail) -> dict[str, Any]:
    return {
        "repo": repo,
        "pull": pull,
        "active": any(job.active for job in pull.timeline),
        "live_url": f"/fragments/pulls/{repo}/{pull.number}",
    }


def _latest(jobs: Sequence[JobRow], kind: JobKind, started: bool = False) -> JobRow | None:
    """The newest succeeded job of a kind (or, with ``started``, the newest that ran)."""
    for job in jobs:
        if job.kind is not kind:
            continue
        if job.state is JobState.succeeded or (started and job.started_at is not None):
            return job
    return None


def _bench_results(files: JobFiles) -> BenchResults | None:
    data = artifact(files, BENCH_ARTIFACT)
    if not data:
        return None
    try:
        return BenchResults.model_validate_json(data)
    except ValueError:
        log.warning("job %s: unreadable %s", files.id, BENCH_ARTIFACT)
        return None
