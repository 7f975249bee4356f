"""A realistic dashboard dataset, written straight into a migrated database.

    from tests.seed import seed
    seeded = seed(engine_or_url, pulls=30, jobs=200, builds=5)          # browser tests
    seeded = seed(engine_or_url, pulls=2000, jobs=10_000, builds=50)   # bench/dashboard.py

What it writes, deterministically for a given ``random_seed`` and ``now``:

- one installation and two repositories (``instructlab-demo/taxonomy`` holds most of the data,
  ``instructlab-demo/taxonomy-staging`` the rest);
- ``pulls`` pull requests, open (some drafts), closed and merged, by a few dozen authors, with
  the label names of ``bots.triage.config.LabelNames`` and the kinds knowledge / skill / mixed
  (a few open ones not triaged yet);
- triage runs for each PR (older heads superseded or completed, the current head's last), with
  findings at file:line for the runs that found something (one PR has a long list);
- ``builds`` builds in every BuildState, weekly, each linked to the PRs merged since the
  previous build of its repository, with stages and scores, and one ``build`` job each;
- ``jobs`` more jobs over every other JobKind and every JobState, with realistic timestamps,
  progress, errors and results (a bench job's result is {"conclusion", "title", "summary",
  "scores"} as workers/eval/stage.py writes it); queued and running jobs only on open PRs at
  their head, at most one active per (PR, kind, head SHA), running ones with a fresh heartbeat;
- command audits for the jobs started by a command, and a few refusals;
- ``deliveries`` webhook deliveries (default: half the jobs, at least 50) in every
  DeliveryStatus, with small JSON bodies;
- five workers (WorkerSeen), one of them gone silent.

With ``artifacts_dir`` (the server's LABBOT_ARTIFACTS_DIR) the newest ``artifacts_limit``
(default 2,000) started jobs also get their ``job.log`` there, sdg jobs a
``dataset/preview.json``, train jobs ``train/output/metrics.jsonl`` and succeeded bench jobs
``bench/results.json`` (valid ``BenchResults``), as the workers write them, and the jobs'
``log_path`` / ``artifacts_path`` point at them. Older jobs look as if their artifacts were
cleaned up (no paths): small files are slow to create on some disks. The rows are the same
with or without artifacts.

Rows go in with bulk INSERTs (executemany, ids drawn from each table's sequence first), so the
large size takes a few seconds on PostgreSQL (plus about a second per thousand jobs' artifacts).
The sequences stay ahead of the seeded ids, so rows added afterwards (by the app or a test) do
not collide. Works on SQLite too.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, create_engine, insert, text

from app.db.models import (
    Base,
    Build,
    BuildPullRequest,
    BuildState,
    CommandAudit,
    CommandOutcome,
    Delivery,
    DeliveryStatus,
    Installation,
    Job,
    JobKind,
    JobState,
    Repository,
    RunStatus,
    TriageFinding,
    WorkerSeen,
)
from bots import messages
from bots.triage.config import LabelNames

DEFAULT_SEED = 20261121
INSTALLATION_ID = 41_000_001
ORG = "instructlab-demo"
MAIN_REPO = (501_000_001, f"{ORG}/taxonomy")
STAGING_REPO = (501_000_002, f"{ORG}/taxonomy-staging")
BASE_MODEL = "ibm-granite/granite-3.1-8b-instruct"
LABELS = LabelNames()

# --- vocabulary -------------------------------------------------------------------------------

KNOWLEDGE_LEAVES = (
    ("knowledge/science/astronomy/exoplanets", "exoplanet detection methods"),
    ("knowledge/history/ancient_rome/aqueducts", "Roman aqueducts"),
    ("knowledge/technology/networking/bgp", "BGP route selection"),
    ("knowledge/arts/music/baroque_composers", "Baroque composers"),
    ("knowledge/geography/rivers/danube", "the Danube basin"),
    ("knowledge/finance/accounting/ifrs_16", "IFRS 16 leases"),
    ("knowledge/medicine/pharmacology/anticoagulants", "anticoagulants"),
    ("knowledge/sports/cricket/laws_of_cricket", "the Laws of Cricket"),
    ("knowledge/food/fermentation/kimchi", "kimchi fermentation"),
    ("knowledge/law/contracts/force_majeure", "force majeure clauses"),
    ("knowledge/science/chemistry/lanthanides", "the lanthanides"),
    ("knowledge/technology/databases/mvcc", "MVCC in PostgreSQL"),
)
SKILL_LEAVES = (
    ("compositional_skills/writing/freeform/haiku", "haiku about the seasons"),
    ("compositional_skills/extraction/tables/invoice_fields", "invoice field extraction"),
    ("compositional_skills/reasoning/logical/syllogisms", "syllogisms"),
    ("compositional_skills/linguistics/translation/spanish_idioms", "Spanish idioms"),
    ("compositional_skills/coding/sql/window_functions", "SQL window functions"),
    ("compositional_skills/math/unit_conversion", "unit conversion"),
    ("compositional_skills/writing/grounded/meeting_summaries", "meeting summaries"),
    ("compositional_skills/roleplay/customer_support", "customer support replies"),
    ("compositional_skills/reasoning/temporal/time_zones", "time zone arithmetic"),
)
AUTHORS = (
    "amara-okafor", "bjorn-lund", "chen-wei", "dpatel", "eliska-nov", "fatima-z", "gabriel-m",
    "hanna-s", "ivan-petrov", "jules-b", "kwame-a", "lucia-ferrer", "mkrause", "nadia-h",
    "oscar-lindqvist", "priya-r", "quentin-d", "rosa-mtz", "sven-o", "tomoko-y", "ugo-c",
    "valentina-r", "wen-li", "ximena-g", "yusuf-k", "zoe-t", "ali-hassan", "bea-costa",
    "carlos-ruiz", "dana-w", "erik-j", "farah-n", "gita-s", "hugo-p", "ines-m", "jonas-k",
    "kira-v", "leo-g", "maya-c", "nils-e", "olga-s", "pavel-d", "rania-b", "sara-l",
)  # fmt: skip
TRIAGERS = ("mkrause", "hanna-s", "dpatel", "okafor-e", "ljubica-t")
ASSOCIATIONS = ("CONTRIBUTOR", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "NONE", "MEMBER")
WORKER_HOSTS = {
    "triage": "labbot-events-triage@cpu-1",
    "sdg": "labbot-sdg@gpu-h100-1",
    "train": "labbot-train@gpu-h100-2",
    "bench": "labbot-eval@gpu-h100-3",
    "precheck": "labbot-eval@gpu-h100-3",
    "build": "labbot-train@gpu-h100-2",
}
STAGES = {
    JobKind.triage: ("triage",),
    JobKind.precheck: ("serving the model", "answering", "judging", "posting the results"),
    JobKind.sdg: ("fetching documents", "generating knowledge", "generating skills", "dataset"),
    JobKind.train: ("preparing data", "phase 1", "phase 2", "saving the model"),
    JobKind.bench: ("serving the models", "answering", "judging", "posting the results"),
    JobKind.build: ("data", "train", "evaluate"),
}
DURATION_S = {  # typical run time per kind: (low, high)
    JobKind.triage: (0.4, 6.0),
    JobKind.precheck: (120.0, 900.0),
    JobKind.sdg: (1200.0, 6 * 3600.0),
    JobKind.train: (3600.0, 14 * 3600.0),
    JobKind.bench: (900.0, 3 * 3600.0),
    JobKind.build: (6 * 3600.0, 30 * 3600.0),
}
KIND_WEIGHTS = {
    JobKind.triage: 45,
    JobKind.sdg: 15,
    JobKind.train: 12,
    JobKind.bench: 14,
    JobKind.precheck: 14,
}
STATE_WEIGHTS = {
    JobState.succeeded: 58,
    JobState.failed: 12,
    JobState.cancelled: 8,
    JobState.superseded: 10,
    JobState.queued: 6,
    JobState.running: 6,
}
TRIGGERS = {
    JobKind.triage: (("event:pull_request", 8), ("command:retest", 2)),
    JobKind.sdg: ((f"label:{LABELS.generate_ready}", 7), ("command:generate", 3)),
    JobKind.train: ((f"label:{LABELS.build_ready}", 7), ("command:train", 3)),
    JobKind.bench: (("after:train", 7), ("command:bench", 3)),
    JobKind.precheck: (("command:precheck", 1),),
}
FAILURES = {
    JobKind.triage: (
        messages.JOB_CRASHED.format(error="GitHub answered 502 Bad Gateway"),
        messages.JOB_WORKER_LOST.format(attempts=3),
    ),
    JobKind.precheck: (
        "The model server did not answer within 900 s: CUDA out of memory on the first request.",
        messages.JOB_TIME_LIMIT.format(limit="1 h"),
    ),
    JobKind.sdg: (
        "No leaf kept any sample: knowledge/science/astronomy/exoplanets: 320 generated, 0 kept "
        "(judges rejected everything: unclear seeds or a weak teacher).",
        "The document repository https://github.com/contributor/docs could not be fetched at "
        "commit 3f1c2e9: the commit does not exist.",
        messages.JOB_TIME_LIMIT.format(limit="8.0 h"),
        messages.JOB_NO_WORKER.format(queue="sdg"),
    ),
    JobKind.train: (
        "Training stopped: CUDA out of memory (rank 1, tried to allocate 2.50 GiB).",
        "No successful sdg job at this head commit: comment `/lab generate` first.",
        messages.JOB_WORKER_LOST.format(attempts=3),
    ),
    JobKind.bench: (
        "The judge answered 41% of the judgments in an unreadable form (limit 20%).",
        messages.JOB_STAGE_UNAVAILABLE.format(kind="bench"),
    ),
    JobKind.build: (
        "Training stopped: loss became NaN at step 1840 (phase 2).",
        "The artifact store did not answer: could not upload train/output (timed out).",
    ),
}
CANCELS = (
    messages.JOB_CANCELLED_BY.format(user="@mkrause"),
    messages.JOB_CANCELLED_LABEL.format(label=LABELS.generate_ready),
    messages.JOB_CANCELLED_CLOSED,
    messages.JOB_CANCELLED_DRAFT,
)
FINDINGS = (
    ("schema/required", "error", "'created_by' is a required property", "Add `created_by: <your GitHub login>`."),  # noqa: E501
    ("schema/type", "error", "12 is not of type 'string'", "Quote the value: `answer: \"12\"`."),
    ("examples/too-few", "error", "Only 3 seed examples; this kind needs at least 5.", "Add examples until there are 5."),  # noqa: E501
    ("examples/duplicate-answer", "warning", "This answer repeats example 2 word for word.", "Give each example its own answer."),  # noqa: E501
    ("attribution/missing", "error", "The leaf has no attribution.txt.", "Add attribution.txt with title, link, license and creator."),  # noqa: E501
    ("attribution/license", "warning", "License 'CC-BY-NC-4.0' is not on the allow-list.", "Use one of CC0-1.0, CC-BY-4.0, CC-BY-SA-4.0."),  # noqa: E501
    ("pii/email", "warning", "An e-mail address (j***@example.com) in an answer.", "Remove it, or allow it in .github/labbot.yml."),  # noqa: E501
    ("pii/credit-card", "error", "A credit card number (4111 **** **** 1111).", "Remove the number."),  # noqa: E501
    ("lint/trailing-spaces", "warning", "trailing spaces", "Remove the spaces at the end of the line."),  # noqa: E501
    ("lint/indentation", "error", "wrong indentation: expected 4 but found 2", "Indent by 4 spaces."),  # noqa: E501
    ("layout/filename", "error", "Taxonomy files are named qna.yaml, not qna.yml.", "Rename the file to qna.yaml."),  # noqa: E501
    ("document/commit", "error", "document.commit must be a full 40-character SHA.", "Use the full commit hash."),  # noqa: E501
    ("content/llm-output", "warning", "'As an AI language model' reads like pasted chat output.", "Write the answer in your own words."),  # noqa: E501
    ("yaml/duplicate-key", "error", "Duplicate key 'question' (first on line 14).", "Keep one of the two keys."),  # noqa: E501
)  # fmt: skip
EVENTS = (  # (event, action, weight, handled)
    ("pull_request", "opened", 14, True),
    ("pull_request", "synchronize", 22, True),
    ("pull_request", "labeled", 12, True),
    ("pull_request", "unlabeled", 4, True),
    ("pull_request", "closed", 10, True),
    ("pull_request", "reopened", 1, True),
    ("pull_request", "ready_for_review", 2, True),
    ("pull_request", "converted_to_draft", 1, True),
    ("issue_comment", "created", 18, True),
    ("issue_comment", "edited", 3, False),
    ("check_run", "rerequested", 2, True),
    ("check_run", "completed", 6, False),
    ("check_suite", "completed", 3, False),
    ("installation", "created", 1, True),
    ("push", None, 4, False),
)
DELIVERY_ERRORS = (
    "GitHubError: 502 Bad Gateway on POST /repos/instructlab-demo/taxonomy/check-runs",
    "OperationalError: could not connect to server: Connection refused",
    "RateLimited: secondary rate limit; retry after 60 s (waited 120 s, the most allowed)",
    "ValueError: pull_request.head.sha missing from the payload",
)


# --- what comes back ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PullRef:
    id: int
    repo: str
    number: int
    title: str
    author: str
    state: str  # open or closed
    draft: bool
    merged: bool
    kind: str | None
    labels: tuple[str, ...]
    head_sha: str

    @property
    def path(self) -> str:
        """The dashboard page of this PR."""
        return f"/pulls/{self.repo}/{self.number}"


@dataclass(frozen=True)
class BuildRef:
    id: int
    name: str
    state: BuildState
    repo: str
    job_id: int
    pulls: int


@dataclass
class Seeded:
    """What ``seed`` wrote, with handles for tests (ids, numbers, guids)."""

    now: datetime
    repositories: list[str]
    pulls: list[PullRef]
    builds: list[BuildRef]
    # Job ids by (kind, state), oldest first; every kind and state has at least one at the
    # default sizes.
    jobs_by: dict[tuple[JobKind, JobState], list[int]]
    deliveries_by: dict[DeliveryStatus, list[str]]  # guids
    triage_runs: int
    findings: int
    command_audits: int
    workers: int
    seconds: float

    @property
    def job_count(self) -> int:
        return sum(len(ids) for ids in self.jobs_by.values())

    @property
    def delivery_count(self) -> int:
        return sum(len(guids) for guids in self.deliveries_by.values())

    def job(self, kind: JobKind | str, state: JobState | str) -> int:
        """The newest job of that kind and state (KeyError when there is none)."""
        ids = self.jobs_by.get((JobKind(kind), JobState(state)))
        if not ids:
            raise KeyError(f"no {kind} job in state {state}")
        return ids[-1]

    def pull(
        self, *, state: str = "open", merged: bool | None = None, draft: bool = False
    ) -> PullRef:
        """The newest PR in that state (merged: closed and merged)."""
        for pull in reversed(self.pulls):
            if pull.state == state and pull.draft == draft:
                if merged is None or pull.merged == merged:
                    return pull
        raise KeyError(f"no PR with state={state} merged={merged} draft={draft}")

    def build(self, state: BuildState | str) -> BuildRef:
        for build in reversed(self.builds):
            if build.state == BuildState(state):
                return build
        raise KeyError(f"no build in state {state}")


# --- databases ------------------------------------------------------------------------------------


def create_database(admin_url: str, prefix: str = "labbot_seed") -> tuple[str, str]:
    """A new, empty PostgreSQL database next to ``admin_url`` (a libpq URL such as
    postgresql://postgres@127.0.0.1:5432/postgres). Returns (name, SQLAlchemy URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the seed ---------------------------------------------------------------------------------


@dataclass
class _Pull:
    repo_id: int
    repo: str
    number: int
    title: str
    author: str
    association: str
    head_sha: str
    state: str
    draft: bool
    merged: bool
    created_at: datetime
    closed_at: datetime | None
    kind: str | None
    leaves: list[str]
    labels: list[str] = field(default_factory=list)
    id: int = 0
    errors: int = 0
    old_shas: list[str] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        return self.closed_at or datetime.max.replace(tzinfo=UTC)


def seed(
    bind: Engine | str,
    *,
    pulls: int = 30,
    jobs: int = 200,
    builds: int = 5,
    deliveries: int | None = None,
    random_seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    artifacts_dir: Path | None = None,
    artifacts_limit: int = 2000,
) -> Seeded:
    """Fill a migrated (and empty) database with a dashboard dataset of the given size;
    ``jobs`` excludes the one ``build`` job per build."""
    started = time.perf_counter()
    engine = create_engine(bind) if isinstance(bind, str) else bind
    rng = random.Random(random_seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    span = timedelta(days=max(60, builds * 7 + 14))
    if deliveries is None:
        deliveries = max(50, jobs // 2)
    with engine.begin() as conn:
        _installation(conn, now - span - timedelta(days=30))
        pull_rows = _pulls(conn, rng, pulls, now, span)
        runs, findings = _triage(conn, rng, pull_rows, now)
        build_refs, build_jobs = _builds(conn, rng, builds, pull_rows, now)
        job_rows = _jobs(rng, jobs, pull_rows, now) + build_jobs
        artifacts = (artifacts_dir, artifacts_limit) if artifacts_dir is not None else None
        jobs_by, audits = _insert_jobs(conn, rng, job_rows, pull_rows, now, artifacts)
        deliveries_by = _deliveries(conn, rng, deliveries, pull_rows, now)
        workers = _workers(conn, now)
    build_jobs_by = {row["build_id"]: row["id"] for row in job_rows if row["build_id"]}
    if isinstance(bind, str):
        engine.dispose()
    refs = [
        PullRef(
            p.id,
            p.repo,
            p.number,
            p.title,
            p.author,
            p.state,
            p.draft,
            p.merged,
            p.kind,
            tuple(p.labels),
            p.head_sha,
        )  # fmt: skip
        for p in pull_rows
    ]
    return Seeded(
        now=now,
        repositories=[MAIN_REPO[1], STAGING_REPO[1]],
        pulls=refs,
        builds=[
            BuildRef(b.id, b.name, b.state, b.repo, build_jobs_by[b.id], b.pulls)
            for b in build_refs
        ],
        jobs_by=jobs_by,
        deliveries_by=deliveries_by,
        triage_runs=runs,
        findings=findings,
        command_audits=audits,
        workers=workers,
        seconds=time.perf_counter() - started,
    )


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    seconds = max((end - start).total_seconds(), 0.0)
    return start + timedelta(seconds=rng.uniform(0, seconds))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _installation(conn: Connection, created: datetime) -> None:
    conn.execute(
        insert(Installation),
        [
            {
                "id": INSTALLATION_ID,
                "account_login": ORG,
                "account_type": "Organization",
                "created_at": created,
                "updated_at": created,
            }
        ],
    )
    conn.execute(
        insert(Repository),
        [
            {
                "id": repo_id,
                "full_name": name,
                "installation_id": INSTALLATION_ID,
                "created_at": created,
                "updated_at": created,
            }
            for repo_id, name in (MAIN_REPO, STAGING_REPO)
        ],
    )


def _pulls(
    conn: Connection, rng: random.Random, count: int, now: datetime, span: timedelta
) -> list[_Pull]:
    created = sorted(_between(rng, now - span, now - timedelta(minutes=20)) for _ in range(count))
    numbers = {MAIN_REPO[0]: 0, STAGING_REPO[0]: 0}
    rows: list[_Pull] = []
    for index, created_at in enumerate(created):
        repo_id, repo = STAGING_REPO if index % 10 == 9 else MAIN_REPO
        numbers[repo_id] += 1
        kind: str | None = rng.choices(["knowledge", "skill", "mixed"], weights=[45, 45, 10])[0]
        leaves = []
        if kind in ("knowledge", "mixed"):
            leaves.append(rng.choice(KNOWLEDGE_LEAVES))
        if kind in ("skill", "mixed"):
            leaves.append(rng.choice(SKILL_LEAVES))
        verb = rng.choice(["Add", "Add", "Update", "Extend", "Fix"])
        title = f"{verb} {kind} leaf: " + " and ".join(topic for _, topic in leaves)
        age = now - created_at
        fate = rng.random()
        state, merged, draft, closed_at = "open", False, False, None
        if age > timedelta(days=2) and fate < 0.5:
            state, merged = "closed", True
        elif age > timedelta(days=1) and fate < 0.75:
            state = "closed"
        if state == "closed":
            closed_at = created_at + min(age * rng.uniform(0.05, 0.9), timedelta(days=30))
        else:
            draft = rng.random() < 0.15
        if state == "open" and not draft and rng.random() < 0.08:
            kind = None  # opened moments ago: triage has not answered yet
        rows.append(
            _Pull(
                repo_id=repo_id,
                repo=repo,
                number=numbers[repo_id],
                title=title[:300],
                author=rng.choice(AUTHORS),
                association=rng.choice(ASSOCIATIONS),
                head_sha=_sha(rng),
                state=state,
                draft=draft,
                merged=merged,
                created_at=created_at,
                closed_at=closed_at,
                kind=kind,
                leaves=[path for path, _ in leaves],
                old_shas=[_sha(rng) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))],
            )
        )
    _cover_every_case(rows)
    for pull in rows:
        pull.errors = rng.choice([0, 0, 0, 1, 2, 4]) if pull.kind else 0
        pull.labels = _labels(rng, pull)
    ids = _insert_with_ids(
        conn,
        "pull_requests",
        [
            {
                "repository_id": p.repo_id,
                "number": p.number,
                "title": p.title,
                "author": p.author,
                "author_association": p.association,
                "head_sha": p.head_sha,
                "base_ref": "main",
                "state": p.state,
                "draft": p.draft,
                "merged": p.merged,
                "merged_at": p.closed_at if p.merged else None,
                "labels": p.labels,
                "kind": p.kind,
                "created_at": p.created_at,
                "updated_at": p.closed_at or _between(rng, p.created_at, now),
            }
            for p in rows
        ],
    )
    for pull, pull_id in zip(rows, ids, strict=True):
        pull.id = pull_id
    return rows


def _insert_with_ids(conn: Connection, table: str, rows: list[dict[str, Any]]) -> list[int]:
    """Bulk INSERT (executemany) with ids taken from the table's own sequence first: as fast
    as a plain executemany, the ids known in order, and the sequence left past them."""
    allocate(conn, table, rows)
    conn.execute(Base.metadata.tables[table].insert(), rows)
    return [row["id"] for row in rows]


def allocate(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Sets ``id`` in each row from the table's id sequence (PostgreSQL) or past its largest
    id (SQLite)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        ids = conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table, "n": len(rows)},
        ).scalars()
    else:
        start = conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one()
        ids = iter(range(start + 1, start + 1 + len(rows)))  # type: ignore[assignment]
    for row, row_id in zip(rows, ids, strict=True):
        row["id"] = int(row_id)


