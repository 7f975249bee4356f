"""The teacher client against a real vLLM server (tests/sdg/conftest.py), with a small real
HTTP proxy in front of it where a test needs to see the requests or inject 503 answers."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.sdg.vllm import REPO_ROOT, TINY_MODEL_NAME, VllmServer, free_port
from workers.sdg.teacher import (
    HttpTeacher,
    Reply,
    Sampling,
    TeacherError,
    open_teacher,
)

WORDS = (
    "name size path mode owner group type date time list dict set text line word char byte code "
    "test case"
).split()
PROMPTS = [f"The {word} of the file is" for word in WORDS]


class RecordingProxy:
    """Forwards to the real server, records each request body and the most requests it had in
    flight at once, and answers 503 to the first ``fail_first`` requests."""

    def __init__(self, upstream: str, fail_first: int = 0) -> None:
        self.upstream = upstream.removesuffix("/v1")
        self.fail_first = fail_first
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self.forward(b"")

            def do_POST(self) -> None:  # noqa: N802
                self.forward(self.rfile.read(int(self.headers["Content-Length"])))

            def forward(self, body: bytes) -> None:
                with proxy.lock:
                    if body:
                        proxy.bodies.append(json.loads(body))
                    fail = proxy.fail_first > 0
                    proxy.fail_first -= int(fail)
                    proxy.in_flight += 1
                    proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
                try:
                    if fail:
                        status, content = 503, b'{"error": {"message": "injected"}}'
                    else:
                        answer = httpx.request(
                            self.command,
                            proxy.upstream + self.path,
                            content=body,
                            headers={"Content-Type": "application/json"},
                            timeout=120,
                        )
                        status, content = answer.status_code, answer.content
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def completion_bodies(self) -> list[dict[str, Any]]:
        return [body for body in self.bodies if "prompt" in body]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(vllm_server: VllmServer) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(vllm_server.url)
    yield recording
    recording.close()


def make_teacher(urls: list[str], **options: Any) -> HttpTeacher:
    defaults: dict[str, Any] = {
        "batch_size": 4,
        "concurrency": 4,
        "request_timeout_seconds": 60.0,
        "max_retries": 3,
        "replica_cooldown_seconds": 0.2,
        "backoff_seconds": 0.05,
        "max_backoff_seconds": 0.5,
    }
    return HttpTeacher(urls, **{**defaults, **options})


def prompt_of_tokens(teacher: HttpTeacher, low: int, high: int) -> tuple[str, int]:
    """A plain-text prompt with between ``low`` and ``high`` tokens, and its count."""
    for repeats in range(1, 2000):
        prompt = " hello world" * repeats
        (tokens,) = teacher.prompt_tokens([prompt])
        if low <= tokens <= high:
            return prompt, tokens
    raise AssertionError(f"no prompt of {low}-{high} tokens")


def test_discovers_model_context_and_tokenizer(
    vllm_server: VllmServer, tiny_model_dir: Path
) -> None:
    settings = Settings(sdg_teacher_urls=[vllm_server.url])
    with open_teacher(settings) as teacher:
        assert teacher.model == TINY_MODEL_NAME
        assert teacher.max_model_len == 512
        prompt = teacher.render_chat([{"role": "user", "content": "Write a haiku."}])
        assert prompt == "<|begin_of_text|><|user|>\nWrite a haiku.\n<|assistant|>\n"
        assert teacher.count_tokens("Write a haiku.") < teacher.prompt_tokens([prompt])[0]

        replies = teacher.chat(
            [[{"role": "user", "content": text}] for text in PROMPTS[:3]], Sampling(max_tokens=8)
        )

    assert [len(reply.texts) for reply in replies] == [1, 1, 1]
    # Our count of each prompt is the server's count.
    assert sum(reply.prompt_tokens for reply in replies) == teacher.stats.prompt_tokens


def test_open_teacher_errors_are_readable(vllm_server: VllmServer) -> None:
    with pytest.raises(TeacherError, match="LABBOT_SDG_TEACHER_URLS"):
        open_teacher(Settings(sdg_teacher_urls=[]))
    with pytest.raises(TeacherError, match=r"serves \['tiny-teacher'\], not 'no-such-model'"):
        open_teacher(
            Settings(sdg_teacher_urls=[vllm_server.url], sdg_teacher_model="no-such-model")
        )
    closed = f"http://user:hunter2@127.0.0.1:{free_port()}/v1"
    with pytest.raises(TeacherError, match="no teacher replica answered") as failure:
        make_teacher([closed], max_retries=1)
    assert "hunter2" not in str(failure.value)


def test_batches_prompts_with_n_samples_in_order(
    vllm_server: VllmServer, proxy: RecordingProxy
) -> None:
    progress: list[tuple[int, int]] = []
    greedy = Sampling(max_tokens=16)
    with make_teacher([proxy.url], batch_size=4) as teacher:
        one_by_one = [teacher.complete([prompt], greedy)[0] for prompt in PROMPTS]
        proxy.bodies.clear()
        batched = teacher.complete(PROMPTS, greedy, on_progress=lambda *p: progress.append(p))
        sampled = teacher.complete(PROMPTS[:6], Sampling(max_tokens=16, temperature=1.0, n=3))

    # Replies come back in the prompts' order (the greedy answers differ from prompt to prompt).
    assert len({tuple(reply.texts) for reply in one_by_one}) > len(PROMPTS) // 2
    assert [reply.texts for reply in batched] == [reply.texts for reply in one_by_one]
    assert sorted(len(body["prompt"]) for body in proxy.completion_bodies()) == [2] + [4] * 6
    assert sorted(progress) == [(done, 20) for done in (4, 8, 12, 16, 20)]
    assert all(len(reply.texts) == 3 for reply in sampled)
    assert proxy.completion_bodies()[-1]["n"] == 3
    assert teacher.stats.prompts == 2 * len(PROMPTS) + 6
    assert teacher.stats.busy_seconds > 0


def test_concurrency_is_bounded_per_replica(proxy: RecordingProxy) -> None:
    with make_teacher([proxy.url], batch_size=1, concurrency=3) as teacher:
        replies = teacher.complete(PROMPTS, Sampling(max_tokens=64, temperature=1.0))
    assert all(reply.texts for reply in replies)
    assert proxy.most_in_flight == 3


def test_long_prompts_get_fewer_tokens_or_are_skipped_unsent(proxy: RecordingProxy) -> None:
    with make_teacher([proxy.url], min_new_tokens=32) as teacher:
        long_prompt, long_tokens = prompt_of_tokens(teacher, 420, 470)
        too_long, too_long_tokens = prompt_of_tokens(teacher, 490, 500)
        proxy.bodies.clear()
        replies = teacher.complete(
            ["A short prompt", long_prompt, too_long], Sampling(max_tokens=100)
        )

    short, shortened, skipped = replies
    assert short.texts
    assert shortened.texts
    assert skipped == Reply(
        texts=[],
        skipped=f"prompt is {too_long_tokens} tokens; the teacher's context is 512 "
        "(fewer than 32 left for the answer)",
        prompt_tokens=too_long_tokens,
    )
    sent = {tuple(body["prompt"]): body["max_tokens"] for body in proxy.completion_bodies()}
    assert sent == {("A short prompt",): 100, (long_prompt,): 512 - long_tokens}
    assert teacher.stats.skipped == 1
    assert teacher.stats.prompts == 2


def test_prompt_the_server_refuses_for_length_is_skipped_alone(
    vllm_server: VllmServer, tiny_model_dir: Path
) -> None:
    # Told the context is larger than the server's, the client sends a prompt that does not fit:
    # only that prompt is lost, the rest of its batch is answered.
    with make_teacher(
        [vllm_server.url], model=TINY_MODEL_NAME, max_model_len=4096, tokenizer=tiny_model_dir
    ) as teacher:
        too_long, _ = prompt_of_tokens(teacher, 600, 700)
        replies = teacher.complete(["A short prompt", too_long], Sampling(max_tokens=8))

    assert replies[0].texts
    assert replies[1].texts == []
    assert replies[1].skipped is not None
    assert "maximum context length is 512" in replies[1].skipped
    assert (teacher.stats.requests, teacher.stats.skipped, teacher.stats.retries) == (3, 1, 0)


def test_4xx_is_not_retried(vllm_server: VllmServer, tiny_model_dir: Path) -> None:
    teacher = make_teacher(
        [vllm_server.url], model="no-such-model", max_model_len=512, tokenizer=tiny_model_dir
    )
    with teacher, pytest.raises(TeacherError, match="answered 404: The model `no-such-model`"):
        teacher.complete(PROMPTS, Sampling(max_tokens=8))
    assert teacher.stats.retries == 0
    assert teacher.stats.requests >= 1


def test_5xx_is_retried(vllm_server: VllmServer) -> None:
    proxy = RecordingProxy(vllm_server.url)
    try:
        with make_teacher([proxy.url], max_retries=3) as teacher:
            proxy.fail_first = 2
            replies = teacher.complete(PROMPTS[:2], Sampling(max_tokens=8))
            assert all(reply.texts for reply in replies)
            assert (teacher.stats.requests, teacher.stats.retries) == (3, 2)

            proxy.fail_first = 10
            with pytest.raises(TeacherError, match="did not answer after 4 attempts"):
                teacher.complete(PROMPTS[:2], Sampling(max_tokens=8))
    finally:
        proxy.close()


def test_requests_fail_over_from_a_dead_replica(vllm_server: VllmServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with make_teacher(
        [dead, vllm_server.url], batch_size=2, concurrency=2, replica_cooldown_seconds=60
    ) as teacher:
        replies = teacher.complete(PROMPTS, Sampling(max_tokens=8))

    assert all(reply.texts for reply in replies)
    assert teacher.stats.failovers >= 1
    assert teacher.stats.retries == teacher.stats.failovers
    assert teacher.stats.prompts == len(PROMPTS)


def test_every_replica_dead_is_a_teacher_error(tiny_model_dir: Path) -> None:
    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    teacher = make_teacher(dead, model="m", max_model_len=512, tokenizer=tiny_model_dir)
    with teacher, pytest.raises(TeacherError, match="did not answer after 4 attempts") as failure:
        teacher.complete(["hello"], Sampling(max_tokens=8))
    assert "ConnectError" in str(failure.value)


def test_a_failing_progress_callback_cancels_the_call(vllm_server: VllmServer) -> None:
    class Cancelled(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Cancelled

    with make_teacher([vllm_server.url], batch_size=1, concurrency=1) as teacher:
        with pytest.raises(Cancelled):
            teacher.complete(PROMPTS, Sampling(max_tokens=8), on_progress=stop)
        # The teacher is still usable afterwards.
        assert teacher.complete(PROMPTS[:1], Sampling(max_tokens=8))[0].texts


def test_request_completes_after_the_server_restarts(vllm_server: VllmServer) -> None:
    # Runs last but one: it takes the shared server down and brings it back (about 30 s).
    teacher = make_teacher(
        [vllm_server.url], max_retries=40, replica_cooldown_seconds=0.5, max_backoff_seconds=2
    )
    vllm_server.stop()
    outcome: list[list[Reply] | BaseException] = []

    def ask() -> None:
        try:
            outcome.append(teacher.complete(PROMPTS[:3], Sampling(max_tokens=8)))
        except BaseException as error:  # noqa: BLE001 (handed to the test thread)
            outcome.append(error)

    with teacher:
        asking = threading.Thread(target=ask)
        asking.start()
        deadline = time.monotonic() + 30
        while teacher.stats.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        vllm_server.start()
        asking.join(timeout=120)

    assert not asking.is_alive()
    (replies,) = outcome
    assert not isinstance(replies, BaseException), replies
    assert all(reply.texts for reply in replies)
    assert teacher.stats.retries >= 1


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from workers.sdg.teacher import OfflineTeacher, Sampling

    if __name__ == "__main__":
        teacher = OfflineTeacher(
            sys.argv[1], max_model_len=512, dtype="float32", enforce_eager=True, batch_size=2
        )
        progress = []
        long_prompt = " hello world" * 300
        replies = teacher.chat(
            [[{"role": "user", "content": "Write a haiku."}]] * 3,
            Sampling(max_tokens=8, n=2, temperature=1.0),
            on_progress=lambda done, total: progress.append([done, total]),
        )
        skipped = teacher.complete([long_prompt], Sampling(max_tokens=8))
        # A file, not stdout: vLLM logs to stdout.
        with open(sys.argv[2], "w") as out:
            report = {
                "max_model_len": teacher.max_model_len,
                "texts": [reply.texts for reply in replies],
                "skipped": skipped[0].skipped,
                "progress": progress,
                "prompts": teacher.stats.prompts,
            }
            json.dump(report, out)
        teacher.close()
    """
)


def test_offline_teacher_under_vllm(vllm_venv: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    script, report_path = tmp_path / "offline.py", tmp_path / "report.json"
    script.write_text(OFFLINE_SCRIPT)
    result = subprocess.run(
        [str(vllm_venv / "bin" / "python"), str(script), str(tiny_model_dir), str(report_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
            "PYTHONPATH": str(REPO_ROOT),
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "HF_HUB_OFFLINE": "1",
        },
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads(report_path.read_text())
    assert report["max_model_len"] == 512
    assert [len(texts) for texts in report["texts"]] == [2, 2, 2]
    assert report["skipped"].startswith("prompt is ")
    assert "the teacher's context is 512" in report["skipped"]
    assert report["progress"] == [[2, 3], [3, 3]]
    assert report["prompts"] == 3
