"""Training data: chat ``messages`` JSON Lines to token ids and loss labels (cached by content),
micro-batches packed to a token budget and balanced across ranks, and their collation.

Processing (`process`): each record ``{"messages": [{role, content}, ...], "metadata": {...}}``
is rendered with the tokenizer's own chat template and tokenized exactly as
``tokenizer.apply_chat_template(messages, tokenize=True)`` would (checked at run time on the
first sample). Labels are the token ids of the assistant turns and ``-100``
elsewhere; with ``whole_samples`` (the knowledge phase's option) every token is learned.

How an assistant turn is found, whatever the template: the text rendered for the messages before
it with the generation prompt (``add_generation_prompt=True``) must be a prefix of the whole
conversation's text, and so must the text rendered up to and including the turn; the turn is what
lies between the two, less the whitespace the template puts after it. So the turn's end-of-turn
token (the EOS after an answer in the granite/merlinite layout, ``<|eot_id|>`` for Llama 3,
``<|im_end|>`` for ChatML) is learned, and the prompt, the role headers and the separators
between turns are not. Character positions become token positions without per-token Python:
for byte-level BPE tokenizers (GPT-2, Llama 3, granite) from each token's byte count, summed
with numpy, the tokenizer then skipping its offset tracking; for others, and for any sample whose
byte counts do not add up, through the tokenizer's offsets. Templates whose earlier turns
render differently once later ones exist (some strip reasoning from past turns) fail that prefix
test: such samples are dropped and counted rather than guessed at.

Samples longer than ``max_seq_len`` tokens are dropped and counted, never truncated. Invalid
records are dropped and counted by reason (see `DROP_REASONS`). Messages keep only ``role`` and
``content``. Content is tokenized as the template renders it: a special token written inside
content is that special token, as with ``apply_chat_template``'s default.

Output: a directory ``<cache_dir>/<key>/`` holding ``input_ids.bin`` and ``labels.bin``
(int32, every sample's tokens one after another), ``offsets.npy`` (int64, samples + 1) and
``meta.json`` (counts; written last, it marks a complete directory). ``key`` hashes the input
files' bytes, the tokenizer's files, the settings that change the output and the versions of
transformers and tokenizers, so a retry or a second rank finds the work done. A file lock per
key makes concurrent callers wait for one to do it.

Packing (`packed_batches`): per epoch, the samples in an order shuffled by (seed, epoch), cut into
micro-steps; each micro-step is split over the ranks by LPT (longest first, onto the least loaded
rank) with every rank within ``max_tokens``, the multipack idea upstream instructlab-training
uses. Every sample appears once per epoch.

Collation (`collate`): padding-free. One rank's samples are concatenated into ``[1, T]`` with
``position_ids`` restarting at 0 per sample and each sample's first label set to ``-100`` (the
model shifts labels by one, so the last token of one sample would otherwise be trained to
predict the first of the next). Whether samples can see each other then depends on the attention:
flash attention (transformers derives per-sample boundaries from ``position_ids`` when there is
no mask) needs nothing more; for ``sdpa`` and ``eager`` a block-diagonal causal ``[1, 1, T, T]``
mask is added, because their causal mask alone would let a sample attend to the samples before
it (transformers only infers the blocks from ``position_ids`` when it has no mask and no KV
cache, and a model called with ``use_cache`` on has one). That mask costs T^2 bytes (bool, sdpa)
or T^2 floats (eager); train long packed batches with flash attention.
"""

from __future__ import annotations

import fcntl
import hashlib
import heapq
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, Protocol, TypedDict

