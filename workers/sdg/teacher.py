"""The teacher model SDG asks for questions, answers and judgements.

The main implementation talks to vLLM's OpenAI-compatible server, one or more data-parallel
replicas, through the *completions* API with the chat template applied here (as upstream
instructlab-sdg does), so prompts can be counted against the context before they are sent.

- Batching: up to ``sdg_batch_size`` prompts per request, ``n`` samples each in the same request.
- Concurrency: ``sdg_concurrency`` requests in flight per replica, each sent to the healthy
  replica with the fewest in flight; one HTTP client per replica for the teacher's lifetime, driven
  by one event loop in a background thread so calls from several threads share the limits.
- Failures: connection errors, timeouts and 5xx answers are retried with exponential backoff
  (at once on another replica when one is ready); the replica that failed is left out for
  ``sdg_replica_cooldown_seconds``. After ``sdg_max_retries`` retries: ``TeacherError``.
- 4xx answers are never retried. A 400 saying a prompt does not fit the context (the teacher's
  tokenizer counts differently from ours) turns the batch into single-prompt requests and only
  that prompt becomes a ``Reply.skipped``; any other 4xx is a ``TeacherError`` naming the status.
- Context: a prompt whose tokens plus ``max_tokens`` exceed the context gets a smaller
  ``max_tokens`` when at least ``sdg_min_new_tokens`` remain, and is skipped (never sent) otherwise.

``OfflineTeacher`` offers the same interface over an in-process ``vllm.LLM`` for a GPU worker
that hosts the teacher itself.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import openai
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
ProgressCallback = Callable[[int, int], None]
# Replies as they arrive, by prompt index: lets a caller store them while the rest are in flight.
RepliesCallback = Callable[[list[tuple[int, "Reply"]]], None]
T = TypeVar("T")
# A token's character offset in the echoed text and its log-probability (None for the first).
TokenLogprob = tuple[int, float | None]

# How vLLM words a prompt that does not fit: "This model's maximum context length is 512 tokens.
# However, your prompt contains at least 513 input tokens ...".
CONTEXT_REFUSAL = re.compile(
    r"maximum context length|context length|maximum model length|max_model_len", re.IGNORECASE
)
# Discovery is a small request: a hung server should not hold a job for the full request timeout.
DISCOVERY_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # The prompt's own tokens with their log-probabilities in the reply (``Reply.logprobs``):
    # how likely a model finds a given text, as MMLU-style scoring needs. HTTP teachers only.
    echo_logprobs: bool = False


@dataclass(frozen=True)
class Reply:
    texts: list[str]  # the n completions; empty when the prompt was skipped
    skipped: str | None = None  # why it was not sent (too long for the context)
    prompt_tokens: int = 0
    # With ``Sampling.echo_logprobs``: per completion, (character offset in prompt + text,
    # log-probability) of each token, the prompt's first (whose log-probability is None).
    logprobs: list[list[TokenLogprob]] = field(default_factory=list)


class TeacherError(Exception):
    """The teacher could not answer: a readable message (no secrets), e.g. every replica
    failed, or the server refused the request with a 4xx status."""


@dataclass
class TeacherStats:
    requests: int = 0  # completion requests sent, retries included
    prompts: int = 0  # prompts answered
    retries: int = 0  # requests sent again after a connection error, timeout or 5xx
    failovers: int = 0  # retries that went to another replica than the failed attempt
    skipped: int = 0  # prompts not sent (or refused) because they do not fit the context
    prompt_tokens: int = 0  # as the server counted them
    completion_tokens: int = 0
    busy_seconds: float = 0.0  # wall time with at least one request in flight


# One prompt's n completions and, when asked, their tokens' log-probabilities.
_Answer = tuple[list[str], list[list[TokenLogprob]]]


def _token_logprobs(logprobs: dict[str, Any]) -> list[TokenLogprob]:
    offsets, values = logprobs["text_offset"], logprobs["token_logprobs"]
    if len(offsets) != len(values):
        raise ValueError("text_offset and token_logprobs differ in length")
    return [
        (int(offset), None if value is None else float(value))
        for offset, value in zip(offsets, values, strict=True)
    ]


@dataclass(frozen=True)
class _Batch:
    """Prompts sent in one request: same sampling, same (possibly shortened) max_tokens."""

    indices: tuple[int, ...]
    prompts: tuple[str, ...]
    max_tokens: int


class Teacher:
    """What the SDG pipeline needs from a teacher; subclasses implement ``complete``."""

    model: str
    max_model_len: int
    stats: TeacherStats

    def __init__(
        self,
        model: str,
        max_model_len: int,
        tokenizer: Any,
        *,
        min_new_tokens: int = 32,
        batch_size: int = 8,
    ) -> None:
        self.model = model
        self.max_model_len = max_model_len
        self.stats = TeacherStats()
        self.min_new_tokens = min_new_tokens
        self.batch_size = batch_size
        self._tokenizer = tokenizer
        # The Rust tokenizer encodes a batch in one call and, unlike the transformers wrapper,
        # changes no state while it does, so threads may share it.
        self._fast_tokenizer = getattr(tokenizer, "backend_tokenizer", None)

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` alone (no BOS or other special tokens added)."""
        if self._fast_tokenizer is not None:
            return len(self._fast_tokenizer.encode(text, add_special_tokens=False))
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def prompt_tokens(self, prompts: Sequence[str]) -> list[int]:
        """Tokens of each prompt as the server counts it (special tokens included)."""
        if not prompts:
            return []
        if self._fast_tokenizer is not None:
            encodings = self._fast_tokenizer.encode_batch(list(prompts), add_special_tokens=True)
            return [len(encoding) for encoding in encodings]
        return [len(ids) for ids in self._tokenizer(list(prompts))["input_ids"]]

    def render_chat(self, messages: Messages) -> str:
        """The prompt for ``messages``: the teacher's chat template, generation prompt added."""
        if not getattr(self._tokenizer, "chat_template", None):
            raise TeacherError(f"the tokenizer of the teacher {self.model} has no chat template")
        rendered = self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return str(rendered)

    def complete(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        on_progress: ProgressCallback | None = None,
        on_replies: RepliesCallback | None = None,
    ) -> list[Reply]:
        """One reply per prompt, in order; ``on_progress(done, total)`` after each request and
        ``on_replies`` with the replies it brought (skipped prompts come first), both called in
        the caller's thread; an exception from either cancels what is still in flight."""
        raise NotImplementedError

    def chat(
        self,
        conversations: Sequence[Messages],
        sampling: Sampling,
        on_progress: ProgressCallback | None = None,
        on_replies: RepliesCallback | None = None,
    ) -> list[Reply]:
        prompts = [self.render_chat(messages) for messages in conversations]
        return self.complete(prompts, sampling, on_progress, on_replies)

    def close(self) -> None:
        """Release connections or the engine; the teacher cannot be used afterwards."""

    def __enter__(self) -> Teacher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _plan(
        self, prompts: Sequence[str], sampling: Sampling, batch_size: int
    ) -> tuple[list[Reply | None], list[_Batch], list[int]]:
        """Replies for the prompts that are skipped, batches for the rest, and every prompt's
        token count.

        A prompt keeps ``sampling.max_tokens`` when it fits, gets what is left of the context
        when that is at least ``min_new_tokens``, and is skipped otherwise."""
        replies: list[Reply | None] = [None] * len(prompts)
        by_max_tokens: dict[int, list[int]] = {}
        counts = self.prompt_tokens(prompts)
        for index, prompt_tokens in enumerate(counts):
            room = self.max_model_len - prompt_tokens
            if room >= sampling.max_tokens:
                max_tokens = sampling.max_tokens
            elif room >= self.min_new_tokens:
                max_tokens = room
            else:
                replies[index] = Reply(
                    texts=[],
                    skipped=f"prompt is {prompt_tokens} tokens; the teacher's context is "
                    f"{self.max_model_len} (fewer than {self.min_new_tokens} left for the answer)",
                    prompt_tokens=prompt_tokens,
                )
                continue
            by_max_tokens.setdefault(max_tokens, []).append(index)
        batches = [
            _Batch(
                indices=tuple(chunk),
                prompts=tuple(prompts[i] for i in chunk),
                max_tokens=max_tokens,
            )
            for max_tokens, indices in by_max_tokens.items()
            for chunk in (indices[i : i + batch_size] for i in range(0, len(indices), batch_size))
        ]
        return replies, batches, counts


