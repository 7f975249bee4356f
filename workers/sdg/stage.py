"""The ``sdg`` job: the PR's changed qna.yaml files, checked again at the job's head commit,
turned into a training set by the teacher, stored in the job's artifacts, and reported on the
PR with the counts per step. A job handed out again resumes from the teacher's answers it
already stored; a run that keeps nothing fails with the counts and the likely cause."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import yaml

from app.db.models import JobState
from bots import messages
from bots.markdown import code
from bots.triage import load_repo_config, triage_files
from bots.triage.runner import REPO_CONFIG_PATH, read_pull_request_files
from workers.harness import JobFailed, JobRun
from workers.sdg.dataset import DatasetError, DatasetFiles, preview, write_dataset
from workers.sdg.documents import DocumentError, chunk_document, fetch_document
from workers.sdg.pipelines import generate_leaf
from workers.sdg.records import Leaf, LeafKind, LeafOutput, Seed, StepCount
from workers.sdg.steps import StepStore
from workers.sdg.teacher import Teacher, TeacherError, open_teacher

log = logging.getLogger(__name__)

COMMENT_PURPOSE = "sdg"
DATASET_DIR = "dataset"
PREVIEW_FILE = "preview.json"
PREVIEW_PER_LEAF = 3


@dataclass(frozen=True)
class Changed:
    path: str  # the qna.yaml file
    data: dict[str, Any]


def sdg_stage(run: JobRun) -> JobState:
    settings = run.settings
    if not settings.sdg_teacher_urls:
        raise JobFailed(messages.SDG_NO_TEACHER)
    run.progress("reading the pull request")
    changed = changed_leaves(run)
    if not changed:
        raise JobFailed(messages.SDG_NOTHING_TO_GENERATE)
    try:
        teacher = open_teacher(settings)
    except TeacherError as exc:
        raise JobFailed(messages.SDG_TEACHER_UNAVAILABLE.format(error=exc)) from exc
    with teacher:
        outputs = generate(run, changed, teacher)
        model = teacher.model
    try:
        files = write_dataset(run.artifacts / DATASET_DIR, outputs, settings, model)
    except DatasetError as exc:
        raise JobFailed(str(exc)) from exc
    (run.artifacts / DATASET_DIR / PREVIEW_FILE).write_text(
        json.dumps(preview(run.artifacts / DATASET_DIR, PREVIEW_PER_LEAF), ensure_ascii=False)
    )
    empty = [out for out in outputs if not out.samples]
    body = comment_body(run, outputs, files, empty)
    run.github.upsert_comment(run.target.repo, run.target.number, COMMENT_PURPOSE, body)
    if empty:
        raise JobFailed(
            messages.SDG_EMPTY.format(
                leaves=" ".join(f"{code(out.leaf)}: {likely_cause(out.counts)}" for out in empty)
            )
        )
    return JobState.succeeded


def generate(run: JobRun, changed: list[Changed], teacher: Teacher) -> list[LeafOutput]:
    """Every changed leaf through its pipeline, resuming from the answers already stored."""
    leaves = [_leaf(run, item, teacher) for item in changed]
    store = StepStore(run.artifacts / "steps")
    outputs: list[LeafOutput] = []
    for index, leaf in enumerate(leaves):

        def report(step: str, fraction: float, index: int = index, leaf: Leaf = leaf) -> None:
            run.progress(f"{leaf.path}: {step}", (index + fraction) / len(leaves))

        try:
            outputs.append(generate_leaf(leaf, teacher, run.settings, store, report))
        except TeacherError as exc:
            raise JobFailed(messages.SDG_TEACHER_UNAVAILABLE.format(error=exc)) from exc
        log.info("%s: %s", leaf.path, _counts_line(outputs[-1].counts))
    return outputs


def changed_leaves(
    run: JobRun, triage_errors: str = messages.SDG_TRIAGE_ERRORS, **fields: str
) -> list[Changed]:
    """The qna.yaml files the PR adds or changes, read at the job's head and checked again:
    generation (or evaluation) starts only from files that pass triage; otherwise the job
    fails with ``triage_errors`` (formatted with the error count and ``fields``)."""
    github, target = run.github, run.target
    pull = github.get_pull_request(target.repo, target.number)
    config, _ = load_repo_config(
        github.get_file_content(target.repo, REPO_CONFIG_PATH, pull.base_sha)
    )
    files = read_pull_request_files(github, target, config, run)
    report = triage_files(
        files,
        config,
        lookup=lambda path: github.get_file_content(target.repo, path, target.head_sha),
    )
    if not report.ok:
        raise JobFailed(triage_errors.format(errors=report.errors, **fields))
    changed = []
    for file in files:
        if file.content is None or not file.path.endswith("qna.yaml"):
            continue
        data = yaml.safe_load(file.content)  # triage has checked it: safe, a mapping, valid
        changed.append(Changed(file.path, data))
    return sorted(changed, key=lambda c: c.path)


def _leaf(run: JobRun, item: Changed, teacher: Teacher) -> Leaf:
    path = item.path.removesuffix("/qna.yaml")
    data = item.data
    examples = data.get("seed_examples") or []
    if path.startswith("knowledge/"):
        seeds = tuple(
            Seed(str(qa["question"]), str(qa["answer"]), str(example.get("context", "")))
            for example in examples
            for qa in example.get("questions_and_answers") or []
        )
        return Leaf(
            path,
            "knowledge",
            str(data.get("document_outline", "")),
            seeds,
            domain=str(data.get("domain", "")),
            document_outline=str(data.get("document_outline", "")),
            document_chunks=tuple(_chunks(run, path, data.get("document") or {}, teacher)),
        )
    seeds = tuple(
        Seed(str(e.get("question", "")), str(e.get("answer", "")), str(e.get("context") or ""))
        for e in examples
    )
    kind: LeafKind = (
        "grounded"
        if path.startswith("compositional_skills/grounded/") or any(s.context for s in seeds)
        else "freeform"
    )
    return Leaf(path, kind, str(data.get("task_description", "")), seeds)


def _chunks(run: JobRun, path: str, document: dict[str, Any], teacher: Teacher) -> list[str]:
    run.progress(f"{path}: fetching the document")
    try:
        files = fetch_document(
            str(document.get("repo", "")),
            str(document.get("commit", "")),
            list(document.get("patterns") or []),
            run.artifacts / "document",
            run.settings,
        )
    except DocumentError as exc:
        raise JobFailed(messages.SDG_DOCUMENT.format(path=path, error=exc)) from exc
    chunks: list[str] = []
    for file in files:
        chunks += chunk_document(file.text, teacher.count_tokens, run.settings.sdg_chunk_tokens)
    log.info("%s: %d document file(s), %d chunk(s)", path, len(files), len(chunks))
    return chunks


def likely_cause(counts: list[StepCount]) -> str:
    """Why a leaf kept nothing, from where its counts fell to zero."""
    first = counts[0] if counts else StepCount("none")
    if first.kept == 0 and first.skipped > 0 and first.generated == 0:
        return messages.SDG_CAUSE_CONTEXT
    if first.kept == 0:
        return messages.SDG_CAUSE_UNREADABLE
    return messages.SDG_CAUSE_FILTERED


def _counts_line(counts: list[StepCount]) -> str:
    return ", ".join(f"{c.step} {c.kept}/{c.generated}" for c in counts)


def comment_body(
    run: JobRun, outputs: list[LeafOutput], files: DatasetFiles, empty: list[LeafOutput]
) -> str:
    url = f"{run.settings.public_url.rstrip('/')}/jobs/{run.job.id}"
    lines = [
        messages.SDG_COMMENT_HEADER.format(sha=run.target.head_sha[:12]),
        "",
        messages.SDG_COMMENT_FAILED if empty else messages.SDG_COMMENT_OK,
        "",
        "| leaf | step | generated | kept | skipped |",
        "|---|---|---|---|---|",
    ]
    for out in outputs:
        for count in out.counts:
            lines.append(
                f"| {code(out.leaf)} | {count.step} | {count.generated} | {count.kept} | "
                f"{count.skipped} |"
            )
    lines += [
        "",
        messages.SDG_COMMENT_FILES.format(
            knowledge=files.counts.get("knowledge.jsonl", 0),
            skills=files.counts.get("skills.jsonl", 0),
            mcq=sum(n for name, n in files.counts.items() if name.startswith("mcq/")),
            url=url,
        ),
    ]
    return "\n".join(lines)
