"""The teacher prompts: versioned YAML files under ``prompts/`` and the parser of their outputs.

Each file holds ``name``, ``version``, Jinja2 ``system`` and ``user`` templates, ``stop``
sequences and ``output``: the ``[Field]`` markers the teacher is asked to write, which of them
must be present (``required``, default all) and the accepted ``values`` of verdict-like fields.
A changed prompt gets a new version, which goes into every sample's metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

PROMPTS_DIR = Path(__file__).with_name("prompts")

# Closes a record; also the stop sequence, so usually absent from the text that comes back.
END_MARKER = "End"

_environment = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    autoescape=False,
)


class PromptError(ValueError):
    """A prompt file is missing or malformed."""


@dataclass(frozen=True)
class OutputFormat:
    """What the teacher's reply to a prompt must contain."""

    fields: tuple[str, ...]
    required: tuple[str, ...]
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def parse(self, text: str) -> dict[str, str] | None:
        """The fields of the first record in ``text``, or None when a required field is missing
        or empty or a field with fixed values holds none of them. Never raises."""
        markers = "|".join(re.escape(name) for name in (*self.fields, END_MARKER))
        tokens = list(re.finditer(rf"\[\s*({markers})\s*\]", text, flags=re.IGNORECASE))
        canonical = {name.lower(): name for name in self.fields}
        found: dict[str, str] = {}
        for position, token in enumerate(tokens):
            name = canonical.get(token.group(1).lower())
            if name is None:  # the end marker
                if found:
                    break
                continue
            if name in found:  # a second record starts: the first is complete
                break
            following = tokens[position + 1].start() if position + 1 < len(tokens) else len(text)
            found[name] = text[token.end() : following].strip()
        for name, accepted in self.values.items():
            if name in found:
                value = _leading_value(found[name], accepted)
                if value is None:
                    return None
                found[name] = value
        if any(not found.get(name) for name in self.required):
            return None
        return found


def _leading_value(text: str, accepted: tuple[str, ...]) -> str | None:
    """The accepted value a field starts with, ignoring markdown emphasis and case:
    "**2**", "B) Evaporation", "yes." all count."""
    match = re.match(r"[\s*_`'\"(]*([A-Za-z0-9]+)", text)
    if match is None:
        return None
    word = match.group(1).upper()
    return next((value for value in accepted if value.upper() == word), None)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    stop: tuple[str, ...]
    output: OutputFormat
    system_template: jinja2.Template
    user_template: jinja2.Template

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        """The chat turns for these variables; a variable the template uses but that is not
        given raises ``jinja2.UndefinedError``."""
        turns = [
            ("system", self.system_template.render(**variables).strip()),
            ("user", self.user_template.render(**variables).strip()),
        ]
        return [{"role": role, "content": content} for role, content in turns if content]

    def parse(self, text: str) -> dict[str, str] | None:
        return self.output.parse(text)


@cache
def load(name: str, directory: Path | None = None) -> PromptTemplate:
    """The prompt ``name`` from ``directory`` (SDG's own by default; evaluation keeps its
    judge prompt beside its code)."""
    path = (directory or PROMPTS_DIR) / f"{name}.yaml"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PromptError(f"prompt {name!r}: {exc}") from exc
    if not isinstance(document, dict) or document.get("name") != name:
        raise PromptError(f"prompt {name!r}: {path.name} must be a mapping with name: {name}")
    try:
        version = document["version"]
        output = document["output"]
        fields = tuple(str(item) for item in output["fields"])
        required = tuple(str(item) for item in output.get("required", fields))
        values = {
            str(key): tuple(str(item) for item in accepted)
            for key, accepted in (output.get("values") or {}).items()
        }
        template = PromptTemplate(
            name=name,
            version=version,
            stop=tuple(str(item) for item in document.get("stop") or ()),
            output=OutputFormat(fields=fields, required=required, values=values),
            system_template=_environment.from_string(document.get("system") or ""),
            user_template=_environment.from_string(document["user"]),
        )
    except (KeyError, TypeError, AttributeError, jinja2.TemplateSyntaxError) as exc:
        raise PromptError(f"prompt {name!r}: malformed {path.name}: {exc!r}") from exc
    if not isinstance(version, int) or isinstance(version, bool):
        raise PromptError(f"prompt {name!r}: version must be an integer")
    if unknown := (set(required) | set(values)) - set(fields):
        raise PromptError(f"prompt {name!r}: output names unknown fields {sorted(unknown)}")
    return template


def available() -> list[str]:
    """Names of the prompt files shipped with the package."""
    return sorted(path.stem for path in PROMPTS_DIR.glob("*.yaml"))
