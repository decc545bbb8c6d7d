import asyncio
from typing import NamedTuple

import pytest

from engine.circuit_breaker import BreakerPolicy, CircuitBreakers, CircuitState
from engine.config import ProcessorConfig, ProcessorKind
from engine.error_codes import ErrorCode
from engine.events import StepAttempted, StepFailed, StepSucceeded
from engine.ledger import Ledger
from engine.methods import PaymentMethod
from engine.plan import PaymentStep
from engine.processor import ChargeRequest, Processor, ProcessorResponse, RefundRequest, StatusAnswer
from engine.processors import SimulatedProcessor
from engine.processors.cards import CARD_NUMBER_KEY
from engine.results import Result
from engine.router import Router
from engine.types import ProcessorId
from tests.engine.fakes import (
    DECLINE,
    GARBAGE,
    INVALID,
    NETWORK,
    OK,
    PROCESSING,
    PROCESSING_FINAL,
    RAISE,
    RATE_LIMITED,
    TIMEOUT_CHARGED,
    TIMEOUT_UNCHARGED,
    UNAVAILABLE,
    CheckingSink,
    FixedRandom,
    ManualClock,
    RecordingSleeper,
    ScriptedProcessor,
)
from tests.engine.harness import merchant, request, rig
from tests.engine.virtual_time import VirtualTimeLoop

STEP = PaymentStep(0, PaymentMethod.CARD, 4000, (ProcessorId("stripe_sim"), ProcessorId("adyen_sim")))
#: Stripe's test cards (PRODUCT.md section 5): a processing error that may be retried; a success.
RETRYABLE_CARD = {CARD_NUMBER_KEY: "400000******0119"}
GOOD_CARD = {CARD_NUMBER_KEY: "424242******4242"}


def pair(
    primary: tuple[str, ...],
    backup: tuple[str, ...] = (OK,),
    *,
    primary_status: tuple[str, ...] = ("ledger",),
) -> dict[str, ScriptedProcessor]:
    return {
        "stripe_sim": ScriptedProcessor("stripe_sim", primary, status_script=primary_status),
        "adyen_sim": ScriptedProcessor("adyen_sim", backup),
    }


async def test_a_success_is_one_attempt_with_intent_before_effect() -> None:
    fakes = pair((OK,))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant())
    assert result.success and result.attempts == 1 and result.processor_id == "stripe_sim"
    attempted, succeeded = setup.sink.events
    assert isinstance(attempted, StepAttempted) and isinstance(succeeded, StepSucceeded)
    assert attempted.idempotency_key == "pay_1:step:0"
    assert (attempted.attempt, attempted.amount_cents) == (1, 4000)


async def test_retry_same_errors_are_retried_with_full_jitter_backoff() -> None:
    fakes = pair((PROCESSING, PROCESSING, OK))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant())
    assert result.success and result.attempts == 3
    assert fakes["stripe_sim"].calls == 3
    assert setup.sleeper.sleeps == [0.5 * 0.020, 0.5 * 0.040]  # FixedRandom(0.5) * base * 2**(n-1)
    keys = {e.idempotency_key for e in setup.sink.events if isinstance(e, StepAttempted)}
    assert keys == {"pay_1:step:0"}


async def test_exhausted_retries_cascade_to_the_next_processor() -> None:
    fakes = pair((PROCESSING,))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant(max_attempts=2))
    assert result.success and result.processor_id == "adyen_sim" and result.attempts == 3
    attempts = [(e.processor_id, e.attempt) for e in setup.sink.events if isinstance(e, StepAttempted)]
    assert attempts == [("stripe_sim", 1), ("stripe_sim", 2), ("adyen_sim", 3)]
    failed = [(e.attempt, e.error_code, e.retryable) for e in setup.sink.events if isinstance(e, StepFailed)]
    assert failed == [(1, ErrorCode.PROCESSING_ERROR, True), (2, ErrorCode.PROCESSING_ERROR, True)]


async def test_a_retryable_error_the_key_would_only_replay_moves_on_without_retrying() -> None:
    fakes = pair((PROCESSING_FINAL,))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant(max_attempts=3))
    assert result.success and result.processor_id == "adyen_sim" and result.attempts == 2
    assert fakes["stripe_sim"].calls == 1
    assert setup.sleeper.sleeps == []
    failed = [(e.attempt, e.error_code, e.retryable) for e in setup.sink.events if isinstance(e, StepFailed)]
    assert failed == [(1, ErrorCode.PROCESSING_ERROR, True)]