import numpy as np
import orjson
from numpy.typing import NDArray

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100
FORMAT_VERSION = 1
META_FILE = "meta.json"
IDS_FILE = "input_ids.bin"
LABELS_FILE = "labels.bin"
OFFSETS_FILE = "offsets.npy"
ROLES = frozenset({"system", "user", "assistant"})
# Why a record was dropped; every key is always present in ProcessedData.dropped.
DROP_REASONS = (
    "invalid_json",  # the line is not JSON
    "no_messages",  # not an object with a non-empty "messages" list
    "bad_message",  # a message is not {"role": str, "content": str}
    "bad_roles",  # a role other than system/user/assistant, a system turn after the first
    # message, or a conversation that does not start (after the system turn) with the user
    "no_assistant",  # nothing to learn
    "template_error",  # the chat template refused the conversation
    "template_not_prefix",  # the template renders earlier turns differently later on
    "empty_answers",  # the assistant turns render to nothing (and whole_samples is off)
    "too_long",  # more than max_seq_len tokens
)
# Records rendered and tokenized together: big enough for the tokenizer's batch parallelism,
# small enough to keep memory flat.
CHUNK_SAMPLES = 2048
# Files in a model directory that never change tokenization; hashing them would read gigabytes.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack")

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class ProcessedData:
    path: Path  # the directory load_examples reads
    samples: int
    tokens: int  # sum of the kept samples' lengths
    loss_tokens: int  # labels that are not IGNORE_INDEX
    dropped: dict[str, int]  # by reason, every reason of DROP_REASONS present
    cache_hit: bool


class Examples:
    """Processed samples, memory-mapped: ``examples[i]`` is ``(input_ids, labels)`` as read-only
    int32 views into the files (no copy). Pickles by path, so DataLoader workers reopen the
    files instead of copying them."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offsets: NDArray[np.int64] = np.load(self.path / OFFSETS_FILE)
        total = int(self._offsets[-1])
        self._ids = _map(self.path / IDS_FILE, total)
        self._labels = _map(self.path / LABELS_FILE, total)
        self.lengths: NDArray[np.int64] = np.diff(self._offsets)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        count = len(self.lengths)
        if not -count <= index < count:
            raise IndexError(f"sample {index} out of range ({count} samples)")
        index %= count
        start, end = int(self._offsets[index]), int(self._offsets[index + 1])
        return self._ids[start:end], self._labels[start:end]

    def loss_token_counts(self) -> NDArray[np.int64]:
        """Per sample, the labels that count once the model shifts them by one (a sample's first
        label is never predicted): what a packed batch of it adds to ``num_loss_tokens``."""
        learned = np.asarray(self._labels) != IGNORE_INDEX
        present = self.lengths > 0
        firsts = self._offsets[:-1][present]
        learned[firsts] = False
        counts = np.zeros(len(self.lengths), np.int64)
        if len(firsts):
            counts[present] = np.add.reduceat(learned, firsts, dtype=np.int64)
        return counts

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]


class ExampleSource(Protocol):
    """What `collate` reads: `Examples`, or anything shaped like it."""

    @property
    def lengths(self) -> NDArray[np.int64]: ...

    def __getitem__(self, index: int) -> tuple[NDArray[np.int32], NDArray[np.int32]]: ...


def load_examples(path: Path) -> Examples:
    return Examples(path)


def _map(path: Path, count: int) -> NDArray[np.int32]:
    if count == 0:  # numpy cannot map an empty file
        return np.zeros(0, dtype=np.int32)
    return np.memmap(path, dtype=np.int32, mode="r", shape=(count,))


# --------------------------------------------------------------------------- processing


def process(
    inputs: list[Path],
    tokenizer_dir: Path,
    cache_dir: Path,
    *,
    max_seq_len: int,
    whole_samples: bool,
) -> ProcessedData:
    """Tokenize and label the chat JSONL ``inputs`` (in order), or return the cached result of
    the same inputs, tokenizer and settings."""
    if max_seq_len < 1:
        raise ValueError("max_seq_len must be at least 1")
    key = cache_key(inputs, tokenizer_dir, max_seq_len=max_seq_len, whole_samples=whole_samples)
    out = cache_dir / key
    cached = _read_meta(out)
    if cached is not None:
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f".{key}.lock", "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        cached = _read_meta(out)  # another process may have finished while we waited
        if cached is not None:
            return cached
        # Holding the lock: any partial directory of this key is a dead process's leftover.
        for stale in cache_dir.glob(f".{key}.tmp*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{key}.tmp", dir=cache_dir))
        try:
            meta = _process_into(work, inputs, tokenizer_dir, max_seq_len, whole_samples)
            (work / META_FILE).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
            if out.exists():  # incomplete (no meta): not ours to keep
                shutil.rmtree(out)
            os.rename(work, out)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return _result(out, meta, cache_hit=False)


def cache_key(
    inputs: Sequence[Path], tokenizer_dir: Path, *, max_seq_len: int, whole_samples: bool
) -> str:
    """The name of the processed data's directory: everything its bytes depend on, hashed."""
    import tokenizers
    import transformers

    digest = hashlib.sha256()

    def field(name: str, value: bytes) -> None:
        # Length-prefixed, so no two different sequences of fields hash alike.
        for part in (name.encode(), value):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)

    settings = {
        "format": FORMAT_VERSION,
        "max_seq_len": max_seq_len,
        "whole_samples": whole_samples,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }
    field("settings", orjson.dumps(settings, option=orjson.OPT_SORT_KEYS))
    for file in sorted(tokenizer_dir.iterdir()):
        if file.is_file() and not file.name.startswith(".") and not _is_weights(file.name):
            field("tokenizer:" + file.name, file.read_bytes())
    for path in inputs:
        file_digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                file_digest.update(block)
        field("input", file_digest.digest())
    return digest.hexdigest()[:40]


