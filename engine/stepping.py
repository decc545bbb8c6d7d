"""Running a coroutine's first step by hand, and going on awaiting it after.

Many awaits on the payment path answer without ever waiting: an in-process processor, a request
body that has already arrived. Running the coroutine's first step by hand tells the two apart,
so that a deadline (a timer on the event loop) is set only for what really waits.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from types import coroutine
from typing import Any


@coroutine
def resume(started: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, None, Any]:
    """Go on awaiting a coroutine whose first step already ran and that waits on ``waiting_on``.

    What it waits on (a future, or ``None`` for a bare yield) is handed to the task as if the
    coroutine had yielded it itself; anything thrown in meanwhile (a cancellation) is thrown into
    the coroutine; from its next step on, ``yield from`` delegates everything.
    """
    while True:
        try:
            yield waiting_on
        except BaseException as thrown:  # noqa: BLE001 - handed on to the coroutine, not handled
            try:
                waiting_on = started.throw(thrown)
            except StopIteration as answered:
                return answered.value
            continue
        break
    # types.coroutine lets this generator delegate to a native coroutine.
    return (yield from started)


def first_step(started: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``started`` to its first wait: ``(True, answer)`` when it answered without waiting,
    else ``(False, rest)``, where awaiting ``rest`` goes on from that wait. Whatever the first step
    raises propagates."""
    try:
        waiting_on = started.send(None)
    except StopIteration as answered:
        return True, answered.value
    return False, resume(started, waiting_on)