async def test_a_rate_limited_attempt_is_retried_after_a_backoff_then_moves_on() -> None:
    # A 429 charged nothing and asks the caller to back off: Stripe alone in a chain must not fail
    # the step on it, and a longer chain reaches its next processor once the retries run out.
    alone = PaymentStep(0, PaymentMethod.CARD, 4000, (ProcessorId("stripe_sim"),))
    fakes = pair((RATE_LIMITED, OK))
    setup = rig(fakes)
    result = await setup.router.route(request(), alone, merchant())
    assert result.success and result.processor_id == "stripe_sim" and result.attempts == 2
    assert setup.sleeper.sleeps == [0.5 * 0.020]
    keys = {e.idempotency_key for e in setup.sink.events if isinstance(e, StepAttempted)}
    assert keys == {"pay_1:step:0"}

    fakes = pair((RATE_LIMITED,))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant(max_attempts=2))
    assert result.success and result.processor_id == "adyen_sim" and result.attempts == 3
    failed = [(e.attempt, e.error_code, e.retryable) for e in setup.sink.events if isinstance(e, StepFailed)]
    assert failed == [(1, ErrorCode.RATE_LIMITED, True), (2, ErrorCode.RATE_LIMITED, True)]


@pytest.mark.parametrize("behaviour", [NETWORK, UNAVAILABLE])
async def test_cascade_errors_move_on_at_once(behaviour: str) -> None:
    fakes = pair((behaviour,))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant())
    assert result.success and result.processor_id == "adyen_sim"
    assert fakes["stripe_sim"].calls == 1
    assert setup.sleeper.sleeps == []


@pytest.mark.parametrize(
    ("behaviour", "code"), [(DECLINE, ErrorCode.DECLINED), (INVALID, ErrorCode.INVALID_CARD)]
)
async def test_never_errors_stop_the_step(behaviour: str, code: ErrorCode) -> None:
    fakes = pair((behaviour,))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant())
    assert not result.success and result.error_code is code and result.attempts == 1
    assert not result.retryable
    assert fakes["adyen_sim"].calls == 0
    failed = setup.sink.events[-1]
    assert isinstance(failed, StepFailed) and failed.error_code is code
    assert failed.retryable is result.retryable is False
    assert setup.sink.violations == []


async def test_everything_failing_is_retry_exhausted() -> None:
    fakes = pair((NETWORK,), (NETWORK,))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant())
    assert not result.success and result.error_code is ErrorCode.NETWORK_FAILURE
    assert result.processor_id == "adyen_sim"
    assert setup.sink.contract_ids() == ["router/retry-exhausted"]


async def test_a_timed_out_charge_that_went_through_is_settled_not_repeated() -> None:
    fakes = pair((TIMEOUT_CHARGED,))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant())
    assert result.success and result.processor_id == "stripe_sim" and result.attempts == 1
    assert fakes["stripe_sim"].charges == ["pay_1:step:0"]
    assert fakes["adyen_sim"].calls == 0
    assert setup.sink.contract_ids() == ["router/timeout"]
    assert [e.event_type for e in setup.sink.events] == ["StepAttempted", "StepFailed", "StepSucceeded"]


async def test_an_outcome_that_stays_unknown_never_cascades() -> None:
    fakes = pair((TIMEOUT_UNCHARGED,), primary_status=("unknown",))
    setup = rig(fakes)
    routed = await setup.router.route_step(request(), STEP, merchant(max_attempts=2))
    assert not routed.result.success and routed.result.error_code is ErrorCode.TIMEOUT
    assert routed.unsettled == ("stripe_sim",)
    assert fakes["adyen_sim"].calls == 0
    assert setup.sink.contract_ids().count("router/timeout") == 2
    assert "router/retry-exhausted" in setup.sink.contract_ids()


async def test_a_panicking_processor_is_settled_then_retried() -> None:
    fakes = pair((RAISE, OK))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant())
    assert result.success and result.processor_id == "stripe_sim" and result.attempts == 2
    assert setup.sink.contract_ids() == ["processor/panic"]
    assert "ScriptedFailureError" in setup.sink.violations[0].message


