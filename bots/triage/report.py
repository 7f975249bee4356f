"""How a triage report is shown on GitHub: check-run output with annotations, the sticky
comment, and which labels the PR should carry."""

from __future__ import annotations

from app.github.port import ANNOTATIONS_PER_REQUEST, Annotation, CheckRunOutput
from bots import messages
from bots.markdown import code, escape
from bots.triage import Finding, Severity, TriageReport
from bots.triage.config import LabelNames

# Annotations past this many stay on the dashboard: a few hundred already bury a PR.
MAX_ANNOTATIONS = 10 * ANNOTATIONS_PER_REQUEST
COMMENT_FINDINGS = 30


def check_run_output(
    report: TriageReport, config_findings: list[Finding], details_url: str
) -> CheckRunOutput:
    annotations = [
        _annotation(result.path, finding) for result in report.files for finding in result.findings
    ]
    title = (
        messages.TRIAGE_CHECK_TITLE.format(errors=report.errors, warnings=report.warnings)
        if report.errors or report.warnings
        else messages.TRIAGE_CHECK_TITLE_OK
    )
    summary = [escape(report.blocking_sentence())]
    if len(annotations) > MAX_ANNOTATIONS:
        summary.append(
            messages.TRIAGE_ANNOTATIONS_CUT.format(
                shown=MAX_ANNOTATIONS, total=len(annotations), url=details_url
            )
        )
    if config_findings:
        summary.append(messages.TRIAGE_CONFIG_PROBLEMS)
        summary.extend(f"- line {f.line}: {escape(f.message)}" for f in config_findings)
    return CheckRunOutput(
        title=title,
        summary="\n\n".join(summary),
        text=_findings_table(report),
        annotations=annotations[:MAX_ANNOTATIONS],
    )


def _annotation(path: str, finding: Finding) -> Annotation:
    same_line = finding.end_line in (None, finding.line)
    message = finding.message if not finding.hint else f"{finding.message}\n{finding.hint}"
    return Annotation(
        path=path,
        start_line=finding.line,
        end_line=finding.end_line or finding.line,
        level="failure" if finding.severity is Severity.error else "warning",
        message=message,
        title=finding.rule,
        # GitHub accepts columns only on single-line annotations.
        start_column=finding.column if same_line else None,
        end_column=(finding.end_column or finding.column) if same_line else None,
    )


def _findings_table(report: TriageReport) -> str:
    rows = ["| file | line | severity | rule | message |", "|---|---|---|---|---|"]
    for result in report.files:
        for finding in result.findings:
            rows.append(
                f"| {code(result.path)} | {finding.line}:{finding.column} | "
                f"{finding.severity.value} | {code(finding.rule)} | {escape(finding.message)} |"
            )
    return "\n".join(rows) if len(rows) > 2 else ""


def comment_body(report: TriageReport, head_sha: str, details_url: str) -> str:
    lines = [messages.TRIAGE_COMMENT_HEADER.format(sha=code(head_sha[:12])), ""]
    if report.ok and not report.warnings:
        lines.append(messages.TRIAGE_COMMENT_OK)
    else:
        lines.append(escape(report.blocking_sentence()))
        lines.append("")
        shown = 0
        total = report.errors + report.warnings
        for result in report.files:
            for finding in result.findings:
                if shown == COMMENT_FINDINGS:
                    break
                icon = "❌" if finding.severity is Severity.error else "⚠️"
                hint = f" — {escape(finding.hint)}" if finding.hint else ""
                lines.append(
                    f"- {icon} {code(f'{result.path}:{finding.line}')} "
                    f"{escape(finding.message)}{hint}"
                )
                shown += 1
        if total > shown:
            lines.append(messages.TRIAGE_COMMENT_MORE.format(count=total - shown, url=details_url))
    lines += ["", messages.TRIAGE_COMMENT_FOOTER.format(url=details_url)]
    return "\n".join(lines)


def wanted_labels(
    names: LabelNames, report: TriageReport, current: set[str]
) -> tuple[set[str], set[str]]:
    """(labels to add, labels to remove): the kind labels of the PR's files, and one triage
    state label; labels labbot does not own are left alone."""
    wanted = {names.skill if kind == "skill" else names.knowledge for kind in report.kinds}
    state = names.triage_requested_changes if report.errors else names.triage_needed
    other_state = names.triage_needed if report.errors else names.triage_requested_changes
    wanted.add(state)
    return wanted - current, {other_state} & current
