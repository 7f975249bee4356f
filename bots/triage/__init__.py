"""Triage of taxonomy contributions: layout, YAML safety and lint, schema, examples, attribution,
knowledge document reference, personal data and content, as one pure engine.

Entry points: :func:`triage_files` (a pull request's files), :class:`RepoConfig` (per-repository
settings, ``RepoConfig.from_yaml(bytes)`` or :func:`load_repo_config`), :mod:`bots.triage.pii`.
"""

from bots.triage.config import RepoConfig, RepoConfigError, load_repo_config, upstream_compatible
from bots.triage.engine import triage_file, triage_files
from bots.triage.findings import (
    FileMode,
    FileResult,
    Finding,
    InputFile,
    Severity,
    SiblingLookup,
    TriageReport,
)

__all__ = [
    "FileMode",
    "FileResult",
    "Finding",
    "InputFile",
    "RepoConfig",
    "RepoConfigError",
    "Severity",
    "SiblingLookup",
    "TriageReport",
    "load_repo_config",
    "triage_file",
    "triage_files",
    "upstream_compatible",
]
