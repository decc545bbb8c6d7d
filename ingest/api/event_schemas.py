"""How the OpenAPI document describes a payment's domain events (``GET /v1/payments/{id}``).

Each event is ``{"type": ..., "timestamp": ..., ids..., fields}`` (``ingest.codec.event_json``),
with the fields of its type (``engine.events``, ``payments.events.v1``): one shape per type,
chosen by ``type``, so that a generated client reads every field of every event. Like the rest of
the answers they only *describe*: nothing is validated against them on the way out.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.decline_codes import DeclineCode
from engine.error_codes import ErrorCode
from engine.methods import PartialPolicy
from ingest.api.schemas import (
    CompositeResultOut,
    FailureDetailsOut,
    Method,
    StepResultOut,
    Timestamp,
    ValidationIssueOut,
)


class _EventOut(BaseModel):
    """The fields every event has."""

    model_config = ConfigDict(extra="allow")

    timestamp: Timestamp
    payment_id: str
    request_id: str
    merchant_id: str


class PaymentReceivedOut(_EventOut):
    """A request arrived; ``accepted`` is false when its issues made it unprocessable (422)."""

    type: Literal["PaymentReceived"]
    accepted: bool
    amount_cents: int | None = Field(ge=0, description="null when the request gave nothing usable")
    currency: str | None = Field(description="ISO 4217 code; null when the request gave nothing usable")
    method: Method | None = Field(description="null when the merchant's routing decides")
    idempotency_key: str | None = Field(description="The request's Idempotency-Key; null without one")
    validation_issues: list[ValidationIssueOut]


class PlannedStepOut(BaseModel):
    index: int = Field(ge=0)
    method: Method
    amount_cents: int = Field(ge=0)
    processor_ids: list[str] = Field(description="The step's fallback chain, in order")


class PlanBuiltOut(_EventOut):
    """A plan was built; a positive ``coverage_shortfall_cents`` means it will not run."""

    type: Literal["PlanBuilt"]
    total_amount_cents: int = Field(ge=0)
    currency: str
    steps: list[PlannedStepOut]
    coverage_shortfall_cents: int = Field(ge=0)
    partial_policy: PartialPolicy | None = Field(
        default=None,
        description=(
            "The merchant's partial policy the payment was accepted under, the one crash recovery "
            "finishes it under; null for events stored before it was recorded."
        ),
    )


class StepAttemptedOut(_EventOut):
    """An attempt is about to be sent to a processor (recorded before the processor is called)."""

    type: Literal["StepAttempted"]
    step_index: int = Field(ge=0)
    processor_id: str
    attempt: int = Field(ge=1)
    method: Method
    amount_cents: int = Field(ge=0)
    idempotency_key: str = Field(description="The processor idempotency key, stable across retries")


class StepSucceededOut(_EventOut):
    """A step was charged: ``amount`` minor units at ``processor_id``."""

    type: Literal["StepSucceeded"]
    step_index: int = Field(ge=0)
    processor_id: str
    latency_ms: int = Field(ge=0)
    amount: int = Field(ge=0)
    attempt: int = Field(default=1, ge=1)


class StepFailedOut(_EventOut):
    """An attempt of a step failed, or the step failed without one (``attempt`` 0)."""

    type: Literal["StepFailed"]
    step_index: int = Field(ge=0)
    processor_id: str
    error_code: ErrorCode
    retryable: bool
    latency_ms: int = Field(ge=0)
    attempt: int = Field(default=1, ge=0)
    decline_code: DeclineCode | None = Field(
        default=None, description="As the step result's; absent from events stored before it existed."
    )
    failure_details: FailureDetailsOut | None = Field(
        default=None,
        description="What the processor said of this attempt's refusal, as the step result's; null when "
        "it said nothing, and for events stored before it existed.",
    )


class CompensationIssuedOut(_EventOut):
    """A successful step was voided or refunded; ``succeeded`` is false when that failed."""

    type: Literal["CompensationIssued"]
    step_index: int = Field(ge=0)
    processor_id: str
    amount: int = Field(
        ge=0,
        description="What came back; when succeeded is false, what the void or refund was for (none did)",
    )
    succeeded: bool
    error_code: ErrorCode | None = Field(description="Why the compensation failed; null when it succeeded")


class PaymentCompletedOut(_EventOut):
    """The payment ended ``succeeded`` or ``partially_succeeded``."""

    type: Literal["PaymentCompleted"]
    total_amount: int = Field(ge=0, description="The amount asked, in minor units")
    total_processed: int = Field(
        ge=0, description="The amount charged, in minor units: less than asked when partially_succeeded"
    )
    status: Literal["succeeded", "partially_succeeded"]


class PaymentFailedOut(_EventOut):
    """The payment ended ``failed``; ``total_processed`` is what compensation could not undo."""

    type: Literal["PaymentFailed"]
    total_amount: int = Field(ge=0, description="The amount asked, in minor units")
    final_error: ErrorCode
    total_processed: int = Field(
        ge=0, description="The amount still charged, in minor units: what compensation could not undo"
    )


EventOut = Annotated[
    PaymentReceivedOut
    | PlanBuiltOut
    | StepAttemptedOut
    | StepSucceededOut
    | StepFailedOut
    | CompensationIssuedOut
    | PaymentCompletedOut
    | PaymentFailedOut,
    Field(discriminator="type"),
]


class PaymentOut(CompositeResultOut):
    """A payment's result and its domain events in the order they happened."""

    events: list[EventOut]


