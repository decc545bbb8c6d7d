"""The drain's thread hands items over in order, at most ``batch`` at a time, whether it takes
all that waits at once or a batch's worth of a longer buffer."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence

from ingest.observe.drain import Drain


def test_items_are_delivered_in_order_and_in_batches_of_at_most_the_batch_size() -> None:
    delivered: list[list[int]] = []

    def deliver(batch: Sequence[int]) -> None:
        delivered.append(list(batch))

    # Woken at 8 items waiting (half the capacity), else every 100 s: seven wait for the flush.
    drain: Drain[int] = Drain("test", deliver, capacity=16, batch=3, interval_s=100.0)
    try:
        for item in range(7):
            drain.put(item)
        assert drain.flush(5.0)
        assert delivered == [[0, 1, 2], [3, 4, 5], [6]]
        drain.put(7)
        drain.put(8)
        assert drain.flush(5.0)
        assert delivered[3:] == [[7, 8]]
        assert (drain.delivered, drain.dropped, drain.depth) == (9, 0, 0)
    finally:
        drain.close(5.0)


def test_items_put_from_several_threads_at_once_are_each_delivered_or_counted_once() -> None:
    # Puts take no lock while there is room: the thread's taking a batch off one end of the
    # buffer must lose nothing appended at the other end meanwhile, and what a full buffer
    # pushes out is counted.
    delivered: list[tuple[int, int]] = []
    drain: Drain[tuple[int, int]] = Drain("test", delivered.extend, capacity=256, batch=64, interval_s=0.001)
    threads, each = 4, 20_000

    def put_all(thread: int) -> None:
        for number in range(each):
            drain.put((thread, number))

    workers = [threading.Thread(target=put_all, args=(thread,)) for thread in range(threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads change hands as often as the interpreter allows
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert drain.flush(10.0)
    finally:
        sys.setswitchinterval(interval)
        drain.close(5.0)
    assert len(set(delivered)) == len(delivered) == drain.delivered
    assert drain.delivered + drain.dropped == threads * each
    for thread in range(threads):
        numbers = [number for who, number in delivered if who == thread]
        assert numbers == sorted(numbers)  # each thread's items in the order it put them


def test_what_is_put_after_the_close_is_dropped_and_counted() -> None:
    delivered: list[int] = []
    drain: Drain[int] = Drain("test", delivered.extend, capacity=16, interval_s=100.0)
    drain.put(1)
    drain.close(5.0)
    drain.put(2)
    assert drain.offer(3) is False
    assert (delivered, drain.delivered, drain.dropped, drain.depth) == ([1], 1, 1, 0)