def _cover_every_case(rows: list[_Pull]) -> None:
    """Even a small dataset has a draft, an untriaged open PR and a closed unmerged one (the
    newest PRs are turned into them when chance gave none), beside open and merged ones."""
    newest_open = [p for p in reversed(rows) if p.state == "open"]
    if len(newest_open) >= 3:
        if not any(p.draft for p in newest_open):
            newest_open[1].draft = True
        if not any(p.kind is None for p in newest_open):
            ready = next(p for p in newest_open if not p.draft)
            ready.kind = None
    old = [p for p in rows if p.closed_at is None and p.created_at < rows[-1].created_at]
    if not any(p.state == "closed" and not p.merged for p in rows) and len(old) > 4:
        pull = old[0]
        closed = min(pull.created_at + timedelta(days=1), rows[-1].created_at)
        pull.state, pull.closed_at = "closed", closed


def _labels(rng: random.Random, pull: _Pull) -> list[str]:
    labels = []
    if pull.kind in ("knowledge", "mixed"):
        labels.append(LABELS.knowledge)
    if pull.kind in ("skill", "mixed"):
        labels.append(LABELS.skill)
    if pull.kind and pull.state == "open":
        labels.append(LABELS.triage_requested_changes if pull.errors else LABELS.triage_needed)
    if pull.association in ("FIRST_TIME_CONTRIBUTOR", "NONE") and rng.random() < 0.5:
        labels.append(LABELS.needs_ok_to_test)
    if pull.kind and not pull.errors:
        if rng.random() < 0.35:
            labels.append(LABELS.generate_ready)
        if rng.random() < 0.2:
            labels.append(LABELS.build_ready)
        if rng.random() < 0.05:
            labels.append(LABELS.sdg_unsuccessful)
        if pull.state == "open" and rng.random() < 0.05:
            labels.append(LABELS.build_running)
    return labels