async def test_a_garbage_answer_is_malformed_and_settled() -> None:
    fakes = pair((GARBAGE, OK))
    setup = rig(fakes)
    result = await setup.router.route(request(), STEP, merchant())
    assert result.success and result.attempts == 2
    assert setup.sink.contract_ids() == ["processor/malformed"]
    failed = [e for e in setup.sink.events if isinstance(e, StepFailed)]
    assert failed[0].error_code is ErrorCode.MALFORMED_RESPONSE


async def test_an_open_circuit_skips_the_processor_until_a_probe_after_the_cool_down() -> None:
    fakes = pair((NETWORK,))
    setup = rig(fakes, breaker=BreakerPolicy(failure_threshold=2, cool_down_s=10))
    for n in range(2):
        await setup.router.route(request(payment=f"pay_{n}"), STEP, merchant())
    assert setup.router.breakers.states()[ProcessorId("stripe_sim")] is CircuitState.OPEN
    calls = fakes["stripe_sim"].calls
    result = await setup.router.route(request(payment="pay_9"), STEP, merchant())
    assert result.success and result.processor_id == "adyen_sim"
    assert fakes["stripe_sim"].calls == calls  # skipped while open
    setup.clock.advance(10)
    fakes["stripe_sim"]._script = [OK]
    probe = await setup.router.route(request(payment="pay_10"), STEP, merchant())
    assert probe.processor_id == "stripe_sim"
    assert setup.router.breakers.states()[ProcessorId("stripe_sim")] is CircuitState.CLOSED


async def test_a_step_whose_every_circuit_is_open_sends_nothing() -> None:
    fakes = pair((NETWORK,), (NETWORK,))
    setup = rig(fakes, breaker=BreakerPolicy(failure_threshold=1, cool_down_s=60))
    await setup.router.route(request(payment="pay_0"), STEP, merchant())
    calls = fakes["stripe_sim"].calls + fakes["adyen_sim"].calls
    before = len(setup.sink.events)
    result = await setup.router.route(request(payment="pay_1"), STEP, merchant())
    assert not result.success
    assert result.attempts == 0
    assert result.error_code is ErrorCode.PROCESSOR_UNAVAILABLE
    assert fakes["stripe_sim"].calls + fakes["adyen_sim"].calls == calls
    (skipped,) = setup.sink.events[before:]  # no StepAttempted: nothing was sent
    assert isinstance(skipped, StepFailed)
    assert (skipped.processor_id, skipped.attempt, skipped.latency_ms) == (result.processor_id, 0, 0)
    assert (skipped.error_code, skipped.retryable) == (result.error_code, result.retryable)
    assert (
        "skipped (circuit open or not configured): stripe_sim, adyen_sim" in setup.sink.violations[-1].message
    )


@pytest.mark.parametrize("behaviour", [DECLINE, INVALID, PROCESSING])
async def test_answers_about_the_card_do_not_open_a_circuit(behaviour: str) -> None:
    fakes = pair((behaviour,), (behaviour,))
    setup = rig(fakes, breaker=BreakerPolicy(failure_threshold=1))
    for n in range(3):
        await setup.router.route(request(payment=f"pay_{n}"), STEP, merchant())
    assert set(setup.router.breakers.states().values()) == {CircuitState.CLOSED}


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (NETWORK, ErrorCode.NETWORK_FAILURE),
        (UNAVAILABLE, ErrorCode.PROCESSOR_UNAVAILABLE),
        (RATE_LIMITED, ErrorCode.RATE_LIMITED),
        (TIMEOUT_UNCHARGED, ErrorCode.TIMEOUT),
        (RAISE, ErrorCode.PROCESSOR_ERROR),
        (GARBAGE, ErrorCode.MALFORMED_RESPONSE),
    ],
)
async def test_processor_faults_open_a_circuit(behaviour: str, code: ErrorCode) -> None:
    fakes = pair((behaviour,))
    setup = rig(fakes, breaker=BreakerPolicy(failure_threshold=1))
    await setup.router.route(request(), STEP, merchant(max_attempts=1))
    failed = [e for e in setup.sink.events if isinstance(e, StepFailed)]
    assert [(e.processor_id, e.error_code) for e in failed] == [("stripe_sim", code)]
    assert setup.router.breakers.states()[ProcessorId("stripe_sim")] is CircuitState.OPEN


