"""The ``bench`` and ``precheck`` jobs.

bench: the base model and the model trained on the PR (its latest successful ``train`` job at
the same head) each answer the PR's skill seed questions and the regression guard, and pick
answers to the PR-MMLU questions SDG generated; the judge rates every answer; the results go
to the PR as one comment per head commit, to the ``labbot/bench`` check run (its conclusion
set by the thresholds) and to the job's artifacts, which the dashboard shows.

precheck: before any training, the base model answers the PR's seed questions, posted beside
the contributor's answers (rated by the judge when one is configured)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.artifacts import artifact_store
from app.config import Settings
from app.db.models import JobKind, JobState
from bots import messages
from workers.eval.asking import (
    Answer,
    JudgeRequest,
    Rated,
    answer_questions,
    choose_answers,
    rate_answers,
)
from workers.eval.questions import (
    MultipleChoiceQuestion,
    Question,
    QuestionsError,
    general_questions,
    multiple_choice_questions,
    seed_questions,
)
from workers.eval.report import Links, bench_comment, check_summary, precheck_comment, purpose
from workers.eval.results import (
    BenchResults,
    ScoredQuestion,
    conclude,
    group_scores,
    leaf_accuracy,
    score_group,
)
from workers.eval.serving import ServingError, model_client
from workers.harness import JobFailed, JobRun, latest_succeeded_job
from workers.sdg.dataset import MCQ_DIR
from workers.sdg.stage import DATASET_DIR, changed_leaves
from workers.sdg.teacher import HttpTeacher, TeacherError, open_client
from workers.train.stage import final_checkpoint

log = logging.getLogger(__name__)

BENCH_DIR = "bench"
RESULTS_FILE = "results.json"
PRECHECK_DIR = "precheck"
PRECHECK_COMMENT = "precheck"
ROLES = ("base", "trained")


def bench_stage(run: JobRun) -> JobState:
    settings = run.settings
    base_dir = _base_model(settings, "bench")
    run.progress("reading the pull request")
    changed = changed_leaves(run, messages.EVAL_TRIAGE_ERRORS, command="bench")
    questions = seed_questions(changed, knowledge=False)
    try:
        guard_version, guard = general_questions(settings.eval_general_questions)
    except QuestionsError as exc:
        raise JobFailed(messages.EVAL_QUESTIONS_UNREADABLE.format(error=exc)) from exc
    run.progress("finding the trained model")
    trained_dir, train_job_id = _trained_model(run)
    mcq = _multiple_choice(run)
    if not questions and not mcq:
        raise JobFailed(messages.EVAL_NO_QUESTIONS)
    out = run.artifacts / BENCH_DIR
    models = (
        Model("base", base_dir, settings.eval_base_urls, base_dir.name),
        Model("trained", trained_dir, [], f"trained-job-{train_job_id}"),
    )
    results = compare_models(
        run, out, models, questions, guard, guard_version, mcq, run.target.head_sha
    )
    conclusion, reasons = results.conclusion, results.reasons
    links = _links(run)
    run.progress("posting the results")
    run.github.upsert_comment(
        run.target.repo,
        run.target.number,
        purpose(run.target.head_sha),
        bench_comment(results, links),
    )
    run.result = {
        "conclusion": conclusion,
        "title": messages.BENCH_CHECK_TITLE[conclusion],
        "summary": check_summary(results, links),
        "scores": headline(results),
    }
    log.info("bench: %s (%s)", conclusion, "; ".join(reasons))
    return JobState.succeeded


@dataclass(frozen=True)
class Model:
    role: str  # "base" or "trained"
    path: Path
    urls: list[str]  # servers already running it; empty: the worker serves ``path`` itself
    name: str


def compare_models(
    run: JobRun,
    out: Path,
    models: tuple[Model, Model],
    questions: list[Question],
    guard: list[Question],
    guard_version: int,
    mcq: dict[str, list[MultipleChoiceQuestion]],
    head_sha: str,
) -> BenchResults:
    """Both models answer the seed questions and the regression guard and pick PR-MMLU
    answers; the judge rates every answer; the scores and the thresholds' conclusion are
    written under ``out`` (answers, judgments, mmlu, results.json) and returned."""
    settings = run.settings
    out.mkdir(parents=True, exist_ok=True)
    asked = [*questions, *guard]

    answers: dict[str, list[Answer]] = {}
    chosen: dict[str, dict[str, list[int | None]]] = {}
    names: dict[str, str] = {}
    for step, (role, model_dir, urls, name) in enumerate(
        (m.role, m.path, m.urls, m.name) for m in models
    ):
        report = _reporter(run, f"{role} model: answering", step / 3, 1 / 3)
        with _asking(run, role, "bench"):
            with model_client(
                settings, name, model_dir, urls, out / f"{role}-server.log", report.waiting
            ) as client:
                names[role] = client.model
                answers[role] = answer_questions(
                    client, asked, settings.eval_max_new_tokens, report
                )
                chosen[role] = {
                    leaf: choose_answers(client, items, report) for leaf, items in mcq.items()
                }
    _write_jsonl(
        out / "answers.jsonl",
        [
            {
                "id": q.id,
                "group": q.group,
                "model": role,
                "question": q.question,
                "answer": answers[role][i].text,
                "skipped": answers[role][i].skipped,
            }
            for role in ROLES
            for i, q in enumerate(asked)
        ],
    )

    report = _reporter(run, "judging the answers", 2 / 3, 1 / 3)
    requests = [
        JudgeRequest(q.question, answers[role][i].text, q.reference)
        for role in ROLES
        for i, q in enumerate(asked)
    ]
    with _asking(run, "judge", "bench"), _judge(settings) as judge:
        judge_name = judge.model
        rated = rate_answers(judge, requests, settings.eval_judge_max_new_tokens, report)
    by_role = {role: rated[n * len(asked) : (n + 1) * len(asked)] for n, role in enumerate(ROLES)}
    _write_jsonl(
        out / "judgments.jsonl",
        [
            {
                "id": q.id,
                "model": role,
                "rating": r.judgment.rating if r.judgment else None,
                "reasoning": r.judgment.reasoning if r.judgment else None,
                "error": r.error,
                "replies": r.raw,
            }
            for role in ROLES
            for q, r in zip(asked, by_role[role], strict=True)
        ],
    )
    scored = [_scored(q, answers, by_role, i) for i, q in enumerate(asked)]
    seed_scored, guard_scored = scored[: len(questions)], scored[len(questions) :]
    threshold = settings.eval_change_threshold
    files = group_scores(seed_scored, "group", threshold)
    guard_total = score_group("all", guard_scored, threshold) if guard_scored else None
    mmlu = [
        leaf_accuracy(
            leaf, [q.answer for q in items], chosen["base"][leaf], chosen["trained"][leaf]
        )
        for leaf, items in sorted(mcq.items())
    ]
    _write_jsonl(
        out / "mmlu.jsonl",
        [
            {
                "leaf": leaf,
                "question": q.question,
                "choices": q.choices,
                "answer": q.answer,
                "base": chosen["base"][leaf][i],
                "trained": chosen["trained"][leaf][i],
            }
            for leaf, items in sorted(mcq.items())
            for i, q in enumerate(items)
        ],
    )
    errors = sum(1 for r in rated if r.judgment is None)
    conclusion, reasons = conclude(files, mmlu, guard_total, len(rated), errors, settings)
    results = BenchResults(
        head_sha=head_sha,
        base_model=names["base"],
        trained_model=names["trained"],
        judge_model=judge_name,
        files=files,
        questions=seed_scored,
        mmlu=mmlu,
        guard=guard_total,
        guard_categories=group_scores(guard_scored, "group", threshold),
        guard_questions=guard_scored,
        guard_version=guard_version,
        judgments=len(rated),
        judge_errors=errors,
        conclusion=conclusion,
        reasons=reasons,
    )
    (out / RESULTS_FILE).write_text(results.model_dump_json(indent=1))
    return results


def precheck_stage(run: JobRun) -> JobState:
    settings = run.settings
    base_dir = _base_model(settings, "precheck")
    run.progress("reading the pull request")
    changed = changed_leaves(run, messages.EVAL_TRIAGE_ERRORS, command="precheck")
    questions = seed_questions(changed, knowledge=True)
    if not questions:
        raise JobFailed(messages.EVAL_NO_QUESTIONS)
    out = run.artifacts / PRECHECK_DIR
    out.mkdir(parents=True, exist_ok=True)
    report = _reporter(run, "base model: answering", 0.0, 0.6)
    with (
        _asking(run, "base", "precheck"),
        model_client(
            settings,
            base_dir.name,
            base_dir,
            settings.eval_base_urls,
            out / "base-server.log",
            report.waiting,
        ) as client,
    ):
        model = client.model
        answers = answer_questions(client, questions, settings.eval_max_new_tokens, report)
    ratings: list[float | None] | None = None
    rated: list[Rated] = []
    if _judge_urls(settings):
        report = _reporter(run, "judging the answers", 0.6, 0.4)
        requests = [
            JudgeRequest(q.question, a.text, q.reference)
            for q, a in zip(questions, answers, strict=True)
        ]
        with _asking(run, "judge", "precheck"), _judge(settings) as judge:
            rated = rate_answers(judge, requests, settings.eval_judge_max_new_tokens, report)
        ratings = [r.judgment.rating if r.judgment else None for r in rated]
    _write_jsonl(
        out / "answers.jsonl",
        [
            {
                "id": q.id,
                "question": q.question,
                "reference": q.reference,
                "answer": a.text,
                "skipped": a.skipped,
                "rating": ratings[i] if ratings else None,
                "reasoning": _reasoning(rated[i]) if rated else None,
            }
            for i, (q, a) in enumerate(zip(questions, answers, strict=True))
        ],
    )
    run.progress("posting the answers")
    body = precheck_comment(
        run.target.head_sha,
        model,
        questions,
        [a.text or (a.skipped or "") for a in answers],
        ratings,
        _links(run),
    )
    run.github.upsert_comment(run.target.repo, run.target.number, PRECHECK_COMMENT, body)
    rated_values = [r for r in ratings or [] if r is not None]
    run.result = {
        "scores": {
            "questions": len(questions),
            "base_mean": round(sum(rated_values) / len(rated_values), 3) if rated_values else None,
        }
    }
    return JobState.succeeded


# --- helpers -----------------------------------------------------------------------------


def _base_model(settings: Settings, command: str) -> Path:
    if settings.train_base_model is None:
        raise JobFailed(messages.EVAL_NO_BASE_MODEL.format(command=command))
    return settings.train_base_model


class _Reporter:
    """Progress of one part of the job (``start`` to ``start + share`` of the whole)."""

    def __init__(self, run: JobRun, stage: str, start: float, share: float) -> None:
        self.run, self.stage, self.start, self.share = run, stage, start, share

    def __call__(self, done: int, total: int) -> None:
        self.run.progress(self.stage, self.start + self.share * (done / total if total else 1))

    def waiting(self) -> None:
        self.run.progress(self.stage.split(":")[0] + ": loading", self.start)


def _reporter(run: JobRun, stage: str, start: float, share: float) -> _Reporter:
    return _Reporter(run, stage, start, share)


class _asking:  # noqa: N801 - used as a statement: `with _asking(...)`
    """Turns a model that cannot be served or asked into the job's failure message."""

    def __init__(self, run: JobRun, role: str, command: str) -> None:
        self.role, self.command = role, command

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if isinstance(exc, ServingError | TeacherError):
            raise JobFailed(
                messages.EVAL_MODEL_UNAVAILABLE.format(
                    role=self.role, error=exc, command=self.command
                )
            ) from exc