def _triage(
    conn: Connection, rng: random.Random, pulls: list[_Pull], now: datetime
) -> tuple[int, int]:
    runs: list[dict[str, Any]] = []
    run_findings: list[list[dict[str, Any]]] = []
    long_list = max(
        (p for p in pulls if p.state == "open" and p.errors), key=lambda p: p.number, default=None
    )
    for pull in pulls:
        end = min(pull.end, now)
        shas = [*pull.old_shas, pull.head_sha]
        moments = sorted(_between(rng, pull.created_at, end) for _ in shas)
        moments[0] = pull.created_at + timedelta(seconds=rng.uniform(1, 5))
        for index, (sha, at) in enumerate(zip(shas, moments, strict=True)):
            current = index == len(shas) - 1
            findings: list[dict[str, Any]] = []
            if current and pull.kind is None:
                status = rng.choice([RunStatus.queued, RunStatus.running])
                conclusion, summary, finished = None, None, None
                at = now - timedelta(seconds=rng.uniform(2, 40))
            elif not current and rng.random() < 0.4:
                status, conclusion, finished = RunStatus.superseded, None, None
                summary = None
            elif rng.random() < 0.02:
                status, conclusion = RunStatus.failed, None
                finished = at + timedelta(seconds=rng.uniform(1, 20))
                summary = "Triage could not read the PR's files: GitHub answered 502."
            else:
                status = RunStatus.completed
                finished = at + timedelta(seconds=rng.uniform(0.3, 4))
                errors = pull.errors if current else rng.choice([0, 1, 2, 3])
                warnings = rng.choice([0, 0, 1, 2])
                if current and pull is long_list:
                    errors, warnings = 48, 24
                findings = _findings(rng, pull, errors, warnings)
                conclusion = "failure" if errors else "success"
                summary = (
                    f"{errors} error(s) block this PR: fix them and push; see the annotations."
                    if errors
                    else "Triage found nothing that blocks this PR."
                )
            runs.append(
                {
                    "pull_request_id": pull.id,
                    "head_sha": sha,
                    "status": status,
                    "conclusion": conclusion,
                    "check_run_id": rng.randrange(10**9, 10**10),
                    "summary": summary,
                    "errors": sum(1 for f in findings if f["severity"] == "error"),
                    "warnings": sum(1 for f in findings if f["severity"] == "warning"),
                    "created_at": at,
                    "finished_at": finished,
                }
            )
            run_findings.append(findings)
    order = sorted(range(len(runs)), key=lambda i: runs[i]["created_at"])
    runs = [runs[i] for i in order]
    run_findings = [run_findings[i] for i in order]
    ids = _insert_with_ids(conn, "triage_runs", runs)
    finding_rows = [
        {**finding, "triage_run_id": run_id}
        for run_id, findings in zip(ids, run_findings, strict=True)
        for finding in findings
    ]
    if finding_rows:
        conn.execute(insert(TriageFinding), finding_rows)
    return len(runs), len(finding_rows)


