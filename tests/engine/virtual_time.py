"""An asyncio event loop on virtual time, for tests that hang on which deadlines fall together.

The guard times every processor call out with a timer on the running loop (``call_later``), so a
test that needs several timeouts to land in one turn of the loop cannot get that from real time:
each timer's deadline is the moment its charge was sent plus the budget, and a busy machine can
stall the loop a millisecond or more between two sends. The loop then wakes for the first
deadline alone, and the timeouts come back one by one.

On this loop time stands still while callbacks run and jumps, when every task waits, straight to
the next deadline. Timers set in the same turn share their deadline however slowly that turn ran,
and fire in one turn; no test waits out a real timeout either.
"""

from __future__ import annotations

import asyncio
import selectors


class _Now:
    """The loop's virtual time, shared by the loop and its selector."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


class _JumpingSelector(selectors.DefaultSelector):
    """Never sleeps until a timer: with no I/O ready it moves the virtual time by the wait asked.

    A wait without end (no timer set, no callback ready) still blocks for real, on the loop's own
    wake-ups from other threads: virtual time has nothing to jump to.
    """

    def __init__(self, now: _Now) -> None:
        super().__init__()
        self._now = now

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= 0:
            return super().select(timeout)
        ready = super().select(0)
        if not ready:
            self._now.seconds += timeout
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` moves only when every task waits on a timer.

    Run a coroutine on it with ``asyncio.Runner(loop_factory=VirtualTimeLoop)``.
    """

    def __init__(self) -> None:
        self._now = _Now()
        super().__init__(_JumpingSelector(self._now))

    def time(self) -> float:
        return self._now.seconds
