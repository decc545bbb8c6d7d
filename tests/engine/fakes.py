"""Hand-written fakes of the engine's ports (no mock.patch anywhere)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from engine.contracts import ContractViolation
from engine.error_codes import ErrorCode
from engine.events import DomainEvent
from engine.money import Currency
from engine.processor import ChargeRequest, ProcessorResponse, RefundRequest, Settlement, StatusAnswer
from engine.types import ProcessorId


class ManualClock:
    """Time moves only when a test (or the fake sleeper) moves it."""

    def __init__(self, start: datetime = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)) -> None:
        self._start = start
        self.seconds = 0.0

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.seconds)

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


class RecordingSleeper:
    """Returns at once, advancing the manual clock by the requested time."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.sleeps: list[float] = []
        self._clock = clock

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._clock is not None:
            self._clock.advance(seconds)


class FixedRandom:
    def __init__(self, value: float = 0.5) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@dataclass
class InMemorySink:
    """Keeps every event and violation in order."""

    events: list[DomainEvent] = field(default_factory=list)
    violations: list[ContractViolation] = field(default_factory=list)

    async def emit(self, event: DomainEvent) -> None:
        self.events.append(event)

    async def record_violation(self, violation: ContractViolation) -> None:
        self.violations.append(violation)

    def types(self) -> list[str]:
        return [event.event_type for event in self.events]

    def contract_ids(self) -> list[str]:
        return [violation.contract_id for violation in self.violations]


#: What a scripted processor does on one charge attempt.
OK = "ok"
DECLINE = "decline"
INVALID = "invalid"
NETWORK = "network"
PROCESSING = "processing"
UNAVAILABLE = "unavailable"
RATE_LIMITED = "rate_limited"  # refused for rate limiting (a 429), nothing charged
TIMEOUT_CHARGED = "timeout_charged"  # charges, then hangs past the timeout
TIMEOUT_UNCHARGED = "timeout_uncharged"  # hangs without charging
RAISE = "raise"
GARBAGE = "garbage"
#: A processing error the processor stored under the key: every repeat gets it again.
PROCESSING_FINAL = "processing_final"
#: A refund the processor applies, then hangs past the timeout: its answer is lost.
REFUND_TIMEOUT_APPLIED = "refund_timeout_applied"
#: A refund answered with success and nothing refunded, the charge left as it is ("nothing to undo").
REFUND_NOTHING = "refund_nothing"
#: Charges ten times the amount asked for and says so.
OVERCHARGE = "overcharge"
#: Charges ten times the amount asked for, then hangs past the timeout.
TIMEOUT_OVERCHARGED = "timeout_overcharged"
#: Charges the amount asked for, but in euros, and says so.
WRONG_CURRENCY = "wrong_currency"
EUR = Currency("EUR")

_FAILURES = {
    DECLINE: ErrorCode.DECLINED,
    INVALID: ErrorCode.INVALID_CARD,
    NETWORK: ErrorCode.NETWORK_FAILURE,
    PROCESSING: ErrorCode.PROCESSING_ERROR,
    UNAVAILABLE: ErrorCode.PROCESSOR_UNAVAILABLE,
    RATE_LIMITED: ErrorCode.RATE_LIMITED,
}


_NOT_REACHED = {NETWORK, UNAVAILABLE, RATE_LIMITED}


class ScriptedFailureError(RuntimeError):
    """What a scripted processor raises for ``RAISE``."""


