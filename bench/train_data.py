"""Training-data processing throughput: labbot's workers.train.data.process against upstream
instructlab-training's data processing (process_data), on the same chat JSONL and the same
tokenizer, in one run.

    .venv/bin/python bench/train_data.py [--samples 20000] [--repeat 3] [--max-seq-len 4096]
        [--tokenizer DIR] [--upstream-procs 1,2] [--taxonomy DIR] [--keep DIR]

The upstream virtualenv is made by bench/upstream-training-venv on first use (about 90 s,
1.7 GB, cached under ~/.cache/labbot; instructlab-training 0.16.2 with the CPU build of torch,
no CUDA package). A default run takes about 4 minutes on a 2-core machine.

Data: --samples records built from the seed examples of every qna.yaml under --taxonomy
(/work/shared/data/taxonomy: the contributor PRs and main), shaped like SDG's output: skills
(question -> answer), grounded skills and knowledge (context, a blank line, the question ->
answer), half of them with the InstructLab system prompt, one in ten a two- or three-exchange
conversation. All records are valid and nearly all fit --max-seq-len, so both sides keep
nearly the same samples (upstream also drops samples under 20 tokens and those of exactly
max_seq_len). Seeds repeat (some 22,000 picks from about 8,000 seed Q&As); neither side reuses
work across samples beyond the tokenizer's own word cache, which both have.

Tokenizer: by default the tiny BPE tokenizer of the SDG tests (tests/sdg/tiny_model.py: 2,000
tokens, byte-level, the granite/merlinite chat template, EOS after each answer) with a Llama
config.json beside it (upstream reads the model config to detect gpt-oss); --tokenizer takes
any local model or tokenizer directory with a chat template instead.

What runs, each --repeat times, alternating, each on a cold cache, after one tokenizer load on
each side outside the timers (transformers imports lazily on first use):
  labbot      workers.train.data.process(...) into a fresh cache directory: tokenizer load,
              JSONL read and validation, rendering, batch tokenization, labels, files written.
  upstream/N  instructlab.training.data_process.process_data(...) with num_cpu_procs N, in its
              virtualenv (a subprocess; the timer is inside it, around the call), with a fresh
              HF_DATASETS_CACHE. Each N of --upstream-procs runs (default: 1 and this machine's
              CPU count; upstream's own default is 16). On a small machine 1 is often faster:
              its worker processes cost more than they bring.
Figures: kept tokens per second of wall time (each side counts the tokens it kept) and per CPU
second (labbot: all its threads; upstream: its process and its worker processes), medians of
the repeats. Afterwards the outputs are compared: upstream samples whose input_ids labbot has
exactly, and of those, the ones with the same positions carrying loss.

Target: labbot >= 3x the tokens/s of upstream's faster setting (prints PASS or FAIL; the exit
status is 0 either way, 1 only when something crashed). Tokenization itself, the same Rust
work on both sides, is most of labbot's time, so the ratio depends on the cores free to run
the tokenizer's threads: on a loaded machine it shrinks towards the CPU-second ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import yaml  # noqa: E402

from workers.train.data import IGNORE_INDEX, load_examples, process  # noqa: E402

TARGET = 3.0
TAXONOMY = ROOT.parent / "shared" / "data" / "taxonomy"
# The system prompt upstream ilab put in every SDG sample for granite students.
SYSTEM_PROMPT = (
    "I am a Red Hat\u00ae Instruct Model, an AI language model developed by Red Hat and IBM "
    "Research based on the granite-3.0-8b-base model. My primary role is to serve as a chat "
    "assistant."
)
UPSTREAM_RUNNER = r"""
import json, resource, sys, time
from instructlab.training.data_process import process_data
from transformers import AutoTokenizer
data, out, model, max_seq_len, procs = sys.argv[1:6]
AutoTokenizer.from_pretrained(model)  # transformers' lazy imports, outside the timer

def cpu():
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # datasets' worker processes
    return time.process_time() + children.ru_utime + children.ru_stime

start, start_cpu = time.perf_counter(), cpu()
process_data(data_path=data, data_output_path=out, model_path=model,
             max_seq_len=int(max_seq_len), num_cpu_procs=int(procs))
