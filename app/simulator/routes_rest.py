"""The REST pipeline every api.github.com request goes through.

1. Record the request.
2. Match it to an operation of GitHub's OpenAPI description; check query and JSON body. A request
   GitHub would not accept is answered (404/400/422) and recorded as invalid.
3. Apply a `before` fault (or a `delay`: a slow answer), if one matches.
4. Authenticate, count it against the rate limit, check the App permission the handler needs.
5. Run the handler (state lock held); an `after` fault replaces its answer but not its effect.
6. Send the webhooks the handler caused, in the background.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import urllib.parse
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from app.simulator.auth import authenticate
from app.simulator.errors import ApiError
from app.simulator.models import Fault, RateBucket, RequestRecord, utcnow
from app.simulator.openapi import Match, OpenAPISpec
from app.simulator.render import Renderer, Urls
from app.simulator.rest import apps, checks, issues, pulls, repos  # noqa: F401  (they register handlers)
from app.simulator.rest.context import HANDLERS, Context, RestRequest, RestResponse
from app.simulator.state import Caller, SimulatorState
from app.simulator.webhooks import Events, WebhookSender

log = logging.getLogger(__name__)

_JSON = "application/json; charset=utf-8"
_UNCOUNTED = frozenset({"rate-limit/get"})  # GitHub does not count this one


class RestPipeline:
    def __init__(
        self,
        state: SimulatorState,
        spec: OpenAPISpec,
        sender: WebhookSender,
        *,
        check_responses: bool = False,
    ) -> None:
        self.state = state
        self.spec = spec
        self.sender = sender
        self.check_responses = check_responses

    def handle(self, req: RestRequest) -> RestResponse:
        path = urllib.parse.unquote(req.raw_path)
        body: Any = None
        parsed = True
        if req.body:
            try:
                body = json.loads(req.body)
            except ValueError:
                body, parsed = req.body[:200].decode("utf-8", "replace"), False
        with self.state.lock:
            record = RequestRecord(
                self.state.next_id("request"),
                utcnow(),
                req.method,
                path,
                dict(req.query),
                None,
                body,
            )
            self.state.requests.append(record)
        response, match = self._process(req, record, parsed)
        problem = None
        if self.check_responses and match is not None and isinstance(response.body, dict | list):
            problem = self.spec.check_response(match.operation, response.status, response.body)
            if problem:
                log.warning(
                    "simulator response for %s does not match GitHub's schema: %s", path, problem
                )
        response.headers.setdefault("x-github-request-id", _request_id())
        response.headers.setdefault("x-github-api-version-selected", "2022-11-28")
        response.headers.setdefault("x-github-media-type", "github.v3; format=json")
        with self.state.lock:
            record.status = response.status
            record.response_problem = problem
        return response

    def _invalid(
        self, record: RequestRecord, status: int, message: str, reason: str, docs: str
    ) -> RestResponse:
        with self.state.lock:
            record.invalid = reason
        log.warning("invalid request %s %s: %s", record.method, record.path, reason)
        return RestResponse(status, ApiError(status, message).body(docs))

    def _process(
        self, req: RestRequest, record: RequestRecord, parsed: bool
    ) -> tuple[RestResponse, Match | None]:
        match = self.spec.match(req.method, req.raw_path)
        if match is None:
            other = (
                " (that path exists, but not for this method)"
                if self.spec.path_exists(req.raw_path)
                else ""
            )
            reason = f"GitHub's REST API has no {req.method} {record.path}{other}"
            return self._invalid(
                record, 404, "Not Found", reason, "https://docs.github.com/rest"
            ), None
        op = match.operation
        record.operation = op.operation_id
        if not parsed and op.body_pointer is not None:
            return self._invalid(
                record, 400, "Problems parsing JSON", "the body is not JSON", op.docs_url
            ), match
        problem = self.spec.check_query(op, req.query) or self.spec.check_body(
            op, record.body, bool(req.body)
        )
        if problem is not None:
            message = f"Invalid request.\n\n{problem}"
            return self._invalid(
                record, 422, message, f"{op.operation_id}: {problem}", op.docs_url
            ), match

        with self.state.lock:
            fault = self.state.take_fault(req.method, record.path)
        if fault is not None and fault.mode == "before":
            record.fault = True
            return _fault_response(fault), match
        if fault is not None and fault.mode == "delay":
            # A slow GitHub: the request waits, then is answered as usual.
            time.sleep(fault.delay_seconds)
            fault = None

        route = HANDLERS.get(op.operation_id)
        if route is None:
            reason = (
                f"the simulator does not implement {op.operation_id} ({op.method} {op.template})"
            )
            return self._invalid(record, 501, reason, reason, op.docs_url), match

        renderer = Renderer(self.state, Urls(req.base_url, self.state.config.html_url))
        events = Events(self.sender, renderer, enabled=self.state.config.send_bot_events)
        rate_headers: dict[str, str] = {}
        with self.state.lock:
            try:
                caller = authenticate(self.state, req.headers.get("authorization"), route.auth)
                if op.operation_id not in _UNCOUNTED:
                    rate_headers = self._count(caller)
                if route.need is not None and caller.permissions is not None:
                    if not route.need.satisfied_by(caller.permissions):
                        raise ApiError(403, "Resource not accessible by integration")
                ctx = Context(
                    self.state, req, op, match.params, record.body, caller, renderer, events
                )
                response = route.handler(ctx)
            except ApiError as exc:
                events.records.clear()
                response = RestResponse(exc.status, exc.body(op.docs_url), dict(exc.headers))
        response.headers.update(rate_headers)
        if fault is not None:
            record.fault = True
            response = _fault_response(fault)  # the action happened; the client is told otherwise
        events.send_later()
        return response, match

    def _count(self, caller: Caller) -> dict[str, str]:
        """Count a request against the caller's hourly budget; 403 once it is spent."""
        now = utcnow()
        limit = self.state.config.rate_limit
        bucket = self.state.rate.get(caller.rate_key)
        if bucket is None or bucket.reset_at <= now:
            bucket = self.state.rate[caller.rate_key] = RateBucket(limit, now + timedelta(hours=1))
        bucket.limit = limit
        exceeded = bucket.used >= limit
        if not exceeded:
            bucket.used += 1
        headers = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(0, limit - bucket.used)),
            "x-ratelimit-reset": str(int(bucket.reset_at.timestamp())),
            "x-ratelimit-used": str(bucket.used),
            "x-ratelimit-resource": "core",
        }
        if exceeded:
            who = (
                f"installation ID {caller.installation.id}" if caller.installation else caller.login
            )
            raise ApiError(403, f"API rate limit exceeded for {who}.", headers=headers)
        return headers