def _judge_urls(settings: Settings) -> list[str]:
    return settings.eval_judge_urls or settings.sdg_teacher_urls


def _judge(settings: Settings) -> HttpTeacher:
    """The judge: its own servers, or the SDG teacher's."""
    if settings.eval_judge_urls:
        return open_client(
            settings,
            settings.eval_judge_urls,
            model=settings.eval_judge_model,
            tokenizer=settings.eval_judge_tokenizer,
        )
    if not settings.sdg_teacher_urls:
        raise JobFailed(messages.EVAL_NO_JUDGE)
    key = settings.sdg_teacher_api_key
    return open_client(
        settings,
        settings.sdg_teacher_urls,
        model=settings.sdg_teacher_model,
        tokenizer=settings.sdg_teacher_tokenizer,
        api_key=key.get_secret_value() if key is not None else None,
    )


def _trained_model(run: JobRun) -> tuple[Path, int]:
    """The final checkpoint of the PR's latest successful train job at this head."""
    missing = JobFailed(messages.EVAL_NO_TRAINED_MODEL.format(sha=run.target.head_sha[:12]))
    job_id = latest_succeeded_job(run.target, JobKind.train)
    if job_id is None:
        raise missing
    final = final_checkpoint(
        artifact_store(run.settings).download(job_id, run.artifacts / "trained")
    )
    if final is None:
        raise missing
    return final, job_id


