"""One merchant's configuration must not take a shared processor away from the other merchants.

The engine is built as ``payorch serve`` builds it (``build_engine``), its circuits timed by a
manual clock; the simulated processors answer after their latency in real time (tens of
milliseconds), so that a merchant's short ``timeout_ms`` really expires before the answer.
"""

from __future__ import annotations

from engine.circuit_breaker import BreakerPolicy, CircuitState
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
from engine.context import CoreRequestContext
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.ports import AsyncioSleeper
from engine.results import CompositeResult
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.engine_assembly import Engine, build_engine
from tests.engine.fakes import CheckingSink, FixedRandom, ManualClock

USD = Currency("USD")
PRIMARY, BACKUP = ProcessorId("stripe_sim"), ProcessorId("adyen_sim")
CARD = RoutingRule(PaymentMethod.CARD, (PRIMARY, BACKUP))
#: A merchant that gives each attempt 5 ms, and one that gives it far more than the processors need.
HASTY, PATIENT = MerchantId("m_hasty"), MerchantId("m_patient")


def _merchant(merchant_id: MerchantId, timeout_ms: int) -> MerchantConfig:
    return MerchantConfig(
        merchant_id=merchant_id,
        api_keys=(f"sk_test_{merchant_id}",),
        default_currency=USD,
        routing=(CARD,),
        timeout_ms=timeout_ms,
        retry=RetryPolicy(max_attempts=3, base_delay_ms=0, max_delay_ms=0),
    )


def _processor(
    processor_id: ProcessorId, latency_ms: float, breaker: BreakerPolicy, *, hangs: bool
) -> ProcessorConfig:
    return ProcessorConfig(
        processor_id,
        ProcessorKind.SIMULATED,
        latency=LatencyProfile(latency_ms, latency_ms),
        fault_rates=FaultRates(timeout=1.0 if hangs else 0.0),
        breaker=breaker,
    )


class _Rig:
    def __init__(
        self,
        timeouts_ms: dict[MerchantId, int],
        *,
        hangs: bool = False,
        breaker: BreakerPolicy | None = None,
    ) -> None:
        breaker = breaker or BreakerPolicy(failure_threshold=5, cool_down_s=30)
        self.clock = ManualClock()
        self.config = PlatformConfig(
            merchants=tuple(_merchant(merchant, timeout) for merchant, timeout in timeouts_ms.items()),
            processors=(
                _processor(PRIMARY, 40, breaker, hangs=hangs),
                # The fallback answers at once (a zero latency never sleeps): at 1 ms, on a loaded
                # machine its answer came after m_hasty's 5 ms and was retried as a timeout.
                _processor(BACKUP, 0, breaker, hangs=False),
            ),
        )
        self.sink = CheckingSink()
        self.engine: Engine = build_engine(
            self.config,
            sink=self.sink,
            clock=self.clock,
            sleeper=AsyncioSleeper(),
            random=FixedRandom(),
            environ={},
        )
        self._payments = 0

    async def pay(self, merchant_id: MerchantId) -> CompositeResult:
        self._payments += 1
        ctx = CoreRequestContext(
            merchant_id=merchant_id,
            request_id=RequestId(f"req_{self._payments}"),
            payment_id=PaymentId(f"pay_{self._payments}"),
            amount_cents=1000,
            currency=USD,
            payment_method=PaymentMethod.CARD,
        )
        return await self.engine.service.pay(ctx)

    def circuit(self, processor_id: ProcessorId) -> CircuitState:
        return self.engine.router.breakers.states().get(processor_id, CircuitState.CLOSED)


def _where(result: CompositeResult) -> list[tuple[str, int, str | None]]:
    return [
        (step.processor_id, step.attempts, step.error_code and step.error_code.value)
        for step in result.step_results
    ]


async def test_a_merchants_short_timeouts_leave_the_shared_circuit_closed_for_the_others() -> None:
    # The processor answers in 40 ms; m_hasty gives each attempt 5 ms, so every attempt of its
    # payments times out (3 each). Those timeouts say nothing about the processor: m_patient's
    # payments still go to it, and are charged there at the first attempt.
    rig = _Rig({HASTY: 5, PATIENT: 2000})
    for _ in range(3):
        await rig.pay(HASTY)
    assert rig.circuit(PRIMARY) is CircuitState.CLOSED
    for _ in range(2):
        patient = await rig.pay(PATIENT)
        assert _where(patient) == [("stripe_sim", 1, None)]


