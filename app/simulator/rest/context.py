"""What a REST handler gets and returns, and the registry of handlers by GitHub operation id.

Handlers are keyed by the `operationId` of GitHub's OpenAPI description, so routing is GitHub's
own: the pipeline matches the request to an operation, checks it, authenticates, and calls the
handler with the state lock held.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.simulator.auth import AuthKind
from app.simulator.errors import ApiError, not_found
from app.simulator.models import Repo
from app.simulator.openapi import Operation
from app.simulator.render import Renderer
from app.simulator.state import Caller, SimulatorState
from app.simulator.webhooks import Events

T = TypeVar("T")

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 30


@dataclass
class RestRequest:
    method: str
    raw_path: str  # still percent-encoded
    query: list[tuple[str, str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    base_url: str  # scheme://host[:port], no trailing slash


@dataclass
class RestResponse:
    status: int
    body: Any = None  # JSON-able; bytes for raw media types; None for no content
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json; charset=utf-8"


@dataclass
class Context:
    state: SimulatorState
    request: RestRequest
    operation: Operation
    params: Mapping[str, str]
    body: Any
    caller: Caller
    render: Renderer
    events: Events

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.query)

    def int_param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except ValueError as exc:
            raise not_found() from exc

    def accepts(self, *media_types: str) -> bool:
        accept = self.request.headers.get("accept", "")
        return any(m in accept for m in media_types)

    def repo(self) -> Repo:
        """The addressed repository, if the credential reaches it (else 404: GitHub hides it)."""
        repo = self.state.repo(self.params["owner"], self.params["repo"])
        if self.caller.repos is not None and repo.full_name not in self.caller.repos:
            raise not_found()
        return repo

    def page(
        self,
        items: Sequence[T],
        render: Callable[[T], Any],
        wrap: Callable[[list[Any]], Any] | None = None,
        status: int = 200,
    ) -> RestResponse:
        """One page of `items` with a `Link` header built as GitHub builds it."""
        query = self.query
        try:
            per_page = int(query.get("per_page", DEFAULT_PER_PAGE))
            page = int(query.get("page", 1))
        except ValueError:
            per_page, page = DEFAULT_PER_PAGE, 1
        per_page = min(max(per_page, 1), MAX_PER_PAGE)
        page = max(page, 1)
        last = max(1, math.ceil(len(items) / per_page))
        chunk = [render(item) for item in items[(page - 1) * per_page : page * per_page]]
        links = []
        if page > 1:
            links.append((min(page - 1, last), "prev"))
        if page < last:
            links += [(page + 1, "next"), (last, "last")]
        if page > 1:
            links.append((1, "first"))
        headers = {}
        if links:
            headers["Link"] = ", ".join(f'<{self._page_url(n)}>; rel="{rel}"' for n, rel in links)
        return RestResponse(status, wrap(chunk) if wrap else chunk, headers)

    def _page_url(self, page: int) -> str:
        query = [(k, v) for k, v in self.request.query if k != "page"] + [("page", str(page))]
        return f"{self.request.base_url}{self.request.raw_path}?{urllib.parse.urlencode(query)}"


Handler = Callable[[Context], RestResponse]


@dataclass(frozen=True)
class Need:
    """An App permission a handler needs: any one of `names` at `level` (read or write)."""

    names: tuple[str, ...]
    level: str

    def satisfied_by(self, permissions: Mapping[str, str]) -> bool:
        wanted = ("write", "admin") if self.level == "write" else ("read", "write", "admin")
        return any(permissions.get(name) in wanted for name in self.names)


@dataclass(frozen=True)
class Route:
    handler: Handler
    auth: AuthKind
    need: Need | None


HANDLERS: dict[str, Route] = {}


def handles(
    operation_id: str, *, auth: AuthKind = "installation", need: tuple[str, str] | None = None
) -> Callable[[Handler], Handler]:
    """Register a handler for a GitHub operation. `need` is ("perm1|perm2", "read"|"write")."""

    def register(fn: Handler) -> Handler:
        if operation_id in HANDLERS:
            raise RuntimeError(f"two handlers for {operation_id}")
        parsed = Need(tuple(need[0].split("|")), need[1]) if need else None
        HANDLERS[operation_id] = Route(fn, auth, parsed)
        return fn

    return register


def json_body(ctx: Context) -> dict[str, Any]:
    """The body as an object (the OpenAPI check has already vouched for its shape)."""
    return ctx.body if isinstance(ctx.body, dict) else {}


def validation_failed(
    resource: str, field_name: str, code: str, message: str | None = None
) -> ApiError:
    error: dict[str, Any] = {"resource": resource, "code": code, "field": field_name}
    if message:
        error["message"] = message
    return ApiError(422, "Validation Failed", errors=[error])