def _findings(rng: random.Random, pull: _Pull, errors: int, warnings: int) -> list[dict[str, Any]]:
    errors_pool = [f for f in FINDINGS if f[1] == "error"]
    warnings_pool = [f for f in FINDINGS if f[1] == "warning"]
    rows = []
    for pool, count in ((errors_pool, errors), (warnings_pool, warnings)):
        for _ in range(count):
            rule, severity, message, hint = rng.choice(pool)
            leaf = rng.choice(pull.leaves)
            name = "attribution.txt" if rule.startswith("attribution") else "qna.yaml"
            rows.append(
                {
                    "path": f"{leaf}/{name}",
                    "rule": rule,
                    "severity": severity,
                    "line": rng.randint(1, 180),
                    "column": rng.choice([1, 1, 3, 5, 7]),
                    "message": message,
                    "hint": hint,
                }
            )
    rows.sort(key=lambda f: (f["path"], f["line"]))
    return rows


@dataclass
class _Build:
    id: int
    name: str
    state: BuildState
    repo: str
    pulls: int


def _builds(
    conn: Connection, rng: random.Random, count: int, pulls: list[_Pull], now: datetime
) -> tuple[list[_Build], list[dict[str, Any]]]:
    refs: list[_Build] = []
    jobs: list[dict[str, Any]] = []
    previous: dict[int, tuple[int, datetime, str]] = {}  # repo id -> (build id, created, model)
    scores = {"guard": 6.9, "leaves": 6.4, "mmlu": 0.58}
    for index in range(count):
        repo_id, repo = STAGING_REPO if index % 5 == 4 else MAIN_REPO
        created = now - timedelta(days=7 * (count - 1 - index), hours=2)
        if repo_id == STAGING_REPO[0]:
            created -= timedelta(hours=6)
        newest = index >= count - 2
        if newest and repo == STAGING_REPO[1]:
            state = BuildState.pending
        elif index == count - 1 or (newest and repo == MAIN_REPO[1]):
            state = BuildState.running
        elif index == 1:
            state = BuildState.failed
        elif index == 2:
            state = BuildState.cancelled
        else:
            state = rng.choices(
                [BuildState.succeeded, BuildState.failed, BuildState.cancelled], [85, 10, 5]
            )[0]
        if state is BuildState.running:  # started a few hours ago, trains now
            created = now - timedelta(hours=rng.uniform(3, 9))
        elif state is BuildState.pending:  # waits for the GPU workers
            created = now - timedelta(minutes=rng.uniform(5, 40))
        prev = previous.get(repo_id)
        since = prev[1] if prev else created - timedelta(days=14)
        base_model = prev[2] if prev else BASE_MODEL
        name = f"{repo.split('/')[1]}-{created:%Y.%m.%d}-{index + 1:03d}"
        stages, started, finished, error = _build_stages(rng, state, created, now)
        build_scores: dict[str, Any] = {}
        if state is BuildState.succeeded:
            for key, step in (("guard", 0.08), ("leaves", 0.12), ("mmlu", 0.006)):
                scores[key] = round(scores[key] + rng.uniform(-step, 2 * step), 3)
            # The keys the build job writes (workers/eval/stage.py headline()).
            build_scores = {
                "guard_base": round(scores["guard"] - 0.1, 2),
                "guard_trained": round(scores["guard"], 2),
                "base_mean": round(scores["leaves"] - 0.8, 2),
                "trained_mean": round(scores["leaves"], 2),
                "mmlu_base": round(scores["mmlu"] - 0.05, 3),
                "mmlu_trained": round(scores["mmlu"], 3),
            }
        elif state is BuildState.failed and rng.random() < 0.5:
            build_scores = {"guard_trained": round(scores["guard"] - 0.9, 2)}
        output = f"s3://labbot-models/builds/{name}" if state is BuildState.succeeded else None
        trigger = rng.choice(["schedule", "schedule", "schedule", "cli", "dashboard:mkrause"])
        build_id = conn.execute(
            insert(Build).returning(Build.id),
            {
                "name": name,
                "state": state,
                "repository_id": repo_id,
                "previous_build_id": prev[0] if prev else None,
                "trigger": trigger,
                "base_model": base_model,
                "output_model": output,
                "scores": build_scores,
                "stages": stages,
                "error": error,
                "created_at": created,
                "started_at": started,
                "finished_at": finished,
            },
        ).scalar_one()
        members = [
            p.id
            for p in pulls
            if p.repo_id == repo_id and p.merged and p.closed_at and since < p.closed_at <= created
        ]
        if members:
            conn.execute(
                insert(BuildPullRequest),
                [{"build_id": build_id, "pull_request_id": pull_id} for pull_id in members],
            )
        if state is BuildState.succeeded:
            previous[repo_id] = (build_id, created, output or base_model)
        else:
            previous[repo_id] = (build_id, created, base_model)
        refs.append(_Build(build_id, name, state, repo, len(members)))
        job_state = {
            BuildState.pending: JobState.queued,
            BuildState.running: JobState.running,
            BuildState.succeeded: JobState.succeeded,
            BuildState.failed: JobState.failed,
            BuildState.cancelled: JobState.cancelled,
        }[state]
        progress: dict[str, Any] = {}
        if stages:
            current = stages[-1]
            percent = 100.0 if current["finished_at"] else round(rng.uniform(5, 95), 1)
            progress = {"stage": current["name"], "percent": percent, "updated_at": _iso(now)}
            if job_state is JobState.running:
                progress["eta_seconds"] = rng.randint(600, 6 * 3600)
        jobs.append(
            {
                "kind": JobKind.build,
                "state": job_state,
                "repository_id": repo_id,
                "pull_request_id": None,
                "build_id": build_id,
                "head_sha": None,
                "requested_by": trigger.split(":", 1)[1] if ":" in trigger else None,
                "trigger": trigger,
                "attempts": 1 if started else 0,
                "worker": WORKER_HOSTS["build"] if started else None,
                "progress": progress,
                "error": error,
                "result": {"scores": build_scores} if build_scores and finished else None,
                "check_run_id": None,
                "queued_at": created,
                "published_at": created + timedelta(milliseconds=8),
                "started_at": started,
                "cancel_requested_at": finished - timedelta(seconds=30)
                if state is BuildState.cancelled and finished
                else None,
                "cancel_state": JobState.cancelled if state is BuildState.cancelled else None,
                "heartbeat_at": now - timedelta(seconds=rng.uniform(1, 10))
                if job_state is JobState.running
                else finished,
                "finished_at": finished,
                "updated_at": finished or now,
            }
        )
    return refs, jobs


