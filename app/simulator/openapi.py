"""GitHub's published OpenAPI description as a request checker.

The simulator answers only what api.github.com would accept: every request is matched to one
operation of the description (method and path template), its query parameters are checked against
the declared schemas, and its JSON body against the operation's request-body schema. Body
validators are compiled lazily, once per operation: compiling all of them would cost seconds at
start-up for the handful labbot uses.

The description is OpenAPI 3.0: schemas are JSON Schema draft 4 plus ``nullable``, which the
validator class below adds.
"""

from __future__ import annotations

import json
import re
import reprlib
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

DEFAULT_OPENAPI_PATH = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "github-openapi"
    / "api.github.com.json"
)

# The URI the description is registered under, so `#/components/...` references resolve in it.
_DOC_URI = "https://api.github.com/openapi.json"
_METHODS = ("get", "post", "put", "patch", "delete", "head")
# Response schemas of the description that no real answer satisfies, so the self-check skips them.
KNOWN_BAD_RESPONSE_SCHEMAS = {
    # `account` is `allOf: [simple-user, enterprise]` here (`anyOf` everywhere else).
    "apps/list-installations": "account requires the fields of a user and of an enterprise at once",
}
_PARAM = re.compile(r"\{([^}]+)\}")


def _nullable_type(
    validator: Validator, types: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.exceptions.ValidationError]:
    if instance is None and schema.get("nullable") is True:
        return
    types = types if isinstance(types, list) else [types]
    if not any(validator.is_type(instance, t) for t in types):
        yield jsonschema.exceptions.ValidationError(
            f"{instance!r} is not of type {', '.join(map(repr, types))}"
        )


def _nullable_enum(
    validator: Validator, enums: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.exceptions.ValidationError]:
    if instance is None and schema.get("nullable") is True:
        return
    if instance not in enums:
        yield jsonschema.exceptions.ValidationError(f"{instance!r} is not one of {enums!r}")


# Draft 4 (what OpenAPI 3.0 schemas are built on) taught the `nullable` keyword.
OpenAPI30Validator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"type": _nullable_type, "enum": _nullable_enum}
)


