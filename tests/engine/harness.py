"""Builds an orchestrator over fakes, with the seed's routing (ApplePay $60, then card)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.circuit_breaker import BreakerPolicy, CircuitBreakers
from engine.config import (
    MerchantConfig,
    PlatformConfig,
    ProcessorConfig,
    ProcessorKind,
    RetryPolicy,
    RoutingRule,
)
from engine.context import CoreRequestContext
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import Currency
from engine.orchestrator import CompositePaymentService
from engine.processor import Processor
from engine.router import Router
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from tests.engine.fakes import CheckingSink, FixedRandom, InMemorySink, ManualClock, RecordingSleeper

USD = Currency("USD")
SEED_ROUTING = (
    RoutingRule(PaymentMethod.APPLE_PAY, (ProcessorId("applepay_sim"),), max_amount_cents=6000),
    RoutingRule(PaymentMethod.CARD, (ProcessorId("stripe_sim"), ProcessorId("adyen_sim"))),
)


@dataclass
class Rig:
    service: CompositePaymentService
    router: Router
    sink: InMemorySink
    clock: ManualClock
    sleeper: RecordingSleeper
    config: PlatformConfig

    async def pay(self, amount: int = 10_000, payment: str = "pay_1", **context: object) -> object:
        return await self.service.pay(request(amount, payment, **context))


def merchant(
    policy: PartialPolicy = PartialPolicy.ALL_OR_NOTHING,
    routing: tuple[RoutingRule, ...] = SEED_ROUTING,
    *,
    max_attempts: int = 3,
    timeout_ms: int = 30,
    latency_slo_ms: int | None = None,
) -> MerchantConfig:
    return MerchantConfig(
        merchant_id=MerchantId("m_acme"),
        api_keys=("sk_test_acme_123",),
        default_currency=USD,
        routing=routing,
        partial_policy=policy,
        timeout_ms=timeout_ms,
        retry=RetryPolicy(max_attempts=max_attempts, base_delay_ms=20, max_delay_ms=200),
        latency_slo_ms=latency_slo_ms,
    )


def rig(
    processors: Mapping[str, Processor],
    merchant_config: MerchantConfig | None = None,
    *,
    breaker: BreakerPolicy | None = None,
    processor_configs: tuple[ProcessorConfig, ...] | None = None,
    sink_factory: Callable[[ManualClock], InMemorySink] | None = None,
) -> Rig:
    merchant_config = merchant_config or merchant()
    names = {p for rule in merchant_config.routing for p in rule.processors} | set(processors)
    configs = processor_configs or tuple(
        ProcessorConfig(ProcessorId(name), ProcessorKind.SIMULATED) for name in sorted(names)
    )
    config = PlatformConfig(merchants=(merchant_config,), processors=configs)
    clock = ManualClock()
    sink = sink_factory(clock) if sink_factory is not None else CheckingSink()
    sleeper = RecordingSleeper(clock)
    adapters = {ProcessorId(name): processor for name, processor in processors.items()}
    router = Router(adapters, sink, clock, sleeper, FixedRandom(), CircuitBreakers(breaker))
    service = CompositePaymentService(config, adapters, router, sink, clock, sleeper, FixedRandom())
    return Rig(service, router, sink, clock, sleeper, config)


def request(amount: int = 10_000, payment: str = "pay_1", **context: object) -> CoreRequestContext:
    values: dict[str, object] = {
        "merchant_id": MerchantId("m_acme"),
        "request_id": RequestId(f"req_{payment}"),
        "payment_id": PaymentId(payment),
        "amount_cents": amount,
        "currency": USD,
    }
    values.update(context)
    return CoreRequestContext(**values)  # type: ignore[arg-type]