class RefusedPaymentOut(BaseModel):
    """A request refused 422 (or 403), as recorded under the ``payment_id`` its answer gave:
    status ``rejected``, nothing processed, the issues that refused it, and its one event
    (``PaymentReceived`` with ``accepted: false``)."""

    payment_id: str
    request_id: str
    merchant_id: str
    status: Literal["rejected"]
    success: Literal[False]
    currency: str | None = Field(description="ISO 4217 code; null when the request gave nothing usable")
    total_amount: int | None = Field(ge=0, description="null when the request gave nothing usable")
    total_processed: Literal[0]
    remaining_amount: int | None = Field(ge=0, description="the whole amount: nothing was charged")
    step_results: list[StepResultOut] = Field(max_length=0)
    final_error: None
    validation_errors: list[ValidationIssueOut]
    events: list[EventOut]


class ProcessingPaymentOut(BaseModel):
    """A payment whose result is not recorded yet, as ``GET /v1/payments`` lists it: still
    running, or cut short by a crash or a forced stop (the next start settles it). Status
    ``processing``: it may have charged (``total_processed``, what its steps hold charged so far);
    its step results come with its result. Do not pay again: look it up later."""

    payment_id: str
    request_id: str
    merchant_id: str
    status: Literal["processing"]
    success: Literal[False]
    currency: str | None = Field(description="ISO 4217 code; null when the request gave nothing usable")
    total_amount: int | None = Field(ge=0, description="The amount asked, in minor units")
    total_processed: int = Field(ge=0, description="What its steps hold charged so far, in minor units")
    remaining_amount: int | None = Field(ge=0, description="What is not charged so far")
    step_results: list[StepResultOut] = Field(max_length=0)
    final_error: None
    validation_errors: list[ValidationIssueOut]
    events: list[EventOut]
    interrupted: str | None = Field(
        default=None,
        description="null while it runs. Set when a crash or a forced stop cut it short and the "
        "service's last start could not settle it: why (its processor could not say what it holds, "
        "or is no longer configured, or its merchant is gone). Only a later start settles it: look "
        "it up again after the service restarts (a retry with the same Idempotency-Key then gets "
        "its outcome), not every few seconds; do not pay again with a new key.",
    )


class PaymentsOut(BaseModel):
    """A page of payments, newest first (``GET /v1/payments``)."""

    payments: list[PaymentOut | RefusedPaymentOut | ProcessingPaymentOut] = Field(
        description="Each as `GET /v1/payments/{payment_id}` shows it; one whose result is not "
        "recorded yet with status `processing`."
    )
    has_more: bool = Field(
        description="Whether more payments follow the last one listed: list them with "
        "`starting_after` set to its `payment_id`."
    )
