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
JOB_LOG_UNAVAILABLE = "The log is in the artifact store, which did not answer."
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

JOB_TIME_LIMIT = "The job ran past its time limit of {limit} and was stopped."
JOB_STOPPED_AFTER_GRACE = "The job did not stop when asked, so it was stopped."
JOB_CANCELLED_BY = "Cancelled by {user}."
JOB_CANCELLED_LABEL = "Cancelled: the `{label}` label was removed."
JOB_CANCELLED_CLOSED = "Cancelled: the pull request was closed."
JOB_CANCELLED_DRAFT = "Cancelled: the pull request was converted to a draft."
JOB_SUPERSEDED = "Superseded: the pull request's head moved to {sha}."
JOB_NO_WORKER = (
    "No worker serves the `{queue}` queue, so this job cannot run here: this labbot has no GPU "
    "worker for it configured. An operator can start one with `labbot worker --queues {queue}`."
)
JOB_STAGE_UNAVAILABLE = "This labbot version cannot run {kind} jobs yet."
JOB_ARTIFACTS_UNSTORED = (
    "The job ran but its results could not be stored ({error}); retry it once the artifact "
    "store is reachable."
)
JOB_NO_TARGET = "The job's pull request is no longer known to labbot."
JOB_CRASHED = "The job stopped with an error ({error}). Its log has the details."

# A job's check run (labbot/<kind>), created when queued and updated in place.
JOB_CHECK_TITLE = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "superseded": "Superseded by a newer push",
}
JOB_CHECK_QUEUED = "Queued for the `{queue}` workers (requested by {who})."
JOB_CHECK_PROGRESS = "{stage}: {percent}"
JOB_CHECK_ETA = " · about {eta} left"
JOB_CHECK_RETRY = "To run it again, comment `{command}` on the pull request."
JOB_CHECK_DETAILS = "[Job page and log]({url})"

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
WELCOME_SUMMARY = "<details><summary>Working with labbot</summary>"
WELCOME_INTRO = (
    "Thanks for contributing! labbot checks every push of this pull request and updates this "
    "comment. Triagers start data generation, training and evaluation with these commands (a "
    "comment with the command on its own line) or labels:"
)
COMMAND_HELP = "Show this list."
COMMAND_RETEST = "Run triage again on the pull request's current head."
COMMAND_PRECHECK = (
    "Ask the current model the seed questions and show its answers beside the contributor's."
)
COMMAND_GENERATE = "Generate synthetic training data from the seed examples."
COMMAND_TRAIN = "Train on the generated data, then evaluate the trained model."
COMMAND_BENCH = "Evaluate the trained model against the base model (PR-bench, PR-MMLU)."
COMMAND_CANCEL = "Cancel this pull request's running and queued jobs."
COMMAND_OK_TO_TEST = (
    "Allow jobs on a first-time contributor's pull request, for its current head commit."
)
WHO_ANYONE = "anyone"
WHO_TRUSTED = "triagers"

# Labels triagers apply (the welcome and help texts list them).
LABEL_GENERATE_READY = "generates synthetic data (like `/lab generate`); removing it cancels"
LABEL_BUILD_READY = "trains then evaluates (like `/lab train`); removing it cancels"

# Short replies when a request is refused (one sticky notice comment per pull request).
REFUSED_UNTRUSTED = (
    "@{user}: `{action}` can be run by people with triage permission or higher on {repo}{teams}."
)
REFUSED_TEAMS = ", or members of {teams}"
REFUSED_PERMISSION_UNKNOWN = (
    "@{user}: `{action}` was not run: GitHub did not answer whether you may run it. Try again in "
    "a few minutes."
)
REFUSED_NEEDS_OK_TO_TEST = (
    "`{action}` was not run: this pull request's author is not yet trusted here, so a triager "
    "needs to review commit {sha} and comment `/lab ok-to-test` first."
)
REFUSED_DRAFT = "`{action}` was not run: the pull request is a draft. Mark it ready for review."
REFUSED_CLOSED = "`{action}` was not run: the pull request is closed."
REFUSED_NO_DATA = (
    "`{action}` was not run: there is no generated data for commit {sha} yet. "
    "Run `/lab generate` first."
)
REFUSED_NO_MODEL = (
    "`{action}` was not run: there is no trained model for commit {sha} yet. "
    "Run `/lab train` first."
)
NOTICE_NO_WORKER = "`{action}` could not start: " + JOB_NO_WORKER
OK_TO_TEST_RECORDED = (
    "@{user} marked commit {sha} ok to test: triagers can now start jobs on it. A new push "
    "needs a new `/lab ok-to-test`."
)
CANCELLED_NOTHING = "@{user}: there was nothing to cancel."
CANCELLED_SOME = "@{user} cancelled {count} job(s)."

