"""A step whose every processor is skipped (circuit open) sends nothing, and its events still say
what its result does: one ``StepFailed`` with attempt 0, which nothing downstream takes for an
attempt that was sent."""

from __future__ import annotations

from engine.circuit_breaker import BreakerPolicy
from engine.error_codes import ErrorCode
from engine.events import DomainEvent, StepAttempted, StepFailed
from engine.methods import PartialPolicy, PaymentMethod
from engine.plan import PaymentStep
from engine.processor import Processor
from engine.recovery import interrupted, recover_payment
from engine.results import CompositeResult, PaymentStatus, Result
from engine.types import ProcessorId
from tests.engine.fakes import ScriptedProcessor
from tests.engine.harness import Rig, merchant, request, rig

CARD_CHAIN = (ProcessorId("stripe_sim"), ProcessorId("adyen_sim"))


def _processors() -> dict[str, ScriptedProcessor]:
    return {name: ScriptedProcessor(name) for name in ("applepay_sim", "stripe_sim", "adyen_sim")}


def _open_card_circuits(setup: Rig) -> None:
    for processor_id in CARD_CHAIN:
        setup.router.breakers[processor_id].record_failure(setup.clock.monotonic())


def _agree(event: DomainEvent, result: Result) -> None:
    """The event tells what the step's result does."""
    assert isinstance(event, StepFailed)
    assert (event.step_index, event.processor_id, event.error_code, event.retryable) == (
        result.step_index,
        result.processor_id,
        result.error_code,
        result.retryable,
    )
    assert (event.attempt, event.latency_ms, result.attempts) == (0, 0, 0)


async def test_a_step_skipped_for_open_circuits_records_a_step_failed() -> None:
    processors = _processors()
    setup = rig(processors, breaker=BreakerPolicy(failure_threshold=1, cool_down_s=60))
    _open_card_circuits(setup)

    result = await setup.pay(4000, payment_method=PaymentMethod.CARD)

    assert isinstance(result, CompositeResult)
    assert result.status is PaymentStatus.FAILED
    assert result.final_error is ErrorCode.PROCESSOR_UNAVAILABLE
    (step,) = result.step_results
    assert (step.processor_id, step.attempts, step.retryable) == ("stripe_sim", 0, True)
    assert setup.sink.types() == ["PaymentReceived", "PlanBuilt", "StepFailed", "PaymentFailed"]
    _agree(setup.sink.events[2], step)
    assert processors["stripe_sim"].calls == processors["adyen_sim"].calls == 0
    assert setup.sink.contract_ids() == ["router/retry-exhausted"]


async def test_a_skipped_second_leg_is_recorded_before_the_first_is_undone() -> None:
    processors = _processors()
    setup = rig(processors, breaker=BreakerPolicy(failure_threshold=1, cool_down_s=60))
    _open_card_circuits(setup)

    result = await setup.pay()  # the seed's split: $60 Apple Pay, then $40 card

    assert isinstance(result, CompositeResult)
    assert result.status is PaymentStatus.FAILED
    assert setup.sink.types() == [
        "PaymentReceived",
        "PlanBuilt",
        "StepAttempted",
        "StepSucceeded",
        "StepFailed",
        "CompensationIssued",
        "PaymentFailed",
    ]
    _agree(setup.sink.events[4], result.step_results[1])
    # Every StepFailed of an attempt that was sent follows that attempt's StepAttempted.
    attempted = {(e.step_index, e.attempt) for e in setup.sink.events if isinstance(e, StepAttempted)}
    assert attempted == {(0, 1)}


async def test_crash_recovery_does_not_take_a_skipped_step_for_an_attempt() -> None:
    processors = _processors()
    setup = rig(processors, breaker=BreakerPolicy(failure_threshold=1, cool_down_s=60))
    _open_card_circuits(setup)
    await setup.pay()
    # The crash came right after the skipped leg was recorded, before anything was undone.
    events = setup.sink.events[: setup.sink.types().index("StepFailed") + 1]
    assert interrupted(events)

    config = merchant(PartialPolicy.ALL_OR_NOTHING)
    restarted = rig(processors, config)
    adapters: dict[ProcessorId, Processor] = {ProcessorId(name): p for name, p in processors.items()}
    recovered = await recover_payment(
        events,
        service=restarted.service,
        processors=adapters,
        merchant=config,
        sink=restarted.sink,
        clock=restarted.clock,
    )

    assert recovered.settled_attempts == 0  # nothing was sent for the skipped leg: nothing to ask
    assert processors["stripe_sim"].status_calls == processors["adyen_sim"].status_calls == 0
    assert recovered.result.status is PaymentStatus.FAILED
    assert restarted.sink.types() == ["CompensationIssued", "PaymentFailed"]
    assert processors["applepay_sim"].held == {}
    # The recovered result says of the skipped leg what its event does.
    skipped = recovered.result.step_results[1]
    _agree(events[-1], skipped)
    assert skipped.error_code is ErrorCode.PROCESSOR_UNAVAILABLE


async def test_a_router_step_without_any_configured_processor_records_a_step_failed() -> None:
    setup = rig({"applepay_sim": ScriptedProcessor("applepay_sim")})
    step = PaymentStep(0, PaymentMethod.CARD, 4000, CARD_CHAIN)

    result = await setup.router.route(request(4000, payment_method=PaymentMethod.CARD), step, merchant())

    assert (result.success, result.error_code, result.attempts) == (False, ErrorCode.PROCESSOR_UNAVAILABLE, 0)
    (event,) = setup.sink.events
    _agree(event, result)