class ScriptedProcessor:
    """Plays a script of behaviours, one per charge attempt (the last one repeats).

    Idempotent like a real processor: a key that was charged answers success again without
    charging twice (unless the behaviour says the attempt never reached the processor).
    ``held`` maps each idempotency key to what this processor still holds. A failed charge gives
    ``reason`` as its decline code.
    """

    def __init__(
        self,
        processor_id: str,
        script: Iterable[str] = (OK,),
        *,
        refund_script: Iterable[str] = (OK,),
        status_script: Iterable[str] = ("ledger",),
        reason: str | None = None,
    ) -> None:
        self._id = ProcessorId(processor_id)
        self._reason = reason
        self._script = list(script)
        self._refund_script = list(refund_script)
        self._status_script = list(status_script)
        self.held: dict[str, int] = {}
        self.currencies: dict[str, Currency] = {}  # keys held in another currency than asked
        self.refunded: dict[str, int] = {}  # keys refunded here, with the amount
        self.charges: list[str] = []
        self.refunds: list[str] = []
        self.calls = 0
        self.status_calls = 0

    @property
    def processor_id(self) -> ProcessorId:
        return self._id

    @staticmethod
    def _next(script: list[str]) -> str:
        return script.pop(0) if len(script) > 1 else script[0]

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        self.calls += 1
        key = request.idempotency_key
        behaviour = self._next(self._script)
        if behaviour in _NOT_REACHED:
            return ProcessorResponse.failed(_FAILURES[behaviour], 1)  # never got to the processor
        if key in self.held:
            return self._held_answer(key)
        if behaviour == OK:
            self._hold(key, request.amount_cents)
            return ProcessorResponse(True, 1, request.amount_cents, reference=f"{self._id}:{key}")
        if behaviour in (OVERCHARGE, WRONG_CURRENCY):
            self._hold(key, request.amount_cents * (10 if behaviour == OVERCHARGE else 1))
            if behaviour == WRONG_CURRENCY:
                self.currencies[key] = EUR
            return self._held_answer(key)
        if behaviour == TIMEOUT_OVERCHARGED:
            self._hold(key, request.amount_cents * 10)
            await asyncio.Event().wait()
        if behaviour in _FAILURES:
            return ProcessorResponse.failed(_FAILURES[behaviour], 1, self._reason)
        if behaviour == PROCESSING_FINAL:
            return ProcessorResponse.failed(ErrorCode.PROCESSING_ERROR, 1, final_for_key=True)
        if behaviour == TIMEOUT_CHARGED:
            self._hold(key, request.amount_cents)
            await asyncio.Event().wait()
        if behaviour == TIMEOUT_UNCHARGED:
            await asyncio.Event().wait()
        if behaviour == RAISE:
            raise ScriptedFailureError("scripted processor failure")
        return {"garbage": True}  # type: ignore[return-value]

    def _hold(self, key: str, amount: int) -> None:
        self.held[key] = amount
        self.charges.append(key)

    def _held_answer(self, key: str) -> ProcessorResponse:
        reference = f"{self._id}:{key}"
        return ProcessorResponse(True, 1, self.held[key], None, reference, None, self.currencies.get(key))

    async def void_or_refund(self, request: RefundRequest) -> ProcessorResponse:
        behaviour = self._next(self._refund_script)
        if behaviour == RAISE:
            raise ScriptedFailureError("scripted refund failure")
        if behaviour in _FAILURES:
            return ProcessorResponse.failed(_FAILURES[behaviour], 1)
        if behaviour == REFUND_NOTHING:
            return ProcessorResponse(True, 1, 0)
        key = request.idempotency_key
        amount = min(self.held.get(key, 0), request.amount_cents)  # up to the amount asked
        if amount:
            self.held[key] -= amount
            if not self.held[key]:
                del self.held[key]
            self.refunds.append(key)
            self.refunded[key] = self.refunded.get(key, 0) + amount
        if behaviour == REFUND_TIMEOUT_APPLIED:
            await asyncio.Event().wait()
        return ProcessorResponse(True, 1, amount, currency=self.currencies.get(key))

    async def status(self, idempotency_key: str) -> StatusAnswer:
        self.status_calls += 1
        behaviour = self._next(self._status_script)
        if behaviour == "unknown":
            return StatusAnswer(Settlement.UNKNOWN, 1)
        currency = self.currencies.get(idempotency_key)
        if idempotency_key in self.held:
            return StatusAnswer(Settlement.CHARGED, 1, self.held[idempotency_key], currency=currency)
        if idempotency_key in self.refunded:
            return StatusAnswer(Settlement.REFUNDED, 1, self.refunded[idempotency_key], currency=currency)
        return StatusAnswer(Settlement.NOT_CHARGED, 1)


class CheckingSink(InMemorySink):
    """Rebuilds every event through its checked constructor: an event the engine built with
    ``derived`` must be exactly what the checked constructor would accept and build."""

    async def emit(self, event: DomainEvent) -> None:
        rebuilt = dataclasses.replace(event)
        assert rebuilt == event, (rebuilt, event)
        assert {f.name for f in dataclasses.fields(event)} <= set(dir(event))
        await super().emit(event)
