"""Validation against the JSON schema of the declared version, from the ``instructlab-schema``
package, with every error placed on the line and column of the node it is about."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012, SchemaResource

from bots.triage import messages
from bots.triage.fastschema import SchemaError, Unsupported, compile_schema
from bots.triage.findings import Finding, Kind, make
from bots.triage.yamlload import Loaded, Path

SCHEMA_NAMES: dict[Kind, str] = {"skill": "compositional_skills", "knowledge": "knowledge"}
ROOT_KINDS: dict[str, Kind] = {"compositional_skills": "skill", "knowledge": "knowledge"}
KNOWLEDGE_MIN_VERSION = 3


def _schema_base() -> Any:
    # Imported lazily: the package is only needed once a qna.yaml is validated.
    from instructlab.schema import schema_base

    return schema_base()


@functools.cache
def supported_versions() -> tuple[int, ...]:
    from instructlab.schema import schema_versions

    return tuple(int(v.name[1:]) for v in schema_versions())


@functools.cache
def _resource(version: int, name: str) -> SchemaResource:
    text = _schema_base().joinpath(f"v{version}", name).read_text(encoding="utf-8")
    return Resource.from_contents(json.loads(text), default_specification=DRAFT202012)


@functools.cache
def validator(version: int, kind: Kind) -> Validator:
    schema = _resource(version, f"{SCHEMA_NAMES[kind]}.json").contents
    # Referenced schemas are registered up front: a retrieve-only registry would look them up
    # again on every validation.
    shared = _resource(version, "version.json")
    empty: Registry[Any] = Registry(retrieve=lambda uri: _resource(version, uri))  # type: ignore[call-arg]
    registry = empty.with_resources([("./version.json", shared), ("version.json", shared)])
    cls = validator_for(schema)
    return cls(schema, registry=registry)


@functools.cache
def _compiled(version: int, kind: Kind) -> Callable[[Any], list[SchemaError]] | None:
    schema = _resource(version, f"{SCHEMA_NAMES[kind]}.json").contents

    def resolve(uri: str) -> Mapping[str, Any]:
        contents = _resource(version, uri.removeprefix("./")).contents
        if not isinstance(contents, Mapping):
            raise Unsupported(uri)
        return contents

    try:
        if not isinstance(schema, Mapping):
            raise Unsupported("boolean schema")
        return compile_schema(schema, resolve)
    except Unsupported:
        return None  # a keyword the compiler does not know: jsonschema validates instead


def validate(version: int, kind: Kind, data: Any) -> list[SchemaError] | list[ValidationError]:
    """The schema errors of a document (compiled validator, jsonschema as the fallback)."""
    compiled = _compiled(version, kind)
    if compiled is not None:
        return compiled(data)
    return list(validator(version, kind).iter_errors(data))


@functools.cache
def _deprecated(version: int, kind: Kind) -> bool:
    schema = _resource(version, f"{SCHEMA_NAMES[kind]}.json").contents
    return bool(isinstance(schema, Mapping) and schema.get("deprecated"))


def _properties(schema: Mapping[str, Any], version: int) -> list[str]:
    names = list(schema.get("properties", {}))
    ref = schema.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        target = _resource(version, ref.removeprefix("./")).contents
        if isinstance(target, Mapping):
            names.extend(n for n in target.get("properties", {}) if n not in names)
    return names


def describe(path: Path) -> str:
    """``seed_examples[2].answer`` for a path, "the file" for the root."""
    if not path:
        return messages.WHERE_TOP
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def kind_for(root: str | None, data: Mapping[Any, Any]) -> Kind:
    """The taxonomy root decides; elsewhere the content does, as upstream does."""
    if root in ROOT_KINDS:
        return ROOT_KINDS[root]
    return "knowledge" if "document" in data else "skill"


@dataclass
class SchemaOutcome:
    kind: Kind
    version: int | None  # the version validated against (or declared, when unsupported)
    findings: list[Finding]
    validated: bool  # the schema ran
    min_items_paths: set[Path]  # where the schema already reported too few items


def _type_name(value: Any) -> str:
    if value is None:
        return messages.FOUND_EMPTY
    if isinstance(value, bool):
        return messages.FOUND_BOOL
    if isinstance(value, int | float):
        return messages.FOUND_NUMBER
    if isinstance(value, str):
        return messages.FOUND_STRING
    if isinstance(value, list):
        return messages.FOUND_LIST
    if isinstance(value, dict):
        return messages.FOUND_MAPPING
    return messages.FOUND_DATE if hasattr(value, "isoformat") else type(value).__name__


def _raw_at(loaded: Loaded, path: Path) -> str:
    """The source text of a scalar, for messages (YAML already turned ``Yes`` into True)."""
    if loaded.text is None or path not in loaded.value_pos:
        return ""
    line, col = loaded.value_pos[path]
    lines = loaded.text.split("\n", line)
    if len(lines) < line:
        return ""
    return lines[line - 1][col - 1 :].strip().strip("'\"")


def check_schema(loaded: Loaded, data: Mapping[Any, Any], root: str | None) -> SchemaOutcome:
    kind = kind_for(root, data)
    findings: list[Finding] = []
    outcome = SchemaOutcome(kind, None, findings, False, set())
    raw_version = data.get("version", 1)
    ignore_version_errors = False
    where = loaded.position(("version",))
    version: int | None
    if isinstance(raw_version, bool) or raw_version is None:
        findings.append(make("schema/version-type", *where, found=_type_name(raw_version)))
        return outcome
    if isinstance(raw_version, int):
        version = raw_version
    else:
        try:
            version = int(raw_version)
        except (TypeError, ValueError, OverflowError):
            findings.append(make("schema/version-type", *where, found=repr(raw_version)))
            return outcome
        findings.append(make("schema/version-type", *where, found=repr(raw_version)))
        ignore_version_errors = True
    outcome.version = version
    supported = supported_versions()
    if version not in supported:
        findings.append(
            make(
                "schema/version",
                *where,
                version=version,
                supported=", ".join(str(v) for v in supported),
            )
        )
        return outcome
    if kind == "knowledge" and (version < KNOWLEDGE_MIN_VERSION or _deprecated(version, kind)):
        findings.append(make("schema/knowledge-version", *where, version=version))
        return outcome
    outcome.validated = True
    errors = validate(version, kind, data)
    findings.extend(_translate(errors, loaded, version, ignore_version_errors, outcome))
    return outcome


def _translate(
    errors: Iterable[ValidationError | SchemaError],
    loaded: Loaded,
    version: int,
    ignore_version_errors: bool,
    outcome: SchemaOutcome,
) -> list[Finding]:
    found: list[Finding] = []
    required_done: set[Path] = set()
    for error in errors:
        path: Path = tuple(error.absolute_path)
        if ignore_version_errors and path[:1] == ("version",):
            continue
        where = describe(path)
        keyword = error.validator
        if keyword == "required":
            if path in required_done or not isinstance(error.instance, Mapping):
                continue
            required_done.add(path)
            for name in error.validator_value:
                if name not in error.instance:
                    found.append(
                        make(
                            "schema/required",
                            *loaded.position(path, key=True),
                            where=where,
                            field=name,
                        )
                    )
        elif keyword == "unevaluatedProperties" and isinstance(error.instance, Mapping):
            allowed = _properties(error.schema, version)
            for name in error.instance:
                if name in allowed:
                    continue
                close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
                suggestion = (
                    messages.UNKNOWN_FIELD_SUGGESTION.format(
                        suggestion=close[0], allowed=", ".join(allowed)
                    )
                    if close
                    else messages.UNKNOWN_FIELD_ALLOWED.format(allowed=", ".join(allowed))
                )
                found.append(
                    make(
                        "schema/unknown-field",
                        *loaded.position((*path, name), key=True),
                        field=name,
                        where=where,
                        suggestion=suggestion,
                    )
                )
        elif keyword == "type":
            expected_names = error.validator_value
            if isinstance(expected_names, str):
                expected_names = [expected_names]
            expected = " or ".join(messages.TYPE_NAMES.get(str(t), str(t)) for t in expected_names)
            instance = error.instance
            if isinstance(instance, bool):
                hint = messages.TYPE_HINT_BOOL.format(value=_raw_at(loaded, path) or instance)
            elif instance is None:
                hint = messages.TYPE_HINT_NULL
            elif isinstance(instance, int | float) and "string" in expected_names:
                hint = messages.TYPE_HINT_NUMBER
            else:
                hint = messages.TYPE_HINT_DEFAULT
            found.append(
                make(
                    "schema/type",
                    *loaded.position(path),
                    where=where,
                    expected=expected,
                    found=_type_name(instance),
                    hint=hint,
                )
            )
        elif keyword == "minLength":
            found.append(make("schema/empty", *loaded.position(path), where=where))
        elif keyword == "minItems":
            outcome.min_items_paths.add(path)
            size = len(error.instance) if isinstance(error.instance, list) else 0
            found.append(
                make(
                    "schema/min-items",
                    *loaded.position(path, key=True),
                    where=where,
                    minimum=error.validator_value,
                    found=size,
                )
            )
        elif keyword == "uniqueItems" and isinstance(error.instance, list):
            index = _first_repeat(error.instance)
            found.append(
                make("schema/duplicate-item", *loaded.position((*path, index)), where=where)
            )
        else:
            found.append(
                make(
                    "schema/invalid",
                    *loaded.position(path),
                    where=where,
                    problem=error.message[-200:],
                )
            )
    return found


def _first_repeat(items: list[Any]) -> int:
    seen: list[Any] = []
    for index, item in enumerate(items):
        if item in seen:
            return index
        seen.append(item)
    return 0