def _answered(replies: list[Reply | None]) -> list[Reply]:
    unanswered = sum(1 for reply in replies if reply is None)
    if unanswered:
        raise AssertionError(f"{unanswered} prompts were neither answered nor skipped")
    return [reply for reply in replies if reply is not None]


def _replies_at(replies: list[Reply | None], indices: Sequence[int]) -> list[tuple[int, Reply]]:
    return list(zip(indices, _answered([replies[index] for index in indices]), strict=True))


def _redact(url: str) -> str:
    """The URL without user:password, fit for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Retryable(Exception):
    """A failure worth sending the request again: connection error, timeout, 5xx."""


class _ContextRefused(Exception):
    """The server said a prompt does not fit its context (a 400)."""


@dataclass(eq=False)
class _Replica:
    url: str
    client: openai.AsyncOpenAI
    in_flight: int = 0
    down_until: float = 0.0  # time.monotonic() before which it is left out
    last_error: str = ""
    last_used: int = 0

    @property
    def name(self) -> str:
        return _redact(self.url)


class _EventLoopThread:
    """One event loop in a daemon thread: the HTTP clients live on it, callers block on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        result: T = self.submit(coroutine).result()
        return result

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@dataclass
class _Call:
    """One ``complete`` call in flight: its replies and where progress goes."""

    replies: list[Reply | None]
    prompt_tokens: list[int]
    pending: deque[_Batch]
    sampling: Sampling
    total: int
    done: int
    # (done, total, indices answered since the last event); None when the call is over.
    events: queue.SimpleQueue[tuple[int, int, list[int]] | None] = field(
        default_factory=queue.SimpleQueue
    )


