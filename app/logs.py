"""Structured JSON logs. The delivery GUID travels in a context variable, set by the webhook
endpoint in the API and by the task in the worker, so one delivery can be followed end to end."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

delivery_guid: ContextVar[str | None] = ContextVar("delivery_guid", default=None)


class _DeliveryContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.delivery = delivery_guid.get()
        return True


@contextmanager
def bound_delivery(guid: str | None) -> Iterator[None]:
    token = delivery_guid.set(guid)
    try:
        yield
    finally:
        delivery_guid.reset(token)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_DeliveryContext())
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(delivery)s",
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs at 500 requests/s would drown everything else; errors still come through.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
