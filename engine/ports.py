"""The engine's outside world, as small protocols wired in one composition root per process.

Nothing in the engine reads the wall clock, sleeps, draws random numbers or writes anywhere
except through these ports, so tests pass fakes and the service passes the real things.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from engine.contracts import ContractViolation
from engine.events import DomainEvent


class Clock(Protocol):
    """Wall-clock time for event timestamps and monotonic time for durations and cool-downs."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...


class Sleeper(Protocol):
    """Waits between retries (and simulated latency)."""

    async def sleep(self, seconds: float) -> None: ...


class RandomSource(Protocol):
    """Uniform random numbers in [0, 1), for backoff jitter."""

    def random(self) -> float: ...


class EventSink(Protocol):
    """Where domain events and contract violations go.

    ``emit`` returns once the event is recorded as durably as the sink promises; the engine
    awaits it before calling a processor for ``StepAttempted`` (intent before effect).
    """

    async def emit(self, event: DomainEvent) -> None: ...

    async def record_violation(self, violation: ContractViolation) -> None: ...


class SystemClock:
    """The real clock. Its methods are the C functions themselves, bound once: every event of
    every payment reads the clock, and a Python-level method around them costs more than they do."""

    __slots__ = ("monotonic", "now")

    def __init__(self) -> None:
        self.now: Callable[[], datetime] = partial(datetime.now, UTC)
        self.monotonic: Callable[[], float] = time.monotonic


class AsyncioSleeper:
    """The real sleeper: ``asyncio.sleep``."""

    __slots__ = ()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SeededRandom:
    """A deterministic random source (``random.Random`` with a seed)."""

    __slots__ = ("_random",)

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)  # noqa: S311 - jitter, not cryptography

    def random(self) -> float:
        return self._random.random()
