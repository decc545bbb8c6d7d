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
#: The thread is woken once this many items wait: items that wait long outlive young garbage
#: collections, which then walk them (at 512, collections took 12-26 µs per payment in
#: bench_observe; at 64, 5-12 µs).
WAKE_AT = 64


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
        # The thread is woken once WAKE_AT items wait (else it looks every ``interval_s``), and
        # before a small buffer is half full.
        self._wake_at = max(1, min(WAKE_AT, capacity // 2))
        self._interval_s = interval_s
        self._items: deque[Item] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._abandoned = False  # ``close`` gave up waiting: the thread counts nothing more
        # Guards the counts below; ``flush`` waits on it until every item put is handled.
        self._lock = threading.Lock()  # taken directly where nobody waits: a Condition's own
        self._state = threading.Condition(self._lock)  # ``with`` is a Python-level call
        self._accepted = 0  # items put
        self._handled = 0  # items delivered or dropped
        #: Items dropped: pushed out of a full buffer, or lost by a failing ``deliver``.
        self.dropped = 0
        #: Of those, the items lost by a failing ``deliver`` (an exporter refusing them).
        self.lost = 0
        self.delivered = 0
        self._thread = threading.Thread(target=self._run, name=f"payorch-{name}", daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        items = self._items
        lock = self._lock
        # Taken and released by name, not by ``with``: 13 puts a payment, and the ``with``
        # statement's lookup and call of ``__exit__`` cost about 475 instructions a put more.
        # The ``finally`` costs nothing unless something raises.
        lock.acquire()
        try:
            self._accepted += 1
            if self._closed:
                # Nothing delivers it any more (a line logged after the log pipe closed at a stop):
                # dropped and counted, not left in a buffer nobody empties.
                self.dropped += 1
                self._handled += 1
                return
            if len(items) >= self._capacity:
                items.popleft()
                self.dropped += 1
                self._handled += 1
            items.append(item)
        finally:
            lock.release()
        if len(items) >= self._wake_at and not self._wake.is_set():
            self._wake.set()  # once: setting an Event takes its lock and notifies, every time

    def offer(self, item: Item) -> bool:
        """Put ``item`` only if there is room (nothing is pushed out, nothing counted); True if put."""
        with self._lock:
            if self._closed or len(self._items) >= self._capacity:
                return False
            self._accepted += 1
            self._items.append(item)
        return True

    def drop_counts(self) -> tuple[int, int]:
        """``(dropped, lost)``, read together: the items dropped, and of those, the ones lost by
        a failing ``deliver``."""
        with self._lock:
            return self.dropped, self.lost

    @property
    def depth(self) -> int:
        return len(self._items)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every item put so far is delivered or dropped; False on timeout."""
        with self._state:
            target = self._accepted
            self._wake.set()
            return self._state.wait_for(lambda: self._handled >= target, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is buffered (within ``timeout_s``) and stop the thread. What is still not
        delivered then (a ``deliver`` that blocks: a collector that does not answer) is dropped
        and counted as lost, and the thread, should that ``deliver`` return later, counts nothing
        more: left uncounted, what a stop cut off never showed in a drop count or report.
        Closing again returns at once."""
        if self._abandoned:
            return  # a second wait for a ``deliver`` that blocks would add its timeout to a stop
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            return
        with self._state:
            left = self._accepted - self._handled
            self._items.clear()
            self._abandoned = True
            self.dropped += left
            self.lost += left
            self._handled = self._accepted
            self._state.notify_all()

    def _run(self) -> None:
        items = self._items
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            # Read before emptying the buffer: an item put just before the close is then delivered
            # (read after, it could be left behind, neither delivered nor counted).
            closing = self._closed
            while True:
                with self._state:
                    if len(items) <= self._batch:
                        # All of it, copied in C and cleared: a call of ``popleft`` an item cost
                        # about 150 instructions, thirteen items a payment on the two drains.
                        batch = list(items)
                        items.clear()
                    else:
                        batch = [items.popleft() for _ in range(self._batch)]
                if not batch:
                    break
                try:
                    self._deliver(batch)
                    failed = False
                except Exception:  # noqa: BLE001 - telemetry must never take the process down
                    failed = True
                with self._state:
                    if self._abandoned:
                        return  # counted by ``close`` already
                    if failed:
                        self.dropped += len(batch)
                        self.lost += len(batch)
                    else:
                        self.delivered += len(batch)
                    self._handled += len(batch)
                    self._state.notify_all()
            if closing:
                return
