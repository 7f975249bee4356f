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

# Command line.
CLI_DEV_SECRET_NOTICE = (
    "Development mode: webhooks are verified with the development secret "
    "'{secret}' (set LABBOT_WEBHOOK_SECRET to use your own)."
)
CLI_SERVING = "labbot serving on http://{host}:{port} (database: {database}; broker: {broker})"
CLI_MIGRATED = "Database is at the latest schema revision."