def _build_stages(
    rng: random.Random, state: BuildState, created: datetime, now: datetime
) -> tuple[list[dict[str, Any]], datetime | None, datetime | None, str | None]:
    if state is BuildState.pending:
        return [], None, None, None
    started = created + timedelta(seconds=rng.uniform(2, 60))
    reach = {
        BuildState.succeeded: 3,
        BuildState.running: rng.choice([2, 3]),
        BuildState.failed: rng.choice([1, 2, 3]),
        BuildState.cancelled: rng.choice([1, 2]),
    }[state]
    lengths = {"data": (1800, 7200), "train": (5 * 3600, 16 * 3600), "evaluate": (1800, 3 * 3600)}
    stages: list[dict[str, Any]] = []
    at = started
    for position, name in enumerate(STAGES[JobKind.build][:reach], start=1):
        end: datetime | None = at + timedelta(seconds=rng.uniform(*lengths[name]))
        if position == reach and state is BuildState.running:
            end = None
        elif position == reach and state in (BuildState.failed, BuildState.cancelled):
            end = at + timedelta(seconds=rng.uniform(60, lengths[name][0]))
        if end is not None and end > now:
            end = now - timedelta(minutes=1)
        stages.append({"name": name, "started_at": _iso(at), "finished_at": _iso(end)})
        at = end or at
    finished = None if state is BuildState.running else at + timedelta(seconds=rng.uniform(1, 30))
    error = None
    if state is BuildState.failed:
        error = rng.choice(FAILURES[JobKind.build])
    elif state is BuildState.cancelled:
        error = messages.JOB_CANCELLED_BY.format(user="@hanna-s")
    return stages, started, finished, error