async def test_a_burst_of_card_level_processing_errors_leaves_every_circuit_closed() -> None:
    # Stripe's test card for a processing error, on the simulated processors behind the default
    # breaker (5 consecutive faults): each payment fails after 3 attempts at each processor.
    ledger = Ledger()
    processors = {
        name: SimulatedProcessor(
            ProcessorConfig(ProcessorId(name), ProcessorKind.SIMULATED), ledger, RecordingSleeper()
        )
        for name in ("stripe_sim", "adyen_sim")
    }
    setup = rig(processors)
    for n in range(2):
        failed = await setup.service.pay(
            request(4000, f"pay_err_{n}", payment_method=PaymentMethod.CARD, metadata=RETRYABLE_CARD)
        )
        assert failed.final_error is ErrorCode.PROCESSING_ERROR
        assert [(r.processor_id, r.attempts, r.retryable) for r in failed.step_results] == [
            ("adyen_sim", 6, True)
        ]
    assert setup.router.breakers.states() == {
        ProcessorId("stripe_sim"): CircuitState.CLOSED,
        ProcessorId("adyen_sim"): CircuitState.CLOSED,
    }
    other = await setup.service.pay(
        request(4000, "pay_ok", payment_method=PaymentMethod.CARD, metadata=GOOD_CARD)
    )
    assert other.success
    assert [(r.processor_id, r.attempts) for r in other.step_results] == [("stripe_sim", 1)]


async def test_an_unknown_outcome_stays_unknown_through_a_later_network_failure() -> None:
    fakes = pair((TIMEOUT_UNCHARGED, NETWORK), primary_status=("unknown",))
    setup = rig(fakes)
    routed = await setup.router.route_step(request(), STEP, merchant(max_attempts=3))
    assert not routed.result.success
    assert routed.result.error_code is ErrorCode.TIMEOUT  # the doubt, not the later network failure
    assert routed.unsettled == ("stripe_sim",)
    assert fakes["adyen_sim"].calls == 0  # never cascaded while stripe may hold the charge


async def test_a_definitive_answer_for_the_key_settles_an_earlier_unknown() -> None:
    fakes = pair((TIMEOUT_UNCHARGED, DECLINE), primary_status=("unknown",))
    setup = rig(fakes)
    routed = await setup.router.route_step(request(), STEP, merchant(max_attempts=3))
    assert routed.result.error_code is ErrorCode.DECLINED
    assert routed.unsettled == ()


class _Overlapping:
    """A processor that takes its time, as under load: each charge waits one turn of the event
    loop, so that every payment in flight reaches it before any answer comes back."""

    def __init__(self, inner: ScriptedProcessor) -> None:
        self.inner = inner

    @property
    def processor_id(self) -> ProcessorId:
        return self.inner.processor_id

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        await asyncio.sleep(0)
        return await self.inner.charge(request)

    async def void_or_refund(self, request: RefundRequest) -> ProcessorResponse:
        return await self.inner.void_or_refund(request)

    async def status(self, idempotency_key: str) -> StatusAnswer:
        return await self.inner.status(idempotency_key)


class _YieldingSleeper(RecordingSleeper):
    """A backoff during which the other payments' answers come back."""

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        await asyncio.sleep(0)


class _InFlight(NamedTuple):
    router: Router
    breakers: CircuitBreakers
    sink: CheckingSink


def _in_flight(fakes: dict[str, ScriptedProcessor], primary: type[_Overlapping] = _Overlapping) -> _InFlight:
    """A router over ``fakes``, stripe_sim answering as ``primary`` makes it, circuits opening after
    five faults for 30 s, and backoffs during which the other payments' answers come back."""
    processors: dict[ProcessorId, Processor] = {
        ProcessorId("stripe_sim"): primary(fakes["stripe_sim"]),
        ProcessorId("adyen_sim"): fakes["adyen_sim"],
    }
    clock, sink = ManualClock(), CheckingSink()
    breakers = CircuitBreakers(BreakerPolicy(failure_threshold=5, cool_down_s=30))
    router = Router(processors, sink, clock, _YieldingSleeper(clock), FixedRandom(), breakers)
    return _InFlight(router, breakers, sink)


async def _pay_at_once(router: Router, count: int) -> list[Result]:
    payments = [request(payment=f"pay_{n}") for n in range(count)]
    return list(await asyncio.gather(*(router.route(ctx, STEP, merchant()) for ctx in payments)))