@dataclass(frozen=True)
class QueryParam:
    name: str
    required: bool
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the description."""

    operation_id: str
    method: str  # upper case
    template: str
    docs_url: str
    category: str
    query_params: tuple[QueryParam, ...]
    body_pointer: str | None  # JSON pointer to the application/json request schema
    body_required: bool
    response_pointers: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    operation: Operation
    params: Mapping[str, str]  # path parameters, percent-decoded


@dataclass(frozen=True)
class _Route:
    regex: re.Pattern[str]
    param_names: tuple[str, ...]  # in group order (names like `enterprise-team` cannot be groups)
    literal_segments: int
    operation: Operation


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class OpenAPISpec:
    """The parsed description with a path index; thread-safe."""

    def __init__(self, path: Path = DEFAULT_OPENAPI_PATH) -> None:
        with path.open("rb") as fh:
            self.document: dict[str, Any] = json.load(fh)
        self._registry: Registry[Any] = Registry().with_resource(
            _DOC_URI, DRAFT4.create_resource(self.document)
        )
        self._routes: dict[str, dict[str, list[_Route]]] = {}
        self._templates_by_path: dict[str, set[str]] = {}
        self._validators: dict[str, Validator] = {}
        self._lock = threading.Lock()
        for template, item in self.document["paths"].items():
            self._index(template, item)

    # -- index ------------------------------------------------------------------------------

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def _index(self, template: str, item: Mapping[str, Any]) -> None:
        shared_params = item.get("parameters", [])
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = [self._resolve(p) for p in (*shared_params, *op.get("parameters", []))]
            multi = {
                p["name"] for p in params if p.get("in") == "path" and p.get("x-multi-segment")
            }
            query = tuple(
                QueryParam(p["name"], bool(p.get("required")), self._resolve(p.get("schema", {})))
                for p in params
                if p.get("in") == "query"
            )
            body_pointer = None
            body_required = False
            if "requestBody" in op:
                body = self._resolve(op["requestBody"])
                if "application/json" in body.get("content", {}):
                    body_pointer = _pointer(
                        "paths",
                        template,
                        method,
                        "requestBody",
                        "content",
                        "application/json",
                        "schema",
                    )
                    if "$ref" in op["requestBody"]:
                        body_pointer = (
                            op["requestBody"]["$ref"] + "/content/application~1json/schema"
                        )
                body_required = bool(body.get("required"))
            responses: dict[int, str] = {}
            for code, response in op.get("responses", {}).items():
                resolved = self._resolve(response)
                if code.isdigit() and "application/json" in resolved.get("content", {}):
                    base = (
                        response["$ref"]
                        if "$ref" in response
                        else _pointer("paths", template, method, "responses", code)
                    )
                    responses[int(code)] = base + "/content/application~1json/schema"
            operation = Operation(
                operation_id=op["operationId"],
                method=method.upper(),
                template=template,
                docs_url=op.get("externalDocs", {}).get("url", "https://docs.github.com/rest"),
                category=op.get("x-github", {}).get("category", ""),
                query_params=query,
                body_pointer=body_pointer,
                body_required=body_required,
                response_pointers=responses,
            )
            regex, names, literals = self._compile_template(template, multi)
            first = template.split("/")[1]
            self._routes.setdefault(method.upper(), {}).setdefault(first, []).append(
                _Route(regex, names, literals, operation)
            )
            self._templates_by_path.setdefault(first, set()).add(template)

    @staticmethod
    def _compile_template(
        template: str, multi_segment: set[str]
    ) -> tuple[re.Pattern[str], tuple[str, ...], int]:
        out: list[str] = []
        names: list[str] = []
        pos = 0
        for m in _PARAM.finditer(template):
            out.append(re.escape(template[pos : m.start()]))
            name = m.group(1)
            names.append(name)
            if name in multi_segment:
                # The root of a repository is `contents/` with an empty path.
                out.append("(.*)" if name == "path" else "(.+)")
            else:
                out.append("([^/]+)")
            pos = m.end()
        out.append(re.escape(template[pos:]))
        literals = sum(1 for seg in template.split("/") if seg and "{" not in seg)
        return re.compile("".join(out) + "/?"), tuple(names), literals

    # -- matching ---------------------------------------------------------------------------

    def match(self, method: str, raw_path: str) -> Match | None:
        """The operation a request addresses; `raw_path` is still percent-encoded."""
        first = raw_path.split("/")[1] if raw_path.count("/") >= 1 else ""
        best: tuple[int, _Route, re.Match[str]] | None = None
        for route in self._routes.get(method.upper(), {}).get(first, []):
            m = route.regex.fullmatch(raw_path)
            if m is None:
                continue
            # Prefer the template with the most literal segments (`issues/comments` over
            # `issues/{issue_number}`), then the one whose parameters span the fewest characters.
            score = route.literal_segments * 10_000 - sum(len(v) for v in m.groups())
            if best is None or score > best[0]:
                best = (score, route, m)
        if best is None:
            return None
        _, route, m = best
        params = {
            k: urllib.parse.unquote(v) for k, v in zip(route.param_names, m.groups(), strict=True)
        }
        return Match(route.operation, params)

    def path_exists(self, raw_path: str) -> bool:
        """Whether any method is described for this path (a wrong method, not a wrong path)."""
        return any(self.match(method, raw_path) is not None for method in self._routes)

    # -- validation -------------------------------------------------------------------------

    def _validator(self, pointer: str) -> Validator:
        with self._lock:
            validator = self._validators.get(pointer)
            if validator is None:
                validator = OpenAPI30Validator(
                    {"$ref": _DOC_URI + pointer}, registry=self._registry
                )
                self._validators[pointer] = validator
            return validator

    def check_query(self, operation: Operation, query: Sequence[tuple[str, str]]) -> str | None:
        """Why GitHub would refuse these query parameters, or None. Unknown names are ignored,
        as GitHub ignores them."""
        given = dict(query)
        for param in operation.query_params:
            if param.name not in given:
                if param.required:
                    return f"query parameter {param.name!r} is required"
                continue
            value = _coerce(given[param.name], param.schema)
            errors = list(OpenAPI30Validator(param.schema).iter_errors(value))
            if errors:
                return f"query parameter {param.name}={given[param.name]!r}: {errors[0].message}"
        return None

    def check_body(self, operation: Operation, body: Any, present: bool) -> str | None:
        """Why GitHub would refuse this JSON body, or None."""
        if operation.body_pointer is None:
            return None
        if not present:
            return "a JSON request body is required" if operation.body_required else None
        return self._first_error(operation.body_pointer, body, "request body")

    def check_response(self, operation: Operation, status: int, body: Any) -> str | None:
        """Why a response does not have the documented shape (the simulator's own self-check)."""
        pointer = operation.response_pointers.get(status)
        if pointer is None or operation.operation_id in KNOWN_BAD_RESPONSE_SCHEMAS:
            return None
        return self._first_error(pointer, body, "response body")

    def check_webhook(self, event: str, action: str | None, payload: Any) -> str | None:
        """Why a webhook payload does not have the shape of the description's `x-webhooks`."""
        key = event.replace("_", "-") + (f"-{action.replace('_', '-')}" if action else "")
        if key not in self.document.get("x-webhooks", {}):
            return None
        pointer = _pointer(
            "x-webhooks", key, "post", "requestBody", "content", "application/json", "schema"
        )
        return self._first_error(pointer, payload, f"{key} payload")

    def _first_error(self, pointer: str, instance: Any, what: str) -> str | None:
        error = jsonschema.exceptions.best_match(self._validator(pointer).iter_errors(instance))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path)
        return f"{what}{' at ' + where if where else ''}: {_describe(error)}"


def _describe(error: jsonschema.exceptions.ValidationError) -> str:
    """A short message: jsonschema's own repeats the whole instance, which may be 65 KB."""
    value, limit = error.instance, error.validator_value
    if error.validator == "maxItems":
        return f"has {len(value)} items, more than the maximum of {limit}"
    if error.validator == "minItems":
        return f"has {len(value)} items, fewer than the minimum of {limit}"
    if error.validator == "maxLength":
        return f"is {len(value)} characters long, more than the maximum of {limit}"
    if error.validator == "minLength":
        return f"is {len(value)} characters long, fewer than the minimum of {limit}"
    text, full = str(error.message), repr(value)
    if text.startswith(full):
        text = reprlib.repr(value) + text[len(full) :]
    return text[:500]


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """Query strings are text; check them as the declared type."""
    kind = schema.get("type")
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            return raw
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    if kind == "array":
        return raw.split(",")
    return raw
