"""One training process of a run, started once per GPU by the DeepSpeed launcher
(``launch.py``)::

    deepspeed --num_gpus N --module workers.train.loop --plan plan.json

It trains the plan's phases in order. A phase whose Hugging Face checkpoint exists is finished
and skipped; a phase with a full DeepSpeed checkpoint resumes from the newest one, so a killed
or preempted run goes on where its last checkpoint left it.

Batches. Samples are packed into micro-batches of at most ``micro_batch_tokens`` tokens per
process (``data.packed_batches``). The gradient accumulation is derived once per phase from
the packing of its first epoch so that an optimizer step sees about ``batch_samples`` samples::

    samples_per_micro_step = samples / micro_steps          (over all processes)
    grad_accum = max(1, round(batch_samples / samples_per_micro_step))   (halves round up)

and each epoch's ``m`` micro-steps make ``max(1, round(m / grad_accum))`` optimizer steps of
near-equal size: no step is a small remainder at an epoch's end, and a step never spans two
epochs (so a data set smaller than one batch still makes a step per epoch). The loss of a
step is the mean over every loss token of the step on all processes (not a mean of per-batch
means), so long and short samples weigh the same per token.

Learning rate: linear warmup over ``warmup_steps`` optimizer steps, then constant: no decay,
and each phase warms up again from its own start (the LAB paper: decay between phases makes
later training unstable).

Output, under the plan's output directory:

- ``<phase>/hf``: the phase's model and tokenizer in Hugging Face format (transformers, vLLM);
- ``<phase>/state/<step>``: full DeepSpeed state (model, optimizer, scheduler, data position)
  every ``checkpoint_interval_steps``, the newest ``checkpoints_kept`` kept; removed once the
  phase's ``hf`` checkpoint is written;
- ``metrics.jsonl``: one line per optimizer step (loss, lr, tokens/s, samples/s, MFU);
- ``progress.json``: phase, step, total steps and ETA, rewritten atomically.

SIGTERM stops the process at once and saves nothing: the last full checkpoint is what a
relaunch resumes from.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import orjson
import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812 - the conventional name

from workers.train import data
from workers.train.plan import PhasePlan, TrainingPlan, write_atomic

log = logging.getLogger("workers.train.loop")

METRICS_FILE = "metrics.jsonl"
PROGRESS_FILE = "progress.json"
STATE_DIR = "state"
# Written into a state checkpoint after every rank has saved: a directory without it is a
# checkpoint cut short, which is never resumed from.
STATE_MARKER = "labbot-state.json"
IGNORE_INDEX = -100
ADAM_BETAS = (0.9, 0.95)
# Dense bf16 tensor-core peaks per device (vendors' data sheets, without sparsity). Matched
# in order against the device name: more specific names first.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("H20", 148e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("MI300X", 1307e12),
)


@dataclass(frozen=True)
class Runtime:
    """What this process is: its rank in the run, its device, its precision."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    cuda: bool
    bf16: bool
    peak_flops: float | None  # per device; None: MFU is not reported
    run_id: str  # tells the lines of one launch from those of another in metrics.jsonl

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Schedule:
    """A phase's optimizer steps, epoch by epoch, of about ``grad_accum`` micro-steps each."""

    grad_accum: int
    steps_per_epoch: tuple[int, ...]

    @property
    def total_steps(self) -> int:
        return sum(self.steps_per_epoch)

    def locate(self, done: int) -> tuple[int, int]:
        """(epoch, step within the epoch) of the step after ``done`` completed steps."""
        for epoch, steps in enumerate(self.steps_per_epoch):
            if done < steps:
                return epoch, done
            done -= steps
        return len(self.steps_per_epoch), 0


@dataclass(frozen=True)
class StepResult:
    loss: float
    lr: float
    grad_norm: float | None
    tokens: int
    samples: int
    seconds: float