def _jobs(
    rng: random.Random, count: int, pulls: list[_Pull], now: datetime
) -> list[dict[str, Any]]:
    """Job rows (without ids) over every kind but build and every state."""
    open_ready = [p for p in pulls if p.state == "open" and not p.draft and p.kind]
    active: set[tuple[int, JobKind]] = set()
    rows = []
    kinds, states = list(KIND_WEIGHTS), list(STATE_WEIGHTS)
    for index in range(count):
        # The first few cover every kind x state pair; the rest follow the weights.
        if index < len(kinds) * len(states):
            kind, state = kinds[index % len(kinds)], states[index // len(kinds)]
        else:
            kind, state = _weighted(rng, KIND_WEIGHTS), _weighted(rng, STATE_WEIGHTS)
        pull: _Pull | None = None
        if state in (JobState.queued, JobState.running):
            candidates = rng.sample(open_ready, min(len(open_ready), 8))
            pull = next((p for p in candidates if (p.id, kind) not in active), None)
            if pull is None:  # every open PR has one already: this one has finished
                state = JobState.succeeded
            else:
                active.add((pull.id, kind))
        rows.append(_job(rng, kind, state, pull or rng.choice(pulls), now))
    return rows


def _job(
    rng: random.Random, kind: JobKind, state: JobState, pull: _Pull, now: datetime
) -> dict[str, Any]:
    trigger: str = _weighted(rng, dict(TRIGGERS[kind]))
    by = pull.author if trigger.startswith("event:") else rng.choice(TRIAGERS)
    low, high = DURATION_S[kind]
    duration = timedelta(seconds=rng.uniform(low, high))
    stages = STAGES[kind]
    active = state in (JobState.queued, JobState.running)
    head = pull.head_sha
    if state is JobState.superseded or (not active and pull.old_shas and rng.random() < 0.3):
        head = rng.choice(pull.old_shas) if pull.old_shas else _sha(rng)
    started: datetime | None = None
    finished: datetime | None = None
    cancel_at: datetime | None = None
    heartbeat: datetime | None = None
    cancel_state: JobState | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    progress: dict[str, Any] = {}
    attempts = 1
    if state is JobState.queued:
        queued = now - timedelta(seconds=rng.uniform(3, 1800))
        attempts = 0
    elif state is JobState.running:
        elapsed = timedelta(seconds=rng.uniform(1, min(high, 3 * 3600)))
        started = now - elapsed
        queued = started - timedelta(seconds=rng.uniform(0.01, 30))
        heartbeat = now - timedelta(seconds=rng.uniform(0.5, 12))
        fraction = min(elapsed / duration, 0.97)
        stage = stages[min(int(fraction * len(stages)), len(stages) - 1)]
        progress = {"stage": stage, "percent": round(100 * fraction, 1), "updated_at": _iso(now)}
        if fraction > 0.02:
            progress["eta_seconds"] = round((duration - elapsed).total_seconds())
    else:
        window_end = min(pull.end, now) - min(duration, timedelta(hours=1))
        queued = _between(rng, pull.created_at, max(window_end, pull.created_at))
        wait = rng.uniform(0.005, 0.5 if kind is JobKind.triage else 20)
        begun = queued + timedelta(seconds=wait)
        if state is JobState.succeeded:
            ended = begun + duration
            progress = {"stage": stages[-1], "percent": 100.0}
            result = _result(rng, kind, pull)
        else:
            ended = begun + duration * rng.uniform(0.05, 0.9)
            reached = stages[rng.randrange(len(stages))]
            progress = {"stage": reached, "percent": round(rng.uniform(1, 99), 1)}
            if state is JobState.failed:
                error = rng.choice(FAILURES[kind])
                attempts = 3 if "attempts" in error else rng.choice([1, 1, 1, 2])
            elif state is JobState.cancelled:
                error = rng.choice(CANCELS)
                cancel_state = JobState.cancelled
            else:
                error = messages.JOB_SUPERSEDED.format(sha=pull.head_sha[:7])
                cancel_state = JobState.superseded
        if ended > now:
            ended = now - timedelta(seconds=rng.uniform(1, 60))
            begun = min(begun, ended - timedelta(seconds=0.1))
            queued = min(queued, begun)
        if cancel_state is not None:
            cancel_at = max(ended - timedelta(seconds=2), begun)
        started, finished, heartbeat = begun, ended, ended
        progress["updated_at"] = _iso(ended)
    published = queued + timedelta(milliseconds=rng.uniform(2, 15))
    return {
        "kind": kind,
        "state": state,
        "repository_id": pull.repo_id,
        "pull_request_id": pull.id,
        "build_id": None,
        "head_sha": head,
        "requested_by": by,
        "trigger": trigger,
        "attempts": attempts,
        "worker": WORKER_HOSTS[kind.value] if started else None,
        "progress": progress,
        "error": error,
        "result": result,
        "check_run_id": rng.randrange(10**9, 10**10),
        "queued_at": queued,
        "published_at": published,
        "started_at": started,
        "cancel_requested_at": cancel_at,
        "cancel_state": cancel_state,
        "heartbeat_at": heartbeat,
        "finished_at": finished,
        "updated_at": finished or heartbeat or queued,
    }


def _result(rng: random.Random, kind: JobKind, pull: _Pull) -> dict[str, Any] | None:
    if kind is JobKind.bench:
        conclusion = rng.choices(["success", "neutral", "failure"], [60, 15, 25])[0]
        base = round(rng.uniform(4.5, 7.0), 2)
        trained = round(base + {"success": 1.1, "neutral": 0.1, "failure": -0.7}[conclusion], 2)
        mmlu_base = round(rng.uniform(0.45, 0.7), 3)
        scores = {
            "files": len(pull.leaves),
            "improved": len(pull.leaves) if conclusion == "success" else 0,
            "regressed": 1 if conclusion == "failure" else 0,
            "base_mean": base,
            "trained_mean": trained,
            "mmlu_base": mmlu_base,
            "mmlu_trained": round(mmlu_base + rng.uniform(-0.03, 0.12), 3),
            "guard_base": round(rng.uniform(6.5, 7.5), 2),
            "guard_trained": round(rng.uniform(6.3, 7.6), 2),
            "judge_error_rate": round(rng.uniform(0, 0.08), 4),
        }
        summary = (
            f"Mean rating on this PR's questions {base} → {trained}; PR-MMLU "
            f"{scores['mmlu_base']:.0%} → {scores['mmlu_trained']:.0%}; regression guard "
            f"{scores['guard_base']} → {scores['guard_trained']}."
        )
        return {
            "conclusion": conclusion,
            "title": messages.BENCH_CHECK_TITLE[conclusion],
            "summary": summary,
            "scores": scores,
        }
    if kind is JobKind.precheck:
        return {
            "scores": {"questions": rng.randint(5, 15), "base_mean": round(rng.uniform(3, 8), 3)}
        }
    return None


def _insert_jobs(
    conn: Connection,
    rng: random.Random,
    rows: list[dict[str, Any]],
    pulls: list[_Pull],
    now: datetime,
    artifacts: tuple[Path, int] | None,
) -> tuple[dict[tuple[JobKind, JobState], list[int]], int]:
    rows.sort(key=lambda row: row["queued_at"])
    allocate(conn, "jobs", rows)
    jobs_by: dict[tuple[JobKind, JobState], list[int]] = defaultdict(list)
    for row in rows:
        row["log_path"] = row["artifacts_path"] = None
        jobs_by[(row["kind"], row["state"])].append(row["id"])
    if artifacts is not None:
        root, limit = artifacts
        started = [row for row in rows if row["started_at"] is not None]
        # A generator of its own: the rows do not depend on whether artifacts are written.
        writer_rng = random.Random(len(rows))
        _artifacts(writer_rng, started[max(len(started) - limit, 0) :], pulls, root)
    conn.execute(insert(Job), rows)
    by_id = {p.id: p for p in pulls}
    audits = []
    for row in rows:
        pull = by_id.get(row["pull_request_id"] or 0)
        if pull is None:
            continue
        if row["trigger"].startswith("command:"):
            audits.append(
                {
                    "repository_id": pull.repo_id,
                    "pr_number": pull.number,
                    "user": row["requested_by"],
                    "action": row["trigger"],
                    "outcome": CommandOutcome.accepted,
                    "reason": None,
                    "job_id": row["id"],
                    "created_at": row["queued_at"] - timedelta(milliseconds=40),
                }
            )
        elif rng.random() < 0.03:
            verb = rng.choice(["train", "generate", "bench"])
            audits.append(
                {
                    "repository_id": pull.repo_id,
                    "pr_number": pull.number,
                    "user": pull.author,
                    "action": f"command:{verb}",
                    "outcome": CommandOutcome.refused,
                    "reason": f"Only triagers can run `/lab {verb}`.",
                    "job_id": None,
                    "created_at": row["queued_at"] - timedelta(minutes=rng.uniform(1, 90)),
                }
            )
    if audits:
        conn.execute(insert(CommandAudit), audits)
    return dict(jobs_by), len(audits)


def _artifacts(
    rng: random.Random,
    rows: list[dict[str, Any]],
    pulls: list[_Pull],
    root: Path,
) -> None:
    by_id = {p.id: p for p in pulls}
    for row in rows:
        if row["started_at"] is None:
            continue
        directory = root / "jobs" / str(row["id"])
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "job.log").write_text(_log(row))
        row["log_path"], row["artifacts_path"] = str(directory / "job.log"), str(directory)
        pull = by_id.get(row["pull_request_id"] or 0)
        if pull is None:
            continue
        if row["kind"] is JobKind.sdg:
            _write(directory / "dataset" / "preview.json", _preview(rng, pull))
        elif row["kind"] is JobKind.train:
            lines = _metrics(rng)
            (directory / "train" / "output").mkdir(parents=True, exist_ok=True)
            (directory / "train" / "output" / "metrics.jsonl").write_text(lines)
        elif row["kind"] is JobKind.bench and row["state"] is JobState.succeeded:
            _write(directory / "bench" / "results.json", _bench_results(rng, row, pull))


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def _log(row: dict[str, Any]) -> str:
    started: datetime = row["started_at"]
    lines = [f"{_iso(started)} INFO job {row['id']} ({row['kind']}) claimed by {row['worker']}"]
    at = started
    for stage in STAGES[row["kind"]]:
        at += timedelta(seconds=3)
        lines.append(f"{_iso(at)} INFO stage: {stage}")
        if stage == row["progress"].get("stage"):
            break
    if row["error"]:
        lines.append(f"{_iso(row['finished_at'])} ERROR {row['error']}")
    elif row["finished_at"]:
        lines.append(f"{_iso(row['finished_at'])} INFO job {row['id']} {row['state']}")
    return "\n".join(lines) + "\n"


