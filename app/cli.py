"""The `labbot` command line."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys

import click

from app.config import DEVELOPMENT_WEBHOOK_SECRET, ConfigError, Environment, Settings, get_settings
from bots import messages


def _settings_or_exit() -> Settings:
    try:
        settings = get_settings()
        settings.check_safe_to_start()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


def _redact(url: str) -> str:
    """A URL fit for a terminal or a log: no password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """labbot: the GitHub service around an InstructLab taxonomy repository.

    Settings come from LABBOT_* environment variables or a .env file (see README).
    """


@main.command()
@click.option("--host", default=None, help="Interface to bind (default: LABBOT_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: LABBOT_PORT, 8000).")
@click.option(
    "--workers", type=int, default=None, help="API processes (default: LABBOT_API_WORKERS)."
)
@click.option(
    "--worker/--no-worker",
    "with_worker",
    default=None,
    help="Also run a Celery worker as a child process (default: on for the SQLite broker).",
)
def serve(
    host: str | None, port: int | None, workers: int | None, with_worker: bool | None
) -> None:
    """Run the API, webhook endpoint and dashboard.

    With no configuration this is a complete service: SQLite under ./var (migrated on start),
    Celery on an SQLite broker, and a worker started beside the API.
    """
    import uvicorn

    settings = _settings_or_exit()
    host = host or settings.host
    port = port or settings.port
    if settings.environment is Environment.development and not settings.webhook_secret:
        click.echo(messages.CLI_DEV_SECRET_NOTICE.format(secret=DEVELOPMENT_WEBHOOK_SECRET))
    if settings.uses_embedded_storage:
        from app.db.migrate import upgrade

        upgrade(settings.database_url)
    if with_worker if with_worker is not None else settings.embedded_worker:
        _start_child_worker()
    click.echo(
        messages.CLI_SERVING.format(
            host=host,
            port=port,
            database=_redact(settings.database_url),
            broker=_redact(settings.broker_url),
        )
    )
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.api_workers,
        log_config=None,
        access_log=False,
    )


def die_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when `labbot serve` exits, however
    it exits (uvicorn re-raises SIGTERM after shutdown, so atexit alone is not enough)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _start_child_worker() -> None:
    # Threads, not prefork: no forked pool to hang at exit (billiard's pool finaliser can block
    # after a stop with nobody left to SIGKILL it), and less memory on a one-host install.
    child = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--pool", "threads", "--concurrency", "4"],
        env=os.environ.copy(),
        preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
    )

    def stop_child() -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # warm shutdown: unacked messages go back
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()

    atexit.register(stop_child)


@main.command()
@click.option(
    "--queues",
    "-Q",
    default="events,triage",
    show_default=True,
    help="Comma-separated queues to consume: events, triage, sdg, train, eval.",
)
@click.option(
    "--concurrency", "-c", type=int, default=None, help="Worker processes (default: CPU count)."
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="Celery execution pool.",
)
@click.option("--name", default=None, help="Worker node name (default: labbot-<queues>@<host>).")
def worker(queues: str, concurrency: int | None, pool: str, name: str | None) -> None:
    """Run a Celery worker consuming the given queues."""
    from workers.celery_app import ALL_QUEUES, celery_app

    settings = _settings_or_exit()
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(ALL_QUEUES))
    if unknown:
        raise click.BadParameter(f"unknown queue(s): {', '.join(unknown)}", param_hint="--queues")
    if settings.broker_url.startswith("sqla+"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if problem := settings.visibility_problem():
        click.echo(f"warning: {problem}", err=True)
    argv = [
        "worker",
        "--queues",
        ",".join(wanted),
        "--pool",
        pool,
        "--hostname",
        name or f"labbot-{'-'.join(wanted)}@%h",
        "--loglevel",
        settings.log_level,
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    celery_app.worker_main(argv=argv)


@main.command()
def beat() -> None:
    """Run Celery beat: it starts the scheduled builds (LABBOT_BUILD_SCHEDULE). Run one."""
    from workers.celery_app import celery_app

    settings = _settings_or_exit()
    if not settings.build_schedule.strip():
        raise click.ClickException(messages.CLI_NO_SCHEDULE)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(
        argv=[
            "beat",
            "--loglevel",
            settings.log_level,
            "--schedule",
            str(settings.data_dir / "celerybeat-schedule"),
        ]
    )


@main.group()
def build() -> None:
    """Model builds."""


@build.command("start")
@click.option(
    "--repository",
    "-r",
    default=None,
    help="owner/name (default: every repository with PRs merged since its last build).",
)
def build_start(repository: str | None) -> None:
    """Start a build now of what was merged since the last one, as the schedule would."""
    from app.builds import BuildError, start_build, start_scheduled_builds
    from app.db.session import session_scope

    settings = _settings_or_exit()
    if repository is None:
        started = start_scheduled_builds(settings)
        if not started:
            raise click.ClickException(messages.CLI_NO_BUILD)
    else:
        try:
            with session_scope() as session:
                started = [start_build(session, repository, "cli", settings)]
        except BuildError as exc:
            raise click.ClickException(str(exc)) from None
    base = settings.public_url.rstrip("/")
    for item in started:
        click.echo(
            messages.CLI_BUILD_STARTED.format(
                name=item.name, pulls=item.pulls, url=f"{base}/builds/{item.build_id}"
            )
        )
        if not item.queued:
            raise click.ClickException(messages.CLI_BUILD_NO_WORKER)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations to LABBOT_DATABASE_URL."""
    from app.db.migrate import upgrade

    upgrade(get_settings().database_url, revision)
    click.echo(messages.CLI_MIGRATED)


@main.command("verify-app")
def verify_app_command() -> None:
    """Check the configured GitHub App's permissions and events; say what is missing."""
    from app.github.verify import verify_app

    report = verify_app(get_settings())
    click.echo(report.render())
    if not report.ok:
        sys.exit(1)


@main.group()
def dev() -> None:
    """Tools for trying labbot locally."""


def _attach_subcommands() -> None:
    from app.simulator.cli import github
    from bots.triage.cli import triage

    dev.add_command(github)
    main.add_command(triage)


_attach_subcommands()


if __name__ == "__main__":
    main()