seconds, cpu_seconds = time.perf_counter() - start, cpu() - start_cpu
print("LABBOT-BENCH " + json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds}))
"""


@dataclass(frozen=True)
class Seed:
    question: str
    answer: str
    context: str


def seed_pool(taxonomy: Path) -> list[Seed]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    seeds: list[Seed] = []
    for path in sorted(taxonomy.rglob("qna.yaml")):
        try:
            document = yaml.load(path.read_bytes(), Loader=loader)
        except yaml.YAMLError:
            continue
        examples = document.get("seed_examples") if isinstance(document, dict) else None
        for example in examples if isinstance(examples, list) else []:
            if not isinstance(example, dict):
                continue
            context = example.get("context")
            context = context.strip() if isinstance(context, str) else ""
            pairs = example.get("questions_and_answers")
            if not isinstance(pairs, list):
                pairs = [example]
            for pair in pairs:
                if not isinstance(pair, dict):
                    continue
                question, answer = pair.get("question"), pair.get("answer")
                if isinstance(question, str) and isinstance(answer, str):
                    if question.strip() and answer.strip():
                        seeds.append(Seed(question.strip(), answer.strip(), context))
    return seeds


def synthesise(pool: list[Seed], count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    for index in range(count):
        exchanges = rng.choice((2, 3)) if rng.random() < 0.1 else 1
        messages = [{"role": "system", "content": SYSTEM_PROMPT}] if rng.random() < 0.5 else []
        for _ in range(exchanges):
            picked = rng.choice(pool)
            user = f"{picked.context}\n\n{picked.question}" if picked.context else picked.question
            messages += [
                {"role": "user", "content": user},
                {"role": "assistant", "content": picked.answer},
            ]
        records.append({"messages": messages, "metadata": {"source": "bench", "index": index}})
    return records


def make_tokenizer(dest: Path) -> Path:
    from transformers import LlamaConfig

    from tests.sdg.tiny_model import build_tokenizer, english_corpus

    tokenizer = build_tokenizer(english_corpus())
    tokenizer.save_pretrained(dest)
    LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=1,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ).save_pretrained(dest)
    return dest


def upstream_venv() -> Path:
    script = ROOT / "bench" / "upstream-training-venv"
    done = subprocess.run([str(script)], check=True, capture_output=True, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    samples: int
    tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def tokens_per_cpu_second(self) -> float:
        return self.tokens / self.cpu_seconds

    def line(self, name: str) -> str:
        return (
            f"{name:<12} {self.seconds:7.2f} s  {self.samples} samples  {self.tokens} tokens  "
            f"{self.tokens_per_second:11,.0f} tokens/s  (CPU {self.cpu_seconds:6.2f} s, "
            f"{self.tokens_per_cpu_second:11,.0f} tokens per CPU second)"
        )


def run_labbot(data: Path, tokenizer: Path, work: Path, max_seq_len: int) -> tuple[Run, Path]:
    cache = work / "labbot-cache"
    shutil.rmtree(cache, ignore_errors=True)
    start, start_cpu = time.perf_counter(), time.process_time()  # all of its threads
    result = process([data], tokenizer, cache, max_seq_len=max_seq_len, whole_samples=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    assert not result.cache_hit
    return Run(seconds, cpu_seconds, result.samples, result.tokens), result.path


def run_upstream(
    venv: Path, data: Path, tokenizer: Path, work: Path, max_seq_len: int, procs: int
) -> tuple[Run, Path]:
    out = work / "upstream-out"
    datasets_cache = work / "upstream-hf-datasets"
    for path in (out, datasets_cache):
        shutil.rmtree(path, ignore_errors=True)
    env = dict(os.environ, HF_DATASETS_CACHE=str(datasets_cache), HF_HUB_OFFLINE="1")
    command = [str(venv / "bin" / "python"), "-c", UPSTREAM_RUNNER]
    command += [str(data), str(out), str(tokenizer), str(max_seq_len), str(procs)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise RuntimeError(f"upstream process_data failed (exit {done.returncode})")
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("LABBOT-BENCH "))
    figures = orjson.loads(line.removeprefix("LABBOT-BENCH "))
    samples = tokens = 0
    with open(out / "data.jsonl", "rb") as stream:
        for record in stream:
            samples += 1
            tokens += int(orjson.loads(record)["len"])
    run = Run(figures["seconds"], figures["cpu_seconds"], samples, tokens)
    return run, out / "data.jsonl"


def compare(labbot_dir: Path, upstream_file: Path) -> str:
    """Matches samples by their token ids (the two sides drop different samples: upstream also
    drops those under 20 tokens and those of exactly max_seq_len), then compares which
    positions carry loss."""
    examples = load_examples(labbot_dir)
    ours = {}
    for index in range(len(examples)):
        ids, labels = examples[index]
        ours[ids.astype(np.int64).tobytes()] = labels != IGNORE_INDEX
    same_ids = same_loss = upstream_samples = 0
    with open(upstream_file, "rb") as stream:
        for line in stream:
            record = orjson.loads(line)
            upstream_samples += 1
            learned = ours.get(np.asarray(record["input_ids"], dtype=np.int64).tobytes())
            if learned is not None:
                same_ids += 1
                other = np.asarray(record["labels"], dtype=np.int64) != IGNORE_INDEX
                same_loss += int(np.array_equal(learned, other))
    return (
        f"samples kept: labbot {len(examples)}, upstream {upstream_samples}; upstream samples "
        f"with labbot's exact input_ids: {same_ids}, of which with the same loss positions: "
        f"{same_loss}"
    )


def main() -> int:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-seq-len", type=int, default=4096)
    parser.add_argument("--tokenizer", type=Path, help="model/tokenizer dir (default: tiny)")
    parser.add_argument(
        "--upstream-procs",
        default=",".join(sorted({"1", str(cpus)})),
        help="upstream num_cpu_procs values to run, comma-separated (default: 1 and the CPUs)",
    )
    parser.add_argument("--taxonomy", type=Path, default=TAXONOMY)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir)")
    args = parser.parse_args()
    procs = [int(value) for value in args.upstream_procs.split(",")]
    upstreams = [f"upstream/{count}" for count in procs]

    venv = upstream_venv()
    # labbot imports transformers (and, through its config classes, torch) lazily, on the first
    # call; as upstream's runner does, load a tokenizer once before any timer starts.
    from transformers import AutoTokenizer

    work = args.keep or Path(tempfile.mkdtemp(prefix="labbot-train-data-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        tokenizer = args.tokenizer or make_tokenizer(work / "tokenizer")
        AutoTokenizer.from_pretrained(tokenizer)
        pool = seed_pool(args.taxonomy)
        records = synthesise(pool, args.samples, args.seed)
        data = work / "messages.jsonl"
        data.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
        turns = sum(len(record["messages"]) for record in records)
        print(
            f"data: {len(records)} records ({turns} messages) from {len(pool)} seed Q&As, "
            f"{data.stat().st_size / 1e6:.1f} MB; tokenizer {tokenizer}; "
            f"max_seq_len {args.max_seq_len}; {cpus} CPUs, load average "
            + " ".join(f"{load:.1f}" for load in os.getloadavg())
        )
        runs: dict[str, list[Run]] = {name: [] for name in ["labbot", *upstreams]}
        for attempt in range(args.repeat):
            run, labbot_dir = run_labbot(data, tokenizer, work, args.max_seq_len)
            runs["labbot"].append(run)
            print(f"  [{attempt + 1}] " + run.line("labbot"), flush=True)
            for count in procs:
                run, upstream_file = run_upstream(
                    venv, data, tokenizer, work, args.max_seq_len, count
                )
                runs[f"upstream/{count}"].append(run)
                print(f"  [{attempt + 1}] " + run.line(f"upstream/{count}"), flush=True)
        print(compare(labbot_dir, upstream_file))

        def median(name: str, figure: str) -> float:
            return float(statistics.median(getattr(run, figure) for run in runs[name]))

        for name in runs:
            print(
                f"{name:<12} {median(name, 'tokens_per_second'):11,.0f} tokens/s, "
                f"{median(name, 'tokens_per_cpu_second'):11,.0f} tokens per CPU second "
                f"(medians of {args.repeat}; upstream/N: num_cpu_procs N)"
            )
        best = max(
            upstreams,
            key=lambda name: median(name, "tokens_per_second"),
        )
        ratio = median("labbot", "tokens_per_second") / median(best, "tokens_per_second")
        cpu_ratio = median("labbot", "tokens_per_cpu_second") / median(
            best, "tokens_per_cpu_second"
        )
        verdict = "PASS" if ratio >= TARGET else "FAIL"
        print(
            f"{verdict}: labbot / upstream = {ratio:.2f}x tokens/s against upstream's faster "
            f"setting ({best}), target >= {TARGET:g}x; per CPU second {cpu_ratio:.2f}x"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
