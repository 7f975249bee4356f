"""What a training run does, decided before any training process starts: the phases in order,
each with its processed data, learning rate, epochs and batch size, and the DeepSpeed options.

The plan is a JSON file that the launched processes read (``loop.py``); it is built once by the
job (``build_plan``) so that every rank, and every relaunch after a preemption, trains on the same
data with the same settings. Phase 1 (knowledge) exists only when there is knowledge data; phase 2
(skills) trains on the skills data mixed with a share of the knowledge data and samples from the
replay set, and starts from phase 1's Hugging Face checkpoint.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from workers.train import data

log = logging.getLogger(__name__)

PLAN_FORMAT = 1
PhaseName = Literal["knowledge", "skills"]
# The mixed phase 2 input and the tokenized cache live under the job's work directory.
MIX_FILE = "skills-mix.jsonl"
CACHE_DIR = "processed"
OUTPUT_DIR = "output"
HF_DIR = "hf"


class PlanError(Exception):
    """The data cannot make a training run as configured; the message names no local path."""


class PhasePlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: PhaseName
    start_from: Path  # the base model, or the previous phase's Hugging Face checkpoint
    data: Path  # processed (tokenized) data, as written by data.process
    sources: list[Path]  # the chat JSONL files the data was made from
    lr: float
    epochs: int
    batch_samples: int  # effective batch: samples per optimizer step over all processes
    warmup_steps: int
    whole_samples: bool  # loss on every token, not only the assistant's
    samples: int
    tokens: int
    loss_tokens: int
    dropped: int  # records left out (too long, invalid), in all
    dropped_by_reason: dict[str, int] = Field(default_factory=dict)
    mix: dict[str, int] = Field(default_factory=dict)  # samples per source (phase 2)


class DeepSpeedPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    zero_stage: int = Field(ge=0, le=3)
    cpu_offload: bool
    bf16: bool | None  # None: when the accelerator supports it
    grad_clip: float


class TrainingPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: int = PLAN_FORMAT
    base_model: Path
    tokenizer: Path  # saved beside every checkpoint so that each one is servable on its own
    output_dir: Path
    phases: list[PhasePlan]
    deepspeed: DeepSpeedPlan
    max_seq_len: int
    micro_batch_tokens: int  # token budget of one packed micro-batch per process
    checkpoint_interval_steps: int
    checkpoints_kept: int
    seed: int
    # Recomputes activations in backward: the memory of a long packed batch, for a third more
    # compute. Off only for small models (tests, benchmarks).
    gradient_checkpointing: bool = True
    # Peak dense FLOP/s of one device for MFU; None: looked up by device name (GPUs only).
    peak_flops: float | None = None

    def phase_dir(self, phase: PhasePlan) -> Path:
        return self.output_dir / phase.name

    def hf_dir(self, phase: PhasePlan) -> Path:
        return self.phase_dir(phase) / HF_DIR

    def final_model(self) -> Path:
        """The Hugging Face checkpoint of the last phase: the run's result."""
        return self.hf_dir(self.phases[-1])

    def write(self, path: Path) -> None:
        write_atomic(path, orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2))

    @classmethod
    def read(cls, path: Path) -> TrainingPlan:
        plan = cls.model_validate_json(path.read_bytes())
        if plan.format != PLAN_FORMAT:
            raise PlanError(f"training plan format {plan.format} is not {PLAN_FORMAT}")
        return plan


