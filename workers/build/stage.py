"""The ``build`` job: one model build of the PRs merged since the repository's last good build.

1. data: each PR's leaves, read at its merged head and checked by triage again; its latest
   successful ``sdg`` job's data when it has one, otherwise generated now by the teacher.
   A PR whose files no longer pass triage is left out and named in the result.
2. train: multi-phase training on the merged data, from the last build's model (the configured
   base model for the first build), with the last build's data replayed in phase 2.
3. evaluate: the new model against the one it started from: the regression guard, the new
   leaves' seed questions and PR-MMLU, judged as for a PR's bench.
The merged data and the final checkpoint stay in the job's artifacts for the next build."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from app.artifacts import artifact_store
from app.builds import mark_stage
from app.db.models import Build, BuildPullRequest, Job, JobKind, JobState, PullRequest
from app.db.session import session_scope
from bots import messages
from workers.eval.questions import (
    QuestionsError,
    general_questions,
    multiple_choice_questions,
    seed_questions,
)
from workers.eval.stage import Model, compare_models, headline
from workers.harness import JobFailed, JobRun, JobTarget, latest_succeeded_job
from workers.sdg.dataset import MCQ_DIR, DatasetError, write_dataset
from workers.sdg.records import LeafOutput
from workers.sdg.stage import DATASET_DIR, Changed, changed_leaves, generate
from workers.sdg.teacher import TeacherError, open_teacher
from workers.train.plan import PlanError, build_plan
from workers.train.stage import PLAN_FILE, WORK_DIR, final_checkpoint, run_training

log = logging.getLogger(__name__)

GENERATED_DIR = "generated"  # data the build generated itself, for PRs that had none
EVAL_DIR = "eval"
DATA_FILES = ("knowledge.jsonl", "skills.jsonl")


@dataclass(frozen=True)
class Composition:
    name: str
    pulls: list[JobTarget]  # one per merged PR, at its merged head
    previous_name: str | None
    previous_job_id: int | None  # the previous good build's job, whose artifacts hold its model


def build_stage(run: JobRun) -> JobState:
    settings = run.settings
    build_id = run.target.build_id
    if build_id is None:
        raise JobFailed(messages.JOB_NO_TARGET)
    build = _composition(run, build_id)

    mark_stage(build_id, "data")
    run.progress("collecting the data")
    data, changed, skipped = _collect_data(run, build)
    if not changed:
        raise JobFailed(messages.BUILD_NO_LEAVES.format(skipped="; ".join(skipped) or "-"))

    mark_stage(build_id, "train")
    run.progress("preparing the data")
    start_model, replay = _previous(run, build)
    base = start_model or settings.train_base_model
    if base is None:
        raise JobFailed(messages.TRAIN_NO_BASE_MODEL)
    replays = [path for path in (replay, settings.train_replay_path) if path is not None]
    replay_file = _concatenate(replays, run.artifacts / "replay.jsonl") if replays else None
    train_settings = settings.model_copy(
        update={"train_base_model": base, "train_replay_path": replay_file}
    )
    knowledge = data / "knowledge.jsonl"
    work = run.artifacts / WORK_DIR
    try:
        plan = build_plan(
            train_settings,
            knowledge if knowledge.stat().st_size else None,
            data / "skills.jsonl",
            work,
        )
    except PlanError as exc:
        raise JobFailed(messages.TRAIN_PLAN.format(error=exc)) from exc
    (work / PLAN_FILE).write_text(plan.model_dump_json(indent=2))
    run_training(run, work / PLAN_FILE, plan.output_dir)
    trained = final_checkpoint(run.artifacts)
    if trained is None:
        raise JobFailed(messages.TRAIN_CRASHED.format(code="0 without a checkpoint"))

    mark_stage(build_id, "evaluate")
    try:
        guard_version, guard = general_questions(settings.eval_general_questions)
    except QuestionsError as exc:
        raise JobFailed(messages.EVAL_QUESTIONS_UNREADABLE.format(error=exc)) from exc
    start_name = build.previous_name or base.name
    models = (
        Model("base", base, [] if start_model else settings.eval_base_urls, start_name),
        Model("trained", trained, [], build.name),
    )
    results = compare_models(
        run,
        run.artifacts / EVAL_DIR,
        models,
        seed_questions(changed, knowledge=False),
        guard,
        guard_version,
        multiple_choice_questions(data / MCQ_DIR),
        build.name,
    )
    run.result = {
        "conclusion": results.conclusion,
        "scores": {**headline(results), "pulls": len(build.pulls), "leaves": len(changed)},
        "output_model": f"job {run.job.id}: {trained.relative_to(run.artifacts)}",
        "reasons": results.reasons,
        "skipped": skipped,
    }
    log.info("build %s: %s (%s)", build.name, results.conclusion, "; ".join(results.reasons))
    return JobState.succeeded


def _composition(run: JobRun, build_id: int) -> Composition:
    with session_scope() as session:
        build = session.get(Build, build_id)
        if build is None:
            raise JobFailed(messages.BUILD_NOT_FOUND)
        rows = session.execute(
            select(PullRequest.id, PullRequest.number, PullRequest.head_sha)
            .join(BuildPullRequest, BuildPullRequest.pull_request_id == PullRequest.id)
            .where(BuildPullRequest.build_id == build_id)
            .order_by(PullRequest.merged_at, PullRequest.number)
        ).all()
        previous = session.get(Build, build.previous_build_id) if build.previous_build_id else None
        previous_job_id = (
            session.scalars(
                select(Job.id)
                .where(
                    Job.build_id == previous.id,
                    Job.kind == JobKind.build,
                    Job.state == JobState.succeeded,
                )
                .order_by(Job.id.desc())
                .limit(1)
            ).first()
            if previous
            else None
        )
        target = run.target
        pulls = [
            JobTarget(
                run.job.id,
                target.repo,
                target.repository_id,
                target.installation_id,
                row.number,
                row.head_sha,
                row.id,
                build_id,
            )
            for row in rows
        ]
        return Composition(build.name, pulls, previous.name if previous else None, previous_job_id)


def _collect_data(run: JobRun, build: Composition) -> tuple[Path, list[Changed], list[str]]:
    """The merged data of every PR in the build, its leaves, and the PRs left out (why)."""
    datasets: list[Path] = []
    changed: list[Changed] = []
    skipped: list[str] = []
    to_generate: list[tuple[JobRun, list[Changed]]] = []
    for index, pull in enumerate(build.pulls):
        run.progress(f"#{pull.number}: reading its files", index / max(len(build.pulls), 1))
        view = run.on_pull(pull)
        try:
            leaves = changed_leaves(view, messages.BUILD_PULL_TRIAGE_ERRORS)
        except JobFailed as exc:
            skipped.append(messages.BUILD_PULL_SKIPPED.format(number=pull.number, reason=exc))
            continue
        if not leaves:
            skipped.append(
                messages.BUILD_PULL_SKIPPED.format(number=pull.number, reason=messages.BUILD_NO_QNA)
            )
            continue
        changed += leaves
        sdg_job_id = latest_succeeded_job(pull, JobKind.sdg)
        if sdg_job_id is None:
            to_generate.append((view, leaves))
            continue
        local = artifact_store(run.settings).download(
            sdg_job_id, run.artifacts / "pulls" / str(pull.number)
        )
        if not (local / DATASET_DIR / "skills.jsonl").is_file():
            to_generate.append((view, leaves))
            continue
        datasets.append(local / DATASET_DIR)
    if to_generate:
        datasets.append(_generate(run, to_generate))
    return _merge(datasets, run.artifacts / DATASET_DIR), changed, skipped


def _generate(run: JobRun, pending: list[tuple[JobRun, list[Changed]]]) -> Path:
    """SDG for the leaves of PRs that were merged without generated data."""
    if not run.settings.sdg_teacher_urls:
        raise JobFailed(messages.SDG_NO_TEACHER)
    try:
        teacher = open_teacher(run.settings)
    except TeacherError as exc:
        raise JobFailed(messages.SDG_TEACHER_UNAVAILABLE.format(error=exc)) from exc
    outputs: list[LeafOutput] = []
    with teacher:
        for view, leaves in pending:
            outputs += generate(view, leaves, teacher)
        model = teacher.model
    out = run.artifacts / GENERATED_DIR
    try:
        write_dataset(out, outputs, run.settings, model)
    except DatasetError as exc:
        raise JobFailed(str(exc)) from exc
    return out


def _merge(datasets: list[Path], out: Path) -> Path:
    """One dataset of many: the JSONL files concatenated, the PR-MMLU files side by side
    (their names are the leaves', which differ between PRs of one build)."""
    (out / MCQ_DIR).mkdir(parents=True, exist_ok=True)
    for name in DATA_FILES:
        _concatenate([d / name for d in datasets if (d / name).is_file()], out / name)
    for dataset in datasets:
        for mcq in sorted((dataset / MCQ_DIR).glob("*")) if (dataset / MCQ_DIR).is_dir() else []:
            shutil.copyfile(mcq, out / MCQ_DIR / mcq.name)
    return out


def _concatenate(paths: list[Path], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as sink:
        for path in paths:
            data = path.read_bytes()
            sink.write(data)
            if data and not data.endswith(b"\n"):
                sink.write(b"\n")
    return out


def _previous(run: JobRun, build: Composition) -> tuple[Path | None, Path | None]:
    """The last good build's final checkpoint and its data (replayed), or (None, None) for
    the first build of a repository."""
    if build.previous_job_id is None:
        return None, None
    local = artifact_store(run.settings).download(build.previous_job_id, run.artifacts / "previous")
    model = final_checkpoint(local)
    if model is None:
        raise JobFailed(messages.BUILD_NO_PREVIOUS_MODEL.format(name=build.previous_name))
    data = [local / DATASET_DIR / name for name in DATA_FILES]
    present = [path for path in data if path.is_file() and path.stat().st_size]
    replay = _concatenate(present, run.artifacts / "previous-data.jsonl") if present else None
    return model, replay
