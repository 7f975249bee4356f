"""Triage speed on the real contributor corpus, next to the upstream validator, in one run.

    .venv/bin/python bench/triage_corpus.py [--taxonomy DIR] [--repeat N] [--with-yq]

Ours: every check (layout, YAML safety, lint, schema, examples, attribution, document, PII,
content) over every file of ``prs/`` (each PR's files together, reading the files included),
single process. Upstream: ``instructlab.schema.taxonomy.TaxonomyParser(schema_version=0)`` over
the same files: with yamllint on PATH as the taxonomy CI runs it (it shells out to yamllint for
every version > 1 file), and without it (lint silently skipped: a lower bound, not a like-for-like
comparison). Upstream also shells out to ``yq`` per schema error for line numbers; Debian's
``yq`` is another program that fails (every error lands on 1:1) and costs a process per error,
so it is disabled unless --with-yq. Prints ms per file for each and the ratios, then the verdict
agreement and how many real qna.yaml files get a PII finding.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bots.triage import InputFile, RepoConfig, triage_files  # noqa: E402
from bots.triage import pii as pii_module  # noqa: E402
from bots.triage.content import iter_texts  # noqa: E402
from bots.triage.evaluation import CATEGORIES, evaluate  # noqa: E402
from bots.triage.yamlload import load_yaml  # noqa: E402

DEFAULT_TAXONOMY = ROOT.parent / "shared" / "data" / "taxonomy"


def corpus(taxonomy: Path) -> list[list[Path]]:
    prs = sorted((taxonomy / "prs").iterdir(), key=lambda p: int(p.name))
    return [sorted(p for p in pr.rglob("*") if p.is_file()) for pr in prs]


def run_ours(batches: list[list[Path]], roots: list[Path]) -> float:
    pii_module._phone_valid.cache_clear()  # no help from an earlier pass
    config = RepoConfig()
    started = time.perf_counter()
    for files, root in zip(batches, roots, strict=True):
        inputs = [InputFile(p.relative_to(root).as_posix(), p.read_bytes()) for p in files]
        triage_files(inputs, config)
    return time.perf_counter() - started


def run_upstream(files: list[Path], *, yamllint: bool, yq: bool) -> float:
    from instructlab.schema.taxonomy import TaxonomyParser, TaxonomyReadingException

    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = (
        bin_dir + os.pathsep + path
        if yamllint
        else os.pathsep.join(
            p for p in path.split(os.pathsep) if shutil.which("yamllint", path=p) is None
        )
    )
    try:
        parser = TaxonomyParser(schema_version=0, message_format="LOGGING")
        parser.yq_available = yq
        started = time.perf_counter()
        for file in files:
            try:
                parser.parse(file)
            except TaxonomyReadingException:
                pass
        return time.perf_counter() - started
    finally:
        os.environ["PATH"] = path


def pii_report(taxonomy: Path) -> tuple[int, int, list[str]]:
    files = sorted((taxonomy / "prs").rglob("qna.yaml"))
    flagged: list[str] = []
    for path in files:
        loaded = load_yaml(path.read_bytes())
        if not (loaded.ok and isinstance(loaded.data, dict)):
            continue
        kinds = sorted(
            {hit.entity for _p, text in iter_texts(loaded.data) for hit in pii_module.scan(text)}
        )
        if kinds:
            flagged.append(f"{path.relative_to(taxonomy / 'prs')}: {', '.join(kinds)}")
    return len(files), len(flagged), flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--taxonomy", type=Path, default=DEFAULT_TAXONOMY)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-yq", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # upstream logs every finding

    batches = corpus(args.taxonomy)
    roots = sorted((args.taxonomy / "prs").iterdir(), key=lambda p: int(p.name))
    files = [f for batch in batches for f in batch]
    count = len(files)
    print(f"corpus: {count} files in {len(batches)} pull requests ({args.taxonomy})")
    run_ours(batches[:50], roots[:50])  # imports and schema compilation, outside the timing

    ours = statistics.median(run_ours(batches, roots) for _ in range(args.repeat))
    with_lint = statistics.median(
        run_upstream(files, yamllint=True, yq=args.with_yq) for _ in range(args.repeat)
    )
    without_lint = statistics.median(
        run_upstream(files, yamllint=False, yq=False) for _ in range(args.repeat)
    )
    per = 1000 / count
    print(f"labbot triage, all checks incl. PII and lint:   {ours * per:7.3f} ms/file")
    print(
        f"upstream TaxonomyParser + yamllint (CI){' + yq' if args.with_yq else ''}:  "
        f"{with_lint * per:7.3f} ms/file   ratio {with_lint / ours:5.1f}x"
    )
    print(
        f"upstream TaxonomyParser, no yamllint (no lint):   {without_lint * per:7.3f} ms/file"
        f"   ratio {without_lint / ours:5.1f}x"
    )

    comparison, _results = evaluate(args.taxonomy)
    print(
        f"verdict vs ci_verdict: upstream rule set {comparison.upstream_agree}/{comparison.files}"
        f", default policy {comparison.policy_agree}/{comparison.files}"
        f" (comparable subset {comparison.comparable_agree}/{comparison.comparable})"
    )
    for name, _rules, why in CATEGORIES:
        print(f"  {name:20} {comparison.categories.get(name, 0):4}  {why}")

    total, flagged, examples = pii_report(args.taxonomy)
    print(f"PII: {flagged} of {total} real qna.yaml files have a finding ({flagged / total:.1%})")
    for line in examples:
        print(f"  {line}")


if __name__ == "__main__":
    main()
