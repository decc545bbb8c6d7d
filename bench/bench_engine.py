"""Engine-only cost of a two-step payment (ApplePay $60 then card $40) with zero-latency
simulated processors, in payments per second on one core. Target: at least 20,000.

Baseline, measured in the same run: the same two charges sent straight to the same simulated
processors with no orchestration (no plan, events, guard, retries or results). The ratio is the
share of raw processor throughput the engine keeps.
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
from engine.events import DomainEvent
from engine.ledger import Ledger
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.orchestrator import CompositePaymentService
from engine.plan import processor_idempotency_key
from engine.ports import AsyncioSleeper, SeededRandom, SystemClock
from engine.processor import ChargeRequest
from engine.processors.simulated import SimulatedProcessor
from engine.results import PaymentStatus
from engine.router import Router
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId

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


async def _engine_rate() -> float:
    processors = _processors(Ledger())
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


def run() -> list[Comparison]:
    engine = max(asyncio.run(_engine_rate()) for _ in range(3))
    bare = max(asyncio.run(_bare_rate()) for _ in range(3))
    return [
        Comparison(
            name="engine two-step payment (zero-latency simulated processors, one core)",
            unit="payments/s",
            measured=engine,
            baseline=bare,
            baseline_name="the same charges without orchestration",
            absolute_target=20_000,
        )
    ]