async def test_a_merchants_short_timeouts_open_its_own_circuit_and_skip_the_processor_for_it_alone() -> None:
    rig = _Rig({HASTY: 5, PATIENT: 2000})
    for _ in range(2):  # 6 timeouts in a row: past the threshold of 5
        await rig.pay(HASTY)
    breakers = rig.engine.router.breakers
    assert breakers.merchant_states(HASTY)[PRIMARY] is CircuitState.OPEN
    hasty = await rig.pay(HASTY)
    assert _where(hasty) == [("adyen_sim", 1, None)]  # no attempt at the processor it cannot wait for
    assert _where(await rig.pay(PATIENT)) == [("stripe_sim", 1, None)]
    assert PRIMARY not in breakers.merchant_states(PATIENT) or (
        breakers.merchant_states(PATIENT)[PRIMARY] is CircuitState.CLOSED
    )


async def test_a_hanging_processor_still_opens_its_circuit_for_every_merchant() -> None:
    # The processor answers nothing. m_patient's budget (30 ms, the longest of the merchants
    # routed there) counts: its timeouts open the shared circuit, and m_hasty's next payment
    # goes to the fallback without trying it.
    rig = _Rig({HASTY: 5, PATIENT: 30}, hangs=True)
    for _ in range(2):
        await rig.pay(PATIENT)
    assert rig.circuit(PRIMARY) is CircuitState.OPEN
    assert _where(await rig.pay(HASTY)) == [("adyen_sim", 1, None)]


async def test_a_timeout_counts_for_every_merchant_from_the_configured_min_timeout_ms() -> None:
    # min_timeout_ms 5: the operator says 5 ms is enough for this processor, so m_hasty's
    # timeouts are the processor's (the behaviour before the rule, chosen explicitly).
    breaker = BreakerPolicy(failure_threshold=5, cool_down_s=30, min_timeout_ms=5)
    rig = _Rig({HASTY: 5, PATIENT: 2000}, breaker=breaker)
    for _ in range(2):
        await rig.pay(HASTY)
    assert rig.circuit(PRIMARY) is CircuitState.OPEN


async def test_a_short_budgets_timeout_does_not_fail_the_shared_circuits_probe() -> None:
    # The shared circuit is half-open after its cool-down; m_hasty's attempt takes the probe and
    # times out at 5 ms. That says nothing about the processor: the circuit stays half-open, and
    # m_patient's next attempt is the probe that closes it (before, the circuit opened again for
    # another 30 s).
    rig = _Rig({HASTY: 5, PATIENT: 2000}, hangs=False)
    shared = rig.engine.router.breakers[PRIMARY]
    for _ in range(5):
        shared.record_failure(0.0, shared.sent())
    assert rig.circuit(PRIMARY) is CircuitState.OPEN
    rig.clock.advance(30)
    await rig.pay(HASTY)
    assert rig.circuit(PRIMARY) is CircuitState.HALF_OPEN
    assert _where(await rig.pay(PATIENT)) == [("stripe_sim", 1, None)]
    assert rig.circuit(PRIMARY) is CircuitState.CLOSED


async def test_a_step_skipped_by_the_merchants_own_circuits_says_so_in_its_violation() -> None:
    # m_hasty's own circuits are open at both processors: its payment fails processor_unavailable
    # with 0 attempts. The violation said "skipped (circuit open or not configured): stripe_sim,
    # adyen_sim" while payorch_circuit_state showed both circuits closed (they are, for everyone
    # else): nothing told the operator it was the merchant's own timeout_ms.
    rig = _Rig({HASTY: 5, PATIENT: 2000})
    backup = rig.engine.router.breakers.merchant_circuit(BACKUP, HASTY)
    for _ in range(5):
        backup.record_failure(0.0, backup.sent())
    for _ in range(2):
        await rig.pay(HASTY)
    hasty = await rig.pay(HASTY)

    assert _where(hasty) == [("stripe_sim", 0, "processor_unavailable")]
    own = (
        "(this merchant's own circuit: its timeout_ms ran out there in a row, shorter than the "
        "processor's breaker.min_timeout_ms)"
    )
    assert rig.sink.violations[-1].message == (
        "step 0 failed after 0 attempts, last error processor_unavailable; skipped (circuit open or "
        f"not configured): stripe_sim {own}, adyen_sim {own}"
    )
    assert (rig.circuit(PRIMARY), rig.circuit(BACKUP)) == (CircuitState.CLOSED, CircuitState.CLOSED)
    assert _where(await rig.pay(PATIENT)) == [("stripe_sim", 1, None)]