def _multiple_choice(run: JobRun) -> dict[str, list[MultipleChoiceQuestion]]:
    """The PR-MMLU questions of the PR's latest successful sdg job at this head (none when
    the PR has no knowledge leaf)."""
    job_id = latest_succeeded_job(run.target, JobKind.sdg)
    if job_id is None:
        return {}
    local = artifact_store(run.settings).download(job_id, run.artifacts / "generated")
    return multiple_choice_questions(local / DATASET_DIR / MCQ_DIR)


def _scored(
    question: Question, answers: dict[str, list[Answer]], rated: dict[str, list[Rated]], index: int
) -> ScoredQuestion:
    base, trained = rated["base"][index], rated["trained"][index]
    return ScoredQuestion(
        id=question.id,
        group=question.group,
        question=question.question,
        reference=question.reference,
        base_answer=answers["base"][index].text,
        trained_answer=answers["trained"][index].text,
        base_rating=base.judgment.rating if base.judgment else None,
        trained_rating=trained.judgment.rating if trained.judgment else None,
        base_reasoning=base.judgment.reasoning if base.judgment else "",
        trained_reasoning=trained.judgment.reasoning if trained.judgment else "",
        base_error=base.error,
        trained_error=trained.error,
    )


def _reasoning(rated: Rated) -> str | None:
    return rated.judgment.reasoning if rated.judgment is not None else None


def headline(results: BenchResults) -> dict[str, Any]:
    """The few numbers pages and trends need, without opening the artifacts."""
    return {
        "files": len(results.files),
        "improved": sum(1 for f in results.files if f.verdict == "improved"),
        "regressed": sum(1 for f in results.files if f.verdict == "regressed"),
        "base_mean": _mean([f.base for f in results.files]),
        "trained_mean": _mean([f.trained for f in results.files]),
        "mmlu_base": _mean([m.base for m in results.mmlu]),
        "mmlu_trained": _mean([m.trained for m in results.mmlu]),
        "guard_base": results.guard.base if results.guard else None,
        "guard_trained": results.guard.trained if results.guard else None,
        "judge_error_rate": round(results.error_rate, 4),
    }


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


def _links(run: JobRun) -> Links:
    base = run.settings.public_url.rstrip("/")
    return Links(
        job=f"{base}/jobs/{run.job.id}",
        pull=f"{base}/pulls/{run.target.repo}/{run.target.number}",
        artifacts=f"{base}/jobs/{run.job.id}/artifacts",
    )


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
