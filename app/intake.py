"""Group commit for webhook intake. Requests that arrive while a write is in flight share the
next INSERT, commit and broker round trip, so a burst costs a few transactions instead of one
per delivery; an idle service writes each delivery on its own, at once."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading

from app import deliveries
from app.db.models import DeliveryStatus
from app.deliveries import Incoming, Outcome

log = logging.getLogger(__name__)
MAX_BATCH = 200
# Two writers: while one waits on the database or the broker, the other fills the next batch.
WRITERS = 2

_Item = tuple[Incoming, DeliveryStatus, "asyncio.Future[Outcome]"]


class IntakeWriter:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, max_batch: int = MAX_BATCH, writers: int = WRITERS
    ) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._threads = [
            threading.Thread(target=self._run, name=f"intake-writer-{n}", daemon=True)
            for n in range(writers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def submit(self, incoming: Incoming, status: DeliveryStatus) -> asyncio.Future[Outcome]:
        """Called on the event loop; the future resolves once the delivery is committed (and
        published, when the broker takes it)."""
        future: asyncio.Future[Outcome] = self._loop.create_future()
        self._queue.put((incoming, status, future))
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Item]) -> None:
        futures = [future for _, _, future in batch]
        try:
            outcomes = deliveries.take_in_batch(
                [(incoming, status) for incoming, status, _ in batch]
            )
        except Exception as exc:
            # Nothing was committed: each request answers 5xx and GitHub shows it as failed.
            log.error("recording %d deliveries failed: %s", len(batch), type(exc).__name__)
            self._loop.call_soon_threadsafe(_fail_all, futures, exc)
            return
        # One wake-up of the event loop per batch, not per request.
        self._loop.call_soon_threadsafe(_resolve_all, futures, [outcome for _, outcome in outcomes])


def _resolve_all(futures: list[asyncio.Future[Outcome]], outcomes: list[Outcome]) -> None:
    for future, outcome in zip(futures, outcomes, strict=True):
        if not future.done():  # the client may have gone away
            future.set_result(outcome)


def _fail_all(futures: list[asyncio.Future[Outcome]], exc: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