# --- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> NoReturn:
    parser = argparse.ArgumentParser(description="One process of a labbot training run.")
    parser.add_argument("--plan", type=Path, required=True, help="the run's plan.json")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="peak dense TFLOP/s per device, for MFU"
    )
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    # The parent stops a run by signalling its process group: die at once, even inside a
    # collective, and leave the last full checkpoint as the place to resume from.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    plan = TrainingPlan.read(args.plan)
    runtime = _start(plan, args.peak_tflops)
    logging.basicConfig(
        level=logging.INFO if runtime.main else logging.WARNING,
        format=f"%(asctime)s %(levelname)s rank{runtime.rank}: %(message)s",
    )
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    telemetry = Telemetry(plan, runtime)
    for index, phase in enumerate(plan.phases):
        if _finished(plan, phase):
            log.info("phase %s: finished earlier, skipped", phase.name)
            if runtime.main:
                shutil.rmtree(plan.phase_dir(phase) / STATE_DIR, ignore_errors=True)
            continue
        train_phase(plan, index, runtime, telemetry)
    telemetry.done()
    dist.barrier()
    dist.destroy_process_group()
    # Everything is on disk; the interpreter's own teardown of torch and DeepSpeed takes
    # seconds more (and can wait on their threads), so leave without it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _start(plan: TrainingPlan, peak_tflops: float | None) -> Runtime:
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_size = int(os.environ.get("LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1")))
    # The node's cores shared by its processes: more threads than cores only thrash.
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // max(1, local_size)))
    accelerator = get_accelerator()
    cuda = accelerator.device_name() == "cuda"
    if cuda:
        accelerator.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        _skip_cpu_inference_comm_build()
    deepspeed.init_distributed()
    bf16 = plan.deepspeed.bf16
    if bf16 is None:
        bf16 = cuda and torch.cuda.is_bf16_supported()
    peak = peak_tflops * 1e12 if peak_tflops is not None else plan.peak_flops
    if peak is None and cuda:
        peak = peak_flops_of(torch.cuda.get_device_name(device)) if bf16 else None
    rank = dist.get_rank()
    return Runtime(
        rank=rank,
        world=dist.get_world_size(),
        local_rank=local_rank,
        device=device,
        cuda=cuda,
        bf16=bf16,
        peak_flops=peak,
        run_id=f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}",
    )


def _skip_cpu_inference_comm_build() -> None:
    """On CPU, DeepSpeed compiles a shared-memory all-reduce with g++ when it starts (over a
    minute the first time, and a failure where there is no toolchain). Only its inference
    all-reduce uses it; training's collectives go through torch.distributed (gloo)."""
    import importlib

    # By module name: the package attribute ``deepspeed.comm.torch`` is torch itself.
    backend = importlib.import_module("deepspeed.comm.torch")
    if hasattr(backend, "build_shm_op"):
        setattr(backend, "build_shm_op", lambda: None)  # noqa: B010 - mypy: untyped module


