"""A deterministic simulated processor, with latency, faults and Stripe's test cards.

:class:`SimulatedProcessor` keeps the :class:`~engine.processor.Processor` contract where a real
processor would, and breaks it on purpose where the config's fault rates say so, so that the
router and the guard around processors can be exercised. Every charge it really makes is
recorded in the shared :class:`~engine.ledger.Ledger`.

Determinism: each call draws from its own ``random.Random`` seeded by a BLAKE2b hash of
(config seed, processor id, kind of call, the call's number for that idempotency key at this
processor, idempotency key). Outcomes therefore depend only on the seed and on each key's own
history, never on the order or the concurrency of calls across keys. A processor with zero
latency and no fault rates has nothing to draw, and skips the hashing.

One attempt of ``charge``, in order:

1. latency is drawn: log-normal with median ``p50_ms`` and 99th percentile ``p99_ms`` (always
   drawn, so that fault outcomes do not depend on the latency profile);
2. a reused key whose first request had another amount or currency fails with
   ``ErrorCode.UNKNOWN`` and charges nothing (Stripe's idempotency-key mismatch error);
3. a key with a definitive outcome (succeeded, declined, invalid card) replays it, with the
   same reference, and charges nothing;
4. on a ``card`` step, ``metadata["card_number"]`` decides (see :mod:`engine.processors.cards`);
5. otherwise one uniform draw picks, by cumulative probability, declined, timeout,
   network_failure, panic, malformed, or success.

A timeout hangs (``sleeper.sleep(3600)``) until the caller's timeout cancels it; half of the
timeouts (drawn per attempt) really charged first, and that charge is then the key's definitive
outcome, so a retry with the same key, or ``status``, reports it. A panic raises
:class:`SimulatedPanic`; a malformed answer is a ``dict``, not a ``ProcessorResponse``. Effects
(ledger writes, cached outcomes) happen when a call arrives; the latency is the time its answer
takes to come back, so a caller that gives up early may leave a charge behind. Refunds and
status queries never fail, but take latency. A zero latency never awaits the sleeper.

What the processor remembers of a key (its calls, its first request, its definitive outcome) is
forgotten :data:`KEY_TTL_S` after the key was first seen, as Stripe prunes idempotency keys after
24 hours: kept for good, it grew with every attempt, failed ones included (about 660 bytes each),
for as long as the service ran. The charges themselves stay in the :class:`~engine.ledger.Ledger`,
so a charge is still replayed, refunded and reported after its key is forgotten.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections import deque
from collections.abc import Mapping, MutableMapping
from enum import Enum
from types import MappingProxyType
from typing import cast

from engine.config import ProcessorConfig, ProcessorKind
from engine.error_codes import ErrorCode
from engine.errors import ConfigError
from engine.ledger import Ledger
from engine.methods import PaymentMethod
from engine.ports import Clock, Sleeper, SystemClock
from engine.processor import ChargeRequest, ProcessorResponse, RefundRequest, Settlement, StatusAnswer
from engine.processors.cards import CARD_NUMBER_KEY, card_outcome
from engine.shards import PART_MASK, ShardedDict
from engine.types import ProcessorId
from engine.unchecked import unchecked

#: The standard normal quantile of 0.99: ``p99 = p50 * exp(sigma * _Z99)``.
_Z99 = 2.3263
#: How long a timed-out attempt hangs; the caller's own timeout is meant to end it first.
HANG_SECONDS = 3600.0
_MAX_LATENCY_MS = int(HANG_SECONDS * 1000)
#: How long a key is remembered after its first call (Stripe keeps idempotency keys 24 hours).
KEY_TTL_S = 86_400.0
#: The kinds of call counted per key (see ``SimulatedProcessor._rng``).
_CALL_KINDS = ("charge", "refund", "status")
#: The chance that a timed-out attempt really charged before hanging.
TIMEOUT_CHARGED_PROBABILITY = 0.5
#: What a malformed answer looks like.
MALFORMED_ANSWER: Mapping[str, str] = MappingProxyType({"status": "???"})


class SimulatedPanic(RuntimeError):  # noqa: N818 - named for what it simulates, not an Error
    """Raised on purpose by a simulated processor to exercise the guard that absorbs crashes."""


class _Fault(Enum):
    DECLINED = "declined"
    HANG = "timeout"
    NETWORK_FAILURE = "network_failure"
    PANIC = "panic"
    MALFORMED = "malformed"


class _Draws:
    """Four uniform numbers in [0, 1) cut from one keyed digest, in fixed slots: two for latency,
    one for the fault, one for whether a hang charged. Deterministic like a seeded
    ``random.Random``, without the cost of seeding one per call (about 5 µs here)."""

    __slots__ = ("_digest",)

    def __init__(self, digest: bytes) -> None:
        self._digest = digest

    def _uniform(self, slot: int) -> float:
        # Only the slots a call uses are cut (a zero-latency charge uses one).
        word: int = _WORD.unpack_from(self._digest, 8 * slot)[0]
        return (word >> 11) * _TO_UNIT

    def normal(self) -> float:
        """A standard normal sample (Box-Muller over slots 0 and 1)."""
        radius = math.sqrt(-2.0 * math.log(1.0 - self._uniform(0)))
        return radius * math.cos(2.0 * math.pi * self._uniform(1))

    def fault(self) -> float:
        return self._uniform(2)

    def hang_charged(self) -> float:
        return self._uniform(3)


_TO_UNIT = 1.0 / (1 << 53)
_WORD = struct.Struct(">Q")

#: What a processor whose draws decide nothing (zero latency, no faults) is handed.
_UNUSED_DRAWS = _Draws(bytes(32))

#: A remembered outcome: (amount_cents, error code value or None, reference, decline code).
_Outcome = tuple[int, str | None, str | None, str | None]


def _remembered(response: ProcessorResponse) -> _Outcome:
    code = None if response.error_code is None else response.error_code.value
    return (response.amount_cents, code, response.reference, response.decline_code)


#: The simulator answers from values it checked itself (see engine.unchecked).
_response = unchecked(ProcessorResponse)


def _answer(outcome: _Outcome, latency_ms: int) -> ProcessorResponse:
    amount, code, reference, decline_code = outcome
    error_code = None if code is None else ErrorCode(code)
    return ProcessorResponse(error_code is None, latency_ms, amount, error_code, reference, decline_code)


class SimulatedProcessor:
    """A :class:`~engine.processor.Processor` simulated from a seeded ``ProcessorConfig``."""

    __slots__ = (
        "_calls",
        "_charge_attempts",
        "_clock",
        "_draws_unused",
        "_first_requests",
        "_first_requests_parts",
        "_heads",
        "_id",
        "_ledger",
        "_mu",
        "_outcomes",
        "_outcomes_parts",
        "_reference_head",
        "_reference_prefix",
        "_seed",
        "_seen",
        "_seen_order",
        "_seen_parts",
        "_sigma",
        "_sleeper",
        "_thresholds",
        "_zero_latency",
    )

    def __init__(
        self, config: ProcessorConfig, ledger: Ledger, sleeper: Sleeper, clock: Clock | None = None
    ) -> None:
        if config.kind is not ProcessorKind.SIMULATED:
            raise ConfigError(f"processors[{config.id!r}].kind", config.kind, "must be simulated")
        self._id = config.id
        self._seed = config.seed
        self._ledger = ledger
        self._sleeper = sleeper
        self._clock = clock if clock is not None else SystemClock()
        p50, p99 = config.latency.p50_ms, config.latency.p99_ms
        self._zero_latency = p50 == 0
        self._mu = math.log(p50) if p50 > 0 else 0.0
        self._sigma = math.log(p99 / p50) / _Z99 if p50 > 0 else 0.0
        rates = config.fault_rates
        thresholds: list[tuple[float, _Fault]] = []
        cumulative = 0.0
        for rate, fault in (
            (rates.declined, _Fault.DECLINED),
            (rates.timeout, _Fault.HANG),
            (rates.network_failure, _Fault.NETWORK_FAILURE),
            (rates.panic, _Fault.PANIC),
            (rates.malformed, _Fault.MALFORMED),
        ):
            cumulative += rate
            if rate > 0:
                thresholds.append((cumulative, fault))
        self._thresholds = tuple(thresholds)
        self._calls: ShardedDict[tuple[str, str], int] = ShardedDict()
        self._first_requests: ShardedDict[str, tuple[int, str]] = ShardedDict()
        # Definitive outcomes per key, as plain tuples of strings and numbers: a long-running
        # service keeps one per charge, and such tuples are invisible to the garbage collector.
        self._outcomes: ShardedDict[str, _Outcome] = ShardedDict()
        # The keys remembered, and when each was first seen in that order: what is forgotten when.
        self._seen: ShardedDict[str, float] = ShardedDict()
        self._seen_order: deque[tuple[float, str]] = deque()
        # The parts of the maps keyed by idempotency key: a charge finds its key's part once and
        # uses it in each (engine.shards.PART_MASK).
        self._first_requests_parts = self._first_requests.parts()
        self._outcomes_parts = self._outcomes.parts()
        self._seen_parts = self._seen.parts()
        self._charge_attempts = 0
        self._heads: dict[str, bytes] = {}
        self._reference_head = f"{self._seed}\x00{self._id}\x00".encode("utf-8", "surrogatepass")
        self._reference_prefix = f"sim_{self._id[:200]}_"
        # With zero latency and no fault rates nothing random decides anything: skip the hashing.
        self._draws_unused = self._zero_latency and not self._thresholds

    @property
    def processor_id(self) -> ProcessorId:
        return self._id

    @property
    def keys_remembered(self) -> int:
        """How many keys this processor remembers (first seen less than :data:`KEY_TTL_S` ago)."""
        return len(self._seen)

    @property
    def charge_attempts(self) -> int:
        """How many ``charge`` calls this processor received (replays and hangs included)."""
        return self._charge_attempts

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        """One charge attempt; see the module docstring for the order of decisions."""
        self._charge_attempts += 1
        key = request.idempotency_key
        part = hash(key) & PART_MASK
        self._remember(key, part)
        if self._draws_unused:
            rng, latency_ms = _UNUSED_DRAWS, 0
        else:
            rng = self._rng("charge", key)
            latency_ms = self._latency_ms(rng)
        outcome = self._decide(request, rng, latency_ms, part)
        if outcome is _Fault.HANG:
            await self._sleeper.sleep(HANG_SECONDS)
            return ProcessorResponse.failed(ErrorCode.TIMEOUT, _MAX_LATENCY_MS)
        if latency_ms > 0:
            await self._sleeper.sleep(latency_ms / 1000)
        if isinstance(outcome, ProcessorResponse):
            return outcome
        if outcome is _Fault.PANIC:
            raise SimulatedPanic("simulated processor panic")
        # _Fault.MALFORMED. Deliberately not a ProcessorResponse: the guard must catch answers of
        # the wrong type, which the Processor protocol cannot express, hence the cast.
        return cast("ProcessorResponse", dict(MALFORMED_ANSWER))

    async def void_or_refund(self, request: RefundRequest) -> ProcessorResponse:
        """Refund what the key charged here, up to ``request.amount_cents``; once per charge.

        Succeeds with ``amount_cents`` the amount refunded by this call: 0 when nothing was
        charged under the key or it was already refunded.
        """
        key = request.idempotency_key
        self._remember(key)
        latency_ms = self._latency_ms(self._rng("refund", key))
        refunded = self._ledger.record_refund(self._id, key, up_to=request.amount_cents)
        entry = self._ledger.lookup(self._id, key)
        reference = entry.reference if entry is not None else None
        if latency_ms > 0:
            await self._sleeper.sleep(latency_ms / 1000)
        return ProcessorResponse(True, latency_ms, refunded, reference=reference)

    async def status(self, idempotency_key: str) -> StatusAnswer:
        """What the ledger holds here for the key: CHARGED, REFUNDED or NOT_CHARGED."""
        self._remember(idempotency_key)
        latency_ms = self._latency_ms(self._rng("status", idempotency_key))
        entry = self._ledger.lookup(self._id, idempotency_key)
        if entry is None:
            answer = StatusAnswer(Settlement.NOT_CHARGED, latency_ms)
        elif entry.refunded:
            answer = StatusAnswer(Settlement.REFUNDED, latency_ms, entry.refunded_cents, entry.reference)
        else:
            answer = StatusAnswer(Settlement.CHARGED, latency_ms, entry.amount_cents, entry.reference)
        if latency_ms > 0:
            await self._sleeper.sleep(latency_ms / 1000)
        return answer

    def _decide(
        self, request: ChargeRequest, rng: _Draws, latency_ms: int, part: int
    ) -> ProcessorResponse | _Fault:
        """The attempt's outcome, with its effects (ledger, cached outcome) already applied;
        ``part`` is the key's part of each map (see ``engine.shards``)."""
        key = request.idempotency_key
        fingerprint = (request.amount_cents, request.currency.code)
        if self._first_requests_parts[part].setdefault(key, fingerprint) != fingerprint:
            return ProcessorResponse.failed(ErrorCode.UNKNOWN, latency_ms)
        outcomes = self._outcomes_parts[part]
        cached = outcomes.get(key)
        if cached is None:
            # A charge the books already hold (made before the service restarted) is replayed.
            entry = self._ledger.lookup(self._id, key)
            if entry is not None:
                cached = outcomes[key] = (entry.amount_cents, None, entry.reference, None)
        if cached is not None:
            return _answer(cached, latency_ms)
        if request.method is PaymentMethod.CARD and CARD_NUMBER_KEY in request.metadata:
            card = card_outcome(request.metadata[CARD_NUMBER_KEY])
            if card.error_code is None:
                return self._succeed(request, latency_ms, outcomes)
            response = ProcessorResponse.failed(card.error_code, latency_ms, card.decline_code)
            if card.definitive:
                outcomes[key] = _remembered(response)
            return response
        # Without fault rates there is nothing to draw: every attempt that gets here succeeds.
        fault = self._draw_fault(rng.fault()) if self._thresholds else None
        if fault is None:
            return self._succeed(request, latency_ms, outcomes)
        if fault is _Fault.DECLINED:
            response = ProcessorResponse.failed(ErrorCode.DECLINED, latency_ms, "generic_decline")
            outcomes[key] = _remembered(response)
            return response
        if fault is _Fault.NETWORK_FAILURE:
            return ProcessorResponse.failed(ErrorCode.NETWORK_FAILURE, latency_ms)
        if fault is _Fault.HANG and rng.hang_charged() < TIMEOUT_CHARGED_PROBABILITY:
            self._succeed(request, latency_ms, outcomes)
        return fault

    def _succeed(
        self, request: ChargeRequest, latency_ms: int, outcomes: MutableMapping[str, _Outcome]
    ) -> ProcessorResponse:
        """Charge the key (``outcomes`` is its part of the outcomes map)."""
        key = request.idempotency_key
        reference = self._reference(key)
        self._ledger.record_charge(
            self._id,
            key,
            payment_id=request.payment_id,
            step_index=request.step_index,
            amount_cents=request.amount_cents,
            currency=request.currency.code,
            reference=reference,
        )
        response = _response(
            success=True,
            latency_ms=latency_ms,
            amount_cents=request.amount_cents,
            error_code=None,
            reference=reference,
            decline_code=None,
        )
        outcomes[key] = (request.amount_cents, None, reference, None)
        return response

    def _remember(self, key: str, part: int | None = None) -> None:
        """Forget the keys first seen :data:`KEY_TTL_S` ago or more, then note ``key`` first seen
        now unless it is remembered. The keys wait in one queue in the order they were first
        seen, so the sweep stops at the first young one (a charge, its status query and a refund
        each come here: 1.1 µs a call when each part of the map kept its own order, a twentieth of
        a simulated two-step payment, against under 0.5 now). ``part`` is the key's part of the
        maps when the caller found it already."""
        now = self._clock.monotonic()
        order = self._seen_order
        while order and now - order[0][0] >= KEY_TTL_S:
            _, oldest = order.popleft()
            del self._seen[oldest]
            self._forget(oldest)
        seen = self._seen_parts[hash(key) & PART_MASK if part is None else part]
        if key not in seen:
            seen[key] = now
            order.append((now, key))

    def _forget(self, key: str) -> None:
        self._first_requests.pop(key, None)
        self._outcomes.pop(key, None)
        for kind in _CALL_KINDS:
            self._calls.pop((kind, key), None)

    def _draw_fault(self, draw: float) -> _Fault | None:
        for threshold, fault in self._thresholds:
            if draw < threshold:
                return fault
        return None

    def _rng(self, kind: str, key: str) -> _Draws:
        """The draws of the next ``kind`` call on ``key``, independent of every other call."""
        if self._draws_unused:
            return _UNUSED_DRAWS
        number = self._calls.get((kind, key), 0) + 1
        self._calls[kind, key] = number
        # seed, id, kind, number, key, NUL-separated; the key goes last: it is the only part that
        # may contain the separator. The constant head is encoded once per kind.
        head = self._heads.get(kind)
        if head is None:
            head = self._heads[kind] = f"{self._seed}\x00{self._id}\x00{kind}\x00".encode(
                "utf-8", "surrogatepass"
            )
        material = head + f"{number}\x00{key}".encode("utf-8", "surrogatepass")
        return _Draws(hashlib.blake2b(material, digest_size=32).digest())

    def _latency_ms(self, rng: _Draws) -> int:
        """A log-normal sample (median p50, 99th percentile p99), capped at the hang time."""
        if self._zero_latency:
            return 0
        return min(round(math.exp(self._mu + self._sigma * rng.normal())), _MAX_LATENCY_MS)

    def _reference(self, key: str) -> str:
        """``sim_<id>_<hash of seed, id and key>``: the same key always gets the same reference."""
        material = self._reference_head + key.encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(material, digest_size=8).hexdigest()
        return f"{self._reference_prefix}{digest}"
