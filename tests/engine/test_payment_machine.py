"""A stateful test: many payments through one orchestrator and chaotic simulated processors.

The processors time out (hang past the timeout, sometimes after charging), decline, raise, and
answer with garbage; one shared ledger records what they really hold. After every rule: no step
is charged at two processors, what the ledger holds for each payment is what its result says
(unless a failed compensation was recorded as a critical violation), and every payment ended in
exactly one terminal state.
"""

import asyncio
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.circuit_breaker import BreakerPolicy, CircuitBreakers
from engine.config import (
    FaultRates,
    LatencyProfile,
    MerchantConfig,
    PlatformConfig,
    ProcessorConfig,
    ProcessorKind,
    RetryPolicy,
    RoutingRule,
)
from engine.events import PaymentCompleted, PaymentFailed
from engine.ledger import Ledger
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import Currency
from engine.orchestrator import CompositePaymentService
from engine.processors.simulated import SimulatedProcessor
from engine.results import CompositeResult, PaymentStatus
from engine.router import Router
from engine.types import MerchantId, PaymentId, ProcessorId
from tests.engine.fakes import CheckingSink, FixedRandom, ManualClock
from tests.engine.harness import request

NAMES = (ProcessorId("applepay_sim"), ProcessorId("stripe_sim"), ProcessorId("adyen_sim"))
CHAOS = FaultRates(declined=0.15, timeout=0.15, network_failure=0.15, panic=0.1, malformed=0.1)


class HangingSleeper:
    """Latency and backoff pass at once; a simulated hang really hangs (the timeout cancels it)."""

    async def sleep(self, seconds: float) -> None:
        if seconds >= 60:
            await asyncio.Event().wait()


class PaymentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.sink = CheckingSink()
        self.clock = ManualClock()
        self.results: dict[str, CompositeResult] = {}
        self.services: dict[PartialPolicy, CompositePaymentService] = {}

    @initialize(seed=st.integers(min_value=0, max_value=2**32))
    def build(self, seed: int) -> None:
        sleeper = HangingSleeper()
        configs = tuple(
            ProcessorConfig(
                name, ProcessorKind.SIMULATED, seed=seed + n, latency=LatencyProfile(0, 0), fault_rates=CHAOS
            )
            for n, name in enumerate(NAMES)
        )
        processors: dict[ProcessorId, Any] = {
            c.id: SimulatedProcessor(c, self.ledger, sleeper) for c in configs
        }
        router = Router(
            processors, self.sink, self.clock, sleeper, FixedRandom(), CircuitBreakers(BreakerPolicy(3, 5.0))
        )
        for policy in PartialPolicy:
            merchant = MerchantConfig(
                merchant_id=MerchantId("m_acme"),
                api_keys=("sk_test_acme_123",),
                default_currency=Currency("USD"),
                routing=(
                    RoutingRule(PaymentMethod.APPLE_PAY, (NAMES[0],), max_amount_cents=6000),
                    RoutingRule(PaymentMethod.CARD, (NAMES[1], NAMES[2])),
                ),
                partial_policy=policy,
                timeout_ms=5,
                retry=RetryPolicy(max_attempts=3, base_delay_ms=1, max_delay_ms=4),
            )
            config = PlatformConfig(merchants=(merchant,), processors=configs)
            self.services[policy] = CompositePaymentService(
                config, processors, router, self.sink, self.clock, sleeper, FixedRandom()
            )

    @rule(amount=st.integers(min_value=1, max_value=15_000), policy=st.sampled_from(PartialPolicy))
    def pay(self, amount: int, policy: PartialPolicy) -> None:
        payment = f"pay_{len(self.results)}"
        result = asyncio.run(self.services[policy].pay(request(amount, payment)))
        self.results[payment] = result

    @rule(seconds=st.floats(min_value=0.5, max_value=10))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def no_step_is_charged_twice(self) -> None:
        assert self.ledger.double_charged_steps() == []

    @invariant()
    def processors_hold_what_results_say(self) -> None:
        broken = {
            v.payment_id for v in self.sink.violations if v.contract_id == "orchestrator/compensation-failed"
        }
        for payment, result in self.results.items():
            held = self.ledger.held_cents(PaymentId(payment))
            assert held == result.total_processed or payment in broken, (payment, held, result)
            assert result.total_processed + result.remaining_amount == result.total_amount
            if result.status is PaymentStatus.SUCCEEDED:
                assert held == result.total_amount

    @invariant()
    def every_payment_is_terminal_once(self) -> None:
        terminal: dict[str, int] = {}
        for event in self.sink.events:
            if isinstance(event, PaymentCompleted | PaymentFailed):
                terminal[event.payment_id] = terminal.get(event.payment_id, 0) + 1
        assert terminal == dict.fromkeys(self.results, 1)


PaymentMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestPaymentMachine = PaymentMachine.TestCase