# The sdg job (synthetic data generation).
SDG_NO_TEACHER = (
    "No teacher model is configured for data generation: an operator needs to set "
    "LABBOT_SDG_TEACHER_URLS on the sdg workers. Then comment `/lab generate` to retry."
)
SDG_NOTHING_TO_GENERATE = (
    "This pull request changes no qna.yaml file, so there is nothing to generate data from."
)
SDG_TRIAGE_ERRORS = (
    "Triage found {errors} error(s) at this commit: data is generated only from files that pass "
    "triage. Fix them, push, and comment `/lab generate`."
)
SDG_TEACHER_UNAVAILABLE = (
    "The teacher model did not answer ({error}). The answers received so far are kept: comment "
    "`/lab generate` to resume once it is back."
)
SDG_DOCUMENT = "The knowledge document of `{path}` could not be used: {error}"
SDG_EMPTY = (
    "Data generation kept no samples for {leaves} The counts per step are in the labbot "
    "comment on the pull request; comment `/lab generate` to run it again."
)
SDG_CAUSE_CONTEXT = (
    "The prompts did not fit the teacher's context: use a teacher with a longer context or "
    "shorter seed examples."
)
SDG_CAUSE_UNREADABLE = (
    "None of the teacher's answers could be read as questions: the teacher model is probably "
    "too weak for this task."
)
SDG_CAUSE_FILTERED = (
    "The judges rejected everything generated: the seed examples may be unclear or "
    "inconsistent, or the teacher model too weak."
)
SDG_COMMENT_HEADER = "### labbot data generation for {sha}"
SDG_COMMENT_OK = "Synthetic data was generated from the seed examples. Counts per step:"
SDG_COMMENT_FAILED = "Some leaves kept no samples; the counts per step show where they were lost:"
SDG_COMMENT_FILES = (
    "{knowledge} knowledge samples (phase 1), {skills} skills samples (phase 2), {mcq} "
    "multiple-choice questions. [Preview and files]({url})"
)

# The train job.
TRAIN_NO_BASE_MODEL = (
    "No student model is configured for training: an operator needs to set "
    "LABBOT_TRAIN_BASE_MODEL on the train workers. Then comment `/lab train` to retry."
)
TRAIN_NO_DATA = (
    "There is no generated data for commit {sha} to train on: comment `/lab generate` first, "
    "then `/lab train` once it has succeeded."
)
TRAIN_PLAN = "The training data could not be prepared: {error}"
TRAIN_CRASHED = (
    "Training stopped with exit code {code}; the job log has the details. Comment `/lab train` "
    "to run it again (it resumes from its last checkpoint)."
)

