"""Routing from (event, action) to handlers, one level deep. Finer decisions (which label,
which command) are made inside the handler."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bots.payloads import Payload


class Ignore(Exception):  # noqa: N818 - it is an outcome, not a failure
    """Raised by a handler that decides, after a look at fresh state, not to act."""


@dataclass(frozen=True)
class EventContext:
    """What a handler receives: ids and the parsed payload, never live objects or tokens."""

    delivery_id: int
    delivery_guid: str
    event: str
    action: str | None
    payload: Payload

    @property
    def raw(self) -> dict[str, Any]:
        return self.payload.raw


Handler = Callable[[EventContext], None]
ANY_ACTION = "*"


class Router:
    def __init__(self, *routers: Router) -> None:
        self._handlers: dict[tuple[str, str], list[Handler]] = defaultdict(list)
        for router in routers:
            for key, handlers in router._handlers.items():
                self._handlers[key].extend(handlers)

    def on(self, event: str, *actions: str) -> Callable[[Handler], Handler]:
        """Register for an event and some of its actions (none listed: every action)."""

        def register(handler: Handler) -> Handler:
            for action in actions or (ANY_ACTION,):
                self._handlers[(event, action)].append(handler)
            return handler

        return register

    def handlers_for(self, event: str, action: str | None) -> list[Handler]:
        return [
            *self._handlers.get((event, action or ANY_ACTION), []),
            *(self._handlers.get((event, ANY_ACTION), []) if action else []),
        ]

    def handles(self, event: str, action: str | None) -> bool:
        return bool(self.handlers_for(event, action))

    def knows_event(self, event: str) -> bool:
        return any(registered == event for registered, _ in self._handlers)
