"""Training throughput and MFU of labbot's training loop (workers/train/loop.py), on a random
Llama-shaped model: tokens/s, samples/s and model FLOPs utilisation per optimizer step.

    python bench/train_mfu.py                 # about 1.1B parameters (TinyLlama's shape), GPU
    python bench/train_mfu.py --toy           # a two-layer model on the CPU, in about a minute
    python bench/train_mfu.py --hidden 4096 --layers 32 --heads 32 --kv-heads 8 \\
        --intermediate 14336 --vocab 32000 --processes 8 --zero-stage 2

It builds the model (random weights) beside a small BPE tokenizer trained here, writes chat
samples of random words a little shorter than ``--seq-len`` tokens, makes a one-phase plan with
``build_plan`` in which every optimizer step is one packed micro-batch per process, and runs it
the way the train job does: the DeepSpeed launcher, one process per GPU. The figures are the
medians over the steps after ``--skip`` (the first steps include allocator and kernel warmup),
read from the run's metrics.jsonl.

MFU = 6 x parameters (all but the input embedding) x tokens/s / (peak FLOP/s x processes);
attention's own FLOPs are not counted, so it is a lower bound that grows less than the truth
with sequence length. The peak comes from ``--peak-tflops`` or the loop's table of known GPUs
(dense bf16); on a CPU there is no peak and MFU is reported as null.

Every figure is for this machine only; rerun on the hardware you care about.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from tests.sdg.tiny_model import build_tokenizer, english_corpus  # noqa: E402
from workers.train.launch import launch_command, launch_env  # noqa: E402
from workers.train.loop import METRICS_FILE  # noqa: E402
from workers.train.plan import build_plan  # noqa: E402

# TinyLlama-1.1B's shape: a common ~1B Llama.
DEFAULT_SHAPE = {
    "hidden": 2048,
    "layers": 22,
    "heads": 32,
    "kv_heads": 4,
    "intermediate": 5632,
    "vocab": 32000,
}
TOY_SHAPE = {
    "hidden": 64,
    "layers": 2,
    "heads": 1,
    "kv_heads": 1,
    "intermediate": 256,
    "vocab": 2000,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--toy", action="store_true", help="a tiny model that runs on a CPU")
    parser.add_argument("--hidden", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--kv-heads", type=int)
    parser.add_argument("--intermediate", type=int)
    parser.add_argument("--vocab", type=int, help="model vocabulary (>= the tokenizer's)")
    parser.add_argument("--seq-len", type=int, help="sample length in tokens (about)")
    parser.add_argument("--micro-batch-tokens", type=int, help="token budget per micro-batch")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps measured + skipped")
    parser.add_argument("--skip", type=int, default=2, help="first steps left out of the figures")
    parser.add_argument("--processes", type=int, default=1, help="processes (GPUs) on this node")
    parser.add_argument("--zero-stage", type=int, default=2)
    parser.add_argument("--cpu-offload", action="store_true", help="optimizer state on the CPU")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, help="peak dense TFLOP/s per device")
    parser.add_argument("--work-dir", type=Path, help="default: a temporary directory, removed")
    args = parser.parse_args()
    shape = TOY_SHAPE if args.toy else DEFAULT_SHAPE
    for key, value in shape.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.seq_len is None:
        args.seq_len = 256 if args.toy else 4096
    if args.micro_batch_tokens is None:
        args.micro_batch_tokens = 4 * args.seq_len
    if args.steps <= args.skip:
        parser.error("--steps must be more than --skip")
    return args


def build_model(args: argparse.Namespace, dest: Path) -> dict[str, Any]:
    """The random model and its tokenizer in ``dest``; its parameter counts."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(english_corpus())
    if args.vocab < len(tokenizer):
        raise SystemExit(f"--vocab must be at least the tokenizer's {len(tokenizer)}")
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads,
        max_position_embeddings=max(4096, args.seq_len),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model: Any = LlamaForCausalLM(config)
    if torch.cuda.is_available():
        model = model.to(torch.bfloat16)  # half the bytes to write and read back
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return {"parameters": total, "flop_parameters": total - embedding, "tokenizer": tokenizer}


