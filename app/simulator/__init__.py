"""The local GitHub simulator (`labbot dev github`): api.github.com from in-memory state.

- `server.create_app` builds the FastAPI app; `cli.github` runs it; `runner` serves it on a thread.
- `openapi` checks every request against GitHub's OpenAPI description.
- `routes_rest` is the request pipeline; `rest/` holds the handlers, keyed by GitHub operation id.
- `routes_admin` is the `/_sim/` admin API; `admin_client` is its typed client.
- `state`, `models` and `gitstore` hold the world; `render` shapes it as GitHub's JSON;
  `webhooks` builds, signs and sends deliveries; `auth` checks JWTs and tokens.
"""
