"""Makes a tiny Llama teacher for the SDG tests: random weights, a BPE tokenizer trained here on
English text from the standard library's docstrings, special tokens and a chat template, saved
with ``save_pretrained`` so that vLLM can serve it and transformers can load its tokenizer.

Needs torch, so it runs under the vLLM virtualenv's python (scripts/vllm-cpu), not the project's:

    python tests/sdg/tiny_model.py DEST_DIR
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from pathlib import Path
from typing import Any

# Shapes vLLM's CPU backend accepts: its attention wants head_dim 64 (16 is rejected).
HIDDEN_SIZE = 64
ATTENTION_HEADS = 1
LAYERS = 2
MAX_POSITIONS = 4096
VOCAB_SIZE = 2000
SEED = 1234
# 20 steps leave one continuation for every prompt; 150 (about 6 s) make the greedy answer depend
# on the prompt, which the tests need to tell replies apart.
TRAINING_STEPS = 150
TRAINING_SEQUENCE = 128
TRAINING_BATCH = 8

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# The granite/merlinite layout InstructLab's teachers use: a role tag line, then the content.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# Stable, plain-English modules shipped with every Python; their docstrings are the corpus.
CORPUS_MODULES = (
    "argparse",
    "collections",
    "contextlib",
    "csv",
    "dataclasses",
    "datetime",
    "email",
    "functools",
    "json",
    "logging",
    "pathlib",
    "shutil",
    "subprocess",
    "textwrap",
    "threading",
    "unittest",
    "urllib.request",
)


def english_corpus() -> list[str]:
    texts: list[str] = []
    for name in CORPUS_MODULES:
        module = importlib.import_module(name)
        for _, member in sorted(vars(module).items()):
            doc = inspect.getdoc(member) if callable(member) else None
            if doc and len(doc) > 40:
                texts.append(doc)
        if module.__doc__:
            texts.append(module.__doc__)
    return texts


def build_tokenizer(texts: list[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Byte-level BPE encodes any string, so prompts never hit an unknown token.
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[BOS, EOS, PAD, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_POSITIONS,
    )


def build_model(tokenizer: Any, texts: list[str]) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=4 * HIDDEN_SIZE,
        num_hidden_layers=LAYERS,
        num_attention_heads=ATTENTION_HEADS,
        num_key_value_heads=ATTENTION_HEADS,
        head_dim=HIDDEN_SIZE // ATTENTION_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)

    # Training on the corpus makes the output look like words rather than uniform noise.
    ids = torch.tensor([i for text in tokenizer(texts)["input_ids"] for i in text])
    windows = ids[: (len(ids) // TRAINING_SEQUENCE) * TRAINING_SEQUENCE].view(-1, TRAINING_SEQUENCE)
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(TRAINING_STEPS):
        batch = windows[torch.randint(len(windows), (TRAINING_BATCH,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return model


def make(dest: Path) -> Path:
    import torch

    torch.set_num_threads(1)  # one thread keeps the float sums, and so the weights, reproducible
    texts = english_corpus()
    tokenizer = build_tokenizer(texts)
    model = build_model(tokenizer, texts)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(dest)
    model.save_pretrained(dest)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="directory to save the model and tokenizer in")
    make(parser.parse_args().dest)


if __name__ == "__main__":
    main()
