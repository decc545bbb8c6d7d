"""Step results and the composite result of a payment (``payments.result.v1``)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import StrEnum

from engine.decline_codes import DeclineCode, check_decline_code
from engine.error_codes import ErrorCode
from engine.errors import InvalidFieldError, ResultInvariantError
from engine.failure_details import FailureDetails, check_failure_details
from engine.methods import PaymentMethod
from engine.money import Currency, Money, check_minor_units
from engine.types import (
    MerchantId,
    PaymentId,
    ProcessorId,
    RequestId,
    check_count,
    check_identifier,
    check_sequence,
)
from engine.validation import ValidationIssue


class PaymentStatus(StrEnum):
    """The one terminal state every payment ends in."""

    SUCCEEDED = "succeeded"
    PARTIALLY_SUCCEEDED = "partially_succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one step, after its retries and fallbacks.

    Invariants: a success has no error code and a positive amount; a failure has an error code
    and processed nothing; only a success can be ``compensated`` (voided or refunded later).
    ``retryable`` follows from the error code's retry class. ``decline_code`` says why the card was
    refused, only on a ``declined`` or ``invalid_card`` failure (:mod:`engine.decline_codes`).
    ``failure_details`` is the processor's own account of the refusal the step ended on (its code,
    parameter and message: :mod:`engine.failure_details`), only on a failure.
    """

    step_index: int
    method: PaymentMethod
    processor_id: ProcessorId
    success: bool
    amount_processed: int
    latency_ms: int
    attempts: int
    error_code: ErrorCode | None = None
    compensated: bool = False
    decline_code: DeclineCode | None = None
    failure_details: FailureDetails | None = None

    def __post_init__(self) -> None:
        check_count("result.step_index", self.step_index)
        if not isinstance(self.method, PaymentMethod):
            raise InvalidFieldError("result.method", self.method, "must be a PaymentMethod")
        check_identifier("result.processor_id", self.processor_id)
        if not isinstance(self.success, bool):
            raise InvalidFieldError("result.success", self.success, "must be a bool")
        check_minor_units("result.amount_processed", self.amount_processed)
        check_count("result.latency_ms", self.latency_ms)
        check_count("result.attempts", self.attempts)
        if self.error_code is not None and not isinstance(self.error_code, ErrorCode):
            raise InvalidFieldError("result.error_code", self.error_code, "must be an ErrorCode")
        check_decline_code("result.decline_code", self.decline_code, self.error_code)
        check_failure_details("result.failure_details", self.failure_details)
        if self.success:
            if self.error_code is not None:
                raise ResultInvariantError(
                    "result.error_code", self.error_code.value, "a successful step has no error code"
                )
            if self.amount_processed == 0:
                raise ResultInvariantError(
                    "result.amount_processed", 0, "a successful step processed a positive amount"
                )
            if self.attempts == 0:
                raise ResultInvariantError("result.attempts", 0, "a successful step made an attempt")
            if self.failure_details is not None:
                raise ResultInvariantError(
                    "result.failure_details", self.failure_details, "a successful step has none"
                )
        else:
            if self.error_code is None:
                raise ResultInvariantError("result.error_code", None, "a failed step names its error code")
            if self.amount_processed != 0:
                raise ResultInvariantError(
                    "result.amount_processed", self.amount_processed, "a failed step processed nothing"
                )
            if self.compensated:
                raise ResultInvariantError(
                    "result.compensated", True, "only a successful step can be compensated"
                )

    @property
    def retryable(self) -> bool:
        return self.error_code is not None and self.error_code.retryable

    @property
    def charged_cents(self) -> int:
        """What this step still holds of the customer's money."""
        return self.amount_processed if self.success and not self.compensated else 0


@dataclass(frozen=True, slots=True)
class CompositeResult:
    """The outcome of a whole payment.

    ``total_processed`` is derived (the sum of successful, uncompensated steps), so the sum
    invariants hold by construction. Invariants checked here: never more processed than asked;
    ``succeeded`` means all of it processed and no error; ``partially_succeeded`` means some but
    not all; ``failed`` names its ``final_error``; step results are in step order.
    """

    payment_id: PaymentId
    request_id: RequestId
    merchant_id: MerchantId
    status: PaymentStatus
    currency: Currency
    total_amount: int
    step_results: tuple[Result, ...] = ()
    final_error: ErrorCode | None = None
    validation_errors: tuple[ValidationIssue, ...] = ()

    def __post_init__(self) -> None:
        check_identifier("result.payment_id", self.payment_id)
        check_identifier("result.request_id", self.request_id)
        check_identifier("result.merchant_id", self.merchant_id)
        if not isinstance(self.status, PaymentStatus):
            raise InvalidFieldError("result.status", self.status, "must be a PaymentStatus")
        if not isinstance(self.currency, Currency):
            raise InvalidFieldError("result.currency", self.currency, "must be a Currency")
        check_minor_units("result.total_amount", self.total_amount)
        if self.total_amount == 0:
            raise InvalidFieldError("result.total_amount", 0, "must be positive")
        steps = check_sequence("result.step_results", self.step_results)
        if any(not isinstance(step, Result) for step in steps):
            raise InvalidFieldError("result.step_results", steps, "must hold Results")
        object.__setattr__(self, "step_results", steps)
        issues = check_sequence("result.validation_errors", self.validation_errors)
        if any(not isinstance(issue, ValidationIssue) for issue in issues):
            raise InvalidFieldError("result.validation_errors", issues, "must hold ValidationIssues")
        object.__setattr__(self, "validation_errors", issues)
        if self.final_error is not None and not isinstance(self.final_error, ErrorCode):
            raise InvalidFieldError("result.final_error", self.final_error, "must be an ErrorCode")
        indices = [step.step_index for step in steps]
        if any(later <= earlier for earlier, later in itertools.pairwise(indices)):
            raise ResultInvariantError("result.step_results", indices, "must be in step order, one per step")
        processed = self.total_processed
        if processed > self.total_amount:
            raise ResultInvariantError(
                "result.total_processed", processed, f"exceeds the total amount {self.total_amount}"
            )
        self._check_status(processed)

    def _check_status(self, processed: int) -> None:
        status = self.status
        if status is PaymentStatus.SUCCEEDED:
            if processed != self.total_amount or self.total_amount == 0:
                raise ResultInvariantError(
                    "result.status", status.value, f"but {processed} of {self.total_amount} processed"
                )
            if self.final_error is not None:
                raise ResultInvariantError(
                    "result.final_error", self.final_error.value, "a succeeded payment has no final error"
                )
        elif status is PaymentStatus.PARTIALLY_SUCCEEDED:
            if not 0 < processed < self.total_amount:
                raise ResultInvariantError(
                    "result.status", status.value, f"but {processed} of {self.total_amount} processed"
                )
        elif self.final_error is None:
            raise ResultInvariantError("result.final_error", None, "a failed payment names its error")

    @property
    def success(self) -> bool:
        return self.status is PaymentStatus.SUCCEEDED

    @property
    def total_processed(self) -> int:
        # Summed in a loop: a generator costs a frame more, and every payment's answer reads this
        # twice.
        total = 0
        for step in self.step_results:
            total += step.charged_cents
        return total

    @property
    def remaining_amount(self) -> int:
        return self.total_amount - self.total_processed

    @property
    def processed(self) -> Money:
        return Money(self.total_processed, self.currency)

    @property
    def still_charged_steps(self) -> tuple[Result, ...]:
        """Steps that hold money although the payment failed (a compensation that failed)."""
        if self.status is not PaymentStatus.FAILED:
            return ()
        return tuple(step for step in self.step_results if step.charged_cents)