class HttpTeacher(Teacher):
    """A teacher behind one or more OpenAI-compatible (vLLM) servers."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        model: str = "",
        api_key: str | None = None,
        tokenizer: str | Path | None = None,
        max_model_len: int | None = None,
        batch_size: int = 8,
        concurrency: int = 8,
        request_timeout_seconds: float = 600.0,
        max_retries: int = 4,
        replica_cooldown_seconds: float = 30.0,
        min_new_tokens: int = 32,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        if not urls:
            raise TeacherError("no teacher configured: set LABBOT_SDG_TEACHER_URLS")
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.replica_cooldown_seconds = replica_cooldown_seconds
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._closed = False
        self._in_flight = 0
        self._busy_since = 0.0
        self._use_counter = itertools.count(1)
        self._runner = _EventLoopThread("teacher-http")
        self._slots_changed = asyncio.Event()
        self._replicas = [
            _Replica(
                url=url.rstrip("/"),
                client=openai.AsyncOpenAI(
                    base_url=url.rstrip("/"),
                    # vLLM without --api-key accepts anything; the client insists on a value.
                    api_key=api_key or "none",
                    timeout=request_timeout_seconds,
                    max_retries=0,  # retries, with failover, are ours
                ),
            )
            for url in urls
        ]
        try:
            if not model or max_model_len is None or tokenizer is None:
                model, listed_max_len, root = self._runner.run(self._discover(model))
                max_model_len = max_model_len or listed_max_len
                tokenizer = tokenizer or _local_path(root, model)
            if max_model_len is None:
                raise TeacherError(
                    f"the teacher {model} does not report max_model_len in /v1/models"
                )
            loaded = _load_tokenizer(tokenizer, model)
        except BaseException:
            self.close()
            raise
        super().__init__(
            model,
            max_model_len,
            loaded,
            min_new_tokens=min_new_tokens,
            batch_size=batch_size,
        )

    def complete(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        on_progress: ProgressCallback | None = None,
        on_replies: RepliesCallback | None = None,
    ) -> list[Reply]:
        if self._closed:
            raise TeacherError("the teacher client is closed")
        if not prompts:
            return []
        replies, batches, prompt_tokens = self._plan(prompts, sampling, self.batch_size)
        call = _Call(
            replies=replies,
            prompt_tokens=prompt_tokens,
            pending=deque(batches),
            sampling=sampling,
            total=len(prompts),
            done=len(prompts) - sum(len(batch.indices) for batch in batches),
        )
        future = self._runner.submit(self._run(call))
        try:
            # Progress is reported from the caller's thread, so a slow or raising callback
            # (a cancelled job) never stalls the event loop; raising cancels the requests.
            while (event := call.events.get()) is not None:
                done, total, indices = event
                if on_replies is not None and indices:
                    on_replies(_replies_at(call.replies, indices))
                if on_progress is not None:
                    on_progress(done, total)
            future.result()
        except BaseException:
            future.cancel()
            raise
        return _answered(call.replies)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def close_clients() -> None:
            for replica in self._replicas:
                await replica.client.close()

        self._runner.run(close_clients())
        self._runner.stop()

    # The rest runs on the event loop thread; stats are only changed there.

    async def _discover(self, wanted: str) -> tuple[str, int | None, str | None]:
        """The served model, its context length and its path, from the first replica that
        answers /v1/models (retried like requests, so a replica still starting is waited for)."""
        errors: dict[str, str] = {}

        async def ask_each_replica() -> tuple[str, int | None, str | None]:
            for replica in self._replicas:
                try:
                    page = await replica.client.models.list(timeout=DISCOVERY_TIMEOUT_SECONDS)
                except openai.APIStatusError as error:
                    if error.status_code < 500:
                        raise TeacherError(
                            f"the teacher {replica.name} answered /models with "
                            f"{error.status_code}: {_server_message(error)}"
                        ) from None
                    errors[replica.name] = f"{error.status_code} {_server_message(error)}"
                    continue
                except openai.APIConnectionError as error:
                    errors[replica.name] = _describe(error)
                    continue
                return _pick_model(replica.name, page.data, wanted)
            raise _Retryable("; ".join(f"{name}: {error}" for name, error in errors.items()))

        try:
            async for attempt in self._retrying():
                with attempt:
                    return await ask_each_replica()
        except _Retryable as error:
            raise TeacherError(f"no teacher replica answered /v1/models ({error})") from None
        raise AssertionError("unreachable: tenacity returns or raises")

    def _retrying(
        self, failed_replica: Callable[[], _Replica | None] = lambda: None
    ) -> AsyncRetrying:
        def backoff(state: RetryCallState) -> float:
            # Another healthy replica means failover at once; the same one (or none) means
            # exponential backoff, so a restarting server is not hammered.
            failed = failed_replica()
            now = time.monotonic()
            if failed is not None and any(
                replica is not failed and replica.down_until <= now for replica in self._replicas
            ):
                return 0.0
            exponent = max(0, state.attempt_number - 1)
            return float(min(self.max_backoff_seconds, self.backoff_seconds * 2**exponent))

        return AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=backoff,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )

    async def _run(self, call: _Call) -> None:
        try:
            skipped = [index for index, reply in enumerate(call.replies) if reply is not None]
            self.stats.skipped += len(skipped)
            if not call.pending:
                call.events.put((call.total, call.total, skipped))
                return
            if skipped:
                call.events.put((call.done, call.total, skipped))
            workers = min(len(call.pending), self.concurrency * len(self._replicas))
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(workers):
                        group.create_task(self._work(call))
            except BaseExceptionGroup as failures:
                raise failures.exceptions[0] from None
        finally:
            call.events.put(None)

    async def _work(self, call: _Call) -> None:
        """Keeps one request in flight until the call has no batches left."""
        while call.pending:
            batch = call.pending.popleft()
            results = await self._send_batch(batch, call.sampling)
            for index, result in zip(batch.indices, results, strict=True):
                prompt_tokens = call.prompt_tokens[index]
                if isinstance(result, str):
                    call.replies[index] = Reply(
                        texts=[], skipped=result, prompt_tokens=prompt_tokens
                    )
                else:
                    texts, logprobs = result
                    call.replies[index] = Reply(
                        texts=texts, prompt_tokens=prompt_tokens, logprobs=logprobs
                    )
            call.done += len(batch.indices)
            call.events.put((call.done, call.total, list(batch.indices)))

    async def _send_batch(self, batch: _Batch, sampling: Sampling) -> list[_Answer | str]:
        """Each prompt's n texts (and their log-probabilities when asked), or why the server
        refused it."""
        try:
            response = await self._request(batch, sampling)
        except _ContextRefused as refusal:
            if len(batch.prompts) == 1:
                self.stats.skipped += 1
                return [f"the teacher refused the prompt: {refusal}"]
            # Find the prompt(s) at fault; the others still get their answers.
            singles = [
                _Batch(indices=(index,), prompts=(prompt,), max_tokens=batch.max_tokens)
                for index, prompt in zip(batch.indices, batch.prompts, strict=True)
            ]
            results = await asyncio.gather(*(self._send_batch(s, sampling) for s in singles))
            return [result[0] for result in results]
        try:
            choices = sorted(response["choices"], key=lambda choice: int(choice["index"]))
            texts = [str(choice["text"]) for choice in choices]
            logprobs = [
                _token_logprobs(choice["logprobs"]) if sampling.echo_logprobs else []
                for choice in choices
            ]
            usage = response.get("usage") or {}
        except (KeyError, TypeError, ValueError) as error:
            raise TeacherError(f"the teacher's answer is not a completion: {error!r}") from None
        if len(texts) != len(batch.prompts) * sampling.n:
            raise TeacherError(
                f"the teacher answered {len(texts)} choices for {len(batch.prompts)} prompts "
                f"with n={sampling.n}"
            )
        self.stats.prompts += len(batch.prompts)
        self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.stats.completion_tokens += int(usage.get("completion_tokens") or 0)
        n = sampling.n
        return [
            (texts[i * n : (i + 1) * n], logprobs[i * n : (i + 1) * n])
            for i in range(len(batch.prompts))
        ]

    async def _request(self, batch: _Batch, sampling: Sampling) -> dict[str, Any]:
        """The completion for ``batch``, retried on other replicas or after a backoff."""
        previous: _Replica | None = None
        try:
            # Late binding wanted: the wait between attempts asks which replica failed last.
            async for attempt in self._retrying(lambda: previous):  # noqa: B023
                with attempt:
                    replica = await self._acquire()
                    if previous is not None:
                        self.stats.retries += 1
                        if replica is not previous:
                            self.stats.failovers += 1
                    previous = replica
                    try:
                        return await self._post(replica, batch, sampling)
                    finally:
                        self._release(replica)
        except _Retryable:
            failures = "; ".join(
                f"{replica.name}: {replica.last_error or 'ok'}" for replica in self._replicas
            )
            raise TeacherError(
                f"the teacher did not answer after {self.max_retries + 1} attempts ({failures})"
            ) from None
        raise AssertionError("unreachable: tenacity returns or raises")

    async def _post(self, replica: _Replica, batch: _Batch, sampling: Sampling) -> dict[str, Any]:
        self.stats.requests += 1
        self._request_started()
        try:
            # The raw body, parsed with orjson: the client's pydantic models cost more CPU than
            # the rest of the request, CPU the server may need when it shares the machine.
            raw = await replica.client.completions.with_raw_response.create(
                model=self.model,
                prompt=list(batch.prompts),
                max_tokens=batch.max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                n=sampling.n,
                stop=list(sampling.stop) or None,
                seed=sampling.seed,
                echo=sampling.echo_logprobs or openai.omit,
                logprobs=0 if sampling.echo_logprobs else openai.omit,
            )
            body: dict[str, Any] = orjson.loads(await raw.http_response.aread())
            return body
        except openai.APIStatusError as error:
            message = _server_message(error)
            if error.status_code >= 500:
                self._take_out(replica, f"{error.status_code} {message}")
                raise _Retryable(f"{replica.name}: {error.status_code}") from None
            if error.status_code == 400 and CONTEXT_REFUSAL.search(message):
                raise _ContextRefused(message) from None
            raise TeacherError(
                f"the teacher {replica.name} answered {error.status_code}: {message}"
            ) from None
        except openai.APIConnectionError as error:
            self._take_out(replica, _describe(error))
            raise _Retryable(f"{replica.name}: {_describe(error)}") from None
        finally:
            self._request_finished()

    def _ready_replica(self) -> _Replica | None:
        """The healthy replica with a free slot and the fewest requests in flight (ties go to
        the one used least recently, so equal replicas take turns)."""
        now = time.monotonic()
        ready = [
            replica
            for replica in self._replicas
            if replica.down_until <= now and replica.in_flight < self.concurrency
        ]
        return min(ready, key=lambda r: (r.in_flight, r.last_used)) if ready else None

    async def _acquire(self) -> _Replica:
        while (replica := self._ready_replica()) is None:
            now = time.monotonic()
            next_back = min(replica.down_until for replica in self._replicas)
            # Woken by a released slot, or when the first replica out comes back.
            timeout = next_back - now if next_back > now else None
            changed = self._slots_changed
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except TimeoutError:
                pass
        replica.in_flight += 1
        replica.last_used = next(self._use_counter)
        return replica

    def _release(self, replica: _Replica) -> None:
        replica.in_flight -= 1
        self._signal_slots_changed()

    def _signal_slots_changed(self) -> None:
        self._slots_changed.set()
        self._slots_changed = asyncio.Event()

    def _take_out(self, replica: _Replica, reason: str) -> None:
        now = time.monotonic()
        if replica.down_until <= now:
            log.warning(
                "teacher replica %s failed (%s); left out for %.0f s",
                replica.name,
                reason,
                self.replica_cooldown_seconds,
            )
        replica.down_until = max(replica.down_until, now + self.replica_cooldown_seconds)
        replica.last_error = reason

    def _request_started(self) -> None:
        if self._in_flight == 0:
            self._busy_since = time.monotonic()
        self._in_flight += 1

    def _request_finished(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self.stats.busy_seconds += time.monotonic() - self._busy_since


def _server_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:500]
    return str(error.message)[:500]


def _describe(error: openai.APIConnectionError) -> str:
    cause = error.__cause__
    if isinstance(error, openai.APITimeoutError):
        return "timed out"
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(error)


def _pick_model(replica: str, models: Sequence[Any], wanted: str) -> tuple[str, int | None, str]:
    served = [model.id for model in models]
    if wanted:
        chosen = next((model for model in models if model.id == wanted), None)
        if chosen is None:
            raise TeacherError(f"the teacher {replica} serves {served}, not {wanted!r}")
    elif len(models) == 1:
        chosen = models[0]
    else:
        raise TeacherError(
            f"the teacher {replica} serves {served}: set LABBOT_SDG_TEACHER_MODEL to one of them"
        )
    extra = chosen.model_extra or {}
    max_model_len = extra.get("max_model_len")
    root = extra.get("root")
    return (
        str(chosen.id),
        int(max_model_len) if max_model_len else None,
        str(root) if root else "",
    )


def _local_path(root: str | None, model: str) -> Path:
    if root and Path(root).is_dir():
        return Path(root)
    raise TeacherError(
        f"no tokenizer for the teacher {model}: its model path {root!r} is not on this machine; "
        "set LABBOT_SDG_TEACHER_TOKENIZER to a local directory with its tokenizer and chat template"
    )


def _load_tokenizer(path: str | Path, model: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as error:
        raise TeacherError(
            f"cannot load the tokenizer of the teacher {model} from {path}: {error}"
        ) from None


def open_teacher(settings: Settings) -> HttpTeacher:
    """The HTTP teacher the settings describe (``LABBOT_SDG_TEACHER_*``)."""
    if not settings.sdg_teacher_urls:
        raise TeacherError(
            "no teacher configured: set LABBOT_SDG_TEACHER_URLS to the vLLM servers' base URLs "
            '(a JSON list such as ["http://teacher:8000/v1"])'
        )
    api_key = settings.sdg_teacher_api_key
    return open_client(
        settings,
        settings.sdg_teacher_urls,
        model=settings.sdg_teacher_model,
        tokenizer=settings.sdg_teacher_tokenizer,
        api_key=api_key.get_secret_value() if api_key is not None else None,
    )


def open_client(
    settings: Settings,
    urls: Sequence[str],
    *,
    model: str = "",
    tokenizer: str | Path | None = None,
    api_key: str | None = None,
) -> HttpTeacher:
    """A client for any model served by vLLM (teacher, judge, a checkpoint under evaluation),
    with SDG's batching, concurrency, timeouts and retries."""
    return HttpTeacher(
        urls,
        model=model,
        api_key=api_key,
        tokenizer=tokenizer,
        batch_size=settings.sdg_batch_size,
        concurrency=settings.sdg_concurrency,
        request_timeout_seconds=settings.sdg_request_timeout_seconds,
        max_retries=settings.sdg_max_retries,
        replica_cooldown_seconds=settings.sdg_replica_cooldown_seconds,
        min_new_tokens=settings.sdg_min_new_tokens,
    )