def write_samples(args: argparse.Namespace, tokenizer: Any, path: Path, count: int) -> None:
    """``count`` chat samples of random corpus words, each a little under ``--seq-len``
    tokens once the chat template is applied."""
    words = sorted({w for text in english_corpus() for w in text.split() if w.isalpha()})
    rng = random.Random(0)
    target = int(args.seq_len * 0.95)

    def sample() -> dict[str, Any]:
        question = " ".join(rng.choices(words, k=16))
        answer_words = rng.choices(words, k=target)
        low, high = 1, len(answer_words)
        while low < high:  # the most answer words that keep the sample within the target
            middle = (low + high + 1) // 2
            messages = chat(question, " ".join(answer_words[:middle]))
            if len(tokenizer.apply_chat_template(messages, return_dict=False)) <= target:
                low = middle
            else:
                high = middle - 1
        return {"messages": chat(question, " ".join(answer_words[:low]))}

    one = sample()
    # Samples differ only by their random words; repeating a few keeps the set-up fast.
    distinct = [one, *(sample() for _ in range(min(count, 8) - 1))]
    with path.open("w", encoding="utf-8") as stream:
        for index in range(count):
            stream.write(json.dumps(distinct[index % len(distinct)]) + "\n")


def chat(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def main() -> None:
    args = parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="labbot-train-mfu-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(args, work)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    model_dir = work / "model"
    started = time.perf_counter()
    counts = build_model(args, model_dir)
    per_micro_batch = max(1, args.micro_batch_tokens // args.seq_len)
    per_step = per_micro_batch * args.processes
    samples = work / "samples.jsonl"
    write_samples(args, counts["tokenizer"], samples, per_step * args.steps)
    settings = Settings(
        data_dir=work / "var",
        train_base_model=model_dir,
        train_max_seq_len=args.seq_len,
        train_micro_batch_tokens=args.micro_batch_tokens,
        train_skills_lr=1e-5,
        train_skills_epochs=1,
        train_skills_batch_samples=per_step,  # one micro-batch per process and step
        train_replay_samples=0,
        train_warmup_steps=0,
        train_zero_stage=args.zero_stage,
        train_cpu_offload=args.cpu_offload,
        train_bf16={"auto": None, "on": True, "off": False}[args.bf16],
        train_processes_per_node=args.processes,
        train_checkpoint_interval_steps=10**9,  # throughput, not checkpoints, is measured
    )
    plan = build_plan(settings, None, samples, work / "run")
    plan = plan.model_copy(
        update={
            "gradient_checkpointing": args.gradient_checkpointing,
            "peak_flops": args.peak_tflops * 1e12 if args.peak_tflops else None,
        }
    )
    plan_path = work / "plan.json"
    plan.write(plan_path)
    prepared = time.perf_counter() - started

    log_path = work / "training.log"
    with log_path.open("wb") as log:
        code = subprocess.call(
            launch_command(plan_path, settings),
            env=launch_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if code != 0:
        sys.stderr.write(log_path.read_text(errors="replace")[-8000:])
        raise SystemExit(f"the training run failed (exit {code})")
    records = [
        json.loads(line) for line in (plan.output_dir / METRICS_FILE).read_text().splitlines()
    ]
    report(args, counts, records, prepared)


def report(
    args: argparse.Namespace, counts: dict[str, Any], records: list[dict[str, Any]], prepared: float
) -> None:
    import torch

    measured = records[args.skip :]
    mfus = [r["mfu"] for r in measured if r["mfu"] is not None]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    summary = {
        "device": device,
        "processes": args.processes,
        "shape": {k: getattr(args, k) for k in DEFAULT_SHAPE},
        "parameters": counts["parameters"],
        "flop_parameters": counts["flop_parameters"],
        "seq_len": args.seq_len,
        "micro_batch_tokens": args.micro_batch_tokens,
        "zero_stage": args.zero_stage,
        "cpu_offload": args.cpu_offload,
        "bf16": args.bf16,
        "gradient_checkpointing": args.gradient_checkpointing,
        "steps": len(records),
        "measured_steps": len(measured),
        "tokens_per_step": statistics.median(r["tokens"] for r in measured),
        "step_seconds": statistics.median(r["step_seconds"] for r in measured),
        "tokens_per_second": statistics.median(r["tokens_per_second"] for r in measured),
        "samples_per_second": statistics.median(r["samples_per_second"] for r in measured),
        "mfu": statistics.median(mfus) if mfus else None,
        "setup_seconds": round(prepared, 1),
    }
    print(
        f"{device} x{args.processes}: {counts['parameters'] / 1e6:.1f}M parameters, "
        f"{summary['tokens_per_step']:.0f} tokens per step"
    )
    print(
        f"  median over {len(measured)} steps: {summary['step_seconds']:.3f} s/step, "
        f"{summary['tokens_per_second']:.0f} tokens/s, "
        f"{summary['samples_per_second']:.2f} samples/s, "
        + (f"MFU {summary['mfu']:.1%}" if summary["mfu"] is not None else "MFU n/a (no peak)")
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
