"""Typed settings, read from the environment (prefix ``LABBOT_``) and an optional ``.env`` file.

With no configuration at all labbot runs on its embedded default: SQLite under ``./var`` and
Celery's SQLAlchemy transport on another SQLite file, so no server is needed. Production sets
``LABBOT_DATABASE_URL`` (PostgreSQL) and ``LABBOT_BROKER_URL`` (Redis).
"""

from __future__ import annotations

import enum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values people paste from examples; outside development they are refused like a missing secret.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "placeholder", "xxx", "todo", "development", "test"}
)


# Used only in development when no secret is set, so a fresh clone can be tried at once.
# Outside development a missing secret stops the service from starting.
DEVELOPMENT_WEBHOOK_SECRET = "labbot-development-secret"


class Environment(enum.StrEnum):
    development = "development"
    test = "test"
    production = "production"


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message names the setting."""


def _is_placeholder(secret: SecretStr | None) -> bool:
    if secret is None:
        return True
    value = secret.get_secret_value().strip()
    return (
        value.lower() in PLACEHOLDER_SECRETS or value.startswith("<") or "replace" in value.lower()
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABBOT_", env_file=".env", extra="ignore")

    environment: Environment = Environment.development
    data_dir: Path = Field(Path("var"), description="Where the embedded default keeps its files.")

    # Storage and queue. Empty means the embedded default under data_dir.
    database_url: str = Field("", description="SQLAlchemy URL; default sqlite under data_dir.")
    broker_url: str = Field(
        "", description="Celery broker URL; default sqla+sqlite under data_dir."
    )
    embedded_worker: bool | None = Field(
        None, description="Start a worker beside `labbot serve`; default: on for the SQLite broker."
    )

    # HTTP service.
    host: str = "127.0.0.1"
    port: int = 8000
    api_workers: int = Field(1, ge=1, description="uvicorn worker processes for `labbot serve`.")
    public_url: str = Field("http://127.0.0.1:8000", description="Base URL for links on GitHub.")

    # Dashboard and its login.
    dashboard_public: bool = Field(
        True,
        description="Read-only pages and the JSON API are open to anyone; false: they need a "
        "GitHub login too. Actions always need a maintainer.",
    )
    maintainer_teams: list[str] = Field(
        default_factory=list,
        description='Teams ("org/team-slug", JSON list) whose members may retry, cancel, '
        "redeliver and start builds on the dashboard.",
    )
    session_secret: SecretStr | None = Field(
        None, description="Signs the dashboard's session cookies (openssl rand -hex 32)."
    )
    session_max_age_seconds: int = Field(
        8 * 3600, gt=0, description="How long a dashboard login lasts."
    )
    github_oauth_client_id: str | None = Field(
        None, description="The GitHub App's OAuth client id, for dashboard logins."
    )
    github_oauth_client_secret: SecretStr | None = Field(
        None, description="The GitHub App's OAuth client secret."
    )
    github_web_url: str = Field(
        "https://github.com", description="Where people sign in with GitHub (OAuth web flow)."
    )

    # Builds.
    build_schedule: str = Field(
        "0 6 * * 1",
        description="When scheduled builds start: a cron line in UTC (default Mondays 06:00); "
        '"" turns them off.',
    )

    # Webhooks.
    webhook_secret: SecretStr | None = None
    webhook_secret_previous: SecretStr | None = Field(
        None, description="Also accepted while the webhook secret is being rotated."
    )
    webhook_max_body_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    sweep_interval_seconds: float = Field(
        10.0, gt=0, description="How often stuck deliveries are re-enqueued."
    )
    sweep_grace_seconds: float = Field(
        10.0, ge=0, description="A delivery still 'received' after this long is re-enqueued."
    )
    processing_lease_seconds: float = Field(
        900.0, gt=0, description="A delivery 'processing' longer than this is assumed lost."
    )
    enqueue_timeout_seconds: float = Field(2.0, gt=0, description="Bound on a broker publish.")
    job_lease_seconds: float = Field(
        60.0, gt=0, description="A running job whose heartbeat is older than this lost its worker."
    )
    job_max_attempts: int = Field(
        3, ge=1, description="Times a job is handed out before it is failed for good."
    )
    job_time_limit_seconds: dict[str, float] = Field(
        default_factory=lambda: {
            "triage": 900.0,
            "precheck": 3600.0,
            "sdg": 8 * 3600.0,
            "train": 20 * 3600.0,
            "bench": 4 * 3600.0,
            "build": 23 * 3600.0,
        },
        description="Longest run per job kind (JSON object); a job past it is stopped and failed.",
    )
    job_cancel_grace_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a running job may take to stop when cancelled before it is "
        "stopped hard.",
    )
    job_progress_interval_seconds: float = Field(
        10.0, ge=0, description="Least time between progress updates of a job's check run."
    )
    worker_heartbeat_seconds: float = Field(
        15.0,
        gt=0,
        description="How often workers report the queues they serve; a worker silent for three "
        "beats is gone.",
    )
    broker_visibility_timeout_seconds: float = Field(
        24 * 3600.0,
        gt=0,
        description="Redis broker: an unacknowledged message is handed out again after this; "
        "must exceed the longest job time limit.",
    )
    trusted_teams: list[str] = Field(
        default_factory=list,
        description='Teams ("org/team-slug", JSON list) whose members may start GPU jobs besides '
        "people with triage permission or higher.",
    )
    artifacts_dir: Path = Field(
        Path(""), description="Where job logs and artifacts are kept; default data_dir/artifacts."
    )
    artifacts_s3_url: str = Field(
        "",
        description="s3://bucket/prefix: job artifacts are uploaded there when a job ends; "
        "empty keeps them in artifacts_dir only.",
    )
    artifacts_s3_endpoint_url: str = Field(
        "", description="S3-compatible endpoint (MinIO, Ceph, ...); empty means AWS."
    )
    redeliver_interval_seconds: float = Field(
        3600.0,
        ge=0,
        description="How often (App mode) GitHub is asked to redeliver deliveries labbot missed; "
        "0 turns it off.",
    )

    # Synthetic data generation (the `sdg` job). Defaults follow upstream instructlab-sdg.
    sdg_teacher_urls: list[str] = Field(
        default_factory=list,
        description="OpenAI-compatible teacher endpoints (JSON list of base URLs ending in /v1, "
        "one per data-parallel vLLM replica); none means sdg jobs fail with a message.",
    )
    sdg_teacher_model: str = Field("", description="Served model name; default: from /v1/models.")
    sdg_teacher_api_key: SecretStr | None = Field(None, description="Bearer key for the teacher.")
    sdg_teacher_tokenizer: Path | None = Field(
        None,
        description="Local directory with the teacher's tokenizer and chat template; default: "
        "the served model's path when it exists on this machine.",
    )
    sdg_batch_size: int = Field(8, ge=1, description="Prompts sent in one completions request.")
    sdg_concurrency: int = Field(8, ge=1, description="Requests in flight per teacher replica.")
    sdg_request_timeout_seconds: float = Field(600.0, gt=0)
    sdg_max_retries: int = Field(
        4, ge=0, description="Retries of a request after a connection error or a 5xx answer."
    )
    sdg_replica_cooldown_seconds: float = Field(
        30.0, ge=0, description="How long a teacher replica that failed is left out."
    )
    sdg_min_new_tokens: int = Field(
        32, ge=1, description="A prompt leaving less room than this in the context is skipped."
    )
    sdg_max_new_tokens: int = Field(1024, ge=1, description="Longest teacher answer.")
    sdg_temperature: float = Field(0.7, ge=0)
    sdg_top_p: float = Field(1.0, gt=0, le=1)
    sdg_questions_per_seed: int = Field(
        30, ge=1, description="Freeform skills: questions generated per seed example."
    )
    sdg_contexts_per_seed: int = Field(
        10, ge=1, description="Grounded skills: contexts generated per seed example."
    )
    sdg_questions_per_context: int = Field(3, ge=1, description="Grounded: questions per context.")
    sdg_qa_per_chunk: int = Field(5, ge=1, description="Knowledge: Q&A pairs asked per chunk.")
    sdg_mcq_per_leaf: int = Field(
        20, ge=0, description="Knowledge: multiple-choice questions per leaf for PR-MMLU."
    )
    sdg_chunk_tokens: int = Field(500, ge=32, description="Knowledge document chunk size.")
    sdg_pair_min_score: int = Field(
        2, ge=1, le=3, description="Lowest judge score (1-3) a question-answer pair keeps."
    )
    sdg_max_samples_per_leaf: int = Field(
        10000, ge=1, description="Mixing: cap on generated samples taken from one leaf."
    )
    sdg_replay_path: Path | None = Field(
        None, description="Chat messages JSONL mixed into the skills (phase 2) data as replay."
    )
    sdg_replay_samples: int = Field(
        1000, ge=0, description="Replay samples added to the phase 2 data."
    )
    sdg_document_sources: list[str] = Field(
        default_factory=lambda: ["https://github.com/"],
        description="URL prefixes a knowledge document may be fetched from (JSON list).",
    )
    sdg_document_max_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Knowledge documents: total size limit."
    )
    sdg_document_max_files: int = Field(
        50, ge=1, description="Knowledge documents: files matched by the patterns."
    )
    sdg_document_timeout_seconds: float = Field(
        120.0, gt=0, description="Knowledge documents: limit on the fetch."
    )

    # Training (the `train` job). Defaults follow upstream instructlab-training and the LAB paper.
    train_base_model: Path | None = Field(
        None, description="Local directory (Hugging Face format) of the student model to train."
    )
    train_max_seq_len: int = Field(
        4096, ge=16, description="Longer samples are dropped and counted, never truncated."
    )
    train_micro_batch_tokens: int = Field(
        16384, ge=16, description="Token budget of one packed micro-batch per process."
    )
    train_knowledge_lr: float = Field(2e-5, gt=0, description="Phase 1 learning rate.")
    train_knowledge_epochs: int = Field(7, ge=1, description="Phase 1 epochs.")
    train_knowledge_batch_samples: int = Field(
        128, ge=1, description="Phase 1 effective batch size in samples."
    )
    train_knowledge_whole_samples: bool = Field(
        False, description="Phase 1 computes the loss on whole samples, not only the answers."
    )
    train_skills_lr: float = Field(6e-6, gt=0, description="Phase 2 learning rate.")
    train_skills_epochs: int = Field(10, ge=1, description="Phase 2 epochs.")
    train_skills_batch_samples: int = Field(
        3840, ge=1, description="Phase 2 effective batch size in samples."
    )
    train_knowledge_replay_fraction: float = Field(
        0.3, ge=0, le=1, description="Share of phase 1 samples replayed in phase 2."
    )
    train_replay_path: Path | None = Field(
        None, description="Chat messages JSONL replayed in phase 2 (e.g. the base model's data)."
    )
    train_replay_samples: int = Field(10000, ge=0, description="Replay samples added to phase 2.")
    train_warmup_steps: int = Field(25, ge=0, description="Linear warmup at each phase's start.")
    train_zero_stage: int = Field(2, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    train_cpu_offload: bool = Field(False, description="Offload the optimizer state to CPU.")
    train_bf16: bool | None = Field(
        None, description="Train in bf16; default: when the accelerator supports it."
    )
    train_grad_clip: float = Field(1.0, gt=0, description="Gradient norm clipping.")
    train_processes_per_node: int = Field(
        1, ge=1, description="Training processes per node (one per GPU)."
    )
    train_hostfile: Path | None = Field(
        None, description="DeepSpeed hostfile for multi-node training; none: this node only."
    )
    train_checkpoint_interval_steps: int = Field(
        200, ge=1, description="Optimizer steps between full (resumable) checkpoints."
    )
    train_checkpoints_kept: int = Field(
        2, ge=1, description="Full checkpoints kept; older ones are pruned."
    )
    train_seed: int = Field(42, description="Seed for data order and initialisation.")

    # Evaluation (the `bench` and `precheck` jobs). Requests go through the SDG client, with its
    # batch size, concurrency, timeouts and retries (the sdg_* settings above).
    eval_base_urls: list[str] = Field(
        [],
        description="vLLM servers already serving the base model (its tokenizer is read from "
        "train_base_model); empty: the eval worker serves train_base_model itself.",
    )
    eval_judge_urls: list[str] = Field(
        [], description="vLLM servers of the judge model; empty: the SDG teacher judges."
    )
    eval_judge_model: str = Field("", description="Judge's served model name; default: listed.")
    eval_judge_tokenizer: Path | None = Field(
        None, description="Directory with the judge's tokenizer; default: its model path."
    )
    eval_vllm_command: list[str] = Field(
        ["python3", "-m", "vllm.entrypoints.openai.api_server"],
        description="How the eval worker starts a vLLM server for a checkpoint; --model, "
        "--port and the eval_vllm_args are appended.",
    )
    eval_vllm_args: list[str] = Field(
        [], description='Extra arguments for those servers, e.g. ["--max-model-len", "8192"].'
    )
    eval_server_start_timeout_seconds: float = Field(
        900.0, gt=0, description="How long a model server may take to load."
    )
    eval_max_new_tokens: int = Field(512, ge=1, description="Longest answer a model gives.")
    eval_judge_max_new_tokens: int = Field(256, ge=1, description="Longest judgment.")
    eval_general_questions: Path | None = Field(
        None,
        description="The regression guard's questions (YAML); default: the set in "
        "workers/eval/general.yaml.",
    )
    eval_change_threshold: float = Field(
        0.5,
        gt=0,
        description="A file's mean rating must move by this much (1-10 scale) to count as an "
        "improvement or a regression.",
    )
    eval_guard_max_drop: float = Field(
        0.5, ge=0, description="The regression guard's mean rating may drop this much."
    )
    eval_mmlu_max_drop: float = Field(
        0.05, ge=0, description="A leaf's PR-MMLU accuracy may drop this much (0-1)."
    )
    eval_max_error_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Above this share of unreadable judgments the check is neutral, not passed.",
    )

    # GitHub.
    github_api_url: str = "https://api.github.com"
    github_app_id: int | None = None
    github_app_slug: str = Field(
        "labbot", description="The App's slug; its bot login is <slug>[bot]."
    )
    github_private_key: SecretStr | None = Field(None, description="The App's PEM private key.")
    github_private_key_path: Path | None = Field(None, description="Or a file holding it.")
    github_token: SecretStr | None = Field(None, description="Plain token mode (one repository).")
    github_max_rate_limit_wait_seconds: float = Field(
        120.0, ge=0, description="Longest sleep for a rate limit before giving up."
    )
    github_write_interval_seconds: float = Field(
        1.0, ge=0, description="Minimum spacing between write requests (secondary limits)."
    )
    github_write_burst: int = Field(
        5,
        ge=1,
        description="Writes that may go out at once before the interval applies; a PR's few "
        "writes are answered at once, a burst of PRs is held to one write per interval.",
    )
    github_timeout_seconds: float = Field(15.0, gt=0)

    log_level: str = "INFO"

    @field_validator("build_schedule")
    @classmethod
    def _cron_line(cls, value: str) -> str:
        if not value.strip():
            return ""
        from celery.schedules import crontab

        fields = value.split()
        if len(fields) != 5:
            raise ValueError("a cron line has five fields: minute hour day month weekday")
        try:
            crontab(
                *fields[:2], day_of_week=fields[4], day_of_month=fields[2], month_of_year=fields[3]
            )
        except ValueError as exc:
            raise ValueError(f"not a valid cron line: {exc}") from None
        return " ".join(fields)

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        data_dir = self.data_dir.resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{data_dir / 'labbot.db'}"
        if not self.broker_url:
            # Four slashes: an absolute path (three would be relative and fail in a worker).
            self.broker_url = f"sqla+sqlite:///{data_dir / 'broker.db'}"
        if self.embedded_worker is None:
            self.embedded_worker = self.broker_url.startswith("sqla+")
        if not str(self.artifacts_dir) or str(self.artifacts_dir) == ".":
            self.artifacts_dir = data_dir / "artifacts"
        self.artifacts_dir = self.artifacts_dir.resolve()
        return self

    @property
    def uses_embedded_storage(self) -> bool:
        return self.database_url.startswith("sqlite")

    def private_key_pem(self) -> str | None:
        if self.github_private_key is not None:
            return self.github_private_key.get_secret_value()
        if self.github_private_key_path is not None:
            return self.github_private_key_path.read_text()
        return None

    def effective_webhook_secrets(self) -> list[bytes]:
        secrets = [
            s.get_secret_value().encode()
            for s in (self.webhook_secret, self.webhook_secret_previous)
            if s is not None and s.get_secret_value()
        ]
        if not secrets and self.environment is Environment.development:
            return [DEVELOPMENT_WEBHOOK_SECRET.encode()]
        return secrets

    def visibility_problem(self) -> str | None:
        """Redis hands an unacknowledged message out again after the visibility timeout; it
        should outlast every job (the job's lease still stops a second run if it does not)."""
        if not self.broker_url.startswith(("redis://", "rediss://")):
            return None
        longest = max(self.job_time_limit_seconds.values(), default=0.0)
        if longest + self.job_cancel_grace_seconds < self.broker_visibility_timeout_seconds:
            return None
        return (
            "LABBOT_BROKER_VISIBILITY_TIMEOUT_SECONDS is shorter than the longest job time limit: "
            "Redis will hand long jobs out again (the job lease keeps them from running twice)."
        )

    def check_safe_to_start(self) -> None:
        """Refuse to run outside development with missing or placeholder secrets."""
        if self.environment is Environment.development:
            return
        if _is_placeholder(self.webhook_secret):
            raise ConfigError(
                "LABBOT_WEBHOOK_SECRET is missing or a placeholder; set it to the GitHub App's "
                "webhook secret (make one with: openssl rand -hex 32)."
            )
        if self.webhook_secret_previous is not None and _is_placeholder(
            self.webhook_secret_previous
        ):
            raise ConfigError(
                "LABBOT_WEBHOOK_SECRET_PREVIOUS is a placeholder; unset it or set the old secret."
            )
        has_app = self.github_app_id is not None
        if (
            has_app
            and self.github_private_key is not None
            and _is_placeholder(self.github_private_key)
        ):
            raise ConfigError(
                "LABBOT_GITHUB_PRIVATE_KEY is a placeholder; set the App's PEM private key."
            )
        if has_app and self.private_key_pem() is None:
            raise ConfigError(
                "LABBOT_GITHUB_APP_ID is set but LABBOT_GITHUB_PRIVATE_KEY (or _PATH) is missing."
            )
        if not has_app and _is_placeholder(self.github_token):
            raise ConfigError(
                "No GitHub credentials: set LABBOT_GITHUB_APP_ID with LABBOT_GITHUB_PRIVATE_KEY, "
                "or LABBOT_GITHUB_TOKEN for a single repository."
            )
        if (self.github_oauth_client_id or self.github_oauth_client_secret) and _is_placeholder(
            self.session_secret
        ):
            raise ConfigError(
                "LABBOT_SESSION_SECRET is missing or a placeholder; it signs dashboard sign-ins "
                "(make one with: openssl rand -hex 32)."
            )


@lru_cache
def get_settings() -> Settings:
    return Settings()
