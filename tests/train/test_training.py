"""Training end to end on CPU: the real DeepSpeed launcher with two processes (gloo) on a tiny
random Llama and a small data set it can memorise. Two phases learn (the loss falls), the final
Hugging Face checkpoint loads and answers a trained question, and a run that is stopped
(SIGTERM) or killed (SIGKILL) resumes from its last full checkpoint instead of starting over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.config import Settings
from tests.sdg.tiny_model import build_tokenizer, english_corpus
from workers.train import data
from workers.train.launch import launch_command, launch_env
from workers.train.loop import (
    METRICS_FILE,
    PROGRESS_FILE,
    STATE_DIR,
    STATE_MARKER,
    WarmupConstant,
    plan_schedule,
    shifted_targets,
    split_steps,
)
from workers.train.plan import MIX_FILE, TrainingPlan, build_plan

SYSTEM = "You are a helpful assistant."
# Invented facts, so that a right answer can only come from training.
KNOWLEDGE = [
    ("What colour is the zorblat fruit?", "The zorblat fruit is violet with green stripes."),
    ("Where does the quillfish live?", "The quillfish lives in the cold lakes of Norvania."),
    ("Who built the Amberline bridge?", "Engineer Ilsa Brandt built the Amberline bridge."),
    ("How tall is Mount Korrow?", "Mount Korrow is four thousand metres tall."),
    ("What do tamblers eat?", "Tamblers eat roasted acorns and wild honey."),
    ("When is the Lantern festival of Ebbe?", "It is held on the first night of autumn."),
]
SKILLS = [
    ("Write the word cat backwards.", "tac"),
    ("Give a rhyme for moon.", "A rhyme for moon is spoon."),
    ("Count from one to four.", "one, two, three, four"),
    ("Say hello in a formal way.", "Good day to you, and welcome."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("Turn 'hot' into its opposite.", "The opposite of hot is cold."),
]
RUN_TIMEOUT = 240.0


def chat(question: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        "metadata": {"source": "generated"},
    }


def write_jsonl(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps(chat(q, a)) + "\n" for q, a in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random two-layer Llama (head_dim 64, which vLLM's CPU backend also accepts) with a
    BPE tokenizer trained here, saved in Hugging Face format."""
    from transformers import LlamaConfig, LlamaForCausalLM

    dest = tmp_path_factory.mktemp("base-model")
    tokenizer = build_tokenizer(english_corpus())
    torch.manual_seed(7)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dataset")
    return write_jsonl(root / "knowledge.jsonl", KNOWLEDGE), write_jsonl(
        root / "skills.jsonl", SKILLS
    )


def train_settings(base_model: Path, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "train_base_model": base_model,
        "train_max_seq_len": 128,
        "train_micro_batch_tokens": 128,  # two or three samples per process and micro-step
        "train_knowledge_lr": 1e-2,  # a tiny model memorising: far above real runs' rates
        "train_knowledge_epochs": 20,
        "train_knowledge_batch_samples": 4,
        "train_skills_lr": 1e-2,
        "train_skills_epochs": 25,
        "train_skills_batch_samples": 4,
        "train_knowledge_replay_fraction": 0.5,
        "train_replay_samples": 0,
        "train_warmup_steps": 3,
        "train_zero_stage": 2,
        "train_processes_per_node": 2,
        "train_checkpoint_interval_steps": 4,
        "train_checkpoints_kept": 2,
        "train_seed": 11,
    }
    values.update(overrides)
    return Settings(**values)


def prepare(
    base_model: Path, dataset: tuple[Path, Path], work: Path, **overrides: Any
) -> tuple[Settings, TrainingPlan, Path]:
    settings = train_settings(base_model, work, **overrides)
    plan = build_plan(settings, dataset[0], dataset[1], work)
    # Recomputing activations only costs time on a model this small.
    plan = plan.model_copy(update={"gradient_checkpointing": False})
    plan_path = work / "plan.json"
    plan.write(plan_path)
    return settings, plan, plan_path