# Evaluation: the `bench` and `precheck` jobs (workers/eval).
EVAL_NO_BASE_MODEL = (
    "No base model is configured for evaluation: an operator needs to set "
    "LABBOT_TRAIN_BASE_MODEL on the eval workers. Then comment `/lab {command}` to retry."
)
EVAL_NO_JUDGE = (
    "No judge model is configured: an operator needs to set LABBOT_EVAL_JUDGE_URLS (or "
    "LABBOT_SDG_TEACHER_URLS) on the eval workers. Then comment `/lab bench` to retry."
)
EVAL_TRIAGE_ERRORS = (
    "Triage found {errors} error(s) at this commit: only files that pass triage are evaluated. "
    "Fix them, push, and comment `/lab {command}`."
)
EVAL_NO_QUESTIONS = (
    "This pull request changes no qna.yaml file with seed examples to ask the models about."
)
EVAL_NO_TRAINED_MODEL = (
    "There is no trained model for commit {sha} to evaluate: comment `/lab train` first, then "
    "`/lab bench` once it has succeeded."
)
EVAL_MODEL_UNAVAILABLE = (
    "The {role} model could not be served or asked ({error}). Comment `/lab {command}` to retry."
)
EVAL_QUESTIONS_UNREADABLE = "The evaluation questions could not be read: {error}"
BENCH_HEADER = "### labbot PR-bench: what this PR taught the model (commit `{sha}`)"
BENCH_CONCLUSION = {
    "success": "**Passed**: {reasons}.",
    "neutral": "**Inconclusive**: {reasons}.",
    "failure": "**Failed**: {reasons}.",
}
BENCH_CHECK_TITLE = {
    "success": "The trained model improved, nothing regressed",
    "neutral": "Inconclusive",
    "failure": "A regression",
}
BENCH_MODELS = (
    "The base model {base} and the model trained on this PR ({trained}) answered the same "
    "questions; the judge {judge} rated every answer from 1 to 10 against the contributor's "
    "answer."
)
BENCH_TALLY = (
    "Files: {improved} improved, {regressed} regressed, {unchanged} without change. "
    "Judgments: {judgments}, of which {errors} could not be read ({rate})."
)
BENCH_MMLU_HEADER = "#### PR-MMLU: multiple-choice questions from the knowledge documents"
BENCH_GUARD_HEADER = "#### Regression guard: general questions (set version {version})"
BENCH_GUARD_BY_CATEGORY = "By category"
BENCH_GUARD_LINE = "Regression guard: {before} → {after} ({delta})."
BENCH_QUESTIONS_HEADER = "#### Per question"
BENCH_MORE_QUESTIONS = "{count} more question(s) on the dashboard: {url}"
BENCH_QUESTION = "Question"
BENCH_REFERENCE = "Contributor's answer"
BENCH_ANSWER = {
    "base": "Base model (rating {rating})",
    "trained": "Trained model (rating {rating})",
}
BENCH_JUDGE = "Judge"
BENCH_FULL_TEXT = "full text"
BENCH_ARTIFACTS = "Answers and judgments: {files} · [job]({job}) · [all results]({pull})"
BENCH_CHECK_LINKS = "Per-question answers and judgments: {pull}"
PRECHECK_HEADER = "### labbot precheck: what the base model {model} answers today (commit `{sha}`)"
PRECHECK_INTRO = (
    "Before any training: the base model's answers to this PR's seed questions, beside the "
    "contributor's. A PR that teaches what the model already does well is usually declined."
)
PRECHECK_MEAN = "Judge's mean rating of the base model's answers: {mean} ({count} rated)."
PRECHECK_RATING = "rated {rating}"
PRECHECK_CONTRIBUTOR = "Contributor's answer"
PRECHECK_MODEL = "Base model's answer"
PRECHECK_FOOTER = "Full answers and the log: {job}"
ARTIFACT_NOT_FOUND = "No such result file for this job."
PULL_NOT_FOUND = "No such pull request."
PAGE_NOT_FOUND = "There is no page at this address."

# --- Builds (app/builds.py, workers/build/stage.py) ---------------------------------------
BUILD_UNKNOWN_REPOSITORY = "No build: labbot does not know the repository {repo}."
BUILD_ALREADY_RUNNING = "No build: build {name} of {repo} is still under way."
BUILD_NOTHING_NEW = "No build: nothing was merged into {repo} since its last build."
BUILD_NOT_FOUND = "There is no such build."
BUILD_NO_LEAVES = (
    "None of the merged pull requests has a qna.yaml file that passes triage, so there is "
    "nothing to train on. Skipped: {skipped}"
)
BUILD_PULL_SKIPPED = "#{number}: {reason}"
BUILD_PULL_TRIAGE_ERRORS = "triage finds {errors} error(s) at its merged head; left out."
BUILD_NO_QNA = "no qna.yaml file changed; nothing to train on."
BUILD_NO_PREVIOUS_MODEL = (
    "The previous build's model ({name}) could not be read from its artifacts; start the "
    "build again once the artifact store is back, or mark that build failed."
)
CLI_NO_SCHEDULE = "LABBOT_BUILD_SCHEDULE is empty: scheduled builds are off."
CLI_NO_BUILD = "No build started: no repository has pull requests merged since its last build."
CLI_BUILD_STARTED = "Build {name} started with {pulls} merged pull request(s): {url}"
CLI_BUILD_NO_WORKER = (
    "The build failed at once: no live worker serves the train queue "
    "(start one with: labbot worker --queues train)."
)

