"""A bounded buffer emptied by a thread of its own: how telemetry leaves a payment's path.

:meth:`Drain.put` never waits: when the buffer is full the oldest item is dropped and counted
(ARCHITECTURE.md decision 6). While there is room it takes no lock: appending to a ``deque`` is
one step under the interpreter lock, and the thread takes items off the other end one at a time,
so nothing put while the thread takes a batch is lost.

The thread hands items to ``deliver`` in batches; a ``deliver`` that blocks (a stalled exporter,
a log pipe nobody reads) only fills the buffer, and what it fails to deliver is counted as
dropped too.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Generic, TypeVar

Item = TypeVar("Item")

DEFAULT_CAPACITY = 8192
DEFAULT_BATCH = 512
DEFAULT_INTERVAL_S = 0.2
#: The thread is woken once this many items wait: items that wait long outlive young garbage
#: collections, which then walk them (at 512, collections took 12-26 µs per payment in
#: bench_observe; at 64, 5-12 µs).
WAKE_AT = 64
#: Never put: the end marker of the iterator that takes items off the buffer one by one.
_NEVER = object()


class Drain(Generic[Item]):
    """``put`` from any thread; ``deliver`` runs on the drain's thread only.

    The buffer may hold one item more than ``capacity`` for each other thread putting at the same
    moment: the room is looked at without a lock."""

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
        #: Set by the put that wakes the thread, cleared by the thread as it wakes: the puts
        #: after it, until then, need not look at the event (a Python call each).
        self._waking = False
        self._closed = False
        self._finished = False  # the thread has returned: what is put now is counted here
        self._abandoned = False  # ``close`` gave up waiting: the thread counts nothing more
        # Guards the counts below; ``flush`` waits on it until every item put is handled.
        self._lock = threading.Lock()  # taken directly where nobody waits: a Condition's own
        self._state = threading.Condition(self._lock)  # ``with`` is a Python-level call
        self._taken = 0  # items taken off the buffer: by the thread, or pushed out of it
        self._handled = 0  # of those, the ones delivered or dropped
        #: Items dropped: pushed out of a full buffer, put after the close, or lost by a failing
        #: ``deliver``.
        self.dropped = 0
        #: Of those, the items lost by a failing ``deliver`` (an exporter refusing them).
        self.lost = 0
        self.delivered = 0
        self._thread = threading.Thread(target=self._run, name=f"payorch-{name}", daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        items = self._items
        # No lock while there is room (13 puts a payment): the append is one step under the
        # interpreter lock, and only the thread (or a full buffer's push, under the lock) takes
        # items off the other end. A lock taken and released cost about a third of a put.
        if len(items) < self._capacity and not self._closed:
            items.append(item)
            # Read again: another thread may have closed the drain between the look and the
            # append (which mypy, narrowing ``_closed`` to False, cannot know).
            if self._closed:
                self._settle()  # type: ignore[unreachable]
            elif len(items) >= self._wake_at and not self._waking:
                self._waking = True
                self._wake.set()  # once: setting an Event takes its lock and notifies, every time
            return
        self._put_full(item)

    def _put_full(self, item: Item) -> None:
        items = self._items
        with self._lock:
            if self._closed:
                # Nothing delivers it any more (a line logged after the log pipe closed at a stop):
                # dropped and counted, not left in a buffer nobody empties.
                self.dropped += 1
                return
            if len(items) >= self._capacity:
                items.popleft()
                self.dropped += 1
                self._taken += 1
                self._handled += 1
            items.append(item)
        if not self._waking:
            self._waking = True
            self._wake.set()

    def _settle(self) -> None:
        """Once the thread has returned (or been given up on), what is left in the buffer is
        dropped and counted (items put while the drain closed)."""
        with self._state:
            if not (self._finished or self._abandoned):
                return  # the thread still runs: it delivers them, or counts them as it returns
            left = len(self._discard_waiting())
            self.dropped += left
            self._taken += left
            self._handled += left
            self._state.notify_all()

    def offer(self, item: Item) -> bool:
        """Put ``item`` only if there is room (nothing is pushed out, nothing counted); True if put."""
        items = self._items
        if self._closed or len(items) >= self._capacity:
            return False
        items.append(item)
        if self._closed:  # read again, as in :meth:`put`
            self._settle()  # type: ignore[unreachable]
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
            # Every item put so far is in the buffer or was taken off it (under this lock).
            target = self._taken + len(self._items)
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
            self._abandoned = True  # from here, a put that races this counts its own item
            self._taken += len(self._discard_waiting())
            left = self._taken - self._handled  # the batch ``deliver`` holds, and what waited
            self.dropped += left
            self.lost += left
            self._handled = self._taken
            self._state.notify_all()

    def _discard_waiting(self) -> list[Item]:
        """Take off the buffer what waits in it now (under the lock), one by one as :meth:`_take`
        does: a ``clear`` after reading its length would also drop, uncounted, an item a put
        appended between the two."""
        items = self._items
        return list(islice(iter(items.popleft, _NEVER), len(items)))

    def _take(self) -> list[Item]:
        """The next batch, taken off the buffer (under the lock): the items one by one, in C
        (``popleft`` through an iterator), as a put may append at the other end meanwhile."""
        items = self._items
        with self._state:
            count = min(len(items), self._batch)
            batch = list(islice(iter(items.popleft, _NEVER), count))
            self._taken += len(batch)
        return batch

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            self._waking = False
            # Read before emptying the buffer: an item put just before the close is then delivered
            # (read after, it could be left behind, neither delivered nor counted).
            closing = self._closed
            while batch := self._take():
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
                with self._state:
                    self._finished = True
                self._settle()  # put after the last batch was taken: nothing delivers them now
                return
