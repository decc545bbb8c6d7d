"""Domain events (``payments.events.v1``): the record of everything that happens to money.

Every event carries the payment, request and merchant it belongs to and a timezone-aware
timestamp. Event names are past tense; ``EVENT_TYPES`` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypedDict

from engine.decline_codes import DeclineCode, check_decline_code
from engine.error_codes import ErrorCode
from engine.errors import InvalidFieldError, InvalidTimestampError, ResultInvariantError
from engine.failure_details import FailureDetails, check_failure_details
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import Currency, check_minor_units
from engine.results import PaymentStatus
from engine.types import (
    MerchantId,
    PaymentId,
    ProcessorId,
    RequestId,
    check_count,
    check_identifier,
    check_sequence,
    check_text,
)
from engine.unchecked import unchecked
from engine.validation import ValidationIssue


def check_timestamp(field: str, value: object) -> datetime:
    if type(value) is datetime and value.tzinfo is UTC:
        return value  # aware, and every datetime in UTC is between years 1 and 9999
    if not isinstance(value, datetime):
        raise InvalidTimestampError(field, value, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTimestampError(field, value, "must be timezone-aware")
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise InvalidTimestampError(field, value, "must lie between years 1 and 9999 in UTC") from None
    return value


def _check_optional_error(field: str, value: object) -> None:
    if value is not None and not isinstance(value, ErrorCode):
        raise InvalidFieldError(field, value, "must be an ErrorCode")


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """Fields every event has."""

    event_type: ClassVar[str] = "DomainEvent"

    payment_id: PaymentId
    request_id: RequestId
    merchant_id: MerchantId
    timestamp: datetime

    def __post_init__(self) -> None:
        check_identifier("event.payment_id", self.payment_id)
        check_identifier("event.request_id", self.request_id)
        check_identifier("event.merchant_id", self.merchant_id)
        check_timestamp("event.timestamp", self.timestamp)

    @classmethod
    def derived(cls, **fields: Any) -> Self:
        """An event built from values the engine took from already-checked domain objects, without
        checking them again (see :mod:`engine.unchecked`; tests check every one)."""
        return unchecked(cls)(**fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentReceived(DomainEvent):
    """A request arrived; ``accepted`` is false when its issues made it unprocessable (422).

    ``amount_cents`` and ``currency`` are ``None`` when the request gave nothing usable.
    """

    event_type: ClassVar[str] = "PaymentReceived"

    accepted: bool
    amount_cents: int | None = None
    currency: Currency | None = None
    method: PaymentMethod | None = None
    idempotency_key: str | None = None
    validation_issues: tuple[ValidationIssue, ...] = ()

    def __post_init__(self) -> None:
        DomainEvent.__post_init__(self)
        if not isinstance(self.accepted, bool):
            raise InvalidFieldError("event.accepted", self.accepted, "must be a bool")
        if self.amount_cents is not None:
            check_minor_units("event.amount_cents", self.amount_cents)
        if self.currency is not None and not isinstance(self.currency, Currency):
            raise InvalidFieldError("event.currency", self.currency, "must be a Currency")
        if self.method is not None and not isinstance(self.method, PaymentMethod):
            raise InvalidFieldError("event.method", self.method, "must be a PaymentMethod")
        if self.idempotency_key is not None:
            check_text("event.idempotency_key", self.idempotency_key, max_length=255)
        issues = check_sequence("event.validation_issues", self.validation_issues)
        if any(not isinstance(issue, ValidationIssue) for issue in issues):
            raise InvalidFieldError("event.validation_issues", issues, "must hold ValidationIssues")
        if self.accepted and any(issue.blocks for issue in issues):
            raise ResultInvariantError("event.accepted", True, "a request with an error issue is refused")
        object.__setattr__(self, "validation_issues", issues)


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A step as the ``PlanBuilt`` event records it."""

    index: int
    method: PaymentMethod
    amount_cents: int
    processor_ids: tuple[ProcessorId, ...]

    def __post_init__(self) -> None:
        check_count("planned_step.index", self.index)
        if not isinstance(self.method, PaymentMethod):
            raise InvalidFieldError("planned_step.method", self.method, "must be a PaymentMethod")
        check_minor_units("planned_step.amount_cents", self.amount_cents)
        if self.amount_cents == 0:
            raise InvalidFieldError("planned_step.amount_cents", 0, "must be positive")
        processors = check_sequence("planned_step.processor_ids", self.processor_ids)
        if not processors:
            raise InvalidFieldError(
                "planned_step.processor_ids", processors, "must name at least one processor"
            )
        for processor in processors:
            check_identifier("planned_step.processor_ids", processor)
        if len(set(processors)) != len(processors):
            raise InvalidFieldError("planned_step.processor_ids", processors, "must not repeat a processor")
        object.__setattr__(self, "processor_ids", processors)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanBuilt(DomainEvent):
    """A plan was built; a positive ``coverage_shortfall_cents`` means it will not run.

    ``partial_policy`` is the merchant's policy the payment was accepted under, the one crash
    recovery finishes it under; ``None`` for an event written before it was recorded.
    """

    event_type: ClassVar[str] = "PlanBuilt"

    total_amount_cents: int
    currency: Currency
    steps: tuple[PlannedStep, ...]
    coverage_shortfall_cents: int = 0
    partial_policy: PartialPolicy | None = None

    def __post_init__(self) -> None:
        DomainEvent.__post_init__(self)
        check_minor_units("event.total_amount_cents", self.total_amount_cents)
        if not isinstance(self.currency, Currency):
            raise InvalidFieldError("event.currency", self.currency, "must be a Currency")
        if self.partial_policy is not None and not isinstance(self.partial_policy, PartialPolicy):
            raise InvalidFieldError("event.partial_policy", self.partial_policy, "must be a PartialPolicy")
        steps = check_sequence("event.steps", self.steps)
        if any(not isinstance(step, PlannedStep) for step in steps):
            raise InvalidFieldError("event.steps", steps, "must hold PlannedSteps")
        check_minor_units("event.coverage_shortfall_cents", self.coverage_shortfall_cents)
        for position, step in enumerate(steps):
            if step.index != position:
                raise ResultInvariantError(
                    f"event.steps[{position}].index", step.index, f"must be {position}"
                )
        planned = sum(step.amount_cents for step in steps)
        if planned + self.coverage_shortfall_cents != self.total_amount_cents:
            raise ResultInvariantError(
                "event.coverage_shortfall_cents",
                self.coverage_shortfall_cents,
                f"plus the planned {planned} must equal the total {self.total_amount_cents}",
            )
        object.__setattr__(self, "steps", steps)


