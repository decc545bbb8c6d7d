"""The engine wired to a real Stripe adapter (official SDK) over the fake Stripe API, for tests."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from engine.circuit_breaker import BreakerPolicy, CircuitBreakers
from engine.config import (
    LatencyProfile,
    MerchantConfig,
    PlatformConfig,
    ProcessorConfig,
    ProcessorKind,
    RetryPolicy,
    RoutingRule,
)
from engine.ledger import Ledger
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import Currency
from engine.orchestrator import CompositePaymentService
from engine.ports import AsyncioSleeper, SeededRandom, SystemClock
from engine.processor import Processor
from engine.processors.simulated import SimulatedProcessor
from engine.router import Router
from engine.types import MerchantId, ProcessorId
from ingest.processors.stripe_adapter import StripeProcessor
from ingest.processors.stripe_amounts import stripe_amount_refusal
from tests.engine.fakes import CheckingSink
from tests.ingest.fake_stripe import FakeStripe

APPLE, STRIPE, ADYEN = ProcessorId("applepay_sim"), ProcessorId("stripe_live"), ProcessorId("adyen_sim")


@dataclass
class Setup:
    service: CompositePaymentService
    sink: CheckingSink
    ledger: Ledger
    breakers: CircuitBreakers
    processors: dict[ProcessorId, Processor]
    merchant: MerchantConfig
    clock: SystemClock


@asynccontextmanager
async def engine_with_stripe(
    fake_stripe: FakeStripe,
    *,
    api_key: str = "sk_test_fake_123",
    card_chain: tuple[ProcessorId, ...] = (STRIPE,),
    applepay_chain: tuple[ProcessorId, ...] = (APPLE,),
    policy: PartialPolicy = PartialPolicy.ALL_OR_NOTHING,
    breaker: BreakerPolicy | None = None,
) -> AsyncIterator[Setup]:
    """ApplePay ($60 at most) through ``applepay_chain``, then the card step through ``card_chain``.

    Each use is a process of its own: a new Stripe adapter, which remembers nothing of earlier ones.
    """
    configs = (
        ProcessorConfig(APPLE, ProcessorKind.SIMULATED, latency=LatencyProfile(0, 0)),
        ProcessorConfig(ADYEN, ProcessorKind.SIMULATED, latency=LatencyProfile(0, 0)),
        ProcessorConfig(STRIPE, ProcessorKind.STRIPE, api_key_env="STRIPE_API_KEY", api_base=fake_stripe.url),
    )
    merchant = MerchantConfig(
        merchant_id=MerchantId("m_acme"),
        api_keys=("sk_test_acme_123",),
        default_currency=Currency("USD"),
        routing=(
            RoutingRule(PaymentMethod.APPLE_PAY, applepay_chain, max_amount_cents=6000),
            RoutingRule(PaymentMethod.CARD, card_chain),
        ),
        partial_policy=policy,
        timeout_ms=1000,
        retry=RetryPolicy(max_attempts=3, base_delay_ms=1, max_delay_ms=5),
    )
    ledger, sink, clock, sleeper, random = (
        Ledger(),
        CheckingSink(),
        SystemClock(),
        AsyncioSleeper(),
        SeededRandom(1),
    )
    async with StripeProcessor(configs[2], api_key, timeout_s=5.0) as stripe:
        processors: dict[ProcessorId, Processor] = {
            APPLE: SimulatedProcessor(configs[0], ledger, sleeper),
            ADYEN: SimulatedProcessor(configs[1], ledger, sleeper),
            STRIPE: stripe,
        }
        breakers = CircuitBreakers(breaker)
        router = Router(processors, sink, clock, sleeper, random, breakers)
        config = PlatformConfig(merchants=(merchant,), processors=configs)
        service = CompositePaymentService(
            config,
            processors,
            router,
            sink,
            clock,
            sleeper,
            random,
            amount_checks={STRIPE: stripe_amount_refusal},
        )
        yield Setup(service, sink, ledger, breakers, processors, merchant, clock)