def build_plan(
    settings: Settings,
    knowledge_jsonl: Path | None,
    skills_jsonl: Path,
    work_dir: Path,
    *,
    peak_flops: float | None = None,
) -> TrainingPlan:
    """Process the data and decide the phases of a run under ``work_dir``.

    Phase 1 trains on ``knowledge_jsonl`` when it holds samples. Phase 2 trains on
    ``skills_jsonl`` plus ``train_knowledge_replay_fraction`` of the knowledge samples (a seeded
    choice) plus ``train_replay_samples`` drawn from ``train_replay_path``, written as one JSONL
    file and processed like the others."""
    base = settings.train_base_model
    if base is None:
        raise PlanError("no base model is configured (LABBOT_TRAIN_BASE_MODEL)")
    if not (base / "config.json").is_file():
        raise PlanError("the base model directory holds no Hugging Face config.json")
    work_dir.mkdir(parents=True, exist_ok=True)
    output_dir = work_dir / OUTPUT_DIR
    cache_dir = work_dir / CACHE_DIR
    rng_seed = settings.train_seed

    def process(inputs: list[Path], whole_samples: bool) -> data.ProcessedData:
        return data.process(
            inputs,
            base,
            cache_dir,
            max_seq_len=settings.train_max_seq_len,
            whole_samples=whole_samples,
        )

    phases: list[PhasePlan] = []
    knowledge_lines = _read_lines(knowledge_jsonl) if knowledge_jsonl is not None else []
    if knowledge_jsonl is not None and knowledge_lines:
        whole = settings.train_knowledge_whole_samples
        processed = process([knowledge_jsonl], whole)
        if processed.samples == 0:
            raise PlanError(f"no knowledge sample can be trained on: {_drops(processed)}")
        phases.append(
            _phase(
                "knowledge",
                base,
                processed,
                [knowledge_jsonl],
                lr=settings.train_knowledge_lr,
                epochs=settings.train_knowledge_epochs,
                batch_samples=settings.train_knowledge_batch_samples,
                warmup_steps=settings.train_warmup_steps,
                whole_samples=whole,
                mix={"knowledge": len(knowledge_lines)},
            )
        )

    # SDG's phase 2 file also repeats knowledge and its own replay; training mixes those in
    # itself (the settings below), so only the generated skills samples are taken from it.
    skills_lines = [line for line in _read_lines(skills_jsonl) if _generated_skill(line)]
    replayed_knowledge = _choose(
        knowledge_lines,
        round(settings.train_knowledge_replay_fraction * len(knowledge_lines)),
        f"{rng_seed}:knowledge-replay",
    )
    replay = (
        _read_replay(settings.train_replay_path, settings.train_replay_samples, rng_seed)
        if settings.train_replay_path is not None and settings.train_replay_samples > 0
        else []
    )
    mixed = [*skills_lines, *replayed_knowledge, *replay]
    if not mixed:
        raise PlanError("there is no skills, knowledge or replay data for phase 2")
    mix_path = work_dir / MIX_FILE
    write_atomic(mix_path, b"".join(line.rstrip(b"\n") + b"\n" for line in mixed))
    processed = process([mix_path], False)
    if processed.samples == 0:
        raise PlanError(f"no phase 2 sample can be trained on: {_drops(processed)}")
    phases.append(
        _phase(
            "skills",
            output_dir / phases[-1].name / HF_DIR if phases else base,
            processed,
            [mix_path],
            lr=settings.train_skills_lr,
            epochs=settings.train_skills_epochs,
            batch_samples=settings.train_skills_batch_samples,
            warmup_steps=settings.train_warmup_steps,
            whole_samples=False,
            mix={
                "skills": len(skills_lines),
                "knowledge": len(replayed_knowledge),
                "replay": len(replay),
            },
        )
    )
    plan = TrainingPlan(
        base_model=base,
        tokenizer=base,
        output_dir=output_dir,
        phases=phases,
        deepspeed=DeepSpeedPlan(
            zero_stage=settings.train_zero_stage,
            cpu_offload=settings.train_cpu_offload,
            bf16=settings.train_bf16,
            grad_clip=settings.train_grad_clip,
        ),
        max_seq_len=settings.train_max_seq_len,
        micro_batch_tokens=settings.train_micro_batch_tokens,
        checkpoint_interval_steps=settings.train_checkpoint_interval_steps,
        checkpoints_kept=settings.train_checkpoints_kept,
        seed=rng_seed,
        peak_flops=peak_flops,
    )
    for phase in phases:
        log.info(
            "training phase %s: %d samples, %d tokens, mix %s, dropped %s",
            phase.name,
            phase.samples,
            phase.tokens,
            phase.mix,
            phase.dropped_by_reason or "none",
        )
    return plan