# --- Dashboard sign-in and maintainer actions (app/dashboard/auth.py, actions.py, the
# _session.html, _job_actions.html and _redeliver.html partials) ----------------------------
DASHBOARD_SIGN_IN = "Sign in with GitHub"
DASHBOARD_SIGN_OUT = "Sign out"
DASHBOARD_MAINTAINER_BADGE = "maintainer"
DASHBOARD_SIGNED_IN = "Signed in as {login}."
DASHBOARD_SIGNED_IN_MAINTAINER = "Signed in as {login}, a maintainer."
DASHBOARD_SIGNED_OUT = "Signed out."
DASHBOARD_RETRY = "Retry"
DASHBOARD_CANCEL = "Cancel"
DASHBOARD_STOPPING = "stopping"
DASHBOARD_REDELIVER = "Redeliver"
LOGIN_REQUIRED = "Sign in with GitHub to see this."
LOGIN_NOT_CONFIGURED_TITLE = "Sign-in is not set up"
LOGIN_NOT_CONFIGURED = (
    "This labbot has no GitHub sign-in: set LABBOT_GITHUB_OAUTH_CLIENT_ID and "
    "LABBOT_GITHUB_OAUTH_CLIENT_SECRET (the GitHub App's client id and secret) and "
    "LABBOT_SESSION_SECRET."
)
LOGIN_FAILED_TITLE = "Sign-in did not complete"
LOGIN_STATE_MISMATCH = (
    "This sign-in was not started from this browser, or it was already used. Sign in again."
)
LOGIN_DENIED = "GitHub did not authorize the sign-in ({error}). Sign in again to retry."
LOGIN_CODE_REFUSED = (
    "GitHub refused the sign-in ({error}); it may have taken too long. Sign in again."
)
LOGIN_GITHUB_UNREACHABLE = "GitHub could not be asked who you are ({error}). Try again in a minute."
LOGIN_TRY_AGAIN = "Sign in again"
MAINTAINER_REQUIRED_TITLE = "Maintainers only"
MAINTAINER_REQUIRED = (
    "{login}, this is for maintainers (members of {teams}); it was not done. Ask a "
    "maintainer, or sign in with another account."
)
MAINTAINER_REQUIRED_NO_TEAMS = (
    "{login}, this is for maintainers, and this labbot has none: set LABBOT_MAINTAINER_TEAMS."
)
CSRF_REFUSED_TITLE = "Action refused"
CSRF_REFUSED = (
    "The form was out of date or did not come from this dashboard, so nothing was done. "
    "Reload the page and try again."
)
SESSION_SECRET_EPHEMERAL = (
    "LABBOT_SESSION_SECRET is not set: dashboard sign-ins are signed with a random key of this "
    "process; they end when it restarts and do not carry over to other API processes."
)
JOB_CANCELLED_ON_DASHBOARD = "Cancelled by {user} on the dashboard"
ACTION_JOB_RETRIED = "Job {job} was retried as job {new}."
ACTION_JOB_RETRY_EXISTS = (
    "Job {job} was not retried: job {new} already runs the same kind on the same commit."
)
ACTION_JOB_RETRY_ACTIVE = "Job {job} is still {state}: only a failed or cancelled job is retried."
ACTION_JOB_RETRY_STATE = "Job {job} {state}: only a failed or cancelled job is retried."
ACTION_JOB_RETRY_NO_PULL = (
    "Job {job} belongs to no pull request: start a new build from the builds page instead."
)
ACTION_JOB_RETRY_CLOSED = "Job {job} was not retried: its pull request is closed."
ACTION_JOB_RETRY_DRAFT = "Job {job} was not retried: its pull request is a draft."
ACTION_JOB_RETRY_MOVED_ON = (
    "Job {job} was not retried: it ran on commit {sha}, and the pull request has moved on to "
    "{head}. Ask for the job on the new commit from the pull request."
)
ACTION_JOB_RETRY_NO_WORKER = (
    "Job {job} was not retried: no worker serves the {queue} queue right now."
)
ACTION_JOB_CANCELLED = "Job {job} was cancelled."
ACTION_JOB_STOPPING = "Job {job} was asked to stop; it stops at its next step."
ACTION_JOB_ALREADY_STOPPING = "Job {job} is already stopping."
ACTION_JOB_NOT_ACTIVE = "Job {job} is {state}: only a queued or running job can be cancelled."
ACTION_DELIVERY_REDELIVERED = "Delivery {guid} is being processed again."
ACTION_DELIVERY_REDELIVER_LATER = (
    "Delivery {guid} will be processed again once the queue takes it (the broker did not "
    "answer; labbot retries by itself)."
)
ACTION_DELIVERY_NOT_FAILED = "Delivery {guid} is {status}: only a failed delivery is redelivered."
ACTION_DELIVERY_NO_BODY = "Delivery {guid} has no stored body to process again."
ACTION_BUILD_BAD_REPOSITORY = "Name the repository as owner/name."
ACTION_BUILD_STARTED = "Build {name} started with {pulls} merged pull request(s)."
ACTION_BUILD_NO_WORKER = "Build {name} failed at once: no worker serves the train queue."

