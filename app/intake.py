"""Group commit for webhook intake. Requests that arrive while a write is in flight share the
next INSERT, commit and broker round trip, so a burst costs a few transactions instead of one
per delivery; an idle service writes each delivery on its own, at once."""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from app import deliveries
from app.db.models import DeliveryStatus
from app.deliveries import Incoming, Outcome

log = logging.getLogger(__name__)
MAX_BATCH = 200

_Item = tuple[Incoming, DeliveryStatus, "Future[Outcome]"]


class IntakeWriter:
    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def submit(self, incoming: Incoming, status: DeliveryStatus) -> Future[Outcome]:
        future: Future[Outcome] = Future()
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
        try:
            outcomes = deliveries.take_in_batch(
                [(incoming, status) for incoming, status, _ in batch]
            )
        except Exception as exc:
            # Nothing was committed: each request answers 5xx and GitHub shows it as failed.
            log.error("recording %d deliveries failed: %s", len(batch), type(exc).__name__)
            for _, _, future in batch:
                future.set_exception(exc)
            return
        for (_, _, future), (_, outcome) in zip(batch, outcomes, strict=True):
            future.set_result(outcome)
