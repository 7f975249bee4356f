"""`labbot dev github`: run the local GitHub simulator."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click
import uvicorn

from app.config import DEVELOPMENT_WEBHOOK_SECRET
from app.simulator import demo
from app.simulator.models import AppConfig, OAuthApp, SimConfig
from app.simulator.server import OPENAPI_ENV, create_app
from app.simulator.state import SimulatorState

log = logging.getLogger(__name__)

EPILOG = """\b
Point labbot at it:
  LABBOT_GITHUB_API_URL=http://127.0.0.1:9100
  LABBOT_GITHUB_APP_ID=<--app-id>  (and the App's private key), or
  LABBOT_GITHUB_TOKEN=<--plain-token>
  Dashboard sign-in (with --oauth-client-id/--oauth-client-secret):
  LABBOT_GITHUB_WEB_URL=http://127.0.0.1:9100
  LABBOT_GITHUB_OAUTH_CLIENT_ID=<id>  LABBOT_GITHUB_OAUTH_CLIENT_SECRET=<secret>

\b
Then act as people on GitHub through the admin API (JSON, no auth), e.g.:
  curl -X POST localhost:9100/_sim/repos/instructlab-demo/taxonomy/pulls \\
       -H 'content-type: application/json' \\
       -d '{"author": "alice", "files": {"compositional_skills/x/qna.yaml": "version: 3\\n"}}'
  curl localhost:9100/_sim/requests?invalid=1     # requests GitHub would refuse
  curl localhost:9100/_sim/deliveries             # webhooks sent to labbot
The admin API is described at http://127.0.0.1:9100/_sim/docs.
"""


@click.command("github", epilog=EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=9100, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--webhook-url",
    default="http://127.0.0.1:8000/webhooks/github",
    show_default=True,
    help="Where webhooks are delivered (labbot's webhook endpoint).",
)
@click.option(
    "--webhook-secret",
    envvar="LABBOT_WEBHOOK_SECRET",
    show_envvar=True,
    default=DEVELOPMENT_WEBHOOK_SECRET,
    help="Secret that signs deliveries (X-Hub-Signature-256); by default the one labbot "
    "accepts in development.",
)
@click.option(
    "--app-id", type=int, default=1, show_default=True, help="The GitHub App's id (JWT `iss`)."
)
@click.option(
    "--app-slug",
    default="labbot",
    show_default=True,
    help="The App's slug; its bot is <slug>[bot].",
)
@click.option(
    "--app-public-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key that verifies the App's RS256 JWTs (unset: decoded, not verified).",
)
@click.option(
    "--plain-token", help="Also accept this token (plain token mode: full access as one user)."
)
@click.option(
    "--oauth-client-id",
    help="Register an application for the OAuth web flow (/login/oauth/...) with this id.",
)
@click.option(
    "--oauth-client-secret",
    envvar="LABBOT_SIM_OAUTH_CLIENT_SECRET",
    show_envvar=True,
    help="Its client secret.",
)
@click.option(
    "--seed-demo",
    is_flag=True,
    help=f"Create {demo.DEMO_ORG}/{demo.DEMO_REPO} with teams and the App installed.",
)
@click.option(
    "--openapi",
    "openapi_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar=OPENAPI_ENV,
    show_envvar=True,
    help="GitHub's OpenAPI description [default: ../shared/data/github-openapi/].",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning"]),
)
def github(
    host: str,
    port: int,
    webhook_url: str,
    webhook_secret: str | None,
    app_id: int,
    app_slug: str,
    app_public_key_file: Path | None,
    plain_token: str | None,
    oauth_client_id: str | None,
    oauth_client_secret: str | None,
    seed_demo: bool,
    openapi_path: Path | None,
    log_level: str,
) -> None:
    """Serve a local stand-in for api.github.com, with webhooks to labbot.

    Every request is checked against GitHub's OpenAPI description; one GitHub would refuse is
    answered 422 (or 404) and listed at /_sim/requests?invalid=1.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    started = time.perf_counter()
    app_config = AppConfig(id=app_id, slug=app_slug, name=app_slug)
    if app_public_key_file is not None:
        app_config.public_key_pem = app_public_key_file.read_text()
    if bool(oauth_client_id) != bool(oauth_client_secret):
        raise click.UsageError("--oauth-client-id and --oauth-client-secret go together.")
    oauth_apps = {}
    if oauth_client_id and oauth_client_secret:
        oauth_apps[oauth_client_id] = OAuthApp(oauth_client_id, oauth_client_secret, app_slug)
    state = SimulatorState(
        SimConfig(
            webhook_url=webhook_url or None,
            webhook_secret=webhook_secret,
            app=app_config,
            plain_token=plain_token,
            oauth_apps=oauth_apps,
        )
    )
    app = create_app(state, openapi_path=openapi_path)
    if seed_demo:
        # Seeded after the start-up config, so `POST /_sim/reset` returns to an empty world.
        repo = demo.seed_demo(state)
        log.info("demo: %s with teams %s and %s", repo, demo.DEMO_TRIAGERS, demo.DEMO_MAINTAINERS)
    log.info(
        "simulator ready in %.2f s on http://%s:%d (webhooks to %s)",
        time.perf_counter() - started,
        host,
        port,
        webhook_url,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")