def _phase(
    name: PhaseName,
    start_from: Path,
    processed: data.ProcessedData,
    sources: list[Path],
    *,
    lr: float,
    epochs: int,
    batch_samples: int,
    warmup_steps: int,
    whole_samples: bool,
    mix: dict[str, int],
) -> PhasePlan:
    return PhasePlan(
        name=name,
        start_from=start_from,
        data=processed.path,
        sources=sources,
        lr=lr,
        epochs=epochs,
        batch_samples=batch_samples,
        warmup_steps=warmup_steps,
        whole_samples=whole_samples,
        samples=processed.samples,
        tokens=processed.tokens,
        loss_tokens=processed.loss_tokens,
        dropped=sum(processed.dropped.values()),
        dropped_by_reason={reason: n for reason, n in processed.dropped.items() if n},
        mix=mix,
    )


def _drops(processed: data.ProcessedData) -> str:
    reasons = ", ".join(f"{n} {reason}" for reason, n in processed.dropped.items() if n)
    return f"dropped {reasons or 'none'}"


def _read_lines(path: Path) -> list[bytes]:
    """The non-blank lines of a JSONL file, as they are: data.process validates them."""
    try:
        with path.open("rb") as stream:
            return [line for line in stream if line.strip()]
    except OSError as error:
        log.error("training data %s cannot be read: %s", path, error)
        raise PlanError("a training data file cannot be read") from None


def _choose(lines: list[bytes], count: int, seed: str) -> list[bytes]:
    """``count`` of ``lines``, a seeded choice kept in file order."""
    if count >= len(lines):
        return list(lines)
    chosen = sorted(random.Random(seed).sample(range(len(lines)), max(count, 0)))
    return [lines[index] for index in chosen]


def _read_replay(path: Path, wanted: int, seed: int) -> list[bytes]:
    """``wanted`` chat records chosen evenly from the replay file by seeded reservoir sampling,
    so that a file far larger than memory is read once. Lines that are not a JSON object with a
    ``messages`` list are skipped and counted."""
    rng = random.Random(f"{seed}:replay")
    reservoir: list[bytes] = []
    valid = invalid = 0
    try:
        with path.open("rb") as stream:
            for line in stream:
                if not line.strip():
                    continue
                if not _is_chat_record(line):
                    invalid += 1
                    continue
                valid += 1
                if len(reservoir) < wanted:
                    reservoir.append(line)
                else:
                    slot = rng.randrange(valid)
                    if slot < wanted:
                        reservoir[slot] = line
    except OSError as error:
        log.error("replay data set %s cannot be read: %s", path, error)
        raise PlanError("the replay data set (LABBOT_TRAIN_REPLAY_PATH) cannot be read") from None
    if invalid:
        log.warning("replay data set %s: %d lines are not chat records, skipped", path, invalid)
    if valid < wanted:
        log.warning("replay data set %s: %d records of %d wanted", path, valid, wanted)
    return reservoir


def _generated_skill(line: bytes) -> bool:
    try:
        metadata = orjson.loads(line).get("metadata") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return True  # left for data processing to count as invalid
    if not isinstance(metadata, dict):
        return True
    return (
        metadata.get("source", "generated") == "generated" and metadata.get("kind") != "knowledge"
    )


def _is_chat_record(line: bytes) -> bool:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and isinstance(record.get("messages"), list)


def write_atomic(path: Path, content: bytes) -> None:
    """``path`` appears complete or not at all: a reader never sees half a plan or data file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
