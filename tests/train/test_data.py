"""workers.train.data: which tokens carry loss, what is dropped and why, the content-addressed
cache, the packing of micro-steps over ranks, and the packed batch a model sees.

The tokenizer is the SDG tests' tiny BPE tokenizer (granite/merlinite chat layout: a role tag
line, the content, EOS after an answer, a newline after every turn), built once per session; the
expected positions come from transformers' apply_chat_template, not from the module under test.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import torch
from numpy.typing import NDArray
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from tests.sdg.tiny_model import build_tokenizer, english_corpus
from workers.train import data
from workers.train.data import (
    DROP_REASONS,
    IGNORE_INDEX,
    Examples,
    collate,
    load_examples,
    packed_batches,
    process,
)

TWO_TURN = [
    {"role": "user", "content": "What does the pathlib module offer?"},
    {"role": "assistant", "content": "Classes for filesystem paths, with methods for files."},
]
MULTI_TURN = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "Name a data structure."},
    {"role": "assistant", "content": "A list."},
    {"role": "user", "content": "And another one, please?"},
    {"role": "assistant", "content": " A dictionary maps keys to values. "},
]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer(english_corpus()).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def write_jsonl(path: Path, records: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else orjson.dumps(r).decode() for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def record(messages: list[dict[str, str]]) -> dict[str, Any]:
    return {"messages": messages, "metadata": {"leaf": "test"}}


def run(
    tmp_path: Path, tokenizer_dir: Path, records: list[Any], **settings: Any
) -> data.ProcessedData:
    tmp_path.mkdir(parents=True, exist_ok=True)
    inputs = write_jsonl(tmp_path / "in.jsonl", records)
    settings = {"max_seq_len": 4096, "whole_samples": False, **settings}
    return process([inputs], tokenizer_dir, tmp_path / "cache", **settings)


def chat_ids(tokenizer: Any, messages: list[dict[str, str]], prompt: bool = False) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=False, add_generation_prompt=prompt
    )
    return list(ids)


def expected_loss_positions(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Each assistant turn: from the end of the prompt that asks for it to its EOS (the
    template's newline after the EOS is a token of its own and is not learned)."""
    positions: list[int] = []
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            start = len(chat_ids(tokenizer, messages[:index], prompt=True))
            through = chat_ids(tokenizer, messages[: index + 1])
            assert through[-1] != tokenizer.eos_token_id  # the newline after the EOS
            assert through[-2] == tokenizer.eos_token_id
            positions += range(start, len(through) - 1)
    return positions


def loss_runs(labels: NDArray[np.int32]) -> list[NDArray[np.intp]]:
    positions = np.flatnonzero(labels != IGNORE_INDEX)
    return np.split(positions, np.flatnonzero(np.diff(positions) != 1) + 1)


# --------------------------------------------------------------------------- labels


