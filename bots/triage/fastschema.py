"""A compiled validator for the JSON Schema subset the taxonomy schemas use.

jsonschema interprets a schema anew for every document; taxonomy schemas use a dozen keywords, so
compiling them into closures once makes validation several times faster. The errors carry what
``jsonschema.ValidationError`` carries for the translation in ``schema.py`` (keyword, keyword
value, instance, path, schema node). A schema using any other keyword is not compiled (the caller
uses jsonschema), and tests/triage/test_schema.py checks both give the same errors on the corpus
and on mutated documents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Keywords that only annotate.
_ANNOTATIONS = frozenset(
    {"title", "description", "examples", "$comment", "deprecated", "default", "$schema", "$id"}
)
_SUPPORTED = _ANNOTATIONS | {
    "type",
    "required",
    "properties",
    "unevaluatedProperties",
    "items",
    "minItems",
    "uniqueItems",
    "minLength",
    "const",
    "$ref",
}

Path = tuple[Any, ...]


@dataclass(frozen=True)
class SchemaError:
    validator: str
    validator_value: Any
    instance: Any
    absolute_path: Path
    schema: Mapping[str, Any]
    message: str


Check = Callable[[Any, Path, list[SchemaError]], None]


class Unsupported(Exception):
    """The schema uses a keyword this compiler does not know."""


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float)
    raise Unsupported(name)


def _freeze(value: Any) -> Any:
    """A hashable form with JSON Schema equality: true is not 1, 1 is 1.0."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null",)
    if isinstance(value, list):
        return ("array", tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("object", frozenset((k, _freeze(v)) for k, v in value.items()))
    return ("other", repr(value))


def compile_schema(
    schema: Mapping[str, Any], resolve: Callable[[str], Mapping[str, Any]]
) -> Callable[[Any], list[SchemaError]]:
    """A function returning the errors of a document; raises :class:`Unsupported`."""
    check = _compile(schema, resolve)

    def validate(instance: Any) -> list[SchemaError]:
        errors: list[SchemaError] = []
        check(instance, (), errors)
        return errors

    return validate


def _evaluated(schema: Mapping[str, Any], resolve: Callable[[str], Mapping[str, Any]]) -> set[Any]:
    names = set(schema.get("properties", {}))
    ref = schema.get("$ref")
    if isinstance(ref, str):
        names |= _evaluated(resolve(ref), resolve)
    return names


def _compile(schema: Mapping[str, Any], resolve: Callable[[str], Mapping[str, Any]]) -> Check:
    unknown = set(schema) - _SUPPORTED
    if unknown:
        raise Unsupported(", ".join(sorted(unknown)))
    checks: list[Check] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        checks.append(_keyword(keyword, value, schema, resolve))

    def check(instance: Any, path: Path, errors: list[SchemaError]) -> None:
        for one in checks:
            one(instance, path, errors)

    return check


def _keyword(  # noqa: C901 - one branch per keyword
    keyword: str,
    value: Any,
    schema: Mapping[str, Any],
    resolve: Callable[[str], Mapping[str, Any]],
) -> Check:
    if keyword == "type":
        names = [value] if isinstance(value, str) else list(value)
        for name in names:
            _is_type(None, name)  # refuses unknown type names now, not while validating

        def check_type(instance: Any, path: Path, errors: list[SchemaError]) -> None:
            if not any(_is_type(instance, name) for name in names):
                message = f"{instance!r} is not of type {', '.join(map(repr, names))}"
                errors.append(SchemaError("type", value, instance, path, schema, message))

        return check_type
    if keyword == "required":
        required = list(value)

        def check_required(instance: Any, path: Path, errors: list[SchemaError]) -> None:
            if isinstance(instance, dict):
                for name in required:
                    if name not in instance:
                        message = f"{name!r} is a required property"
                        errors.append(
                            SchemaError("required", required, instance, path, schema, message)
                        )

        return check_required
    if keyword == "properties":
        children = {name: _compile(sub, resolve) for name, sub in value.items()}

        def check_properties(instance: Any, path: Path, errors: list[SchemaError]) -> None:
            if isinstance(instance, dict):
                for name, child in children.items():
                    if name in instance:
                        child(instance[name], (*path, name), errors)

        return check_properties
    if keyword == "unevaluatedProperties":
        if value is not False:
            raise Unsupported("unevaluatedProperties other than false")
        evaluated = _evaluated(schema, resolve)

        def check_unevaluated(instance: Any, path: Path, errors: list[SchemaError]) -> None:
            if isinstance(instance, dict):
                extra = [k for k in instance if k not in evaluated]
                if extra:
                    message = f"Unevaluated properties are not allowed ({extra!r} unexpected)"
                    errors.append(
                        SchemaError("unevaluatedProperties", False, instance, path, schema, message)
                    )

        return check_unevaluated
    if keyword == "items":
        if not isinstance(value, Mapping):
            raise Unsupported("items other than a schema")
        child = _compile(value, resolve)

        def check_items(instance: Any, path: Path, errors: list[SchemaError]) -> None:
            if isinstance(instance, list):
                for index, item in enumerate(instance):
                    child(item, (*path, index), errors)

        return check_items
    if keyword in ("minItems", "minLength"):
        minimum = int(value)
        kind = list if keyword == "minItems" else str

        def check_minimum(instance: Any, path: Path, errors: list[SchemaError]) -> None:
            if isinstance(instance, kind) and len(instance) < minimum:
                message = f"{instance!r} is too short"
                errors.append(SchemaError(keyword, minimum, instance, path, schema, message))

        return check_minimum
    if keyword == "uniqueItems":

        def check_unique(instance: Any, path: Path, errors: list[SchemaError]) -> None:
            if value and isinstance(instance, list):
                frozen = [_freeze(item) for item in instance]
                if len(set(frozen)) != len(frozen):
                    message = f"{instance!r} has non-unique elements"
                    errors.append(SchemaError("uniqueItems", True, instance, path, schema, message))

        return check_unique
    if keyword == "const":
        expected = _freeze(value)

        def check_const(instance: Any, path: Path, errors: list[SchemaError]) -> None:
            if _freeze(instance) != expected:
                message = f"{value!r} was expected"
                errors.append(SchemaError("const", value, instance, path, schema, message))

        return check_const
    if keyword == "$ref":
        if not isinstance(value, str) or value.startswith("#"):
            raise Unsupported("$ref other than a sibling file")
        return _compile(resolve(value), resolve)
    raise Unsupported(keyword)