def peak_flops_of(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a known GPU, by its name; None for an unknown one."""
    for fragment, flops in PEAK_BF16_FLOPS:
        if fragment.lower() in device_name.lower():
            return flops
    return None


def _finished(plan: TrainingPlan, phase: PhasePlan) -> bool:
    # The hf directory is renamed into place complete, so its presence means done.
    return (plan.hf_dir(phase) / "config.json").is_file()


# --- one phase ------------------------------------------------------------------------------


def train_phase(plan: TrainingPlan, index: int, runtime: Runtime, telemetry: Telemetry) -> None:
    import deepspeed

    phase = plan.phases[index]
    torch.manual_seed(plan.seed)
    examples = data.load_examples(phase.data)
    lengths = np.asarray(examples.lengths)
    loss_tokens = _loss_token_counts(examples)
    schedule = plan_schedule(lengths, plan, phase, runtime.world)
    config = deepspeed_config(plan, phase, schedule.grad_accum, runtime)
    log.info(
        "phase %s: %d samples, %d processes, gradient accumulation %d, %d steps",
        phase.name,
        len(lengths),
        runtime.world,
        schedule.grad_accum,
        schedule.total_steps,
    )
    telemetry.phase_started(index, schedule)

    model = _load_model(phase.start_from, config, runtime, plan.gradient_checkpointing)
    flop_params = _flop_parameters(model)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=config,
        lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(
            optimizer, WarmupConstant(phase.warmup_steps)
        ),
    )
    done = _resume(engine, plan, phase, schedule, runtime)
    telemetry.resumed(done)
    engine.train()

    start_epoch, start_in_epoch = schedule.locate(done)
    step = done
    for epoch in range(start_epoch, phase.epochs):
        micro_steps = data.packed_batches(
            lengths, plan.micro_batch_tokens, runtime.world, plan.seed + index, epoch
        )
        groups = split_steps(micro_steps, schedule.steps_per_epoch[epoch])
        for in_epoch in range(start_in_epoch if epoch == start_epoch else 0, len(groups)):
            result = train_step(engine, examples, groups[in_epoch], lengths, loss_tokens, runtime)
            step += 1
            telemetry.step(step, epoch, result, flop_params)
            if step % plan.checkpoint_interval_steps == 0 and step < schedule.total_steps:
                save_state(engine, plan, phase, step, schedule, runtime)
    telemetry.saving()
    save_hf(engine, plan, phase, runtime)
    engine.destroy()
    del engine, model
    gc.collect()
    if runtime.cuda:
        torch.cuda.empty_cache()


def plan_schedule(
    lengths: np.ndarray[Any, Any], plan: TrainingPlan, phase: PhasePlan, world: int
) -> Schedule:
    """The phase's steps: the gradient accumulation that makes an optimizer step about
    ``batch_samples`` samples (see the module's doc), and the steps of every epoch."""
    index = next(i for i, p in enumerate(plan.phases) if p.name == phase.name)
    counts = [
        len(data.packed_batches(lengths, plan.micro_batch_tokens, world, plan.seed + index, e))
        for e in range(phase.epochs)
    ]
    per_micro_step = len(lengths) / max(1, counts[0])
    grad_accum = max(1, math.floor(phase.batch_samples / per_micro_step + 0.5))
    return Schedule(
        grad_accum, tuple(max(1, math.floor(count / grad_accum + 0.5)) for count in counts)
    )


def split_steps(micro_steps: list[Any], steps: int) -> list[list[Any]]:
    """``micro_steps`` cut into ``steps`` consecutive runs whose lengths differ by one at most."""
    bounds = [round(i * len(micro_steps) / steps) for i in range(steps + 1)]
    return [micro_steps[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


class WarmupConstant:
    """LR factor: linear from 1/warmup at the first step to 1 at step ``warmup``, then 1.
    A class, not a lambda, so that the scheduler's state is saved with the checkpoint."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup

    def __call__(self, completed: int) -> float:
        return min(1.0, (completed + 1) / self.warmup) if self.warmup > 0 else 1.0


def deepspeed_config(
    plan: TrainingPlan, phase: PhasePlan, grad_accum: int, runtime: Runtime
) -> dict[str, Any]:
    options = plan.deepspeed
    zero: dict[str, Any] = {"stage": options.zero_stage, "contiguous_gradients": True}
    if runtime.cuda:
        zero["overlap_comm"] = True
    if options.cpu_offload:
        if options.zero_stage == 0:
            log.warning("optimizer offload needs ZeRO stage 1 or more; not offloading")
        else:
            zero["offload_optimizer"] = {"device": "cpu", "pin_memory": runtime.cuda}
    if options.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        # One packed micro-batch (one row of samples) per process and micro-step.
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": grad_accum * runtime.world,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": phase.lr,
                "betas": list(ADAM_BETAS),
                "eps": 1e-8,
                "weight_decay": 0.0,
                # torch's fused AdamW, on the GPU or (offloaded) the CPU: DeepSpeed's own
                # optimizers are compiled on first use, which needs a toolchain and minutes.
                "torch_adam": True,
                "fused": True,
            },
        },
        "zero_force_ds_cpu_optimizer": False,
        "zero_optimization": zero,
        "bf16": {"enabled": runtime.bf16},
        "gradient_clipping": options.grad_clip,
        "steps_per_print": 2**31 - 1,  # progress goes to metrics.jsonl instead
        "wall_clock_breakdown": False,
    }


def _load_model(
    path: Path, config: dict[str, Any], runtime: Runtime, gradient_checkpointing: bool
) -> Any:
    from transformers import AutoModelForCausalLM

    keep_alive = None
    if config["zero_optimization"]["stage"] == 3:
        from transformers.integrations import deepspeed as hf_deepspeed

        integration: Any = hf_deepspeed
        try:
            # Each rank loads its shard only: a model larger than one device still loads.
            keep_alive = integration.HfDeepSpeedConfig(config)
        except ImportError:  # transformers wants accelerate for it
            log.warning(
                "ZeRO-3 without accelerate installed: every process loads the whole model "
                "into host memory before DeepSpeed partitions it"
            )
    attention = "sdpa"
    if runtime.cuda and runtime.bf16 and _has_module("flash_attn"):
        attention = "flash_attention_2"  # packed samples without a materialised mask
    model: Any = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=torch.bfloat16 if runtime.bf16 else torch.float32,
        attn_implementation=attention,
        local_files_only=True,
    )
    del keep_alive
    model.config.use_cache = False
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _flop_parameters(model: Any) -> int:
    """Parameters that do matrix work per token: all but the input embedding (a lookup). Under
    ZeRO-3 a parameter's own size is in ``ds_numel``."""
    embedding = model.get_input_embeddings()
    skip = {id(p) for p in embedding.parameters()} if embedding is not None else set()
    return sum(
        int(getattr(p, "ds_numel", p.numel())) for p in model.parameters() if id(p) not in skip
    )


def _loss_token_counts(examples: data.Examples) -> np.ndarray[Any, Any]:
    """Tokens each sample contributes to the loss once labels are shifted (a sample's first
    label is never predicted)."""
    counts = np.zeros(len(examples), dtype=np.int64)
    for index in range(len(examples)):
        _, labels = examples[index]
        counts[index] = int(np.count_nonzero(np.asarray(labels)[1:] != IGNORE_INDEX))
    return counts


# --- one optimizer step ---------------------------------------------------------------------


def train_step(
    engine: Any,
    examples: data.Examples,
    group: list[list[list[int]]],
    lengths: np.ndarray[Any, Any],
    loss_tokens: np.ndarray[Any, Any],
    runtime: Runtime,
) -> StepResult:
    """Forward and backward of every micro-step of ``group`` (per micro-step, per rank, sample
    indices), then one optimizer update."""
    started = time.perf_counter()
    every = [i for micro in group for ranked in micro for i in ranked]
    step_loss_tokens = int(loss_tokens[every].sum()) if every else 0
    # DeepSpeed averages gradients over the processes; times world / all tokens of the step,
    # the update is the gradient of the mean loss per token of the whole step.
    scale = runtime.world / max(1, step_loss_tokens)
    lr = float(engine.get_lr()[0])
    attention = engine.module.config._attn_implementation
    dtype = torch.bfloat16 if runtime.bf16 else torch.float32
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    for position, micro in enumerate(group):
        engine.set_gradient_accumulation_boundary(position == len(group) - 1)
        indices = micro[runtime.rank] if runtime.rank < len(micro) else []
        # A process with nothing left in this micro-step still runs forward and backward (its
        # collectives must match the others'), on a sample that adds no loss.
        batch = data.collate(examples, indices or [0], attention=attention, mask_dtype=dtype)
        inputs = {
            "input_ids": batch["input_ids"].to(runtime.device),
            "position_ids": batch["position_ids"].to(runtime.device),
        }
        if "attention_mask" in batch:  # sdpa: the samples' block-diagonal causal mask
            inputs["attention_mask"] = batch["attention_mask"].to(runtime.device)
        targets = shifted_targets(batch["labels"], batch["position_ids"])
        if not indices:
            targets.fill_(IGNORE_INDEX)
        logits = engine(**inputs, use_cache=False).logits
        loss = F.cross_entropy(
            logits.float().flatten(0, -2),
            targets.to(runtime.device).flatten(),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        engine.backward(loss * scale, scale_wrt_gas=False)
        engine.step()
        loss_sum += loss.detach().double()
    dist.all_reduce(loss_sum)
    norm = engine.get_global_grad_norm()
    return StepResult(
        loss=float(loss_sum.item()) / max(1, step_loss_tokens),
        lr=lr,
        grad_norm=float(norm) if norm is not None else None,
        tokens=int(lengths[every].sum()) if every else 0,
        samples=len(every),
        seconds=time.perf_counter() - started,
    )


def shifted_targets(labels: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
    """Next-token targets of a (possibly packed) batch: position t predicts label t+1 of the
    same sample; the last token of every sample predicts nothing."""
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[..., :-1] = labels[..., 1:]
    if position_ids is not None:
        next_starts = position_ids[..., 1:].to(labels.device) == 0
        targets[..., :-1][next_starts] = IGNORE_INDEX
    return targets


# --- checkpoints ----------------------------------------------------------------------------


def save_state(
    engine: Any,
    plan: TrainingPlan,
    phase: PhasePlan,
    step: int,
    schedule: Schedule,
    runtime: Runtime,
) -> None:
    root = plan.phase_dir(phase) / STATE_DIR
    epoch, in_epoch = schedule.locate(step)
    position = {
        "phase": phase.name,
        "step": step,
        "epoch": epoch,
        "step_in_epoch": in_epoch,
        "total_steps": schedule.total_steps,
        "grad_accum": schedule.grad_accum,
        "world_size": runtime.world,
    }
    engine.save_checkpoint(str(root), tag=str(step), client_state=position, save_latest=False)
    dist.barrier()  # every rank's shards are on disk before the checkpoint is marked complete
    if runtime.main:
        write_atomic(root / str(step) / STATE_MARKER, orjson.dumps(position))
        _prune(root, plan.checkpoints_kept)
        log.info("phase %s: full checkpoint at step %d", phase.name, step)


def latest_state(root: Path) -> int | None:
    """The step of the newest complete full checkpoint under ``root``."""
    steps = _complete_states(root)
    return steps[-1] if steps else None


def _complete_states(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in root.iterdir()
        if entry.name.isdigit() and (entry / STATE_MARKER).is_file()
    )


def _prune(root: Path, kept: int) -> None:
    complete = _complete_states(root)
    keep = set(complete[-kept:])
    newest = complete[-1] if complete else 0
    for entry in root.iterdir():
        if not entry.name.isdigit():
            continue
        step = int(entry.name)
        # Older complete ones beyond the kept number, and ones cut short before the newest.
        if step not in keep and step <= newest:
            shutil.rmtree(entry, ignore_errors=True)


def _resume(
    engine: Any, plan: TrainingPlan, phase: PhasePlan, schedule: Schedule, runtime: Runtime
) -> int:
    """Load the newest complete full checkpoint of the phase; the steps it had done."""
    root = plan.phase_dir(phase) / STATE_DIR
    chosen: list[int | None] = [latest_state(root) if runtime.main else None]
    dist.broadcast_object_list(chosen, src=0)  # every rank loads the same one
    step = chosen[0]
    if step is None:
        return 0
    path, position = engine.load_checkpoint(
        str(root), tag=str(step), load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if path is None:
        raise RuntimeError(f"phase {phase.name}: full checkpoint {step} cannot be loaded")
    for key, now in (("world_size", runtime.world), ("grad_accum", schedule.grad_accum)):
        if position.get(key) != now:
            raise RuntimeError(
                f"phase {phase.name}: checkpoint {step} was saved with {key} "
                f"{position.get(key)}, this run has {now}"
            )
    log.info("phase %s: resumed from full checkpoint at step %d", phase.name, step)
    return step


def save_hf(engine: Any, plan: TrainingPlan, phase: PhasePlan, runtime: Runtime) -> None:
    """The phase's model and tokenizer in Hugging Face format, renamed into place complete."""
    from transformers import AutoTokenizer

    state_dict = None
    if plan.deepspeed.zero_stage == 3:
        # Gathers the partitioned weights onto rank 0 (every rank must take part).
        state_dict = engine._zero3_consolidated_16bit_state_dict()
    if runtime.main:
        final = plan.hf_dir(phase)
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        module = engine.module
        module.config.use_cache = True  # what inference wants
        if state_dict is None:
            module.save_pretrained(partial)
        else:
            module.save_pretrained(partial, state_dict=state_dict)
        AutoTokenizer.from_pretrained(plan.tokenizer, local_files_only=True).save_pretrained(
            partial
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        # A finished phase never resumes: its optimizer state is only disk used.
        shutil.rmtree(plan.phase_dir(phase) / STATE_DIR, ignore_errors=True)
        log.info("phase %s: model saved", phase.name)
    dist.barrier()


# --- telemetry ------------------------------------------------------------------------------


class Telemetry:
    """Rank 0's record of the run: a line per optimizer step in metrics.jsonl and the state of
    the run in progress.json, which the job reads."""

    def __init__(self, plan: TrainingPlan, runtime: Runtime) -> None:
        self.plan = plan
        self.runtime = runtime
        self.metrics = plan.output_dir / METRICS_FILE
        self.progress_path = plan.output_dir / PROGRESS_FILE
        self.index = 0
        self.schedule = Schedule(1, (0,))
        self.resumed_from = 0
        self.tokens_per_second: float | None = None  # moving average
        if runtime.main:
            plan.output_dir.mkdir(parents=True, exist_ok=True)

    def phase_started(self, index: int, schedule: Schedule) -> None:
        self.index = index
        self.schedule = schedule
        self.resumed_from = 0
        self._progress("loading", 0, 0)

    def resumed(self, step: int) -> None:
        self.resumed_from = step
        self._progress("training", step, self.schedule.locate(step)[0])

    def step(self, step: int, epoch: int, result: StepResult, flop_params: int) -> None:
        if not self.runtime.main:
            return
        seconds = max(result.seconds, 1e-9)
        tokens_per_second = result.tokens / seconds
        mfu = None
        if self.runtime.peak_flops:
            mfu = (
                6 * flop_params * tokens_per_second / (self.runtime.peak_flops * self.runtime.world)
            )
        self.tokens_per_second = (
            tokens_per_second
            if self.tokens_per_second is None
            else 0.9 * self.tokens_per_second + 0.1 * tokens_per_second
        )
        phase = self.plan.phases[self.index]
        record = {
            "run": self.runtime.run_id,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "phase": phase.name,
            "step": step,
            "total_steps": self.schedule.total_steps,
            "epoch": epoch + 1,
            "loss": result.loss,
            "lr": result.lr,
            "grad_norm": result.grad_norm,
            "tokens": result.tokens,
            "samples": result.samples,
            "step_seconds": round(result.seconds, 6),
            "tokens_per_second": tokens_per_second,
            "samples_per_second": result.samples / seconds,
            "mfu": mfu,
        }
        with self.metrics.open("ab") as stream:
            stream.write(orjson.dumps(record) + b"\n")
        log.info(
            "phase %s step %d/%d epoch %d: loss %.4f lr %.3g, %.0f tokens/s%s",
            phase.name,
            step,
            self.schedule.total_steps,
            epoch + 1,
            result.loss,
            result.lr,
            tokens_per_second,
            f", MFU {mfu:.1%}" if mfu is not None else "",
        )
        self._progress("training", step, epoch)

    def saving(self) -> None:
        self._progress("saving", self.schedule.total_steps, self.plan.phases[self.index].epochs - 1)

    def done(self) -> None:
        if self.runtime.main:
            write_atomic(
                self.progress_path,
                orjson.dumps(
                    {
                        "state": "done",
                        "phase": self.plan.phases[-1].name,
                        "phases": [p.name for p in self.plan.phases],
                        "eta_seconds": 0,
                        "model": str(self.plan.final_model()),
                        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    }
                ),
            )

    def _progress(self, state: str, step: int, epoch: int) -> None:
        if not self.runtime.main:
            return
        phase = self.plan.phases[self.index]
        total = self.schedule.total_steps
        write_atomic(
            self.progress_path,
            orjson.dumps(
                {
                    "state": state,
                    "phase": phase.name,
                    "phase_index": self.index,
                    "phases": [p.name for p in self.plan.phases],
                    "step": step,
                    "total_steps": total,
                    "epoch": min(epoch, phase.epochs - 1) + 1,
                    "epochs": phase.epochs,
                    "resumed_from_step": self.resumed_from,
                    "tokens_per_second": self.tokens_per_second,
                    "eta_seconds": self._eta(step, total),
                    "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            ),
        )

    def _eta(self, step: int, total: int) -> float | None:
        """Seconds left in this phase and the later ones, from the recent token rate."""
        if not self.tokens_per_second:
            return None
        phases = self.plan.phases
        current = phases[self.index]
        left = (1 - step / max(1, total)) * current.tokens * current.epochs
        left += sum(p.tokens * p.epochs for p in phases[self.index + 1 :])
        return round(left / self.tokens_per_second, 1)


if __name__ == "__main__":
    main()