# --- Dashboard pages (app/dashboard: overview, pull requests, jobs, deliveries) ------------
DASHBOARD_FILTER_UNKNOWN = "Ignored {name}={value}: expected one of {choices}."
DASHBOARD_FILTER_TOO_LONG = "Ignored {name}: the value is too long."
DASHBOARD_FILTER_BAD_TIME = (
    "Ignored {name}={value}: expected a date like 2024-05-31 or a time like 2024-05-31T14:00 UTC."
)
DASHBOARD_FILTER_BAD_PAGE = "Ignored page={value}: expected a whole number from 1."
DASHBOARD_NO_MATCHING_PULLS = "No pull requests match these filters."
DASHBOARD_NO_MATCHING_JOBS = "No jobs match these filters."
DASHBOARD_NO_MATCHING_DELIVERIES = "No deliveries match these filters."
DASHBOARD_NO_DELIVERIES_YET = (
    "No deliveries yet. Point the GitHub App's webhook at /webhooks/github, or run "
    "`labbot dev github`."
)
DASHBOARD_NO_WORKERS = (
    "No worker has reported yet. Start one with `labbot worker` (GPU hosts: "
    "`labbot worker --queues sdg`, `train` or `eval`)."
)
DASHBOARD_QUEUE_UNSERVED = "No live worker consumes this queue: its jobs fail at once."
DASHBOARD_NOTHING_RUNNING = "No job is running."
DASHBOARD_NO_FAILURES = "No failed jobs or deliveries."
DASHBOARD_NO_BUILDS = "No build yet."
DASHBOARD_NO_ARTIFACTS = "No result files to download (yet)."
DASHBOARD_NO_LOG = "No log yet."
DASHBOARD_NO_JOBS_YET = "No jobs yet."
DASHBOARD_NOT_TRIAGED = "Not triaged at this head commit yet."
DASHBOARD_FINDINGS_CUT = (
    "Showing the first {shown} of {total} findings; all of them are in the JSON linked above."
)
DASHBOARD_KIND_NAMES = {
    "triage": "Triage",
    "precheck": "Precheck",
    "sdg": "Data generation",
    "train": "Training",
    "bench": "Evaluation",
    "build": "The build",
}
DASHBOARD_CONCLUSIONS = {"success": "passed", "neutral": "inconclusive", "failure": "a regression"}
# "What is blocking": one sentence per pull request, derived from its state (pulls page).
BLOCKING_MERGED = "Merged{date}; nothing is left to do here."
BLOCKING_CLOSED = "Closed without merging; nothing runs on it."
BLOCKING_DRAFT = (
    "A draft: its author needs to mark it ready for review; labbot runs nothing on drafts."
)
BLOCKING_TRIAGE_RUNNING = "Triage of commit {sha} is under way."
BLOCKING_TRIAGE_FAILED = (
    "Triage could not run on commit {sha}; comment `/lab retest` to run it again."
)
BLOCKING_NOT_TRIAGED = (
    "Commit {sha} has not been triaged yet; comment `/lab retest` if it does not start."
)
BLOCKING_TRIAGE_ERRORS = (
    "Triage found {errors} error(s) at commit {sha}: its author needs to fix them and push."
)
BLOCKING_OK_TO_TEST = (
    "Waiting for a triager to review commit {sha} and comment `/lab ok-to-test`: its author "
    "is not yet trusted here."
)
BLOCKING_TRIAGE_PASSED = (
    "Triage passed: waiting for a triager to add `{label}` or comment `/lab generate`."
)
BLOCKING_JOB_QUEUED = "{kind} is queued for the `{queue}` workers."
BLOCKING_JOB_RUNNING = "{kind} is running{progress}."
BLOCKING_JOB_FAILED = "{kind} failed on commit {sha}; a triager can run it again with `{command}`."
BLOCKING_JOB_CANCELLED = (
    "{kind} was stopped on commit {sha}; a triager can start it again with `{command}`."
)
BLOCKING_PRECHECK_READY = (
    "The precheck answers are ready: waiting for a triager to add `{label}` or comment "
    "`/lab generate`."
)
BLOCKING_DATA_READY = (
    "Synthetic data is ready: waiting for a triager to add `{label}` or comment `/lab train`."
)
BLOCKING_TRAINED = "Trained, not evaluated yet: a triager can comment `/lab bench`."
BLOCKING_RESULTS_READY = (
    "Evaluation results are ready{conclusion}: waiting for a maintainer's review."
)