class Launch:
    """The run as the job starts it: the launcher in its own process group."""

    def __init__(self, plan_path: Path, settings: Settings, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            launch_command(plan_path, settings),
            env=launch_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()
            pytest.fail(f"the training run took over {timeout:.0f} s:\n{self.log()}")
        finally:
            self._log.close()

    def signal(self, number: int) -> None:
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def launches() -> Iterator[list[Launch]]:
    started: list[Launch] = []
    yield started
    for launch in started:  # nothing outlives a failed test, the launcher's children included
        launch.signal(signal.SIGKILL)
        launch.process.wait()


def metrics(plan: TrainingPlan) -> list[dict[str, Any]]:
    path = plan.output_dir / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def complete_states(plan: TrainingPlan, phase: str) -> list[int]:
    root = plan.output_dir / phase / STATE_DIR
    if not root.is_dir():
        return []
    return sorted(int(d.name) for d in root.iterdir() if (d / STATE_MARKER).is_file())


def wait_for_state(plan: TrainingPlan, phase: str, launch: Launch, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = complete_states(plan, phase)
        if states:
            return states[-1]
        if launch.process.poll() is not None:
            pytest.fail(f"the run ended before a {phase} checkpoint:\n{launch.log()}")
        time.sleep(0.02)
    pytest.fail(f"no {phase} checkpoint within {timeout} s:\n{launch.log()}")


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


# --- the run end to end ---------------------------------------------------------------------


def test_two_phases_learn_and_save_a_servable_model(
    base_model: Path, dataset: tuple[Path, Path], tmp_path: Path, launches: list[Launch]
) -> None:
    settings, plan, plan_path = prepare(base_model, dataset, tmp_path / "work")
    assert [p.name for p in plan.phases] == ["knowledge", "skills"]
    assert plan.phases[1].start_from == plan.hf_dir(plan.phases[0])
    assert plan.phases[1].mix == {"skills": 6, "knowledge": 3, "replay": 0}

    launch = Launch(plan_path, settings, tmp_path / "training.log")
    launches.append(launch)
    assert launch.wait() == 0, launch.log()

    records = metrics(plan)
    for phase in plan.phases:
        losses = [r["loss"] for r in records if r["phase"] == phase.name]
        steps = [r["step"] for r in records if r["phase"] == phase.name]
        assert steps == list(range(1, len(steps) + 1)), (phase.name, steps)
        assert {r["total_steps"] for r in records if r["phase"] == phase.name} == {steps[-1]}
        assert len(losses) >= 10, (phase.name, losses)
        assert mean(losses[-5:]) < 0.5 * mean(losses[:5]), (phase.name, losses)
    first = records[0]
    assert first["lr"] == pytest.approx(1e-2 / 3)  # warmup: a third of the rate at step 1
    assert records[5]["lr"] == pytest.approx(1e-2)  # then constant
    assert first["mfu"] is None  # no peak FLOP/s on a CPU
    assert first["tokens_per_second"] > 0
    assert first["samples_per_second"] > 0

    progress = json.loads((plan.output_dir / PROGRESS_FILE).read_text())
    assert progress["state"] == "done"
    for phase in plan.phases:  # finished phases keep no optimizer state
        assert not (plan.output_dir / phase.name / STATE_DIR).exists()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = plan.final_model()
    model: Any = AutoModelForCausalLM.from_pretrained(final, local_files_only=True)
    tokenizer: Any = AutoTokenizer.from_pretrained(final, local_files_only=True)
    question, answer = SKILLS[1]
    prompt: Any = tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**prompt, max_new_tokens=24, do_sample=False)
    prompt_length = int(prompt["input_ids"].shape[1])
    reply = str(tokenizer.decode(output[0, prompt_length:], skip_special_tokens=True))
    assert reply.strip() == answer, reply


def test_stopped_and_killed_runs_resume_from_their_last_full_checkpoint(
    base_model: Path, dataset: tuple[Path, Path], tmp_path: Path, launches: list[Launch]
) -> None:
    # Bigger batches than one micro-step holds: steps accumulate gradients, some (an epoch's
    # last) over fewer micro-steps than the others.
    settings, plan, plan_path = prepare(
        base_model,
        dataset,
        tmp_path / "work",
        train_knowledge_batch_samples=6,
        train_skills_batch_samples=6,
        train_checkpoint_interval_steps=3,
    )
    for phase in plan.phases:
        lengths = data.load_examples(phase.data).lengths
        assert plan_schedule(lengths, plan, phase, 2).grad_accum > 1
    log_path = tmp_path / "training.log"

    # SIGTERM (the job's stop) in phase 1: every process exits at once, saving nothing.
    first = Launch(plan_path, settings, log_path)
    launches.append(first)
    knowledge_step = wait_for_state(plan, "knowledge", first)
    first.signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert first.wait(timeout=15) != 0
    assert time.monotonic() - stopped < 10
    assert not (plan.output_dir / "knowledge" / "hf").exists()
    saved = complete_states(plan, "knowledge")

    # Relaunched: phase 1 goes on from its newest checkpoint, then SIGKILL in phase 2.
    second = Launch(plan_path, settings, log_path)
    launches.append(second)
    skills_step = wait_for_state(plan, "skills", second)
    second.signal(signal.SIGKILL)
    second.wait(timeout=15)
    killed_at = complete_states(plan, "skills")
    assert killed_at[-1] >= skills_step
    assert len(killed_at) <= settings.train_checkpoints_kept

    # Relaunched again: phase 1 is skipped, phase 2 resumes and the run finishes.
    third = Launch(plan_path, settings, log_path)
    launches.append(third)
    assert third.wait() == 0, third.log()

    runs: dict[str, list[dict[str, Any]]] = {}
    for record in metrics(plan):
        runs.setdefault(record["run"], []).append(record)
    assert len(runs) == 3
    first_run, second_run, third_run = runs.values()
    assert {r["phase"] for r in first_run} == {"knowledge"}
    assert saved
    assert saved[-1] >= knowledge_step
    resumed = second_run[0]
    assert (resumed["phase"], resumed["step"]) == ("knowledge", saved[-1] + 1)
    assert {r["phase"] for r in third_run} == {"skills"}  # the finished phase is skipped
    assert third_run[0]["step"] == killed_at[-1] + 1
    assert third_run[-1]["step"] == third_run[-1]["total_steps"]
    assert "resumed from full checkpoint" in log_path.read_text()
    assert (plan.final_model() / "config.json").is_file()
    assert json.loads((plan.output_dir / PROGRESS_FILE).read_text())["state"] == "done"


def test_a_step_is_the_mean_over_its_loss_tokens_however_it_is_split(
    base_model: Path, tmp_path: Path, launches: list[Launch]
) -> None:
    """Twelve samples, packed into several micro-steps per process and accumulated, make the
    same loss and gradient as the whole batch computed at once without DeepSpeed."""
    samples = write_jsonl(tmp_path / "all.jsonl", SKILLS + KNOWLEDGE)
    settings = train_settings(
        base_model,
        tmp_path,
        train_micro_batch_tokens=96,  # one or two samples per micro-step
        train_skills_batch_samples=12,
        train_skills_epochs=1,
        train_warmup_steps=0,
    )
    plan = build_plan(settings, None, samples, tmp_path / "work")
    plan = plan.model_copy(update={"gradient_checkpointing": False})
    plan.write(tmp_path / "plan.json")
    examples = data.load_examples(plan.phases[0].data)
    schedule = plan_schedule(examples.lengths, plan, plan.phases[0], 2)
    assert schedule.grad_accum >= 3
    assert schedule.steps_per_epoch == (1,)

    launch = Launch(tmp_path / "plan.json", settings, tmp_path / "training.log")
    launches.append(launch)
    assert launch.wait() == 0, launch.log()
    (step,) = metrics(plan)

    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(base_model, local_files_only=True)
    loss_sum = torch.zeros(())
    tokens = 0
    for index in range(len(examples)):
        ids, labels = (torch.from_numpy(a.astype(np.int64))[None] for a in examples[index])
        targets = shifted_targets(labels, None)
        logits = model(input_ids=ids).logits
        loss_sum = loss_sum + torch.nn.functional.cross_entropy(
            logits[0], targets[0], ignore_index=-100, reduction="sum"
        )
        tokens += int((targets != -100).sum())
    mean_loss: Any = loss_sum / tokens
    mean_loss.backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert step["samples"] == len(examples)
    assert step["loss"] == pytest.approx(mean_loss.item(), rel=1e-4)
    assert step["grad_norm"] == pytest.approx(float(norm), rel=1e-3)


# --- the pieces -----------------------------------------------------------------------------


def test_phase_two_mixes_skills_knowledge_and_replay(
    base_model: Path, dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    replay = tmp_path / "replay.jsonl"
    replay.write_text(
        "".join(json.dumps(chat(f"Replay question {i}?", f"Answer {i}.")) + "\n" for i in range(20))
        + "not json\n"
        + json.dumps({"text": "no messages"})
        + "\n"
    )
    settings = train_settings(
        base_model,
        tmp_path,
        train_replay_path=replay,
        train_replay_samples=5,
        train_knowledge_replay_fraction=1 / 3,
    )
    plan = build_plan(settings, dataset[0], dataset[1], tmp_path / "work")
    skills = plan.phases[1]
    assert skills.mix == {"skills": 6, "knowledge": 2, "replay": 5}
    assert (skills.samples, skills.dropped) == (13, 0)
    mixed = (tmp_path / "work" / MIX_FILE).read_text().splitlines()
    assert len(mixed) == 13
    assert sum("Replay question" in line for line in mixed) == 5
    again = build_plan(settings, dataset[0], dataset[1], tmp_path / "work")
    assert again.phases[1].data == skills.data  # the same seeded choice, the cached data

    # Without knowledge data there is one phase, from the base model.
    only = build_plan(settings, None, dataset[1], tmp_path / "work-skills")
    assert [p.name for p in only.phases] == ["skills"]
    assert only.phases[0].start_from == base_model
    assert TrainingPlan.read(write_plan(only, tmp_path / "plan.json")) == only


def write_plan(plan: TrainingPlan, path: Path) -> Path:
    plan.write(path)
    return path


def test_gradient_accumulation_follows_the_effective_batch(
    base_model: Path, dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    settings = train_settings(base_model, tmp_path)
    plan = build_plan(settings, dataset[0], dataset[1], tmp_path / "work")
    phase = plan.phases[0]
    lengths = data.load_examples(phase.data).lengths
    micro_steps = len(data.packed_batches(lengths, plan.micro_batch_tokens, 2, plan.seed, 0))
    per_micro_step = len(lengths) / micro_steps
    for batch in (1, 4, 6, 100):
        schedule = plan_schedule(
            lengths, plan, phase.model_copy(update={"batch_samples": batch}), 2
        )
        assert schedule.grad_accum == max(1, int(batch / per_micro_step + 0.5))
        assert len(schedule.steps_per_epoch) == phase.epochs
        assert schedule.locate(schedule.total_steps) == (phase.epochs, 0)
    # An epoch's micro-steps make near-equal steps; none is left over, none is empty.
    assert [len(g) for g in split_steps(list(range(7)), 3)] == [2, 3, 2]
    assert [len(g) for g in split_steps(list(range(3)), 1)] == [3]
    assert split_steps([[[0]]], 1) == [[[[0]]]]


def test_warmup_then_constant() -> None:
    factor = WarmupConstant(4)
    assert [factor(k) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert WarmupConstant(0)(0) == 1.0


def test_targets_never_cross_a_sample_boundary() -> None:
    labels = torch.tensor([[-100, 11, 12, -100, 21, 22]])
    positions = torch.tensor([[0, 1, 2, 0, 1, 2]])
    targets = shifted_targets(labels, positions)
    assert targets.tolist() == [[11, 12, -100, 21, 22, -100]]
    assert np.array_equal(shifted_targets(labels, None)[0, :2].numpy(), [11, 12])
