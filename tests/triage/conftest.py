"""Fixtures for the triage tests: the shared data beside the project and one run of the engine
over the labelled contributor corpus, shared by the tests that need it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.triage.evaluation import Comparison, evaluate
from bots.triage.findings import FileResult

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
TAXONOMY = SHARED / "data" / "taxonomy"
INVALID = SHARED / "data" / "invalid"
PII_DATA = SHARED / "data" / "pii"

GOOD_ATTRIBUTION = (
    b"Title of work: Example\n"
    b"Link to work: https://en.wikipedia.org/wiki/Example\n"
    b"Revision: https://en.wikipedia.org/w/index.php?title=Example&oldid=1\n"
    b"License of the work: CC-BY-SA-4.0\n"
    b"Creator names: Wikipedia Authors\n"
)


@pytest.fixture(scope="session")
def corpus() -> tuple[Comparison, dict[str, FileResult]]:
    """(comparison with ci_verdict, policy-mode results keyed by '<pr>/<path>')."""
    return evaluate(TAXONOMY)


def corpus_file(key: str) -> bytes:
    return (TAXONOMY / "prs" / key).read_bytes()