def _preview(rng: random.Random, pull: _Pull) -> dict[str, list[dict[str, Any]]]:
    return {
        leaf: [
            {
                "messages": [
                    {"role": "user", "content": f"Question {n + 1} about {leaf.split('/')[-1]}?"},
                    {
                        "role": "assistant",
                        "content": f"A generated answer ({rng.randint(40, 400)} tokens).",
                    },  # noqa: E501
                ]
            }
            for n in range(3)
        ]
        for leaf in pull.leaves
    }


def _metrics(rng: random.Random) -> str:
    lines = []
    for phase, start in (("phase1", 2.4), ("phase2", 1.6)):
        loss = start
        for step in range(1, 41):
            loss = max(0.2, loss * rng.uniform(0.93, 1.01))
            lines.append(json.dumps({"phase": phase, "step": step, "loss": round(loss, 4)}))
    return "\n".join(lines) + "\n"


def _bench_results(rng: random.Random, row: dict[str, Any], pull: _Pull) -> dict[str, Any]:
    scores = row["result"]["scores"]
    conclusion = row["result"]["conclusion"]
    verdict = {"success": "improved", "neutral": "unchanged", "failure": "regressed"}[conclusion]
    files, questions, mmlu = [], [], []
    for leaf in pull.leaves:
        path = f"{leaf}/qna.yaml"
        files.append(
            {
                "name": path,
                "questions": 2,
                "base": scores["base_mean"],
                "trained": scores["trained_mean"],
                "delta": round(scores["trained_mean"] - scores["base_mean"], 3),
                "verdict": verdict,
            }
        )
        for n in range(2):
            questions.append(
                {
                    "id": f"{leaf}#{n}",
                    "group": path,
                    "question": f"Seed question {n + 1} of {leaf.split('/')[-1]}?",
                    "reference": "The contributor's answer.",
                    "base_answer": "The base model's answer.",
                    "trained_answer": "The trained model's answer.",
                    "base_rating": scores["base_mean"],
                    "trained_rating": scores["trained_mean"],
                }
            )
        mmlu.append(
            {
                "leaf": leaf,
                "questions": 10,
                "base": scores["mmlu_base"],
                "trained": scores["mmlu_trained"],
                "delta": round(scores["mmlu_trained"] - scores["mmlu_base"], 3),
            }
        )
    guard = {
        "name": "guard",
        "questions": 40,
        "base": scores["guard_base"],
        "trained": scores["guard_trained"],
        "delta": round(scores["guard_trained"] - scores["guard_base"], 3),
        "verdict": "unchanged",
    }
    return {
        "head_sha": row["head_sha"],
        "base_model": BASE_MODEL,
        "trained_model": f"jobs/{row['id']}/model",
        "judge_model": "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "files": files,
        "questions": questions,
        "mmlu": mmlu,
        "guard": guard,
        "guard_categories": [{**guard, "name": "general", "questions": 40}],
        "guard_questions": [],
        "guard_version": 1,
        "judgments": 88,
        "judge_errors": round(88 * scores["judge_error_rate"]),
        "conclusion": conclusion,
        "reasons": [row["result"]["title"]],
    }


