"""Per-repository configuration: ``.github/labbot.yml`` in the taxonomy repository.

Everything has a default, so a repository without the file gets the documented policy. The file
may hold sections for other parts of labbot; this module reads ``labels`` and ``triage`` and
ignores the rest. Example::

    labels:
      skill: skill
      knowledge: knowledge
      triage_needed: triage-needed
      triage_requested_changes: triage-requested-changes
      build_ready: ready-for-training   # the label that starts training, then evaluation
    triage:
      min_examples:
        skill: 3                 # or per version: {default: 3, 1: 3, 2: 5}
        knowledge_contexts: 5
        knowledge_qna: 3
      licenses: [CC0-1.0, CC-BY-4.0, CC-BY-SA-4.0]
      avoid_topics: [gambling, "explicit violence"]
      pii:
        allow: ["press@redhat.com", "*@example.edu"]
      rules:
        content/*: off           # error | warning | off, by rule id or glob
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from bots.triage import messages
from bots.triage.findings import Finding, Severity, make

CONFIG_PATH = ".github/labbot.yml"

DEFAULT_LICENSES = (
    "CC0-1.0",
    "CDLA-Permissive-2.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "Apache-2.0",
    "MIT",
)

PiiEntity = Literal[
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "STREET_ADDRESS",
]
PII_ENTITIES: tuple[PiiEntity, ...] = get_args(PiiEntity)
# Card, SSN and IBAN numbers pass a checksum and are never harmless: errors. E-mail addresses,
# phones, IPs and street addresses are often public contact data: warnings.
PII_ERROR_ENTITIES: tuple[PiiEntity, ...] = ("CREDIT_CARD", "US_SSN", "IBAN_CODE")

# Phrases that give away an answer pasted from a chat assistant.
DEFAULT_LLM_PHRASES = (
    "as an ai language model",
    "as an ai assistant",
    "as a large language model",
    "as an ai developed by",
    "i'm just an ai",
    "i am just an ai",
    "i hope this helps",
    "hope this helps!",
    "i hope this information helps",
    "as of my last knowledge update",
    "as of my knowledge cutoff",
    "as of my last update",
    "my knowledge cutoff",
    "i don't have personal opinions",
    "i do not have personal opinions",
    "i don't have access to real-time",
    "i cannot browse the internet",
    "let me know if you have any other questions",
    "let me know if you need anything else",
    "feel free to ask if you have",
    "is there anything else i can help you with",
    "regenerate response",
    "certainly! here is",
    "certainly! here's",
    "sure! here is",
    "sure! here's",
    "i apologize for the confusion",
    "i'm sorry, but i can't",
    "i'm sorry, but as an ai",
)

# Outside compositional_skills/ and knowledge/, these maintainer-owned paths only get a warning;
# anything else outside the roots is an unexpected file.
DEFAULT_MAINTAINER_PATHS = (
    "README.md",
    "CONTRIBUTING.md",
    "CODE_OF_CONDUCT.md",
    "SECURITY.md",
    "GOVERNANCE.md",
    "MAINTAINERS.md",
    "LICENSE",
    "NOTICE",
    "CODEOWNERS",
    "Makefile",
    ".gitignore",
    ".gitattributes",
    ".yamllint",
    ".markdownlint*",
    ".pre-commit-config.yaml",
    ".github/*",
    "docs/*",
    "scripts/*",
)

RuleSetting = Literal["error", "warning", "off"]


def _setting(value: Any) -> Any:
    # YAML 1.1 reads an unquoted off as false
    return "off" if value is False else value


Setting = Annotated[RuleSetting, BeforeValidator(_setting)]


def _per_version(value: Any) -> Any:
    """An int applies to every version; a mapping may name versions and a default."""
    if isinstance(value, bool):
        raise ValueError(messages.CONFIG_PER_VERSION)
    if isinstance(value, int):
        return {"default": value}
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key).lower().removeprefix("v")
            if name != "default" and not name.isdigit():
                raise ValueError(messages.CONFIG_UNKNOWN_VERSION.format(key=repr(key)))
            out[name] = item
        out.setdefault("default", None)
        return out
    return value


PerVersion = Annotated[dict[str, int | None], BeforeValidator(_per_version)]


def _at_least_zero(mapping: dict[str, int | None]) -> dict[str, int | None]:
    for value in mapping.values():
        if value is not None and value < 0:
            raise ValueError(messages.CONFIG_NEGATIVE)
    return mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _minimum(value: int) -> Callable[[], dict[str, int | None]]:
    return lambda: {"default": value}


class MinExamples(_Strict):
    skill: PerVersion = Field(default_factory=_minimum(3))
    knowledge_contexts: PerVersion = Field(default_factory=_minimum(5))
    knowledge_qna: PerVersion = Field(default_factory=_minimum(3))

    _check = field_validator("skill", "knowledge_contexts", "knowledge_qna")(_at_least_zero)

    @staticmethod
    def pick(mapping: dict[str, int | None], version: int | None) -> int:
        value = mapping.get(str(version)) if version is not None else None
        if value is None:
            value = mapping.get("default")
        return value or 0


class PiiConfig(_Strict):
    enabled: bool = True
    entities: list[PiiEntity] = Field(default_factory=lambda: list(PII_ENTITIES))
    error_entities: list[PiiEntity] = Field(default_factory=lambda: list(PII_ERROR_ENTITIES))
    # Values never reported: exact text or globs, case-insensitive ("*@redhat.com").
    allow: list[str] = Field(default_factory=list)
    min_score: float = Field(0.5, ge=0.0, le=1.0)

    def allowed(self, value: str) -> bool:
        folded = value.casefold()
        return any(fnmatch.fnmatchcase(folded, pattern.casefold()) for pattern in self.allow)


class Limits(_Strict):
    max_file_bytes: int = Field(256 * 1024, gt=0)
    max_pr_bytes: int = Field(8 * 1024 * 1024, gt=0)
    max_files: int = Field(3000, gt=0)
    max_alias_nodes: int = Field(100_000, gt=0)
    max_depth: int = Field(64, gt=1, le=200)
    max_text_chars: int = Field(6000, gt=0)


class LabelNames(_Strict):
    """Label names, defaults from the upstream triage workflow. The first four labbot sets from
    triage; triagers apply ``generate_ready`` and ``build_ready`` to start jobs; labbot sets
    and clears the rest."""

    skill: str = "skill"
    knowledge: str = "knowledge"
    triage_needed: str = "triage-needed"
    triage_requested_changes: str = "triage-requested-changes"
    generate_ready: str = "precheck-generate-ready"
    build_ready: str = "community-build-ready"
    sdg_unsuccessful: str = "sdg-unsuccessful"
    build_running: str = "cmb-running"
    needs_ok_to_test: str = "needs-ok-to-test"


class TriageConfig(_Strict):
    min_examples: MinExamples = Field(default_factory=MinExamples)
    licenses: list[str] = Field(default_factory=lambda: list(DEFAULT_LICENSES))
    avoid_topics: list[str] = Field(default_factory=list)
    llm_phrases: list[str] = Field(default_factory=lambda: list(DEFAULT_LLM_PHRASES))
    pii: PiiConfig = Field(default_factory=PiiConfig)
    rules: dict[str, Setting] = Field(default_factory=dict)
    # Upstream does not lint version 1 files; neither do we unless asked.
    lint_min_version: int = 2
    accepted_roots: list[str] = Field(default_factory=lambda: ["compositional_skills", "knowledge"])
    refused_roots: list[str] = Field(default_factory=lambda: ["foundational_skills"])
    maintainer_paths: list[str] = Field(default_factory=lambda: list(DEFAULT_MAINTAINER_PATHS))
    limits: Limits = Field(default_factory=Limits)

    @field_validator("licenses")
    @classmethod
    def _spdx(cls, value: list[str]) -> list[str]:
        from bots.triage.attribution import normalize_license

        return [normalize_license(item) or item for item in value]

    @field_validator("avoid_topics", "llm_phrases")
    @classmethod
    def _no_blank(cls, value: list[str]) -> list[str]:
        return [item.strip() for item in value if item.strip()]


class RepoConfig(BaseModel):
    """The whole of ``.github/labbot.yml`` as far as triage is concerned."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    labels: LabelNames = Field(default_factory=LabelNames)
    triage: TriageConfig = Field(default_factory=TriageConfig)

    @classmethod
    def from_yaml(cls, data: bytes | str | None) -> RepoConfig:
        """Parse ``.github/labbot.yml``; raises :class:`RepoConfigError` on any problem."""
        config, findings = load_repo_config(data)
        errors = [f for f in findings if f.severity is Severity.error]
        if errors:
            raise RepoConfigError(errors)
        return config

    def setting(self, rule: str) -> RuleSetting | None:
        """The severity override for a rule id (exact ids win over globs)."""
        rules = self.triage.rules
        if rule in rules:
            return rules[rule]
        best: tuple[int, RuleSetting] | None = None
        for pattern, setting in rules.items():
            if fnmatch.fnmatchcase(rule, pattern) and (best is None or len(pattern) > best[0]):
                best = (len(pattern), setting)
        return best[1] if best else None