class OfflineTeacher(Teacher):
    """The teacher in this process, through ``vllm.LLM``, for a GPU worker hosting it.

    vLLM starts an engine process, so the program creating this must guard its entry point with
    ``if __name__ == "__main__":``. Each ``complete`` call is one ``generate`` per chunk of
    ``batch_size`` prompts (vLLM schedules within a chunk); progress is reported per chunk."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        served_model_name: str = "",
        max_model_len: int | None = None,
        min_new_tokens: int = 32,
        batch_size: int = 1024,
        **engine_args: Any,
    ) -> None:
        from vllm import LLM

        self._llm: Any = LLM(model=str(model_path), max_model_len=max_model_len, **engine_args)
        super().__init__(
            served_model_name or str(model_path),
            int(self._llm.llm_engine.model_config.max_model_len),
            self._llm.get_tokenizer(),
            min_new_tokens=min_new_tokens,
            batch_size=batch_size,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, model_path: str | Path, **engine_args: Any
    ) -> OfflineTeacher:
        return cls(model_path, min_new_tokens=settings.sdg_min_new_tokens, **engine_args)

    def complete(
        self,
        prompts: Sequence[str],
        sampling: Sampling,
        on_progress: ProgressCallback | None = None,
        on_replies: RepliesCallback | None = None,
    ) -> list[Reply]:
        from vllm import SamplingParams

        if self._llm is None:
            raise TeacherError("the teacher is closed")
        if not prompts:
            return []
        replies, batches, counts = self._plan(prompts, sampling, self.batch_size)
        skipped = [index for index, reply in enumerate(replies) if reply is not None]
        self.stats.skipped += len(skipped)
        if on_replies is not None and skipped:
            on_replies(_replies_at(replies, skipped))
        done = len(prompts) - sum(len(batch.indices) for batch in batches)
        for batch in batches:
            params = SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=batch.max_tokens,
                stop=list(sampling.stop) or None,
                seed=sampling.seed,
            )
            started = time.monotonic()
            outputs = self._llm.generate(list(batch.prompts), params, use_tqdm=False)
            self.stats.busy_seconds += time.monotonic() - started
            self.stats.requests += 1
            self.stats.prompts += len(batch.prompts)
            for index, output in zip(batch.indices, outputs, strict=True):
                self.stats.prompt_tokens += len(output.prompt_token_ids or ())
                self.stats.completion_tokens += sum(len(c.token_ids) for c in output.outputs)
                replies[index] = Reply(
                    texts=[completion.text for completion in output.outputs],
                    prompt_tokens=counts[index],
                )
            done += len(batch.indices)
            if on_replies is not None:
                on_replies(_replies_at(replies, batch.indices))
            if on_progress is not None:
                on_progress(done, len(prompts))
        if not batches and on_progress is not None:
            on_progress(len(prompts), len(prompts))
        return _answered(replies)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