def _deliveries(
    conn: Connection, rng: random.Random, count: int, pulls: list[_Pull], now: datetime
) -> dict[DeliveryStatus, list[str]]:
    weights = {(event, action): weight for event, action, weight, _ in EVENTS}
    handled = {(event, action): ok for event, action, _, ok in EVENTS}
    statuses = list(DeliveryStatus)
    rows = []
    oldest = now - timedelta(days=30)
    for index in range(count):
        event, action = _weighted(rng, weights)
        # Recent deliveries are denser (a skew toward now).
        received = now - (now - oldest) * (rng.random() ** 2.5)
        if index < len(statuses):
            status = statuses[index]
            received = now - timedelta(seconds=rng.uniform(1, 50))
            if status is DeliveryStatus.failed:
                received = now - timedelta(minutes=rng.uniform(5, 120))
        elif not handled[(event, action)]:
            status = DeliveryStatus.ignored
        else:
            status = rng.choices(
                [DeliveryStatus.processed, DeliveryStatus.failed], weights=[96, 4]
            )[0]
        pull = rng.choice(pulls)
        started = finished = None
        seconds = error = None
        if status not in (DeliveryStatus.received, DeliveryStatus.queued):
            started = received + timedelta(milliseconds=rng.uniform(2, 40))
        if status in (DeliveryStatus.processed, DeliveryStatus.failed, DeliveryStatus.ignored):
            seconds = round(
                rng.uniform(0.002, 0.09 if status is DeliveryStatus.ignored else 1.8), 4
            )
            assert started is not None
            finished = started + timedelta(seconds=seconds)
        if status is DeliveryStatus.failed:
            error = rng.choice(DELIVERY_ERRORS)
        body = {
            "action": action,
            "number": pull.number,
            "pull_request": {
                "number": pull.number,
                "title": pull.title,
                "head": {"sha": pull.head_sha},
            },  # noqa: E501
            "repository": {"full_name": pull.repo},
            "sender": {"login": pull.author},
            "installation": {"id": INSTALLATION_ID},
        }
        if action is None:
            body.pop("action")
        rows.append(
            {
                "guid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event": event,
                "action": action,
                "installation_id": INSTALLATION_ID,
                "repository": pull.repo,
                "status": status,
                "attempts": 2 if status is DeliveryStatus.failed and rng.random() < 0.3 else 1,
                "error": error,
                "body": json.dumps(body, separators=(",", ":")).encode(),
                "received_at": received,
                "updated_at": finished or started or received,
                "started_at": started,
                "finished_at": finished,
                "handler_seconds": seconds,
            }
        )
    rows.sort(key=lambda row: row["received_at"])
    if rows:
        conn.execute(insert(Delivery), rows)
    guids: dict[DeliveryStatus, list[str]] = defaultdict(list)
    for row in rows:
        guids[row["status"]].append(row["guid"])
    return dict(guids)


def _workers(conn: Connection, now: datetime) -> int:
    rows = [
        ("labbot-events-triage@cpu-1", ["events", "triage"], 2),
        ("labbot-events-triage@cpu-2", ["events", "triage"], 5),
        ("labbot-sdg@gpu-h100-1", ["sdg"], 8),
        ("labbot-train@gpu-h100-2", ["train"], 3),
        ("labbot-eval@gpu-h100-3", ["eval"], 7200),  # gone quiet two hours ago
    ]
    conn.execute(
        insert(WorkerSeen),
        [
            {
                "hostname": host,
                "queues": queues,
                "started_at": now - timedelta(days=3, seconds=seen),
                "last_seen_at": now - timedelta(seconds=seen),
            }
            for host, queues, seen in rows
        ],
    )
    return len(rows)
