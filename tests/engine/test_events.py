from datetime import UTC, datetime
from typing import Any

import pytest

from engine.error_codes import ErrorCode
from engine.errors import InvalidFieldError, InvalidTimestampError, ResultInvariantError
from engine.events import (
    EVENT_TYPES,
    CompensationIssued,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    PlannedStep,
    StepAttempted,
    StepFailed,
    StepSucceeded,
)
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.results import PaymentStatus
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from engine.validation import IssueSeverity, ValidationIssue

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
IDS: dict[str, Any] = {
    "payment_id": PaymentId("pay_1"),
    "request_id": RequestId("req_1"),
    "merchant_id": MerchantId("m_acme"),
    "timestamp": NOW,
}
STEP: dict[str, Any] = {"step_index": 0, "processor_id": ProcessorId("applepay_sim")}


def test_product_names_every_required_event() -> None:
    names = {event.event_type for event in EVENT_TYPES}
    assert names == {
        "PaymentReceived",
        "PlanBuilt",
        "StepAttempted",
        "StepSucceeded",
        "StepFailed",
        "CompensationIssued",
        "PaymentCompleted",
        "PaymentFailed",
    }


def test_the_seed_payment_as_events() -> None:
    events = [
        PaymentReceived(**IDS, accepted=True, amount_cents=10_000, currency=Currency("USD")),
        PlanBuilt(
            **IDS,
            total_amount_cents=10_000,
            currency=Currency("USD"),
            steps=(
                PlannedStep(0, PaymentMethod.APPLE_PAY, 6000, (ProcessorId("applepay_sim"),)),
                PlannedStep(
                    1, PaymentMethod.CARD, 4000, (ProcessorId("stripe_sim"), ProcessorId("adyen_sim"))
                ),
            ),
        ),
        StepAttempted(
            **IDS,
            **STEP,
            attempt=1,
            method=PaymentMethod.APPLE_PAY,
            amount_cents=6000,
            idempotency_key="pay_1:step:0",
        ),
        StepSucceeded(**IDS, **STEP, latency_ms=80, amount=6000),
        StepFailed(
            **IDS,
            step_index=1,
            processor_id=ProcessorId("stripe_sim"),
            error_code=ErrorCode.TIMEOUT,
            retryable=True,
            latency_ms=2000,
        ),
        PaymentCompleted(**IDS, total_amount=10_000, total_processed=10_000),
    ]
    assert [event.event_type for event in events] == [
        "PaymentReceived",
        "PlanBuilt",
        "StepAttempted",
        "StepSucceeded",
        "StepFailed",
        "PaymentCompleted",
    ]
    failed = events[4]
    assert isinstance(failed, StepFailed)
    assert failed.retryable


def test_every_event_needs_ids_and_an_aware_timestamp() -> None:
    with pytest.raises(InvalidTimestampError, match="event.timestamp"):
        PaymentCompleted(**{**IDS, "timestamp": datetime(2026, 1, 1)}, total_amount=1, total_processed=1)
    with pytest.raises(InvalidFieldError, match="event.payment_id"):
        PaymentCompleted(**{**IDS, "payment_id": ""}, total_amount=1, total_processed=1)


def test_a_refused_request_is_recorded_with_its_issues_but_cannot_be_accepted() -> None:
    error = ValidationIssue("amount", "not_a_number", "amount is not a number", IssueSeverity.ERROR, "abc")
    refused = PaymentReceived(**IDS, accepted=False, validation_issues=(error,))
    assert refused.validation_issues == (error,)
    with pytest.raises(ResultInvariantError, match="event.accepted=True"):
        PaymentReceived(**IDS, accepted=True, validation_issues=(error,))


def test_compensation_error_code_is_set_exactly_when_it_failed() -> None:
    CompensationIssued(**IDS, **STEP, amount=6000, succeeded=True)
    CompensationIssued(**IDS, **STEP, amount=6000, succeeded=False, error_code=ErrorCode.NETWORK_FAILURE)
    with pytest.raises(ResultInvariantError, match="event.error_code"):
        CompensationIssued(**IDS, **STEP, amount=6000, succeeded=False)
    with pytest.raises(ResultInvariantError, match="event.error_code"):
        CompensationIssued(**IDS, **STEP, amount=6000, succeeded=True, error_code=ErrorCode.TIMEOUT)


def test_terminal_events_are_consistent() -> None:
    with pytest.raises(InvalidFieldError, match="event.status"):
        PaymentCompleted(**IDS, total_amount=10, total_processed=0, status=PaymentStatus.FAILED)
    with pytest.raises(ResultInvariantError, match="event.total_processed=11"):
        PaymentCompleted(**IDS, total_amount=10, total_processed=11)
    with pytest.raises(ResultInvariantError, match="event.total_processed=11"):
        PaymentFailed(**IDS, total_amount=10, total_processed=11, final_error=ErrorCode.DECLINED)
    with pytest.raises(InvalidFieldError, match="event.final_error='declined'"):
        PaymentFailed(**IDS, total_amount=10, final_error="declined")  # type: ignore[arg-type]


def test_step_events_check_their_fields() -> None:
    with pytest.raises(InvalidFieldError, match="event.attempt=0"):
        StepSucceeded(**IDS, **STEP, latency_ms=1, amount=1, attempt=0)
    with pytest.raises(InvalidFieldError, match="event.latency_ms=-1"):
        StepFailed(**IDS, **STEP, error_code=ErrorCode.DECLINED, retryable=False, latency_ms=-1)
    with pytest.raises(InvalidFieldError, match="event.step_index"):
        StepSucceeded(**{**IDS, **STEP, "step_index": "0"}, latency_ms=1, amount=1)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_a_failed_step_is_retryable_exactly_as_its_error_codes_retry_class_says(code: ErrorCode) -> None:
    failed = StepFailed(**IDS, **STEP, error_code=code, retryable=code.retryable, latency_ms=1)
    assert failed.retryable is code.retryable
    with pytest.raises(ResultInvariantError, match="event.retryable"):
        StepFailed(**IDS, **STEP, error_code=code, retryable=not code.retryable, latency_ms=1)
    with pytest.raises(InvalidFieldError, match="event.retryable"):
        StepFailed(**IDS, **STEP, error_code=code, retryable="yes", latency_ms=1)  # type: ignore[arg-type]


def test_a_failed_step_without_an_attempt_took_no_time() -> None:
    unavailable: dict[str, Any] = {"error_code": ErrorCode.PROCESSOR_UNAVAILABLE, "retryable": True}
    skipped = StepFailed(**IDS, **STEP, **unavailable, latency_ms=0, attempt=0)
    assert skipped.attempt == 0
    with pytest.raises(ResultInvariantError, match="event.latency_ms=5"):
        StepFailed(**IDS, **STEP, **unavailable, latency_ms=5, attempt=0)
    with pytest.raises(InvalidFieldError, match="event.attempt=-1"):
        StepFailed(**IDS, **STEP, **unavailable, latency_ms=0, attempt=-1)