def test_two_turn_loss_is_the_answer_and_its_eos(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    result = run(tmp_path, tokenizer_dir, [record(TWO_TURN)])
    ids, labels = load_examples(result.path)[0]

    assert ids.tolist() == chat_ids(tokenizer, TWO_TURN)
    positions = np.flatnonzero(labels != IGNORE_INDEX)
    assert positions.tolist() == expected_loss_positions(tokenizer, TWO_TURN)
    assert tokenizer.decode(ids[positions]) == TWO_TURN[1]["content"] + tokenizer.eos_token
    assert np.array_equal(labels[positions], ids[positions])
    assert (result.samples, result.tokens, result.loss_tokens) == (1, len(ids), len(positions))


def test_multi_turn_loss_covers_every_answer_only(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    result = run(tmp_path, tokenizer_dir, [record(MULTI_TURN)])
    ids, labels = load_examples(result.path)[0]

    assert ids.tolist() == chat_ids(tokenizer, MULTI_TURN)
    positions = np.flatnonzero(labels != IGNORE_INDEX)
    assert positions.tolist() == expected_loss_positions(tokenizer, MULTI_TURN)
    runs = loss_runs(labels)
    assert [tokenizer.decode(ids[span]) for span in runs] == [
        "A list." + tokenizer.eos_token,
        " A dictionary maps keys to values. " + tokenizer.eos_token,  # spaces kept: not trimmed
    ]


def test_whole_samples_learn_every_token(tmp_path: Path, tokenizer_dir: Path) -> None:
    result = run(tmp_path, tokenizer_dir, [record(MULTI_TURN)], whole_samples=True)
    ids, labels = load_examples(result.path)[0]
    assert np.array_equal(ids, labels)
    assert result.loss_tokens == result.tokens == len(ids)


def with_template(tokenizer_dir: Path, dest: Path, template: str) -> Path:
    shutil.copytree(tokenizer_dir, dest)
    (dest / "chat_template.jinja").write_text(template)
    return dest


# No newlines, content trimmed: the loss must start at the trimmed content.
TRIMMING = (
    "{{ bos_token }}{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] | trim }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
# Every turn closed by a marker that is not the EOS (as ChatML's <|im_end|>).
END_OF_TURN = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|pad|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


@pytest.mark.parametrize(
    ("template", "answers"),
    [
        (TRIMMING, ["A list.<|end_of_text|>", "A dictionary maps keys to values.<|end_of_text|>"]),
        (END_OF_TURN, ["A list.<|pad|>", " A dictionary maps keys to values. <|pad|>"]),
    ],
)
def test_other_templates_learn_the_turn_through_its_end_marker(
    tmp_path: Path, tokenizer_dir: Path, template: str, answers: list[str]
) -> None:
    other = with_template(tokenizer_dir, tmp_path / "tok", template)
    other_tokenizer = AutoTokenizer.from_pretrained(other)
    result = run(tmp_path, other, [record(MULTI_TURN)])
    ids, labels = load_examples(result.path)[0]
    assert ids.tolist() == chat_ids(other_tokenizer, MULTI_TURN)
    assert [other_tokenizer.decode(ids[span]) for span in loss_runs(labels)] == answers


def test_template_that_rewrites_earlier_turns_is_dropped(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    # The last message renders differently, so a turn's prompt is no prefix of the whole.
    template = (
        "{% for m in messages %}{% if loop.last %}LAST {% endif %}{{ m['content'] }}{% endfor %}"
    )
    other = with_template(tokenizer_dir, tmp_path / "tok", template)
    result = run(tmp_path, other, [record(TWO_TURN)])
    assert result.samples == 0
    assert result.dropped["template_not_prefix"] == 1


def test_answers_that_render_to_nothing_are_dropped(tmp_path: Path, tokenizer_dir: Path) -> None:
    other = with_template(
        tokenizer_dir, tmp_path / "tok", "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    )
    blank = [{"role": "user", "content": "Say nothing."}, {"role": "assistant", "content": "  "}]
    result = run(tmp_path, other, [record(TWO_TURN), record(blank)])
    assert (result.samples, result.dropped["empty_answers"]) == (1, 1)
    whole = run(tmp_path / "whole", other, [record(blank)], whole_samples=True)
    assert whole.samples == 1


def test_template_errors_are_dropped_and_counted(tmp_path: Path, tokenizer_dir: Path) -> None:
    template = (
        "{% for m in messages %}{% if 'FORBIDDEN' in m['content'] %}"
        "{{ raise_exception('no') }}{% endif %}{{ m['content'] + eos_token }}{% endfor %}"
    )
    other = with_template(tokenizer_dir, tmp_path / "tok", template)
    forbidden = [{"role": "user", "content": "FORBIDDEN"}, {"role": "assistant", "content": "x"}]
    result = run(tmp_path, other, [record(TWO_TURN), record(forbidden)])
    assert result.samples == 1
    assert result.dropped["template_error"] == 1


def test_a_rendering_unlike_apply_chat_template_stops_the_run(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    render = data._Renderer.__call__

    def drifted(self: data._Renderer, messages: list[dict[str, str]], **kwargs: bool) -> str:
        return render(self, messages, **kwargs) + ("x" if not kwargs["generation_prompt"] else "")

    monkeypatch.setattr(data._Renderer, "__call__", drifted)
    with pytest.raises(RuntimeError, match="renders differently"):
        run(tmp_path, tokenizer_dir, [record(TWO_TURN)])
    assert [
        path.name for path in (tmp_path / "cache").iterdir() if not path.name.endswith(".lock")
    ] == []


NON_ASCII = [
    {"role": "system", "content": "Réponds en français ®."},
    {"role": "user", "content": "Qu'est-ce qu'une crème brûlée? 日本語"},
    {"role": "assistant", "content": "Un dessert — très sucré 🎉, servi froid."},
]


def processed_files(result: data.ProcessedData) -> list[bytes]:
    names = (data.IDS_FILE, data.LABELS_FILE, data.OFFSETS_FILE)
    return [(result.path / name).read_bytes() for name in names]


def test_non_ascii_answers_are_placed_exactly(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    result = run(tmp_path, tokenizer_dir, [record(NON_ASCII)])
    ids, labels = load_examples(result.path)[0]
    assert ids.tolist() == chat_ids(tokenizer, NON_ASCII)
    assert np.flatnonzero(labels != IGNORE_INDEX).tolist() == expected_loss_positions(
        tokenizer, NON_ASCII
    )
    assert (
        tokenizer.decode(ids[labels != IGNORE_INDEX]) == NON_ASCII[2]["content"] + "<|end_of_text|>"
    )


def test_byte_table_and_tokenizer_offsets_place_spans_alike(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte-level BPE spans are placed from each token's byte count, without offsets; the
    tokenizer's offsets (the path for other tokenizers, and for samples the byte count does not
    add up for) must give the same labels."""
    records = [record(TWO_TURN), record(NON_ASCII), record(MULTI_TURN), *many_records(40)]
    by_bytes = run(tmp_path / "bytes", tokenizer_dir, records)
    token_bytes = data._token_bytes

    monkeypatch.setattr(data, "_token_bytes", lambda backend: None)
    by_offsets = run(tmp_path / "offsets", tokenizer_dir, records)
    assert processed_files(by_offsets) == processed_files(by_bytes)

    # A table wrong about a token only the non-ASCII sample has, or about the newline every
    # sample has, or holding an unknown token: the samples with it fall back to offsets, the
    # others keep the table.
    backend = AutoTokenizer.from_pretrained(tokenizer_dir).backend_tokenizer
    table = token_bytes(backend)
    assert table is not None
    examples = load_examples(by_bytes.path)
    others = {int(t) for i in range(len(examples)) if i != 1 for t in examples[i][0]}
    rare = next(int(t) for t in examples[1][0] if int(t) not in others)
    newline = backend.token_to_id("\u010a")
    place = data._place_by_bytes
    unplaced: list[int] = []

    def spy(*args: Any) -> Any:
        placed = place(*args)
        unplaced.append(len(placed[2]))
        return placed

    monkeypatch.setattr(data, "_place_by_bytes", spy)
    for token, wrong, falling_back in [(rare, 99, 1), (rare, -1, 1), (newline, 5, len(records))]:
        corrupted = table.copy()
        corrupted[token] = wrong
        monkeypatch.setattr(data, "_token_bytes", lambda backend, t=corrupted: t)
        unplaced.clear()
        fallback = run(tmp_path / f"wrong-{token}-{wrong}", tokenizer_dir, records)
        assert unplaced == [falling_back]
        assert processed_files(fallback) == processed_files(by_bytes)


def test_tokenizers_with_a_normalizer_use_offsets(tmp_path: Path, tokenizer_dir: Path) -> None:
    normalized = tmp_path / "tok"
    shutil.copytree(tokenizer_dir, normalized)
    spec = orjson.loads((normalized / "tokenizer.json").read_bytes())
    spec["normalizer"] = {"type": "NFC"}
    (normalized / "tokenizer.json").write_bytes(orjson.dumps(spec))
    assert data._token_bytes(AutoTokenizer.from_pretrained(normalized).backend_tokenizer) is None
    records = [record(TWO_TURN), record(MULTI_TURN)]
    plain = run(tmp_path / "plain", tokenizer_dir, records)
    assert processed_files(run(tmp_path / "nfc", normalized, records)) == processed_files(plain)


# --------------------------------------------------------------------------- dropping


def test_invalid_and_over_long_records_are_dropped_and_counted(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    user = {"role": "user", "content": "q"}
    answer = {"role": "assistant", "content": "a"}
    long = [user, {"role": "assistant", "content": "word " * 400}]
    records: list[Any] = [
        record(TWO_TURN),
        "not json {",
        "[1, 2]",
        {"messages": []},
        {"metadata": {}},
        {"messages": [{"role": "user"}, answer]},
        {"messages": [user, {"role": "assistant", "content": 3}]},
        {"messages": "user: q"},
        {"messages": [user, {"role": "bot", "content": "a"}]},
        {"messages": [user, {"role": "system", "content": "s"}, answer]},
        {"messages": [answer, user, answer]},
        {"messages": [{"role": "system", "content": "s"}]},
        {"messages": [user]},
        {"messages": [{"role": "system", "content": "s"}, user]},
        record(long),
        "",
        record(MULTI_TURN),
    ]
    result = run(tmp_path, tokenizer_dir, records, max_seq_len=300)
    assert len(chat_ids(tokenizer, long)) > 300
    assert result.samples == 2
    assert result.dropped == {
        "invalid_json": 1,
        "no_messages": 4,
        "bad_message": 2,
        "bad_roles": 4,
        "no_assistant": 2,
        "template_error": 0,
        "template_not_prefix": 0,
        "empty_answers": 0,
        "too_long": 1,
    }
    examples = load_examples(result.path)
    assert examples[1][0].tolist() == chat_ids(tokenizer, MULTI_TURN)  # order kept


def test_max_seq_len_is_inclusive(tmp_path: Path, tokenizer_dir: Path, tokenizer: Any) -> None:
    length = len(chat_ids(tokenizer, TWO_TURN))
    kept = run(tmp_path / "a", tokenizer_dir, [record(TWO_TURN)], max_seq_len=length)
    assert (kept.samples, kept.dropped["too_long"]) == (1, 0)
    cut = run(tmp_path / "b", tokenizer_dir, [record(TWO_TURN)], max_seq_len=length - 1)
    assert (cut.samples, cut.dropped["too_long"]) == (0, 1)


# --------------------------------------------------------------------------- determinism, cache


def many_records(count: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    words = english_corpus()[0].split()
    out = []
    for index in range(count):
        question = " ".join(rng.choice(words, size=int(rng.integers(3, 30))))
        answer = " ".join(rng.choice(words, size=int(rng.integers(1, 60))))
        messages = [{"role": "user", "content": f"{index}: {question}"}]
        messages.append({"role": "assistant", "content": answer})
        out.append(record(messages))
    return out


def test_processing_is_deterministic(tmp_path: Path, tokenizer_dir: Path) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", many_records(300))
    first = process([inputs], tokenizer_dir, tmp_path / "c1", max_seq_len=80, whole_samples=False)
    second = process([inputs], tokenizer_dir, tmp_path / "c2", max_seq_len=80, whole_samples=False)
    assert first.path.name == second.path.name
    assert 0 < first.samples < 300
    assert first.dropped["too_long"] == 300 - first.samples
    for name in (data.IDS_FILE, data.LABELS_FILE, data.OFFSETS_FILE):
        assert (first.path / name).read_bytes() == (second.path / name).read_bytes()
    assert (first.samples, first.tokens, first.loss_tokens, first.dropped) == (
        second.samples,
        second.tokens,
        second.loss_tokens,
        second.dropped,
    )


def test_second_call_hits_the_cache_and_changes_miss(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    tokenizer_dir = shutil.copytree(tokenizer_dir, tmp_path / "model")  # weights go in below
    inputs = write_jsonl(tmp_path / "in.jsonl", many_records(20))
    settings: dict[str, Any] = {"max_seq_len": 4096, "whole_samples": False}
    first = process([inputs], tokenizer_dir, cache, **settings)
    assert not first.cache_hit

    def no_work(*args: object) -> None:
        raise AssertionError("processed again")

    with monkeypatch.context() as patch:
        patch.setattr(data, "_process_into", no_work)
        again = process([inputs], tokenizer_dir, cache, **settings)
        # Same bytes under another name: the cache is keyed by content.
        copy = tmp_path / "copy.jsonl"
        shutil.copy(inputs, copy)
        renamed = process([copy], tokenizer_dir, cache, **settings)
        # Model weights beside the tokenizer are not part of the key.
        (tokenizer_dir / "model.safetensors").write_bytes(b"weights")
        with_weights = process([inputs], tokenizer_dir, cache, **settings)
    assert again == data.ProcessedData(**{**vars(first), "cache_hit": True})
    assert (renamed.cache_hit, renamed.path) == (True, first.path)
    assert (with_weights.cache_hit, with_weights.path) == (True, first.path)

    changed = write_jsonl(tmp_path / "changed.jsonl", many_records(21))
    other_template = with_template(tokenizer_dir, tmp_path / "tok", "{{ messages[0]['content'] }}")
    misses = [
        process([changed], tokenizer_dir, cache, **settings),
        process([inputs, inputs], tokenizer_dir, cache, **settings),
        process([inputs], tokenizer_dir, cache, max_seq_len=4096, whole_samples=True),
        process([inputs], tokenizer_dir, cache, max_seq_len=4095, whole_samples=False),
        process([inputs], other_template, cache, **settings),
    ]
    assert not any(result.cache_hit for result in misses)
    assert len({result.path for result in [first, *misses]}) == 6
    assert (misses[0].samples, misses[1].samples) == (21, 40)


def test_failed_or_interrupted_work_leaves_no_result(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    inputs = write_jsonl(tmp_path / "in.jsonl", many_records(5))
    key = data.cache_key([inputs], tokenizer_dir, max_seq_len=4096, whole_samples=False)
    cache.mkdir()
    (cache / f".{key}.tmpdead").mkdir()  # what a killed process leaves

    def broken(*args: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(data, "_label_chunk", broken)
        with pytest.raises(OSError, match="disk full"):
            process([inputs], tokenizer_dir, cache, max_seq_len=4096, whole_samples=False)
    assert sorted(path.name for path in cache.iterdir()) == [f".{key}.lock"]
    result = process([inputs], tokenizer_dir, cache, max_seq_len=4096, whole_samples=False)
    assert (result.cache_hit, result.samples) == (False, 5)


def test_examples_are_memory_mapped_and_pickle_by_path(tmp_path: Path, tokenizer_dir: Path) -> None:
    result = run(tmp_path, tokenizer_dir, [record(TWO_TURN), record(MULTI_TURN)])
    examples = load_examples(result.path)
    assert len(examples) == 2
    assert examples.lengths.tolist() == [len(examples[0][0]), len(examples[1][0])]
    assert int(examples.lengths.sum()) == result.tokens
    ids, labels = examples[-1]
    assert ids.dtype == labels.dtype == np.int32
    assert isinstance(ids.base, np.memmap) or isinstance(ids, np.memmap)
    with pytest.raises(IndexError):
        examples[2]
    blob = pickle.dumps(examples)
    assert len(blob) < 1000  # the path, not the tokens
    copy = pickle.loads(blob)
    assert np.array_equal(copy[1][0], examples[1][0])


def test_empty_input_gives_an_empty_dataset(tmp_path: Path, tokenizer_dir: Path) -> None:
    result = run(tmp_path, tokenizer_dir, ["not json"])
    assert (result.samples, result.tokens, result.dropped["invalid_json"]) == (0, 0, 1)
    assert len(load_examples(result.path)) == 0
    assert set(result.dropped) == set(DROP_REASONS)


# --------------------------------------------------------------------------- packing


def random_lengths(count: int, high: int, seed: int = 3) -> list[int]:
    return [int(x) for x in np.random.default_rng(seed).integers(1, high, size=count)]


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_packing_respects_budget_uses_each_sample_once_and_balances(world_size: int) -> None:
    lengths = random_lengths(2000, 600)
    budget = 2048
    steps = packed_batches(lengths, budget, world_size, seed=11, epoch=0)

    used = [index for step in steps for ranks in step for index in ranks]
    assert sorted(used) == list(range(len(lengths)))
    for number, step in enumerate(steps):
        assert len(step) == world_size
        loads = [sum(lengths[i] for i in ranks) for ranks in step]
        assert max(loads) <= budget
        # Each sample went to the least loaded rank: spread below the step's longest sample.
        assert max(loads) - min(loads) <= max(lengths[i] for ranks in step for i in ranks)
        if number < len(steps) - 1:
            assert all(step)
    # Dense: few more steps than the tokens strictly need.
    needed = sum(lengths) / (budget * world_size)
    assert len(steps) <= 1.15 * needed + 1


def test_packing_is_deterministic_and_epochs_shuffle() -> None:
    lengths = random_lengths(500, 300)
    first = packed_batches(lengths, 1000, 2, seed=5, epoch=0)
    assert packed_batches(lengths, 1000, 2, seed=5, epoch=0) == first
    assert packed_batches(np.asarray(lengths), 1000, 2, seed=5, epoch=0) == first
    assert packed_batches(lengths, 1000, 2, seed=5, epoch=1) != first
    assert packed_batches(lengths, 1000, 2, seed=6, epoch=0) != first
    assert packed_batches(lengths, 1000, 2, seed=-5, epoch=0) != first


def test_packing_edges() -> None:
    assert packed_batches([], 10, 2, seed=0, epoch=0) == []
    assert packed_batches([10], 10, 1, seed=0, epoch=0) == [[[0]]]
    with pytest.raises(ValueError, match="sample 1 has 11 tokens"):
        packed_batches([3, 11, 2], 10, 2, seed=0, epoch=0)
    # Fewer samples than ranks: each gets one, the others none (the trainer runs an empty step).
    (step,) = packed_batches([4, 5, 6], 10, 4, seed=0, epoch=0)
    assert sorted(len(ranks) for ranks in step) == [0, 1, 1, 1]
    # Samples filling the budget exactly still go one per rank.
    steps = packed_batches([10] * 6, 10, 2, seed=0, epoch=0)
    assert [sorted(len(ranks) for ranks in step) for step in steps] == [[1, 1]] * 3


# --------------------------------------------------------------------------- collation


class Handmade:
    def __init__(self, samples: list[tuple[list[int], list[int]]]) -> None:
        self.samples = [(np.asarray(i, np.int32), np.asarray(t, np.int32)) for i, t in samples]
        self.lengths = np.asarray([len(i) for i, _ in samples], np.int64)

    def __getitem__(self, index: int) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        return self.samples[index]


HANDMADE = Handmade(
    [
        ([1, 2, 3], [-100, 2, 3]),  # assistant-only: the prompt masked
        ([4, 5], [4, 5]),  # whole sample: its first label must still go
        ([6, 7, 8, 9], [-100, -100, 8, 9]),
    ]
)


def test_collate_packs_without_padding_and_masks_sample_starts() -> None:
    batch = collate(HANDMADE, [2, 0, 1])
    assert batch["input_ids"].tolist() == [[6, 7, 8, 9, 1, 2, 3, 4, 5]]
    assert batch["labels"].tolist() == [[-100, -100, 8, 9, -100, 2, 3, -100, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1]]
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.int64
    assert (batch["num_samples"], batch["num_loss_tokens"]) == (3, 5)
    assert "attention_mask" not in batch  # flash attention splits on position_ids
    assert HANDMADE.samples[1][1].tolist() == [4, 5]  # the source is not written to


def test_collate_block_diagonal_masks() -> None:
    sdpa = collate(HANDMADE, [0, 1], attention="sdpa")["attention_mask"]
    allowed = [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 1, 1],
    ]
    assert (sdpa.dtype, sdpa.shape) == (torch.bool, (1, 1, 5, 5))
    assert sdpa[0, 0].int().tolist() == allowed
    eager = collate(HANDMADE, [0, 1], attention="eager", mask_dtype=torch.bfloat16)
    mask = eager["attention_mask"]
    assert mask.dtype == torch.bfloat16
    assert (mask[0, 0] == 0).int().tolist() == allowed
    assert torch.all(mask[0, 0][~sdpa[0, 0]] == torch.finfo(torch.bfloat16).min)
    with pytest.raises(ValueError, match="unsupported"):
        collate(HANDMADE, [0], attention="flex_attention")
    with pytest.raises(ValueError, match="at least one"):
        collate(HANDMADE, [])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_batch_gives_each_sample_what_it_gives_alone(attention: str) -> None:
    """The real model on the packed batch: every sample's logits and the summed loss equal
    those of the samples run one by one, so no sample saw another."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config).eval()
    model.config._attn_implementation = attention
    rng = np.random.default_rng(1)
    samples = []
    for length in (5, 9, 3, 7):
        ids = rng.integers(0, 64, size=length)
        labels = np.where(rng.random(length) < 0.6, ids, IGNORE_INDEX)
        samples.append((ids.tolist(), labels.tolist()))
    source = Handmade(samples)
    batch = collate(source, [0, 1, 2, 3], attention=attention)
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=batch["attention_mask"],
        ).logits[0]
        losses = []
        start = 0
        for ids, labels in samples:
            alone = model(input_ids=torch.tensor([ids])).logits[0]
            torch.testing.assert_close(packed[start : start + len(ids)], alone, rtol=0, atol=1e-5)
            shifted = torch.tensor(labels[1:])
            losses.append(
                torch.nn.functional.cross_entropy(
                    alone[:-1], shifted, ignore_index=IGNORE_INDEX, reduction="sum"
                )
            )
            start += len(ids)
        whole = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        ).loss
    count = batch["num_loss_tokens"]
    assert count == sum(sum(1 for t in labels[1:] if t != IGNORE_INDEX) for _, labels in samples)
    torch.testing.assert_close(whole * count, torch.stack(losses).sum(), rtol=1e-5, atol=1e-5)


def test_collate_reads_processed_examples(tmp_path: Path, tokenizer_dir: Path) -> None:
    result = run(tmp_path, tokenizer_dir, [record(TWO_TURN), record(MULTI_TURN)])
    examples: Examples = load_examples(result.path)
    batch = collate(examples, [1, 0])
    first, second = examples[1], examples[0]
    assert batch["input_ids"][0].tolist() == first[0].tolist() + second[0].tolist()
    # Both samples start with the (masked) BOS, so the loss tokens are the processed ones.
    assert batch["num_loss_tokens"] == result.loss_tokens
    counts = examples.loss_token_counts()
    assert counts.tolist() == [int(np.count_nonzero(examples[i][1][1:] != -100)) for i in (0, 1)]
    whole = run(tmp_path / "whole", tokenizer_dir, [record(TWO_TURN)], whole_samples=True)
    assert load_examples(whole.path).loss_token_counts().tolist() == [whole.tokens - 1]
    assert collate(load_examples(whole.path), [0])["num_loss_tokens"] == whole.tokens - 1
