"""Every file of the real contributor corpus: no crash, and verdicts compared with upstream CI.

``ci_verdict`` (prs_labels.jsonl) is instructlab-schema's TaxonomyParser plus the taxonomy CI's
attribution rule. Compared like with like (labbot's upstream-compatible rule set) the verdicts
must agree; with labbot's default policy every disagreement must be one of the documented, intended
categories, with the counts bots/triage/README.md gives.
"""

from __future__ import annotations

import re

from bots.triage.evaluation import CATEGORIES, UNEXPLAINED, Comparison, load_labels
from bots.triage.findings import FileResult
from tests.triage.conftest import REPO_ROOT, TAXONOMY

Corpus = tuple[Comparison, dict[str, FileResult]]


def test_every_file_is_checked_without_crash(corpus: Corpus) -> None:
    _comparison, results = corpus
    on_disk = {
        f"{p.relative_to(TAXONOMY / 'prs').as_posix()}"
        for p in (TAXONOMY / "prs").rglob("*")
        if p.is_file()
    }
    assert on_disk <= set(results), sorted(on_disk - set(results))[:5]
    crashed = [k for k, r in results.items() if any(f.rule == "internal/error" for f in r.findings)]
    assert crashed == []
    for result in results.values():
        for finding in result.findings:
            assert finding.line >= 1
            assert finding.column >= 1
            assert "Traceback" not in finding.message
            assert "site-packages" not in finding.message


def test_upstream_rule_set_agrees_with_ci_verdict(corpus: Corpus) -> None:
    comparison, _ = corpus
    assert comparison.files == len(load_labels(TAXONOMY)) == 1440
    assert comparison.upstream_rate >= 0.99
    assert comparison.upstream_agree == comparison.files  # measured: 1440/1440


def test_comparable_subset_agrees(corpus: Corpus) -> None:
    """Files where no policy rule fired: the default policy gives upstream's verdict."""
    comparison, _ = corpus
    assert comparison.comparable_agree == comparison.comparable


def test_policy_disagreements_fall_in_documented_categories(corpus: Corpus) -> None:
    comparison, _ = corpus
    assert UNEXPLAINED not in comparison.categories, comparison.examples.get(UNEXPLAINED, [])[:5]
    assert set(comparison.categories) <= {name for name, _rules, _why in CATEGORIES}
    disagreements = comparison.files - comparison.policy_agree
    assert sum(comparison.categories.values()) == disagreements


def _readme_table() -> dict[str, int]:
    text = (REPO_ROOT / "bots" / "triage" / "README.md").read_text(encoding="utf-8")
    section = text.split("<!-- categories -->", 2)[1]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\| `([a-z-]+)` \| (\d+) \|", section, re.M)
    }


def test_readme_lists_the_categories_with_their_counts(corpus: Corpus) -> None:
    comparison, _ = corpus
    table = _readme_table()
    assert table == {name: comparison.categories.get(name, 0) for name, _r, _w in CATEGORIES}
    text = (REPO_ROOT / "bots" / "triage" / "README.md").read_text(encoding="utf-8")
    assert f"{comparison.upstream_agree}/{comparison.files}" in text
    assert f"{comparison.policy_agree}/{comparison.files}" in text