@pytest.mark.parametrize("behaviour", [RATE_LIMITED, TIMEOUT_UNCHARGED, RAISE])
def test_retries_in_flight_stop_at_a_circuit_that_opened_and_fall_back(behaviour: str) -> None:
    # Five payments fail at once at a sick processor; the fifth fault opens its circuit. Their
    # retries must not go on hammering it (3 attempts each, 15 in all) but, the attempt settled
    # as not charged, fall back to the next processor at once.
    # On virtual time: the five charges that hang until the router's timeout were sent in one turn
    # of the loop, and so time out in one turn. On real time a loaded machine stalls that turn
    # between two sends, the first timeouts come back alone and, the circuit still closed, their
    # retries rightly go back to stripe_sim (seen under load, and on every run with a 1 ms stall).
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        runner.run(_retries_in_flight_fall_back(behaviour))


async def _retries_in_flight_fall_back(behaviour: str) -> None:
    fakes = pair((behaviour,))
    router, breakers, sink = _in_flight(fakes)
    results = await _pay_at_once(router, 5)
    assert breakers.states()[ProcessorId("stripe_sim")] is CircuitState.OPEN
    assert fakes["stripe_sim"].calls == 5
    assert [(r.success, r.processor_id, r.attempts) for r in results] == [(True, "adyen_sim", 2)] * 5
    sent = [(e.processor_id, e.attempt) for e in sink.events if isinstance(e, StepAttempted)]
    assert sorted(sent) == [("adyen_sim", 2)] * 5 + [("stripe_sim", 1)] * 5


class _FaultsAnswerLate(_Overlapping):
    """Its faults come back after its successes, as charges that hang until their timeout do."""

    async def charge(self, request: ChargeRequest) -> ProcessorResponse:
        response = await super().charge(request)
        if not response.success:
            for _ in range(20):  # every other payment in flight is answered meanwhile
                await asyncio.sleep(0)
        return response


async def test_faults_answered_after_the_successes_of_charges_sent_later_leave_the_circuit_closed() -> None:
    # Ten charges sent at once: the first five sent hang and fail together, after the five sent
    # later succeeded. Five faults in a row by arrival, none by sending order: the processor
    # works, and its circuit stays closed for the payments that follow.
    fakes = pair((NETWORK, NETWORK, NETWORK, NETWORK, NETWORK, OK))
    router, breakers, _ = _in_flight(fakes, _FaultsAnswerLate)
    results = await _pay_at_once(router, 10)
    assert breakers.states()[ProcessorId("stripe_sim")] is CircuitState.CLOSED
    assert all(result.success for result in results)
    following = await router.route(request(payment="pay_next"), STEP, merchant())
    assert (following.success, following.processor_id, following.attempts) == (True, "stripe_sim", 1)


async def test_a_retry_in_doubt_stays_at_its_processor_though_its_circuit_opened() -> None:
    # An attempt whose outcome is still unknown is settled only by its own processor: a circuit
    # opened by that timeout does not send the step elsewhere, where it could be charged twice.
    fakes = pair((TIMEOUT_UNCHARGED, OK), primary_status=("unknown", "ledger"))
    setup = rig(fakes, breaker=BreakerPolicy(failure_threshold=1))
    routed = await setup.router.route_step(request(), STEP, merchant(max_attempts=3))
    assert routed.result.success and routed.result.processor_id == "stripe_sim"
    assert (fakes["stripe_sim"].calls, fakes["adyen_sim"].calls) == (2, 0)


async def test_a_charge_sent_before_the_circuit_opened_does_not_close_it_by_succeeding() -> None:
    # Six payments in flight at a failing processor: the first five faults open its circuit,
    # then the sixth, sent while it was still closed, succeeds. That straggler is no probe: the
    # circuit stays open until the cool-down, and the next payment goes to the fallback.
    fakes = pair((NETWORK, NETWORK, NETWORK, NETWORK, NETWORK, OK))
    router, breakers, _ = _in_flight(fakes)
    results = await _pay_at_once(router, 6)
    assert [r.processor_id for r in results] == ["adyen_sim"] * 5 + ["stripe_sim"]
    assert breakers.states()[ProcessorId("stripe_sim")] is CircuitState.OPEN
    later = await router.route(request(payment="pay_6"), STEP, merchant())
    assert later.processor_id == "adyen_sim"
    assert fakes["stripe_sim"].calls == 6
