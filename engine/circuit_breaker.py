"""Circuit breakers: a processor that keeps failing is skipped until a cool-down has passed.

``closed`` lets every attempt through. ``failure_threshold`` consecutive processor faults open
the circuit; while ``open`` nothing goes through until ``cool_down_s`` has passed, then the
circuit is ``half_open`` and lets exactly one probe through: its success closes the circuit,
its failure opens it again. The answers of attempts let through before the circuit opened (many
are in flight under load) do not close it: only a probe after the cool-down does. Time comes
from the caller (monotonic seconds), so tests need no sleep.

A :class:`CircuitWatcher` hears of every change of state, and only of changes: the attempts of a
healthy processor cost it nothing. An open circuit turns half-open when the first attempt after
its cool-down asks to go through (``allow``), not when the cool-down ends: until then it is
still open.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from engine.errors import ConfigError
from engine.types import ProcessorId


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_UNNAMED = ProcessorId("")


class CircuitWatcher(Protocol):
    """Hears each change of a processor's circuit (metrics, logs). Called on the payment path
    when the change happens: it must return at once and never raise."""

    def circuit_changed(self, processor_id: ProcessorId, state: CircuitState) -> None: ...


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    cool_down_s: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.failure_threshold, bool) or not isinstance(self.failure_threshold, int):
            raise ConfigError("breaker.failure_threshold", self.failure_threshold, "must be an integer")
        if self.failure_threshold < 1:
            raise ConfigError("breaker.failure_threshold", self.failure_threshold, "must be at least 1")
        if not isinstance(self.cool_down_s, int | float) or not 0 <= self.cool_down_s < 86_400:
            raise ConfigError("breaker.cool_down_s", self.cool_down_s, "must be between 0 and a day")


class CircuitBreaker:
    """The circuit of one processor; ``watcher`` hears its changes of state, by ``processor_id``."""

    __slots__ = (
        "_failures",
        "_opened_at",
        "_policy",
        "_probe_in_flight",
        "_processor_id",
        "_state",
        "_watcher",
    )

    def __init__(
        self,
        policy: BreakerPolicy,
        processor_id: ProcessorId = _UNNAMED,
        watcher: CircuitWatcher | None = None,
    ) -> None:
        self._policy = policy
        self._processor_id = processor_id
        self._watcher = watcher
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    def _become(self, state: CircuitState) -> None:
        self._state = state
        if self._watcher is not None:
            self._watcher.circuit_changed(self._processor_id, state)

    @property
    def state(self) -> CircuitState:
        return self._state

    def allow(self, now: float) -> bool:
        """Whether an attempt may go to the processor now; a half-open circuit admits one probe."""
        if self._state is CircuitState.CLOSED:
            return True
        if self._state is CircuitState.OPEN:
            if now - self._opened_at < self._policy.cool_down_s:
                return False
            self._become(CircuitState.HALF_OPEN)
            self._probe_in_flight = False
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        """The processor charged. An open circuit stays open: the answer is to an attempt let
        through before it opened (one of many in flight), not the probe its cool-down waits for."""
        if self._state is CircuitState.OPEN:
            return
        if self._state is CircuitState.HALF_OPEN:
            self._become(CircuitState.CLOSED)
        self._failures = 0
        self._probe_in_flight = False

    def record_failure(self, now: float) -> None:
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self._policy.failure_threshold:
            if self._state is not CircuitState.OPEN:
                self._become(CircuitState.OPEN)
            self._opened_at = now
            self._probe_in_flight = False

    def abandon(self) -> None:
        """An attempt let through ended without an answer (its record failed, its payment was
        cancelled): it says nothing about the processor, so a half-open circuit's probe is free
        again. Left taken, the circuit would skip the processor until the process restarts."""
        if self._state is CircuitState.HALF_OPEN:
            self._probe_in_flight = False

    def record_neutral(self) -> None:
        """The processor answered sanely (a decline, a card error): it is healthy, the probe is over."""
        self.record_success()


class CircuitBreakers:
    """One breaker per processor, created (closed) on first use; ``watcher`` hears every change."""

    __slots__ = ("_breakers", "_policy", "_watcher")

    def __init__(self, policy: BreakerPolicy | None = None, watcher: CircuitWatcher | None = None) -> None:
        self._policy = policy or BreakerPolicy()
        self._watcher = watcher
        self._breakers: dict[ProcessorId, CircuitBreaker] = {}

    def __getitem__(self, processor_id: ProcessorId) -> CircuitBreaker:
        breaker = self._breakers.get(processor_id)
        if breaker is None:
            breaker = CircuitBreaker(self._policy, processor_id, self._watcher)
            self._breakers[processor_id] = breaker
        return breaker

    def states(self) -> dict[ProcessorId, CircuitState]:
        return {processor: breaker.state for processor, breaker in self._breakers.items()}
