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

A processor's circuit is shared by every merchant routed to it, so it counts only what says the
processor is sick. A timeout is the end of a merchant's own budget (its ``timeout_ms``), which
says the processor is sick only when a healthy one would have answered within it. A merchant
that gives each attempt 5 ms, against a processor answering everyone else in 40 ms, timed out
every attempt: two of its payments (three attempts each) opened the circuit, and every other
merchant's payments went to their fallback for 30 s, or failed. So a timeout counts against the
shared circuit only when its budget was at least the breaker's ``min_timeout_ms`` (resolved by
:meth:`BreakerPolicy.resolved`: by default 1 s, or the longest budget of a merchant routed to the
processor when every one is shorter, so that a processor that hangs for all still opens for
all). A shorter budget's timeout counts in the merchant's own circuit for the processor
(:meth:`CircuitBreakers.merchant_circuit`), which skips the processor for that merchant only: its
configuration takes the processor away from itself, never from the others. Errors, panics,
garbage and refusals are the processor's whatever the budget, and count against the shared one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from engine.errors import ConfigError
from engine.types import MerchantId, ProcessorId, check_count


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_UNNAMED = ProcessorId("")


class CircuitWatcher(Protocol):
    """Hears each change of a processor's circuit (metrics, logs). Called on the payment path
    when the change happens: it must return at once and never raise."""

    def circuit_changed(self, processor_id: ProcessorId, state: CircuitState) -> None: ...


class MerchantCircuitWatcher(Protocol):
    """Hears each change of one merchant's own circuit for a processor (logs: no metric may carry
    a merchant id). Called on the payment path: it must return at once and never raise."""

    def merchant_circuit_changed(
        self, processor_id: ProcessorId, merchant_id: MerchantId, state: CircuitState
    ) -> None: ...


#: The bounds of a :class:`BreakerPolicy`: a threshold past a thousand faults in a row, or a
#: cool-down past a day, is a slip (a value in milliseconds), not a breaker.
MAX_FAILURE_THRESHOLD = 1000
MAX_COOL_DOWN_S = 86_400
#: ``min_timeout_ms``'s bound: a merchant's ``timeout_ms`` is at most 600000 (10 minutes).
MAX_MIN_TIMEOUT_MS = 600_000
#: ``min_timeout_ms`` when the configuration gives none: a processor that does not answer a charge
#: in a second is slow for everyone (the simulated ones' p99 is 400 ms); a merchant that gives up
#: sooner has chosen to, and its timeouts are its own.
DEFAULT_MIN_TIMEOUT_MS = 1000


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a processor's circuit opens (``failure_threshold`` faults in a row, 1 to 1000), how
    long it stays open before a probe (``cool_down_s`` seconds, more than 0, at most a day), and
    the shortest merchant budget whose timeouts count against it for every merchant
    (``min_timeout_ms``, 0 to 600000; 0: every timeout; ``None``: see :meth:`resolved`)."""

    failure_threshold: int = 5
    cool_down_s: float = 30.0
    min_timeout_ms: int | None = None

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
        if self.min_timeout_ms is not None:
            check_count("breaker.min_timeout_ms", self.min_timeout_ms, maximum=MAX_MIN_TIMEOUT_MS)

    def resolved(self, budgets_ms: Iterable[int]) -> BreakerPolicy:
        """This policy with ``min_timeout_ms`` set, for a processor the merchants of ``budgets_ms``
        (their ``timeout_ms``) are routed to: as given, else 1000 ms, but never more than the
        longest of those budgets. Whatever the merchants' budgets, the timeouts of the most
        patient one count for everyone: a processor that hangs for all still opens for all."""
        if self.min_timeout_ms is not None:
            return self
        longest = max(budgets_ms, default=DEFAULT_MIN_TIMEOUT_MS)
        return replace(self, min_timeout_ms=min(DEFAULT_MIN_TIMEOUT_MS, longest))

    def counts_timeout(self, budget_ms: int) -> bool:
        """Whether a charge that timed out after ``budget_ms`` (its merchant's ``timeout_ms``)
        counts against the processor's shared circuit (an unresolved policy: every timeout)."""
        return budget_ms >= (self.min_timeout_ms or 0)


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


class _OfMerchant:
    """Tells a :class:`MerchantCircuitWatcher` of the changes of one merchant's own circuits."""

    __slots__ = ("_merchant_id", "_watcher")

    def __init__(self, watcher: MerchantCircuitWatcher, merchant_id: MerchantId) -> None:
        self._watcher = watcher
        self._merchant_id = merchant_id

    def circuit_changed(self, processor_id: ProcessorId, state: CircuitState) -> None:
        self._watcher.merchant_circuit_changed(processor_id, self._merchant_id, state)


class CircuitBreakers:
    """One breaker per processor, created (closed) on first use; ``watcher`` hears every change.
    A processor's breaker follows its own entry of ``policies`` (``processors[].breaker`` of the
    configuration, resolved), any other processor's ``policy``.

    Each merchant also has its own circuit per processor (:meth:`merchant_circuit`), with the
    same policy, for the timeouts of a budget too short to count against the shared one;
    ``merchant_watcher`` hears its changes."""

    __slots__ = ("_breakers", "_merchant_watcher", "_own", "_policies", "_policy", "_watcher")

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        watcher: CircuitWatcher | None = None,
        policies: Mapping[ProcessorId, BreakerPolicy] | None = None,
        merchant_watcher: MerchantCircuitWatcher | None = None,
    ) -> None:
        self._policy = policy or BreakerPolicy()
        self._policies = dict(policies or {})
        self._watcher = watcher
        self._merchant_watcher = merchant_watcher
        self._breakers: dict[ProcessorId, CircuitBreaker] = {}
        self._own: dict[tuple[ProcessorId, MerchantId], CircuitBreaker] = {}

    def policy(self, processor_id: ProcessorId) -> BreakerPolicy:
        """The policy the breaker of ``processor_id`` follows."""
        return self._policies.get(processor_id, self._policy)

    def __getitem__(self, processor_id: ProcessorId) -> CircuitBreaker:
        breaker = self._breakers.get(processor_id)
        if breaker is None:
            breaker = CircuitBreaker(self.policy(processor_id), processor_id, self._watcher)
            self._breakers[processor_id] = breaker
        return breaker

    def merchant_circuit(self, processor_id: ProcessorId, merchant_id: MerchantId) -> CircuitBreaker:
        """The circuit of ``processor_id`` for ``merchant_id`` alone (created closed on first use):
        the timeouts of the merchant's too-short budget open it, skipping the processor for that
        merchant only."""
        key = (processor_id, merchant_id)
        breaker = self._own.get(key)
        if breaker is None:
            told = self._merchant_watcher
            watcher = None if told is None else _OfMerchant(told, merchant_id)
            breaker = CircuitBreaker(self.policy(processor_id), processor_id, watcher)
            self._own[key] = breaker
        return breaker

    def states(self) -> dict[ProcessorId, CircuitState]:
        return {processor: breaker.state for processor, breaker in self._breakers.items()}

    def merchant_states(self, merchant_id: MerchantId) -> dict[ProcessorId, CircuitState]:
        """The state of each of ``merchant_id``'s own circuits created so far."""
        return {
            processor: breaker.state
            for (processor, merchant), breaker in self._own.items()
            if merchant == merchant_id
        }