def _request_id() -> str:
    parts = [secrets.token_hex(n).upper() for n in (2, 2, 3, 3, 4)]
    return ":".join(parts)


def _fault_response(fault: Fault) -> RestResponse:
    body = fault.body if fault.body is not None else {"message": f"Simulated fault {fault.status}"}
    if isinstance(body, str):
        return RestResponse(
            fault.status, body.encode(), dict(fault.headers), "text/plain; charset=utf-8"
        )
    return RestResponse(fault.status, body, dict(fault.headers))


def to_http(response: RestResponse) -> Response:
    if response.body is None or response.status == 204:
        return Response(status_code=response.status, headers=response.headers)
    if isinstance(response.body, bytes):
        return Response(
            response.body, response.status, response.headers, media_type=response.media_type
        )
    content = json.dumps(response.body, ensure_ascii=False).encode()
    return Response(content, response.status, response.headers, media_type=_JSON)


def rest_router(pipeline: RestPipeline) -> APIRouter:
    router = APIRouter()

    @router.api_route(
        "/{_path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
        include_in_schema=False,
    )
    async def github_api(request: Request) -> Response:
        raw_path = (
            request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
            or request.url.path
        )
        if raw_path.startswith("/_sim"):
            return Response(b'{"message":"Not Found"}', 404, media_type=_JSON)
        req = RestRequest(
            method=request.method,
            raw_path=raw_path,
            query=urllib.parse.parse_qsl(request.url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
            base_url=str(request.base_url).rstrip("/"),
        )
        # Handlers block on the state lock and may send webhooks: keep them off the event loop.
        return to_http(await run_in_threadpool(pipeline.handle, req))

    return router