def _is_weights(name: str) -> bool:
    return name.endswith(_WEIGHT_SUFFIXES)


def _read_meta(out: Path) -> ProcessedData | None:
    try:
        meta = orjson.loads((out / META_FILE).read_bytes())
    except FileNotFoundError:
        return None
    return _result(out, meta, cache_hit=True)


def _result(out: Path, meta: Mapping[str, Any], *, cache_hit: bool) -> ProcessedData:
    return ProcessedData(
        path=out,
        samples=int(meta["samples"]),
        tokens=int(meta["tokens"]),
        loss_tokens=int(meta["loss_tokens"]),
        dropped={reason: int(meta["dropped"].get(reason, 0)) for reason in DROP_REASONS},
        cache_hit=cache_hit,
    )


class _Renderer:
    """The tokenizer's chat template, compiled once by transformers' own compiler (the same
    sandbox, filters and globals apply_chat_template uses), rendered with the same variables."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers.utils.chat_template_utils import _compile_jinja_template

        self._template = _compile_jinja_template(tokenizer.get_chat_template())
        self._variables = dict(tokenizer.special_tokens_map)

    def __call__(self, messages: Messages, *, generation_prompt: bool) -> str:
        text: str = self._template.render(
            messages=messages,
            tools=None,
            documents=None,
            add_generation_prompt=generation_prompt,
            **self._variables,
        )
        return text


def _load_tokenizer(tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{tokenizer_dir}: a fast (Rust) tokenizer is required")
    if not tokenizer.chat_template:
        raise ValueError(f"{tokenizer_dir}: the tokenizer has no chat template")
    return tokenizer


def _process_into(
    work: Path, inputs: Sequence[Path], tokenizer_dir: Path, max_seq_len: int, whole: bool
) -> dict[str, Any]:
    tokenizer = _load_tokenizer(tokenizer_dir)
    render = _Renderer(tokenizer)
    backend = tokenizer.backend_tokenizer
    # A tokenizer.json may carry truncation or padding; apply_chat_template overrides them per
    # call, encoding straight through the backend must switch them off.
    backend.no_truncation()
    backend.no_padding()
    table = None if whole else _token_bytes(backend)
    # Without offsets to track the tokenizer does about a fifth less work; the table then
    # places the spans (see _token_bytes).
    encode = backend.encode_batch if table is None and not whole else backend.encode_batch_fast
    dropped = dict.fromkeys(DROP_REASONS, 0)
    lengths: list[NDArray[np.int64]] = []
    loss_tokens = 0
    with (
        open(work / IDS_FILE, "wb") as ids_out,
        open(work / LABELS_FILE, "wb") as labels_out,
        ThreadPoolExecutor(max_workers=1) as encoder,
    ):

        def finish(chunk: _Chunk, encoded: Future[list[Any]], check: bool) -> None:
            nonlocal loss_tokens
            ids, labels, chunk_lengths = _label_chunk(
                chunk, encoded.result(), max_seq_len, whole, dropped, table, backend
            )
            if check and len(chunk_lengths):
                _check_against_transformers(tokenizer, chunk.kept[0], ids[: chunk_lengths[0]])
            ids_out.write(ids.tobytes())
            labels_out.write(labels.tobytes())
            lengths.append(chunk_lengths)
            loss_tokens += int(np.count_nonzero(labels != IGNORE_INDEX))

        # The tokenizer releases the GIL: chunk n is encoded (on the tokenizer's own threads)
        # while this thread reads, validates and renders chunk n + 1 and writes chunk n - 1.
        pending: tuple[_Chunk, Future[list[Any]]] | None = None
        for number, records in enumerate(_chunks(_records(inputs, dropped), CHUNK_SAMPLES)):
            chunk = _render_chunk(records, render, whole, dropped)
            encoded = encoder.submit(encode, chunk.texts, add_special_tokens=False)
            if pending is not None:
                finish(*pending, check=False)
            pending = (chunk, encoded)
            if number == 0:  # checked alone: apply_chat_template uses the same tokenizer
                finish(*pending, check=True)
                pending = None
        if pending is not None:
            finish(*pending, check=False)
    all_lengths = np.concatenate([np.zeros(1, np.int64), *lengths])
    offsets = np.cumsum(all_lengths, dtype=np.int64)
    np.save(work / OFFSETS_FILE, offsets)
    return {
        "format": FORMAT_VERSION,
        "samples": len(offsets) - 1,
        "tokens": int(offsets[-1]),
        "loss_tokens": loss_tokens,
        "dropped": dropped,
        "max_seq_len": max_seq_len,
        "whole_samples": whole,
        "inputs": [path.name for path in inputs],
    }


def _records(inputs: Sequence[Path], dropped: dict[str, int]) -> Iterator[Messages]:
    for path in inputs:
        with open(path, "rb") as stream:
            for line in stream:
                if not line.strip():
                    continue  # blank lines (a trailing newline) are not records
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    dropped["invalid_json"] += 1
                    continue
                messages, reason = _validate(record)
                if messages is None:
                    dropped[reason] += 1
                else:
                    yield messages


def _validate(record: object) -> tuple[Messages | None, str]:
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        return None, "no_messages"
    clean: Messages = []
    for message in messages:
        if not isinstance(message, dict):
            return None, "bad_message"
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            return None, "bad_message"
        clean.append({"role": role, "content": content})
    roles = [message["role"] for message in clean]
    if not ROLES.issuperset(roles) or "system" in roles[1:]:
        return None, "bad_roles"
    first = 1 if roles[0] == "system" else 0
    if first >= len(roles) or roles[first] != "user":
        return None, "bad_roles"
    if "assistant" not in roles:
        return None, "no_assistant"
    return clean, ""


def _chunks(items: Iterable[Messages], size: int) -> Iterator[list[Messages]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


@dataclass
class _Chunk:
    kept: list[Messages]  # the conversations rendered, in order
    texts: list[str]  # their renderings
    spans: list[list[tuple[int, int]]]  # their assistant turns, as character spans


def _render_chunk(
    records: list[Messages], render: _Renderer, whole: bool, dropped: dict[str, int]
) -> _Chunk:
    import jinja2

    chunk = _Chunk([], [], [])
    for messages in records:
        try:
            text = render(messages, generation_prompt=False)
            spans = [] if whole else _assistant_char_spans(messages, text, render)
        except jinja2.TemplateError:
            dropped["template_error"] += 1
            continue
        if spans is None:
            dropped["template_not_prefix"] += 1
            continue
        if not whole and not spans:
            dropped["empty_answers"] += 1
            continue
        chunk.kept.append(messages)
        chunk.texts.append(text)
        chunk.spans.append(spans)
    return chunk


def _label_chunk(
    chunk: _Chunk,
    encodings: list[Any],
    max_seq_len: int,
    whole: bool,
    dropped: dict[str, int],
    table: NDArray[np.int64] | None,
    backend: Any,
) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.int64]]:
    """The chunk's token ids, labels and lengths, over-long samples dropped (also from
    ``chunk.kept``, so that ``chunk.kept[i]`` stays the i-th sample's conversation).
    ``encodings`` carry offsets unless ``table`` is given."""
    sizes = np.fromiter((len(encoding) for encoding in encodings), np.int64, len(encodings))
    fits = sizes <= max_seq_len
    dropped["too_long"] += int(len(sizes) - np.count_nonzero(fits))
    keep = np.flatnonzero(fits).tolist()
    chunk.kept = [chunk.kept[i] for i in keep]
    lengths = sizes[fits]
    total = int(lengths.sum())
    ids = np.fromiter(
        itertools.chain.from_iterable(encodings[i].ids for i in keep), np.int32, total
    )
    if whole:
        return ids, ids.copy(), lengths

    starts = np.cumsum(lengths) - lengths  # each sample's first token in ``ids``
    texts = [chunk.texts[i] for i in keep]
    spans = [chunk.spans[i] for i in keep]
    # Span edges as token indices into ``ids`` (an edge is the first token after the span).
    begins: list[NDArray[np.int64]] = []
    ends: list[NDArray[np.int64]] = []
    if table is None:  # the tokenizer's own offsets
        unplaced = list(range(len(keep)))
        with_offsets = [encodings[i] for i in keep]
    else:
        placed = _place_by_bytes(table[ids], starts, lengths, texts, spans)
        begins.append(placed[0])
        ends.append(placed[1])
        unplaced = placed[2]
        # Samples whose bytes the table did not account for: encoded again, with offsets.
        again = [texts[i] for i in unplaced]
        with_offsets = backend.encode_batch(again, add_special_tokens=False) if again else []
    if unplaced:
        bounds = [
            (starts[sample] + begin, starts[sample] + end)
            for sample, encoding in zip(unplaced, with_offsets, strict=True)
            for begin, end in _token_spans(encoding, spans[sample])
        ]
        begins.append(np.fromiter((begin for begin, _ in bounds), np.int64, len(bounds)))
        ends.append(np.fromiter((end for _, end in bounds), np.int64, len(bounds)))

    # Spans to a mask in one pass: +1 where a span starts, -1 after it ends, running sum.
    edges = np.zeros(total + 1, np.int32)
    np.add.at(edges, np.concatenate([np.zeros(0, np.int64), *begins]), 1)
    np.add.at(edges, np.concatenate([np.zeros(0, np.int64), *ends]), -1)
    learned = np.cumsum(edges[:-1]) > 0
    labels = np.where(learned, ids, np.int32(IGNORE_INDEX)).astype(np.int32)
    return ids, labels, lengths


def _token_bytes(backend: Any) -> NDArray[np.int64] | None:
    """How many bytes of text each token id stands for, when the id alone decides it: byte-level
    BPE (every vocabulary token written in the ByteLevel alphabet, one character per byte) with
    no normalizer, and added tokens that match their content exactly. Then a token's position
    in the text is the running sum of these over the tokens before it, and the tokenizer need
    not track offsets. None when the tokenizer is not of that kind."""
    from tokenizers.pre_tokenizers import ByteLevel

    if backend.normalizer is not None:
        return None
    alphabet = frozenset(ByteLevel.alphabet())
    table = np.full(backend.get_vocab_size(with_added_tokens=True), -1, np.int64)
    for token, index in backend.get_vocab(with_added_tokens=False).items():
        if not alphabet.issuperset(token):
            return None
        table[index] = len(token)
    for index, added in backend.get_added_tokens_decoder().items():
        if added.lstrip or added.rstrip or added.single_word:
            return None  # they swallow the whitespace beside them
        table[index] = len(added.content.encode())
    unknown = getattr(backend.model, "unk_token", None)
    if unknown is not None and backend.token_to_id(unknown) is not None:
        table[backend.token_to_id(unknown)] = -1  # stands for any bytes: never trusted
    return table


def _place_by_bytes(
    sizes: NDArray[np.int64],
    starts: NDArray[np.int64],
    lengths: NDArray[np.int64],
    texts: list[str],
    spans: list[list[tuple[int, int]]],
) -> tuple[NDArray[np.int64], NDArray[np.int64], list[int]]:
    """Span edges from the bytes each token stands for (``sizes``, per token of the chunk):
    begin at the token holding a span's first byte, end after the one holding its last. A
    sample whose tokens do not add up to its text's bytes (an unknown token, a tokenizer that
    adds a prefix space) is returned as unplaced instead."""
    bytes_held = np.maximum(sizes, 0)
    token_ends = np.cumsum(bytes_held)  # byte offset, in the chunk's tokens, after each token
    byte_lengths = np.fromiter(
        (len(text) if text.isascii() else len(text.encode()) for text in texts),
        np.int64,
        len(texts),
    )
    present = lengths > 0
    covered = np.zeros(len(texts), np.int64)  # bytes each sample's tokens stand for
    covered[present] = np.add.reduceat(bytes_held, starts[present])
    unknown = np.zeros(len(texts), bool)
    unknown[present] = np.logical_or.reduceat(sizes < 0, starts[present])
    good = (covered == byte_lengths) & ~unknown
    sample_bytes = np.cumsum(covered) - covered  # where each sample's tokens start, in bytes
    first: list[int] = []
    last: list[int] = []
    for sample in np.flatnonzero(good).tolist():
        text, base = texts[sample], int(sample_bytes[sample])
        for begin, end in spans[sample]:
            if not text.isascii():
                begin, end = len(text[:begin].encode()), len(text[:end].encode())
            first.append(base + begin)
            last.append(base + end - 1)
    begins = np.searchsorted(token_ends, np.asarray(first, np.int64), side="right")
    ends = np.searchsorted(token_ends, np.asarray(last, np.int64), side="right") + 1
    return begins, ends, np.flatnonzero(~good).tolist()


def _assistant_char_spans(
    messages: Messages, text: str, render: _Renderer
) -> list[tuple[int, int]] | None:
    """Character spans of the assistant turns in ``text`` (the whole conversation rendered), or
    None when the template's renderings of the earlier turns are not prefixes of it."""
    spans = []
    last = len(messages) - 1
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(messages[:index], generation_prompt=True)
        through = text if index == last else render(messages[: index + 1], generation_prompt=False)
        if not (text.startswith(prompt) and text.startswith(through)):
            return None
        # The template's whitespace after the turn (a newline before the next) is not learned.
        start, end = len(prompt), len(through.rstrip())
        if end > start:
            spans.append((start, end))
    return spans