class CircuitPair:
    """The two circuits one merchant's attempts at one processor pass: the processor's, shared by
    every merchant, and the merchant's own (``None`` when the merchant's budget is long enough
    for its timeouts to count against the shared one, :meth:`BreakerPolicy.counts_timeout`: then
    nothing could ever open its own, and each attempt is spared its calls)."""

    __slots__ = ("own", "shared")

    def __init__(self, shared: CircuitBreaker, own: CircuitBreaker | None) -> None:
        self.shared = shared
        self.own = own

    def allow(self, now: float) -> bool:
        """Whether an attempt may go now: both circuits let it (a probe one took is given back
        when the other refuses)."""
        return self.refusing(now) is None

    def refusing(self, now: float) -> CircuitBreaker | None:
        """As :meth:`allow`, saying which circuit refuses: ``None`` when an attempt may go now,
        else :attr:`own` or :attr:`shared` (the merchant's own is asked first)."""
        own = self.own
        if own is not None and not own.allow(now):
            return own
        if self.shared.allow(now):
            return None
        if own is not None:
            own.abandon()
        return self.shared

    def sent(self) -> tuple[int, int]:
        """The numbers of an attempt being sent now, in each circuit."""
        own = self.own
        return self.shared.sent(), 0 if own is None else own.sent()

    def record_success(self, sent: tuple[int, int]) -> None:
        self.shared.record_success(sent[0])
        if self.own is not None:
            self.own.record_success(sent[1])

    def record_neutral(self, sent: tuple[int, int]) -> None:
        self.shared.record_neutral(sent[0])
        if self.own is not None:
            self.own.record_neutral(sent[1])

    def record_failure(self, now: float, sent: tuple[int, int], *, budget_expired: bool) -> None:
        """A processor fault; ``budget_expired`` when it is the merchant's timeout running out
        (not an answer of the processor's). Such a timeout of a budget too short to count against
        the shared circuit counts in the merchant's own, and tells the shared one nothing (a probe
        it was is free again); every other fault counts against the shared circuit."""
        own = self.own
        if own is None:
            self.shared.record_failure(now, sent[0])
            return
        if budget_expired:
            own.record_failure(now, sent[1])
            self.shared.abandon()
            return
        self.shared.record_failure(now, sent[0])
        own.abandon()

    def abandon(self) -> None:
        self.shared.abandon()
        if self.own is not None:
            self.own.abandon()
