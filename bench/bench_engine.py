"""Engine cost of a two-step payment (ApplePay $60 then card $40), in payments per second on one
core. Target (issue 3): at least 20,000 with zero-latency simulated processors.

Three comparisons, each against a baseline measured in the same run:

1. The engine with zero-latency simulated processors, next to the same two charges sent straight
   to the same processors (no plan, events, guard, retries or results).
2. The engine alone, with processors that answer instantly, next to its structural floor: the
   seven domain events of a two-step payment built without re-checking (``engine.unchecked``)
   and two awaits, each under a timer handle (the cheapest deadline asyncio offers; the engine's
   guard uses the same), nothing else. The floor is what any engine that keeps the event record
   and a per-attempt timeout costs in this interpreter.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.harness import Comparison
from engine.circuit_breaker import CircuitBreakers
from engine.config import (
    LatencyProfile,
    MerchantConfig,
    PlatformConfig,
    ProcessorConfig,
    ProcessorKind,
    RoutingRule,
)
from engine.context import CoreRequestContext
from engine.contracts import ContractViolation
from engine.events import (
    DomainEvent,
    PaymentCompleted,
    PaymentReceived,
    PlanBuilt,
    StepAttempted,
    StepSucceeded,
)
from engine.ledger import Ledger
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.orchestrator import CompositePaymentService
from engine.plan import processor_idempotency_key
from engine.ports import AsyncioSleeper, SeededRandom, SystemClock
from engine.processor import ChargeRequest, ProcessorResponse, RefundRequest, Settlement, StatusAnswer
from engine.processors.simulated import SimulatedProcessor
from engine.results import PaymentStatus
from engine.router import Router
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from engine.unchecked import unchecked

PAYMENTS = 20_000
USD = Currency("USD")
APPLE, CARD = ProcessorId("applepay_sim"), ProcessorId("stripe_sim")


class CountingSink:
    """Keeps nothing: the benchmark measures the engine, not a store."""

    def __init__(self) -> None:
        self.events = 0
        self.violations = 0

    async def emit(self, event: DomainEvent) -> None:
        self.events += 1

    async def record_violation(self, violation: ContractViolation) -> None:
        self.violations += 1


def _processors(ledger: Ledger) -> dict[ProcessorId, Any]:
    sleeper = AsyncioSleeper()
    return {
        name: SimulatedProcessor(
            ProcessorConfig(name, ProcessorKind.SIMULATED, seed=42, latency=LatencyProfile(0, 0)),
            ledger,
            sleeper,
        )
        for name in (APPLE, CARD)
    }


def _contexts(prefix: str) -> list[CoreRequestContext]:
    return [
        CoreRequestContext(
            merchant_id=MerchantId("m_acme"),
            request_id=RequestId(f"req_{prefix}{n}"),
            payment_id=PaymentId(f"pay_{prefix}{n}"),
            amount_cents=10_000,
            currency=USD,
        )
        for n in range(PAYMENTS)
    ]


async def _engine_rate(instant: bool = False) -> float:
    processors = {p: InstantProcessor(p) for p in (APPLE, CARD)} if instant else _processors(Ledger())
    merchant = MerchantConfig(
        merchant_id=MerchantId("m_acme"),
        api_keys=("sk_bench",),
        default_currency=USD,
        routing=(
            RoutingRule(PaymentMethod.APPLE_PAY, (APPLE,), max_amount_cents=6000),
            RoutingRule(PaymentMethod.CARD, (CARD,)),
        ),
    )
    config = PlatformConfig(
        merchants=(merchant,),
        processors=tuple(
            ProcessorConfig(p, ProcessorKind.SIMULATED, latency=LatencyProfile(0, 0)) for p in processors
        ),
    )
    sink, clock, sleeper, random = CountingSink(), SystemClock(), AsyncioSleeper(), SeededRandom(1)
    router = Router(processors, sink, clock, sleeper, random, CircuitBreakers())
    service = CompositePaymentService(config, processors, router, sink, clock, sleeper, random)
    contexts = _contexts("e")
    started = time.perf_counter()
    for ctx in contexts:
        result = await service.pay(ctx)
        if result.status is not PaymentStatus.SUCCEEDED:
            raise SystemExit(f"benchmark payment did not succeed: {result}")
    return PAYMENTS / (time.perf_counter() - started)


async def _bare_rate() -> float:
    processors = _processors(Ledger())
    contexts = _contexts("b")
    started = time.perf_counter()
    for ctx in contexts:
        for index, (processor, amount, method) in enumerate(
            ((processors[APPLE], 6000, PaymentMethod.APPLE_PAY), (processors[CARD], 4000, PaymentMethod.CARD))
        ):
            key = processor_idempotency_key(ctx.payment_id, index)
            await processor.charge(ChargeRequest(ctx.payment_id, index, key, amount, USD, method))
    return PAYMENTS / (time.perf_counter() - started)


class InstantProcessor:
    """Answers every charge at once with success: measures the engine, not a processor."""

    def __init__(self, processor_id: ProcessorId) -> None:
        self._id = processor_id

    @property
    def processor_id(self) -> ProcessorId:
        return self._id

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        return ProcessorResponse(True, 0, request.amount_cents)

    async def void_or_refund(self, request: RefundRequest) -> ProcessorResponse:
        return ProcessorResponse(True, 0, request.amount_cents)

    async def status(self, idempotency_key: str) -> StatusAnswer:
        return StatusAnswer(Settlement.NOT_CHARGED, 0)


async def _floor_rate() -> float:
    sink, clock = CountingSink(), SystemClock()
    processor = InstantProcessor(CARD)
    loop = asyncio.get_running_loop()
    contexts = _contexts("f")
    started = time.perf_counter()
    for ctx in contexts:
        await sink.emit(
            _received(
                payment_id=ctx.payment_id,
                request_id=ctx.request_id,
                merchant_id=ctx.merchant_id,
                timestamp=clock.now(),
                accepted=True,
                amount_cents=ctx.amount_cents,
                currency=USD,
                method=None,
                idempotency_key=None,
                validation_issues=(),
            )
        )
        await sink.emit(
            _plan_built(
                payment_id=ctx.payment_id,
                request_id=ctx.request_id,
                merchant_id=ctx.merchant_id,
                timestamp=clock.now(),
                total_amount_cents=10_000,
                currency=USD,
                steps=(),
                coverage_shortfall_cents=0,
            )
        )
        for index in range(2):
            key = processor_idempotency_key(ctx.payment_id, index)
            await sink.emit(
                _attempted(
                    payment_id=ctx.payment_id,
                    request_id=ctx.request_id,
                    merchant_id=ctx.merchant_id,
                    timestamp=clock.now(),
                    step_index=index,
                    processor_id=CARD,
                    attempt=1,
                    method=PaymentMethod.CARD,
                    amount_cents=5000,
                    idempotency_key=key,
                )
            )
            timer = loop.call_later(2, _never)
            await processor.charge(_FLOOR_REQUEST)
            timer.cancel()
            await sink.emit(
                _succeeded(
                    payment_id=ctx.payment_id,
                    request_id=ctx.request_id,
                    merchant_id=ctx.merchant_id,
                    timestamp=clock.now(),
                    step_index=index,
                    processor_id=CARD,
                    latency_ms=0,
                    amount=5000,
                    attempt=1,
                )
            )
        await sink.emit(
            _completed(
                payment_id=ctx.payment_id,
                request_id=ctx.request_id,
                merchant_id=ctx.merchant_id,
                timestamp=clock.now(),
                total_amount=10_000,
                total_processed=10_000,
                status=PaymentStatus.SUCCEEDED,
            )
        )
    return PAYMENTS / (time.perf_counter() - started)


_received = unchecked(PaymentReceived)
_plan_built = unchecked(PlanBuilt)
_attempted = unchecked(StepAttempted)
_succeeded = unchecked(StepSucceeded)
_completed = unchecked(PaymentCompleted)


def _never() -> None:
    """The floor's deadlines are never reached."""


_FLOOR_REQUEST = ChargeRequest(PaymentId("pay_floor"), 0, "pay_floor:step:0", 5000, USD, PaymentMethod.CARD)


def run() -> list[Comparison]:
    engine = max(asyncio.run(_engine_rate()) for _ in range(3))
    bare = max(asyncio.run(_bare_rate()) for _ in range(3))
    alone = max(asyncio.run(_engine_rate(instant=True)) for _ in range(3))
    floor = max(asyncio.run(_floor_rate()) for _ in range(3))
    return [
        Comparison(
            name="engine two-step payment (zero-latency simulated processors, one core)",
            unit="payments/s",
            measured=engine,
            baseline=bare,
            baseline_name="the same charges without orchestration",
            absolute_target=20_000,
        ),
        Comparison(
            name="engine alone (instantly answering processors)",
            unit="payments/s",
            measured=alone,
            baseline=floor,
            baseline_name="structural floor (7 events, 2 timed awaits)",
        ),
    ]