def _token_spans(encoding: Any, spans: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Token ranges covering the character spans: from the token holding a span's first
    character to the one holding its last. A character no token holds (whitespace that a
    tokenizer trims from its offsets) moves the bound inward to one that does."""
    for start, end in spans:
        first = _first_token(encoding, range(start, end))
        if first is not None:
            last = _first_token(encoding, range(end - 1, start - 1, -1))
            assert last is not None  # the forward scan found a token inside the span
            yield first, last + 1


def _first_token(encoding: Any, chars: range) -> int | None:
    for char in chars:
        token: int | None = encoding.char_to_token(char)
        if token is not None:
            return token
    return None


def _check_against_transformers(tokenizer: Any, messages: Messages, ids: NDArray[np.int32]) -> None:
    """A chunk's first sample must be exactly what apply_chat_template makes of it: this module
    renders and encodes through lower-level calls, and a transformers or tokenizer that behaves
    differently must stop the run, not train on subtly different tokens."""
    expected = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    if ids.tolist() != list(expected):
        raise RuntimeError(
            "the chat template renders differently here than in apply_chat_template; "
            "refusing to write training data"
        )


# --------------------------------------------------------------------------- packing


def packed_batches(
    lengths: Sequence[int] | NDArray[np.integer[Any]],
    max_tokens: int,
    world_size: int,
    seed: int,
    epoch: int,
) -> list[list[list[int]]]:
    """One epoch of micro-steps: ``steps[s][rank]`` is the sample indices that rank trains on in
    micro-step ``s``, their lengths summing to at most ``max_tokens``. Each step takes the next
    samples of an order shuffled by (seed, epoch), as many as LPT can still spread over the ranks
    within the budget; the ranks' token counts in a step then differ by at most the step's
    longest sample. A rank's list is empty only in the epoch's last step, when fewer samples
    than ranks remain: that rank must still run a step (with no loss tokens) to keep the
    collectives in step."""
    sizes = np.asarray(lengths, dtype=np.int64)
    if sizes.ndim != 1:
        raise ValueError("lengths must be one-dimensional")
    if max_tokens < 1 or world_size < 1:
        raise ValueError("max_tokens and world_size must be at least 1")
    if len(sizes) == 0:
        return []
    if int(sizes.min()) < 0:
        raise ValueError("lengths must not be negative")
    longest = int(np.argmax(sizes))
    if int(sizes[longest]) > max_tokens:
        raise ValueError(
            f"sample {longest} has {int(sizes[longest])} tokens, over the budget of {max_tokens}"
        )
    # Any int seed (negative ones too) gives a valid, distinct entropy word.
    rng = np.random.default_rng([seed & (2**64 - 1), epoch & (2**64 - 1)])
    order = rng.permutation(len(sizes))
    shuffled = sizes[order]
    bounds = np.concatenate([np.zeros(1, np.int64), np.cumsum(shuffled)])
    capacity = max_tokens * world_size
    order_list = order.tolist()
    steps: list[list[list[int]]] = []
    start = 0
    while start < len(sizes):
        # No more samples than fit by total size; at most world_size always fit (one per rank).
        upper = int(np.searchsorted(bounds, bounds[start] + capacity, side="right")) - 1
        bins = _lpt(shuffled[start:upper], world_size, max_tokens)
        end = upper
        if bins is None:
            low, high = min(start + world_size, upper), upper  # low fits, high does not
            bins = _lpt(shuffled[start:low], world_size, max_tokens)
            while high - low > 1:
                middle = (low + high) // 2
                trial = _lpt(shuffled[start:middle], world_size, max_tokens)
                if trial is None:
                    high = middle
                else:
                    low, bins = middle, trial
            end = low
        assert bins is not None
        steps.append([[order_list[start + j] for j in members] for members in bins])
        start = end
    return steps


def _lpt(sizes: NDArray[np.int64], bins: int, limit: int) -> list[list[int]] | None:
    """Longest first, each onto the least loaded bin (ties: the lowest bin), or None when a bin
    would exceed ``limit``. Positions are into ``sizes``."""
    if bins == 1:
        return [list(range(len(sizes)))] if int(sizes.sum()) <= limit else None
    heap = [(0, rank) for rank in range(bins)]
    members: list[list[int]] = [[] for _ in range(bins)]
    values = sizes.tolist()
    for position in np.argsort(-sizes, kind="stable").tolist():
        load, rank = heap[0]
        load += values[position]
        if load > limit:
            return None
        members[rank].append(position)
        heapq.heapreplace(heap, (load, rank))
    return members


# --------------------------------------------------------------------------- collation


class PackedBatch(TypedDict):
    input_ids: torch.Tensor  # [1, T] int64, the samples one after another
    labels: torch.Tensor  # [1, T] int64, IGNORE_INDEX at each sample's first token
    position_ids: torch.Tensor  # [1, T] int64, restarting at 0 for each sample
    # [1, 1, T, T] block-diagonal causal mask, for attention that cannot use position_ids
    attention_mask: NotRequired[torch.Tensor]
    num_samples: int
    num_loss_tokens: int  # labels that count, for normalising the loss across ranks


def collate(
    examples: ExampleSource,
    indices: Sequence[int],
    *,
    attention: str = "flash_attention_2",
    mask_dtype: torch.dtype | None = None,
) -> PackedBatch:
    """Pack ``indices`` of ``examples`` into one padding-free sequence for a model whose
    ``attn_implementation`` is ``attention``: flash attention (any ``flash_attention_*``) gets
    no mask, ``sdpa`` a boolean block-diagonal causal mask (True: may attend), ``eager`` the same
    as an additive float mask of ``mask_dtype`` (default float32; pass the model's dtype)."""
    import torch

    if not indices:
        raise ValueError("collate needs at least one sample")
    parts = [examples[int(index)] for index in indices]
    lengths = np.fromiter((len(ids) for ids, _ in parts), np.int64, len(parts))
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    input_ids = np.concatenate([ids for ids, _ in parts]).astype(np.int64)
    labels = np.concatenate([target for _, target in parts]).astype(np.int64)
    labels[starts[lengths > 0]] = IGNORE_INDEX
    position_ids = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
    batch: PackedBatch = {
        "input_ids": torch.from_numpy(input_ids)[None],
        "labels": torch.from_numpy(labels)[None],
        "position_ids": torch.from_numpy(position_ids)[None],
        "num_samples": len(parts),
        "num_loss_tokens": int(np.count_nonzero(labels != IGNORE_INDEX)),
    }
    if attention.startswith("flash_attention") or "flash-attn" in attention:
        return batch
    if attention not in ("sdpa", "eager"):
        raise ValueError(f"unsupported attention implementation {attention!r}")
    sample = torch.from_numpy(np.repeat(np.arange(len(parts)), lengths))
    causal = torch.ones(total, total, dtype=torch.bool).tril()
    allowed = (sample[:, None] == sample[None, :]) & causal
    if attention == "sdpa":
        batch["attention_mask"] = allowed[None, None]
    else:
        dtype = mask_dtype or torch.float32
        additive = torch.zeros(total, total, dtype=dtype)
        additive.masked_fill_(~allowed, torch.finfo(dtype).min)
        batch["attention_mask"] = additive[None, None]
    return batch
