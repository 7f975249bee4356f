"""PII recall and precision on shared/data/pii, per structured type, and presidio's vectors."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from bots.triage.content import iter_texts
from bots.triage.pii import ENTITIES, mask, scan
from bots.triage.yamlload import load_yaml
from tests.triage.conftest import PII_DATA, TAXONOMY

STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS")


def synth() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(
        (PII_DATA / "presidio-research_synth_dataset_v2.dev.json").read_text()
    )
    return records


def score(records: list[dict[str, Any]]) -> dict[str, tuple[int, int, int, int]]:
    """Per type: (gold spans, gold spans found, predictions, correct predictions). A prediction
    is correct when it overlaps a gold span of its type."""
    gold: Counter[str] = Counter()
    found: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for record in records:
        text = record["full_text"]
        spans = [
            (s["entity_type"], s["start_position"], s["end_position"]) for s in record["spans"]
        ]
        hits = scan(text)
        for entity, start, end in spans:
            gold[entity] += 1
            found[entity] += any(
                h.entity == entity and h.start < end and start < h.end for h in hits
            )
        for hit in hits:
            predicted[hit.entity] += 1
            correct[hit.entity] += any(
                e == hit.entity and hit.start < end and start < hit.end for e, start, end in spans
            )
    return {e: (gold[e], found[e], predicted[e], correct[e]) for e in ENTITIES}


@pytest.fixture(scope="module")
def synth_scores() -> dict[str, tuple[int, int, int, int]]:
    return score(synth())


@pytest.mark.parametrize("entity", STRUCTURED)
def test_recall_and_precision_per_structured_type(
    synth_scores: dict[str, tuple[int, int, int, int]], entity: str
) -> None:
    gold, found, predicted, correct = synth_scores[entity]
    assert gold >= 10
    recall = found / gold
    precision = correct / predicted if predicted else 1.0
    assert recall >= 0.95, (entity, recall)
    assert precision >= 0.9, (entity, precision)


def test_street_addresses_best_effort(synth_scores: dict[str, tuple[int, int, int, int]]) -> None:
    # international, fragmented gold spans: no NER here; what is flagged is right
    _gold, found, predicted, correct = synth_scores["STREET_ADDRESS"]
    assert found > 0
    assert correct / predicted >= 0.9


def test_findings_mark_the_exact_span() -> None:
    exact = 0
    total = 0
    for record in synth():
        hits = scan(record["full_text"])
        for span in record["spans"]:
            if span["entity_type"] not in STRUCTURED:
                continue
            total += 1
            exact += any(
                (h.entity, h.start, h.end)
                == (span["entity_type"], span["start_position"], span["end_position"])
                for h in hits
            )
    assert exact / total >= 0.98


# presidio's unit-test vectors, where labbot's policy differs on purpose (documentation values,
# low-score guesses); any other disagreement fails.
DELIBERATE = {
    # documentation ranges: RFC 1918/5737/3849, loopback, link-local, multicast, unspecified
    "IP_ADDRESS": lambda text: any(
        marker in text
        for marker in (
            "192.168.",
            "10.0.0",
            "172.16.",
            "127.0.0",
            "169.254.",
            "0.0.0.0",
            "::",
            "255.255.255.255",
            "192.0.2.",
            "198.51.100.",
            "2001:db8",
            "fe80",
            "ff02",
            "192.168.1.1.1",
        )
    ),
    # fictional 555-01xx numbers; a bare run of digits needs a phone word ("number" is not one)
    "PHONE_NUMBER": lambda text: (
        any(n in text for n in ("555-0132", "555 0132", "5550132"))
        or "CN number is 13812345678" in text
    ),
    # well-known test card numbers
    "CREDIT_CARD": lambda text: any(
        n in text.replace("-", "").replace(" ", "")
        for n in (
            "4012888888881881",
            "371449635398431",
            "5555555555554444",
            "4111111111111111",
            "30569309025904",
        )
    ),
    # presidio's score 0-0.4 guesses: unseparated or oddly grouped SSNs without context
    "US_SSN": lambda text: "078051121" in text or "078-051121" in text,
    # a role mailbox (info@) or a tutorial placeholder (user@) is not a person's address
    "EMAIL_ADDRESS": lambda text: "info@" in text or "user@" in text,
}


def vectors() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (PII_DATA / "presidio_recognizer_vectors.jsonl").open()]
    return [r for r in rows if r["entity"] in STRUCTURED]


@pytest.mark.parametrize("row", vectors(), ids=lambda r: f"{r['entity']}:{r['text'][:40]}")
def test_presidio_vectors(row: dict[str, Any]) -> None:
    entity, text = row["entity"], row["text"]
    expected = row["expected_positions"] or row["extra"].get("expected_res") or []
    hits = [(h.start, h.end) for h in scan(text, entities=[entity])]
    if row["expected_len"] == 0:
        assert hits == [], text
        return
    if DELIBERATE.get(entity, lambda _t: False)(text):
        return
    if not expected:  # vectors that only assert a count
        assert len(hits) == row["expected_len"], text
        return
    leniency = row["extra"].get("leniency")
    if leniency is not None and len(expected) != len(hits):
        pytest.skip("depends on presidio's leniency setting")
    assert hits == [tuple(p) for p in expected], text


def test_context_sentences_are_found() -> None:
    text = (PII_DATA / "presidio_context_sentences_tests.txt").read_text()
    blocks = [b.strip().splitlines() for b in text.split("\n\n")]
    pairs = [(b[0], b[1]) for b in blocks if len(b) == 2 and not b[0].startswith("#")]
    structured = [(e, s) for e, s in pairs if e in STRUCTURED]
    found = sum(any(h.entity == e for h in scan(s)) for e, s in structured)
    # misses: private 192.168.0.1 (documentation range) and 078-05-1120-like invalid SSNs
    assert found / len(structured) >= 0.6, structured


@pytest.mark.parametrize(
    ("entity", "value"),
    [
        ("EMAIL_ADDRESS", "UtaKortig@jourrapide.com"),
        ("PHONE_NUMBER", "905-674-3793"),
        ("CREDIT_CARD", "4454794511390933"),
        ("US_SSN", "460-89-9847"),
        ("IBAN_CODE", "GB59IFUE40226315499137"),
        ("IP_ADDRESS", "106.31.73.20"),
    ],
)
def test_masks_never_show_the_value(entity: str, value: str) -> None:
    masked = mask(entity, value)
    assert masked != value
    assert value not in masked
    assert sum(a == b for a, b in zip(masked, value, strict=False)) <= len(value) // 2 + 1


def real_texts() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted((TAXONOMY / "prs").rglob("qna.yaml")):
        loaded = load_yaml(path.read_bytes())
        if loaded.ok and isinstance(loaded.data, dict):
            out[str(path)] = [text for _p, text in iter_texts(loaded.data)]
    return out


def test_few_real_contributor_files_are_flagged() -> None:
    files = real_texts()
    flagged = [p for p, texts in files.items() if any(scan(t) for t in texts)]
    # presidio's pattern recognisers out of the box: 34% of these files
    assert len(files) > 1300
    assert len(flagged) / len(files) <= 0.03, len(flagged)
