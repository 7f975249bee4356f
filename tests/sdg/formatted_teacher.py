"""Fine-tunes the tiny teacher (tests/sdg/tiny_model.py) on chat records so that it answers the
SDG prompts in their own format: the "formatted" teacher of the SDG tests. The loss is on the
assistant turn only; the prompt is the tokenizer's chat template with the generation prompt,
exactly as labbot renders it for vLLM.

Needs torch, so it runs under the vLLM virtualenv's python, not the project's:

    python tests/sdg/formatted_teacher.py BASE_MODEL_DIR TRAINING_JSONL DEST_DIR

Training records are JSON lines ``{"messages": [..., {"role": "assistant", ...}]}`` (made by
tests/sdg/formatted_data.py); the model and tokenizer are saved with ``save_pretrained``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

SEED = 4321
STEPS = 1000
BATCH = 8
LEARNING_RATE = 5e-3
WARMUP_STEPS = 30
MAX_TOKENS = 512  # the context the tests serve it with
IGNORE = -100


def log(message: str) -> None:
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def encode(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Input ids and labels: the rendered prompt (labels ignored), then the reply and EOS."""
    assert messages[-1]["role"] == "assistant", messages
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    reply_ids = [*reply_ids, tokenizer.eos_token_id]
    return [*prompt_ids, *reply_ids], [IGNORE] * len(prompt_ids) + reply_ids


def batches(examples: list[tuple[list[int], list[int]]], rng: random.Random) -> Any:
    """Endless batches of similar lengths (less padding), in a seeded order."""
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        groups = [order[i : i + BATCH * 16] for i in range(0, len(order), BATCH * 16)]
        chunks = []
        for group in groups:
            group.sort(key=lambda index: len(examples[index][0]))
            chunks += [group[i : i + BATCH] for i in range(0, len(group), BATCH)]
        rng.shuffle(chunks)
        yield from chunks


def train(
    model: Any, tokenizer: Any, examples: list[tuple[list[int], list[int]]], steps: int
) -> None:
    import torch
    import torch.nn.functional as functional

    rng = random.Random(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)

    def learning_rate(step: int) -> float:
        if step < WARMUP_STEPS:
            return (step + 1) / WARMUP_STEPS
        progress = (step - WARMUP_STEPS) / max(1, steps - WARMUP_STEPS)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    pad = tokenizer.pad_token_id
    model.train()
    started = time.monotonic()
    recent: list[float] = []
    for step, indices in zip(range(steps), batches(examples, rng), strict=False):
        longest = max(len(examples[i][0]) for i in indices)
        ids = torch.full((len(indices), longest), pad, dtype=torch.long)
        labels = torch.full((len(indices), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(indices), longest), dtype=torch.long)
        for row, index in enumerate(indices):
            input_ids, input_labels = examples[index]
            ids[row, : len(input_ids)] = torch.tensor(input_ids)
            labels[row, : len(input_labels)] = torch.tensor(input_labels)
            mask[row, : len(input_ids)] = 1
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        # Logits only where a reply token is predicted: the output layer is most of the cost.
        targets = labels[:, 1:]
        selected = targets != IGNORE
        logits = model.lm_head(hidden[:, :-1][selected])
        loss = functional.cross_entropy(logits, targets[selected])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        recent = [*recent[-19:], loss.item()]
        if step % 50 == 0 or step == steps - 1:
            log(
                f"step {step}: loss {sum(recent) / len(recent):.3f} "
                f"({time.monotonic() - started:.0f} s)"
            )
    model.eval()


def sample_replies(model: Any, tokenizer: Any, records: list[dict[str, Any]]) -> None:
    """Greedy replies to the first record of each prompt, for the log."""
    import torch

    seen: set[str] = set()
    for record in records:
        name = record.get("prompt", "")
        if name in seen:
            continue
        seen.add(name)
        prompt = tokenizer.apply_chat_template(
            record["messages"][:-1], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(
                ids, max_new_tokens=64, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        reply = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        log(f"--- {name}\n{reply}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the tiny model's directory")
    parser.add_argument("training", type=Path, help="chat records, JSON lines")
    parser.add_argument("dest", type=Path, help="directory to save the model and tokenizer in")
    parser.add_argument("--steps", type=int, default=STEPS, help="optimizer steps")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)  # one thread keeps the float sums, and so the weights, reproducible
    torch.manual_seed(SEED)
    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(args.base, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        args.base, local_files_only=True, dtype=torch.float32
    )
    records = [json.loads(line) for line in args.training.read_text().splitlines() if line]
    examples = [encode(tokenizer, record["messages"]) for record in records]
    fitting = [example for example in examples if len(example[0]) <= MAX_TOKENS]
    log(f"{len(fitting)} of {len(examples)} records fit {MAX_TOKENS} tokens")
    train(model, tokenizer, fitting, args.steps)
    log(f"trained in {time.monotonic() - started:.0f} s")
    sample_replies(model, tokenizer, records)
    args.dest.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(args.dest)
    model.save_pretrained(args.dest)


if __name__ == "__main__":
    main()
