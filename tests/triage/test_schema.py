"""The compiled schema validator gives jsonschema's errors; versions and messages."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
import yaml

from bots.triage import schema
from bots.triage.fastschema import Unsupported, compile_schema
from bots.triage.findings import Kind
from bots.triage.yamlload import load_yaml
from tests.triage.conftest import INVALID, TAXONOMY

KINDS: tuple[Kind, ...] = ("skill", "knowledge")


def key(error: Any) -> tuple[str, tuple[Any, ...], str]:
    value = "" if error.validator == "unevaluatedProperties" else repr(error.validator_value)
    return (error.validator, tuple(error.absolute_path), value)


def same_errors(version: int, kind: Kind, document: Any) -> bool:
    compiled = schema._compiled(version, kind)
    assert compiled is not None
    reference = sorted(map(key, schema.validator(version, kind).iter_errors(document)))
    return sorted(map(key, compiled(document))) == reference


def corpus_documents() -> list[Any]:
    documents = []
    for path in sorted((TAXONOMY / "prs").rglob("qna.yaml")):
        loaded = load_yaml(path.read_bytes())
        if loaded.ok and isinstance(loaded.data, dict):
            documents.append(loaded.data)
    return documents


def test_every_schema_compiles() -> None:
    for version in schema.supported_versions():
        for kind in KINDS:
            assert schema._compiled(version, kind) is not None


def test_same_errors_as_jsonschema_on_the_corpus() -> None:
    documents = corpus_documents()
    assert len(documents) > 1300
    for document in documents:
        for version in schema.supported_versions():
            for kind in KINDS:
                assert same_errors(version, kind, document), (version, kind, document)


MUTANTS: list[Any] = [None, True, False, 0, 3, 1.5, "", " ", "x", [], [1], {}, {"a": 1}]


def mutate(document: Any, rng: random.Random) -> Any:
    document = copy.deepcopy(document)
    containers = []

    def walk(node: Any) -> None:
        if isinstance(node, dict | list):
            containers.append(node)
            for child in node.values() if isinstance(node, dict) else node:
                walk(child)

    walk(document)
    target = rng.choice(containers)
    action = rng.randrange(4)
    if isinstance(target, dict) and target:
        name = rng.choice(list(target))
        if action == 0:
            del target[name]
        elif action == 1:
            target[name] = copy.deepcopy(rng.choice(MUTANTS))
        elif action == 2:
            target[rng.choice(["extra", "attribution", 1, True])] = "x"
        else:
            target[name] = copy.deepcopy(target[name])
    elif isinstance(target, list) and target:
        if action == 0:
            target.append(copy.deepcopy(target[0]))
        elif action == 1:
            target[rng.randrange(len(target))] = copy.deepcopy(rng.choice(MUTANTS))
        elif action == 2:
            del target[rng.randrange(len(target)) :]
        else:
            target.append(1 if rng.random() < 0.5 else True)
    return document


@pytest.mark.parametrize(
    "fixture",
    [
        "instructlab-schema/compositional_skills/skill_valid/qna.yaml",
        "instructlab-schema/knowledge/knowledge_valid/qna.yaml",
        "instructlab-instructlab/compositional_skills/skill_valid_answer/qna.yaml",
    ],
)
def test_same_errors_as_jsonschema_on_mutated_documents(fixture: str) -> None:
    base = yaml.safe_load((INVALID / fixture).read_text())
    rng = random.Random(fixture)
    for _ in range(150):
        document = mutate(base, rng)
        for _ in range(rng.randrange(3)):
            document = mutate(document, rng)
        for version in schema.supported_versions():
            for kind in KINDS:
                assert same_errors(version, kind, document), (version, kind, document)


def test_unknown_keywords_fall_back_to_jsonschema() -> None:
    with pytest.raises(Unsupported):
        compile_schema({"type": "object", "patternProperties": {}}, lambda uri: {})
    with pytest.raises(Unsupported):
        compile_schema({"$ref": "#/defs/x"}, lambda uri: {})


def test_describe_paths() -> None:
    assert schema.describe(()) == "the file"
    assert schema.describe(("seed_examples", 2, "questions_and_answers", 0, "answer")) == (
        "seed_examples[2].questions_and_answers[0].answer"
    )
