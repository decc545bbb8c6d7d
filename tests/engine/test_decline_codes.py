"""Why a card was refused: the processor's reason, kept from a closed set, on the step's result and
its ``StepFailed`` events, and rebuilt from the events by crash recovery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from engine.decline_codes import DeclineCode, decline_code_for
from engine.error_codes import ErrorCode
from engine.errors import InvalidFieldError, ResultInvariantError
from engine.events import DomainEvent, StepFailed
from engine.methods import PartialPolicy, PaymentMethod
from engine.plan import PaymentStep
from engine.processor import Processor
from engine.recovery import interrupted, recover_payment
from engine.results import CompositeResult, PaymentStatus, Result
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from tests.engine.fakes import DECLINE, INVALID, OK, PROCESSING, ScriptedProcessor
from tests.engine.harness import merchant, request, rig

STEP = PaymentStep(0, PaymentMethod.CARD, 4000, (ProcessorId("stripe_sim"), ProcessorId("adyen_sim")))


@pytest.mark.parametrize(
    ("error", "reported", "expected"),
    [
        (ErrorCode.DECLINED, "insufficient_funds", DeclineCode.INSUFFICIENT_FUNDS),
        (ErrorCode.DECLINED, "lost_card", DeclineCode.LOST_CARD),
        (ErrorCode.DECLINED, "generic_decline", DeclineCode.GENERIC_DECLINE),
        (ErrorCode.INVALID_CARD, "expired_card", DeclineCode.EXPIRED_CARD),
        (ErrorCode.INVALID_CARD, "incorrect_number", DeclineCode.INCORRECT_NUMBER),
    ],
)
def test_a_listed_reason_for_a_refused_card_is_kept(
    error: ErrorCode, reported: str, expected: DeclineCode
) -> None:
    assert decline_code_for(error, reported) is expected


@pytest.mark.parametrize(
    "reported",
    ["a_reason_stripe_adds_later", "Insufficient_Funds", "lost_card ", "lost_card<script>", "x" * 100],
)
@pytest.mark.parametrize("error", [ErrorCode.DECLINED, ErrorCode.INVALID_CARD])
def test_a_reason_outside_the_list_is_generic_decline(error: ErrorCode, reported: str) -> None:
    assert decline_code_for(error, reported) is DeclineCode.GENERIC_DECLINE


@pytest.mark.parametrize(
    ("error", "reported"),
    [
        (ErrorCode.DECLINED, None),
        (ErrorCode.INVALID_CARD, ""),
        (ErrorCode.PROCESSING_ERROR, "processing_error"),
        (ErrorCode.POLICY_REJECTED, "amount_not_supported_by_stripe"),
        (ErrorCode.UNKNOWN, "resource_missing"),
        (None, "lost_card"),
    ],
)
def test_no_reason_or_another_error_gives_no_decline_code(
    error: ErrorCode | None, reported: str | None
) -> None:
    assert decline_code_for(error, reported) is None


def _failed_step(error: ErrorCode, decline_code: object) -> Result:
    return Result(
        step_index=0,
        method=PaymentMethod.CARD,
        processor_id=ProcessorId("stripe_sim"),
        success=False,
        amount_processed=0,
        latency_ms=1,
        attempts=1,
        error_code=error,
        decline_code=decline_code,  # type: ignore[arg-type]
    )


def _failed_event(error: ErrorCode, decline_code: object) -> StepFailed:
    return StepFailed(
        payment_id=PaymentId("pay_1"),
        request_id=RequestId("req_1"),
        merchant_id=MerchantId("m_acme"),
        timestamp=datetime(2026, 11, 26, tzinfo=UTC),
        step_index=0,
        processor_id=ProcessorId("stripe_sim"),
        error_code=error,
        retryable=error.retryable,
        latency_ms=1,
        decline_code=decline_code,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("build", [_failed_step, _failed_event], ids=["result", "event"])
def test_a_decline_code_only_goes_with_a_refused_card(
    build: Callable[[ErrorCode, object], Result | StepFailed],
) -> None:
    assert build(ErrorCode.DECLINED, DeclineCode.LOST_CARD).decline_code is DeclineCode.LOST_CARD
    with pytest.raises(ResultInvariantError):
        build(ErrorCode.TIMEOUT, DeclineCode.LOST_CARD)
    with pytest.raises(InvalidFieldError):
        build(ErrorCode.DECLINED, "lost_card")  # free text, not a DeclineCode


async def test_a_declined_step_reports_the_processors_reason_on_its_result_and_event() -> None:
    fakes = {
        "stripe_sim": ScriptedProcessor("stripe_sim", (DECLINE,), reason="stolen_card"),
        "adyen_sim": ScriptedProcessor("adyen_sim", (OK,)),
    }
    setup = rig(fakes)

    result = await setup.router.route(request(), STEP, merchant())

    assert (result.error_code, result.decline_code) == (ErrorCode.DECLINED, DeclineCode.STOLEN_CARD)
    failed = [e for e in setup.sink.events if isinstance(e, StepFailed)]
    assert [(e.error_code, e.decline_code) for e in failed] == [(ErrorCode.DECLINED, DeclineCode.STOLEN_CARD)]
    assert fakes["adyen_sim"].calls == 0  # never retried elsewhere


async def test_an_unlisted_reason_reaches_the_result_and_event_as_generic_decline() -> None:
    fakes = {"stripe_sim": ScriptedProcessor("stripe_sim", (INVALID,), reason="Card <b>blocked</b> by bank")}
    setup = rig(fakes)

    result = await setup.router.route(request(), STEP, merchant())

    assert (result.error_code, result.decline_code) == (ErrorCode.INVALID_CARD, DeclineCode.GENERIC_DECLINE)
    (failed,) = [e for e in setup.sink.events if isinstance(e, StepFailed)]
    assert failed.decline_code is DeclineCode.GENERIC_DECLINE


async def test_only_the_attempts_that_refused_the_card_carry_a_decline_code() -> None:
    fakes = {
        # A processing error that names itself as its reason, retried, then the next processor.
        "stripe_sim": ScriptedProcessor("stripe_sim", (PROCESSING,), reason="processing_error"),
        "adyen_sim": ScriptedProcessor("adyen_sim", (DECLINE,), reason="insufficient_funds"),
    }
    setup = rig(fakes)

    result = await setup.router.route(request(), STEP, merchant())

    failed = [
        (e.processor_id, e.error_code, e.decline_code) for e in setup.sink.events if isinstance(e, StepFailed)
    ]
    assert failed == [
        ("stripe_sim", ErrorCode.PROCESSING_ERROR, None),
        ("stripe_sim", ErrorCode.PROCESSING_ERROR, None),
        ("stripe_sim", ErrorCode.PROCESSING_ERROR, None),
        ("adyen_sim", ErrorCode.DECLINED, DeclineCode.INSUFFICIENT_FUNDS),
    ]
    assert (result.processor_id, result.decline_code) == ("adyen_sim", DeclineCode.INSUFFICIENT_FUNDS)


async def test_a_step_that_fails_for_another_error_has_no_decline_code() -> None:
    fakes = {
        "stripe_sim": ScriptedProcessor("stripe_sim", (PROCESSING,), reason="processing_error"),
        "adyen_sim": ScriptedProcessor("adyen_sim", (PROCESSING,), reason="processing_error"),
    }
    setup = rig(fakes)

    result = await setup.router.route(request(), STEP, merchant())

    assert (result.error_code, result.decline_code) == (ErrorCode.PROCESSING_ERROR, None)


async def test_the_payment_result_keeps_each_steps_decline_code() -> None:
    processors = {
        "applepay_sim": ScriptedProcessor("applepay_sim"),
        "stripe_sim": ScriptedProcessor("stripe_sim", (DECLINE,), reason="lost_card"),
        "adyen_sim": ScriptedProcessor("adyen_sim"),
    }
    paid = rig(processors)

    result = await paid.pay()

    assert isinstance(result, CompositeResult)
    assert result.status is PaymentStatus.FAILED
    apple, card = result.step_results
    assert (apple.compensated, apple.decline_code) == (True, None)
    assert (card.error_code, card.decline_code) == (ErrorCode.DECLINED, DeclineCode.LOST_CARD)


async def test_recovery_rebuilds_a_declined_steps_decline_code_from_its_event() -> None:
    processors = {
        "applepay_sim": ScriptedProcessor("applepay_sim"),
        "stripe_sim": ScriptedProcessor("stripe_sim", (DECLINE,), reason="lost_card"),
        "adyen_sim": ScriptedProcessor("adyen_sim"),
    }
    paid = rig(processors)
    await paid.pay()
    events: list[DomainEvent] = paid.sink.events
    # The crash came right after the card's refusal was recorded, before anything was undone.
    cut = next(i for i, e in enumerate(events) if isinstance(e, StepFailed)) + 1
    crashed = events[:cut]
    assert interrupted(crashed)
    config = merchant(PartialPolicy.ALL_OR_NOTHING)
    restarted = rig(processors, config)
    adapters: dict[ProcessorId, Processor] = {ProcessorId(name): p for name, p in processors.items()}

    recovered = await recover_payment(
        crashed,
        service=restarted.service,
        processors=adapters,
        merchant=config,
        sink=restarted.sink,
        clock=restarted.clock,
    )

    card = recovered.result.step_results[1]
    assert (card.error_code, card.decline_code) == (ErrorCode.DECLINED, DeclineCode.LOST_CARD)
