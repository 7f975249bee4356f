"""Every piece of text labbot shows to people: HTTP error bodies, comments, check-run output,
CLI messages. Kept together so wording stays consistent and reviewable in one place."""

from __future__ import annotations

# Webhook endpoint answers (read by GitHub's "Recent deliveries" page and by operators).
WEBHOOK_MISSING_HEADERS = "X-GitHub-Event and X-GitHub-Delivery headers are required."
WEBHOOK_BAD_HEADERS = "X-GitHub-Event or X-GitHub-Delivery is too long."
WEBHOOK_MISSING_CONTENT_TYPE = (
    "Content-Type is required; configure the webhook as application/json."
)
WEBHOOK_NOT_JSON = (
    "Only application/json deliveries are accepted; set the webhook content type to JSON."
)
WEBHOOK_UNSIGNED = "X-Hub-Signature-256 is missing; set a webhook secret on the GitHub App."
WEBHOOK_BAD_SIGNATURE = "X-Hub-Signature-256 does not match the body under the configured secret."
WEBHOOK_TOO_LARGE = "Payload exceeds {cap} bytes."
WEBHOOK_BAD_JSON = "The body is not valid JSON."
WEBHOOK_NOT_RECORDED = "The delivery could not be recorded; redeliver it from the App settings."

DELIVERY_NOT_FOUND = "No delivery with that GUID."
JOB_NOT_FOUND = "No job with that id."
TRIAGE_RUN_NOT_FOUND = "No triage run with that id."

# Jobs.
JOB_REQUEUED = (
    "The worker running attempt {attempts} stopped answering; the job was handed out again."
)
JOB_WORKER_LOST = (
    "The worker stopped answering on each of {attempts} attempts, so the job was given up. "
    "Start it again when the workers are healthy."
)

# Command line.
CLI_DEV_SECRET_NOTICE = (
    "Development mode: webhooks are verified with the development secret "
    "'{secret}' (set LABBOT_WEBHOOK_SECRET to use your own)."
)
CLI_SERVING = "labbot serving on http://{host}:{port} (database: {database}; broker: {broker})"
CLI_MIGRATED = "Database is at the latest schema revision."

# Triage on the PR: the check run and the sticky comment.
TRIAGE_CHECK_TITLE_OK = "No problems found"
TRIAGE_CHECK_TITLE = "{errors} error(s), {warnings} warning(s)"
TRIAGE_ANNOTATIONS_CUT = (
    "Showing the first {shown} of {total} findings as annotations; all of them are at {url}"
)
TRIAGE_CONFIG_PROBLEMS = (
    "`.github/labbot.yml` has problems; the defaults were used where it was wrong:"
)
TRIAGE_COMMENT_HEADER = "### labbot triage for {sha}"
TRIAGE_COMMENT_OK = "All checks passed. A triager will review the contribution next."
TRIAGE_COMMENT_MORE = "…and {count} more in the [check run]({url})."
TRIAGE_COMMENT_FOOTER = (
    "Fix the findings and push: triage runs again on every push. "
    "You can check locally first with `labbot triage --root . --diff-base origin/main`. "
    "[All findings]({url})"
)

# Commands in PR comments (the help reply is generated from the command registry).
HELP_HEADER = (
    "### labbot commands\n\nWrite a command on its own line in a comment on the pull request."
)
HELP_FOOTER = (
    "Commands inside code blocks or quotes are ignored, and so are edited comments: "
    "post a new comment to run one."
)
COMMAND_HELP = "Show this list."
COMMAND_RETEST = "Run triage again on the pull request's current head."
WHO_ANYONE = "anyone"