class RepoConfigError(ValueError):
    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("; ".join(f.message for f in findings))
        self.findings = findings


def upstream_compatible() -> RepoConfig:
    """The rule set of the upstream CI (schema, yamllint for version > 1, attribution.txt
    present): labbot's own policy rules are switched off. Used to compare verdicts."""
    return RepoConfig(
        triage=TriageConfig(
            min_examples=MinExamples(skill=0, knowledge_contexts=0, knowledge_qna=0),
            pii=PiiConfig(enabled=False),
            limits=Limits(max_file_bytes=1 << 30, max_pr_bytes=1 << 40, max_files=1 << 20),
            rules={
                "layout/root": "off",
                "layout/path-style": "off",
                "examples/*": "off",
                "document/*": "off",
                "content/*": "off",
                "yaml/bom": "off",
                "yaml/duplicate-key": "off",
                "yaml/empty": "warning",
            },
        )
    )


_LOC_INDEX = re.compile(r"^\d+$")


def load_repo_config(data: bytes | str | None) -> tuple[RepoConfig, list[Finding]]:
    """The configuration and the problems found in it; never raises. On problems the defaults
    are used, so a broken config file cannot switch checks off."""
    if data is None:
        return RepoConfig(), []
    from bots.triage.yamlload import load_yaml

    raw = data.encode("utf-8") if isinstance(data, str) else data
    loaded = load_yaml(raw)
    errors = [f for f in loaded.findings if f.severity is Severity.error]
    if errors:
        return RepoConfig(), [
            make("config/invalid", f.line, f.column, problem=f.message) for f in errors
        ]
    if loaded.empty:
        return RepoConfig(), []
    if not isinstance(loaded.data, dict):
        return RepoConfig(), [make("config/invalid", 1, 1, problem=messages.CONFIG_NOT_MAPPING)]
    try:
        return RepoConfig.model_validate(loaded.data), []
    except ValidationError as exc:
        findings = []
        for error in exc.errors():
            loc = tuple(
                int(p) if isinstance(p, str) and _LOC_INDEX.match(p) else p for p in error["loc"]
            )
            # pydantic adds the union branch or validator name to the location; drop what the
            # file does not contain.
            while loc and loc not in loaded.value_pos and loc not in loaded.key_pos:
                loc = loc[:-1]
            where = ".".join(str(p) for p in error["loc"] if isinstance(p, str | int))
            problem = f"{where}: {error['msg']}" if where else str(error["msg"])
            findings.append(
                make("config/invalid", *loaded.position(loc, key=True), problem=problem)
            )
        findings.sort(key=lambda f: (f.line, f.column))
        return RepoConfig(), findings


__all__ = [
    "CONFIG_PATH",
    "DEFAULT_LICENSES",
    "LabelNames",
    "Limits",
    "MinExamples",
    "PiiConfig",
    "RepoConfig",
    "RepoConfigError",
    "TriageConfig",
    "load_repo_config",
    "upstream_compatible",
]
