"""A bounded buffer emptied by a thread of its own: how telemetry leaves a payment's path.

:meth:`Drain.put` never waits: when the buffer is full the oldest item is dropped and counted
(ARCHITECTURE.md decision 6). The thread hands items to ``deliver`` in batches; a ``deliver`` that
blocks (a stalled exporter, a log pipe nobody reads) only fills the buffer, and what it fails to
deliver is counted as dropped too.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")

DEFAULT_CAPACITY = 8192
DEFAULT_BATCH = 512
DEFAULT_INTERVAL_S = 0.2


class Drain(Generic[Item]):
    """``put`` from any thread; ``deliver`` runs on the drain's thread only."""

    def __init__(
        self,
        name: str,
        deliver: Callable[[Sequence[Item]], None],
        *,
        capacity: int = DEFAULT_CAPACITY,
        batch: int = DEFAULT_BATCH,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        if capacity < 1 or batch < 1 or interval_s <= 0:
            raise ValueError("a drain needs a positive capacity, batch and interval")
        self.name = name
        self._deliver = deliver
        self._capacity = capacity
        self._batch = batch
        self._interval_s = interval_s
        self._items: deque[Item] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._idle = threading.Event()
        self._idle.set()
        #: Items dropped: pushed out of a full buffer, or lost by a failing ``deliver``.
        self.dropped = 0
        self.delivered = 0
        self._thread = threading.Thread(target=self._run, name=f"payorch-{name}", daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        items = self._items
        if len(items) >= self._capacity:
            try:
                items.popleft()
            except IndexError:  # emptied by the drain meanwhile
                pass
            else:
                self.dropped += 1
        items.append(item)
        if len(items) >= self._batch:
            self._wake.set()

    @property
    def depth(self) -> int:
        return len(self._items)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until what was put so far is delivered (or dropped); False on timeout."""
        self._idle.clear()
        self._wake.set()
        return self._idle.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is buffered (within ``timeout_s``) and stop the thread."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        items = self._items
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            while items:
                batch: list[Item] = []
                while items and len(batch) < self._batch:
                    batch.append(items.popleft())
                try:
                    self._deliver(batch)
                    self.delivered += len(batch)
                except Exception:  # noqa: BLE001 - telemetry must never take the process down
                    self.dropped += len(batch)
            self._idle.set()
            if self._closed:
                return
