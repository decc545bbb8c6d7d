"""Circuit breakers: a processor that keeps failing is skipped until a cool-down has passed.

``closed`` lets every attempt through. ``failure_threshold`` consecutive processor faults open
the circuit; while ``open`` nothing goes through until ``cool_down_s`` has passed, then the
circuit is ``half_open`` and lets exactly one probe through: its success closes the circuit,
its failure opens it again. The answers of attempts let through before the circuit opened (many
are in flight under load) do not close it: only a probe after the cool-down does. Time comes
from the caller (monotonic seconds), so tests need no sleep.

Consecutive means in the order the attempts were sent (:meth:`CircuitBreaker.sent` numbers each),
not the order their answers come: a fault counts only when no attempt sent after it was answered
sanely. Under load the two orders differ. Of 200 charges sent at once to a processor that
answers 96 % of them at once and lets 2 % hang, the hanging ones all time out together, seconds
after the rest succeeded: five timeouts in a row by arrival opened the circuit of a healthy
processor, and every payment routed to it failed for the cool-down. By sending order the
successes of the charges sent after them say the processor works; a processor that fails every
charge still opens after ``failure_threshold`` of them.

A :class:`CircuitWatcher` hears of every change of state, and only of changes: the attempts of a
healthy processor cost it nothing. An open circuit turns half-open when the first attempt after
its cool-down asks to go through (``allow``), not when the cool-down ends: until then it is
still open.
"""

from __future__ import annotations

from collections.abc import Mapping
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


#: The bounds of a :class:`BreakerPolicy`: a threshold past a thousand faults in a row, or a
#: cool-down past a day, is a slip (a value in milliseconds), not a breaker.
MAX_FAILURE_THRESHOLD = 1000
MAX_COOL_DOWN_S = 86_400


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a processor's circuit opens (``failure_threshold`` faults in a row, 1 to 1000) and
    how long it stays open before a probe (``cool_down_s`` seconds, more than 0, at most a day)."""

    failure_threshold: int = 5
    cool_down_s: float = 30.0

    def __post_init__(self) -> None:
        threshold = self.failure_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise ConfigError("breaker.failure_threshold", threshold, "must be an integer")
        if not 1 <= threshold <= MAX_FAILURE_THRESHOLD:
            problem = f"must be between 1 and {MAX_FAILURE_THRESHOLD}"
            raise ConfigError("breaker.failure_threshold", threshold, problem)
        cool_down = self.cool_down_s
        if isinstance(cool_down, bool) or not isinstance(cool_down, int | float):
            raise ConfigError("breaker.cool_down_s", cool_down, "must be a number of seconds")
        # NaN fails both comparisons; 0 would probe at every attempt, a circuit that never rests.
        if not 0 < cool_down <= MAX_COOL_DOWN_S:
            problem = f"must be more than 0 and at most {MAX_COOL_DOWN_S} (a day)"
            raise ConfigError("breaker.cool_down_s", cool_down, problem)


class CircuitBreaker:
    """The circuit of one processor; ``watcher`` hears its changes of state, by ``processor_id``."""

    __slots__ = (
        "_failures",
        "_opened_at",
        "_policy",
        "_probe_in_flight",
        "_processor_id",
        "_sane_since",
        "_sent",
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
        #: The numbers of the attempts whose faults count: sent after the newest sane answer's.
        self._failures: list[int] = []
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._sent = 0  # attempts numbered so far (sent)
        self._sane_since = 0  # the number of the newest attempt answered sanely

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

    def sent(self) -> int:
        """The number of an attempt being sent now (numbers grow with the sending order), for
        the ``record_*`` call of its answer."""
        self._sent += 1
        return self._sent

    def record_success(self, attempt: int | None = None) -> None:
        """The processor charged, answering ``attempt`` (a number from :meth:`sent`; ``None``: an
        attempt sent just now). An open circuit stays open: the answer is to an attempt let
        through before it opened (one of many in flight), not the probe its cool-down waits for."""
        if self._state is CircuitState.OPEN:
            return
        if self._state is CircuitState.HALF_OPEN:
            self._become(CircuitState.CLOSED)
        self._probe_in_flight = False
        number = self.sent() if attempt is None else attempt
        if number > self._sane_since:
            self._sane_since = number
            if self._failures:  # the faults of attempts sent before it are consecutive no more
                self._failures = [failed for failed in self._failures if failed > number]

    def record_failure(self, now: float, attempt: int | None = None) -> None:
        """The processor failed ``attempt`` (a fault of the processor's, not an answer about the
        card). While the circuit is closed it counts only when no attempt sent after it was
        answered sanely; a probe's failure opens the circuit again, and so, while it is open,
        does any failure (its cool-down starts anew)."""
        if self._state is CircuitState.CLOSED:
            number = self.sent() if attempt is None else attempt
            if number < self._sane_since:
                return  # an attempt sent later was answered: the processor worked since
            self._failures.append(number)
            if len(self._failures) < self._policy.failure_threshold:
                return
            self._become(CircuitState.OPEN)
        elif self._state is CircuitState.HALF_OPEN:
            self._become(CircuitState.OPEN)
        self._opened_at = now
        self._probe_in_flight = False
        self._failures = []

    def abandon(self) -> None:
        """An attempt let through ended without an answer (its record failed, its payment was
        cancelled): it says nothing about the processor, so a half-open circuit's probe is free
        again. Left taken, the circuit would skip the processor until the process restarts."""
        if self._state is CircuitState.HALF_OPEN:
            self._probe_in_flight = False

    def record_neutral(self, attempt: int | None = None) -> None:
        """The processor answered sanely (a decline, a card error): it is healthy, the probe is over."""
        self.record_success(attempt)


class CircuitBreakers:
    """One breaker per processor, created (closed) on first use; ``watcher`` hears every change.
    A processor's breaker follows its own entry of ``policies`` (``processors[].breaker`` of the
    configuration), any other processor's ``policy``."""

    __slots__ = ("_breakers", "_policies", "_policy", "_watcher")

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        watcher: CircuitWatcher | None = None,
        policies: Mapping[ProcessorId, BreakerPolicy] | None = None,
    ) -> None:
        self._policy = policy or BreakerPolicy()
        self._policies = dict(policies or {})
        self._watcher = watcher
        self._breakers: dict[ProcessorId, CircuitBreaker] = {}

    def policy(self, processor_id: ProcessorId) -> BreakerPolicy:
        """The policy the breaker of ``processor_id`` follows."""
        return self._policies.get(processor_id, self._policy)

    def __getitem__(self, processor_id: ProcessorId) -> CircuitBreaker:
        breaker = self._breakers.get(processor_id)
        if breaker is None:
            breaker = CircuitBreaker(self.policy(processor_id), processor_id, self._watcher)
            self._breakers[processor_id] = breaker
        return breaker

    def states(self) -> dict[ProcessorId, CircuitState]:
        return {processor: breaker.state for processor, breaker in self._breakers.items()}