@dataclass(frozen=True, slots=True, kw_only=True)
class _StepEvent(DomainEvent):
    step_index: int
    processor_id: ProcessorId

    def __post_init__(self) -> None:
        DomainEvent.__post_init__(self)
        check_count("event.step_index", self.step_index)
        check_identifier("event.processor_id", self.processor_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepAttempted(_StepEvent):
    """An attempt is about to be sent to a processor (durable before the processor is called)."""

    event_type: ClassVar[str] = "StepAttempted"

    attempt: int
    method: PaymentMethod
    amount_cents: int
    idempotency_key: str

    def __post_init__(self) -> None:
        _StepEvent.__post_init__(self)
        check_count("event.attempt", self.attempt, minimum=1)
        if not isinstance(self.method, PaymentMethod):
            raise InvalidFieldError("event.method", self.method, "must be a PaymentMethod")
        check_minor_units("event.amount_cents", self.amount_cents)
        check_text("event.idempotency_key", self.idempotency_key, max_length=255)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSucceeded(_StepEvent):
    """A step was charged: ``amount`` minor units at ``processor_id``."""

    event_type: ClassVar[str] = "StepSucceeded"

    latency_ms: int
    amount: int
    attempt: int = 1

    def __post_init__(self) -> None:
        _StepEvent.__post_init__(self)
        check_count("event.latency_ms", self.latency_ms)
        check_minor_units("event.amount", self.amount)
        check_count("event.attempt", self.attempt, minimum=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailed(_StepEvent):
    """An attempt of a step failed, or the step failed without one.

    ``retryable`` is set from the error code's retry class at the point of failure (true unless
    the class is NEVER), the value the step's result reports; one that contradicts it is refused.
    ``attempt`` is 0 when nothing was sent: every processor of the step's chain was skipped
    (circuit open or not configured), and ``processor_id`` is the one the step's result names;
    such an event took no time. ``decline_code`` is the processor's reason for a ``declined`` or
    ``invalid_card`` answer (:mod:`engine.decline_codes`), ``None`` otherwise.
    ``failure_details`` is what the processor itself said of the refusal (its error type, code,
    decline code, parameter and message, masked: :mod:`engine.failure_details`), when it said so.
    """

    event_type: ClassVar[str] = "StepFailed"

    error_code: ErrorCode
    retryable: bool
    latency_ms: int
    attempt: int = 1
    decline_code: DeclineCode | None = None
    failure_details: FailureDetails | None = None

    def __post_init__(self) -> None:
        _StepEvent.__post_init__(self)
        if not isinstance(self.error_code, ErrorCode):
            raise InvalidFieldError("event.error_code", self.error_code, "must be an ErrorCode")
        if not isinstance(self.retryable, bool):
            raise InvalidFieldError("event.retryable", self.retryable, "must be a bool")
        if self.retryable != self.error_code.retryable:
            raise ResultInvariantError(
                "event.retryable", self.retryable, f"contradicts the retry class of {self.error_code.value}"
            )
        check_count("event.latency_ms", self.latency_ms)
        check_count("event.attempt", self.attempt)
        check_decline_code("event.decline_code", self.decline_code, self.error_code)
        check_failure_details("event.failure_details", self.failure_details)
        if self.attempt == 0 and self.latency_ms != 0:
            raise ResultInvariantError(
                "event.latency_ms", self.latency_ms, "a step that sent nothing took no time"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationIssued(_StepEvent):
    """A successful step was voided or refunded; ``succeeded`` is false when that failed.

    ``amount`` is what came back, as the processor says; when the compensation failed, what it
    was for, none of which came back (the payment's ``total_processed`` counts it when the
    processor says the step still holds it)."""

    event_type: ClassVar[str] = "CompensationIssued"

    amount: int
    succeeded: bool
    error_code: ErrorCode | None = None

    def __post_init__(self) -> None:
        _StepEvent.__post_init__(self)
        check_minor_units("event.amount", self.amount)
        if not isinstance(self.succeeded, bool):
            raise InvalidFieldError("event.succeeded", self.succeeded, "must be a bool")
        _check_optional_error("event.error_code", self.error_code)
        if self.succeeded == (self.error_code is not None):
            raise ResultInvariantError(
                "event.error_code", self.error_code, "is set exactly when the compensation failed"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentCompleted(DomainEvent):
    """The payment ended ``succeeded`` or ``partially_succeeded``: ``total_amount`` was asked,
    ``total_processed`` charged (less than asked when partially succeeded)."""

    event_type: ClassVar[str] = "PaymentCompleted"

    total_amount: int
    total_processed: int
    status: PaymentStatus = PaymentStatus.SUCCEEDED

    def __post_init__(self) -> None:
        DomainEvent.__post_init__(self)
        check_minor_units("event.total_amount", self.total_amount)
        check_minor_units("event.total_processed", self.total_processed)
        if not isinstance(self.status, PaymentStatus) or self.status is PaymentStatus.FAILED:
            raise InvalidFieldError("event.status", self.status, "a completed payment did not fail")
        if self.status is PaymentStatus.SUCCEEDED:
            consistent = self.total_processed == self.total_amount > 0
        else:
            consistent = 0 < self.total_processed < self.total_amount
        if not consistent:
            raise ResultInvariantError(
                "event.total_processed",
                self.total_processed,
                f"contradicts status {self.status.value} for total {self.total_amount}",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentFailed(DomainEvent):
    """The payment ended ``failed``: ``total_amount`` was asked; ``total_processed`` is what
    stays charged, what compensation could not undo."""

    event_type: ClassVar[str] = "PaymentFailed"

    total_amount: int
    final_error: ErrorCode
    total_processed: int = 0

    def __post_init__(self) -> None:
        DomainEvent.__post_init__(self)
        check_minor_units("event.total_amount", self.total_amount)
        check_minor_units("event.total_processed", self.total_processed)
        if not isinstance(self.final_error, ErrorCode):
            raise InvalidFieldError("event.final_error", self.final_error, "must be an ErrorCode")
        if self.total_processed > self.total_amount:
            raise ResultInvariantError(
                "event.total_processed", self.total_processed, "exceeds the total amount"
            )


class EventIds(TypedDict):
    """The fields every event shares, as keyword arguments."""

    payment_id: PaymentId
    request_id: RequestId
    merchant_id: MerchantId
    timestamp: datetime


def event_ids(
    payment_id: PaymentId, request_id: RequestId, merchant_id: MerchantId, now: datetime
) -> EventIds:
    """The shared fields of an event about one payment, stamped ``now``."""
    return {"payment_id": payment_id, "request_id": request_id, "merchant_id": merchant_id, "timestamp": now}


EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    PaymentReceived,
    PlanBuilt,
    StepAttempted,
    StepSucceeded,
    StepFailed,
    CompensationIssued,
    PaymentCompleted,
    PaymentFailed,
)
