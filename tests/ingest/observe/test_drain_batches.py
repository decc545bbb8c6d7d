"""The drain's thread hands items over in order, at most ``batch`` at a time, whether it takes
all that waits at once or a batch's worth of a longer buffer."""

from __future__ import annotations

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
