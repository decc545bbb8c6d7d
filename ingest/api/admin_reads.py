"""How many admin reads of a time window run at once: the analytics tables
(``GET /v1/analytics/events|violations|complaints``) and the retrospective report.

They run in the process that takes the payments. A read of a large window keeps about one core
busy while it lasts (DuckDB sorts the window, then each batch is encoded, in a worker thread),
and the event loop answers the payments with what is left. Measured on two shared cores, 100
payments a second, readers polling a 14-day window of 500,000 events as JSON (1.3-3 s and
300 MB a read): payments' median was 80-92 ms with no reader, 107-137 with one, 122-216 with
two and 200-353 with four (Arrow: 97-119 with one, 200-249 with four), the service then using
every core it could get. So at most ``limit`` such reads run at a time, by default half the
cores the process may use, at least one; one more is refused at once, 503
``service_unavailable`` with ``Retry-After``, before it reads anything. With the default (one,
there), four readers polling left the median at 97-112 ms, as one reader does.

A read holds its place until it has let go of everything it read with (a streamed answer: its
last batch sent, or its client gone, and the worker thread reading a batch for it done).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ingest.api.problems import ApiProblem

#: Seconds a refused reader is told to wait: a read of a 14-day window takes a few.
RETRY_AFTER_S = 2


def default_limit() -> int:
    """Half the cores this process may run on, at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


class AdminReadGate:
    """The places for admin reads; used from the event loop's thread only."""

    __slots__ = ("limit", "running")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("at least one admin read must be allowed at a time")
        self.limit = limit
        #: Reads holding a place now.
        self.running = 0

    def enter(self) -> Callable[[], None]:
        """A place for one read, and the call that gives it back (only the first call does:
        whichever end of the read comes first may call it). A 503 ``ApiProblem`` with
        ``Retry-After`` when every place is taken."""
        if self.running >= self.limit:
            raise ApiProblem(
                "service_unavailable",
                f"{self.running} admin reads of a time window are running, the most this service runs "
                "at once beside the payments: nothing was read. Retry after Retry-After seconds, or "
                "read one window at a time.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.running += 1
        held = True

        def leave() -> None:
            nonlocal held
            if held:
                held = False
                self.running -= 1

        return leave
