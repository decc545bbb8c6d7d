"""Normalized processor error codes and how each one may be retried.

Every failure a processor can produce is one :class:`ErrorCode`; each code carries its
:class:`RetryClass`, the one place where retry behaviour is decided. An error that is not
classified as retryable stops the step.
"""

from __future__ import annotations

from enum import StrEnum

from engine.errors import UnknownErrorCodeError


class RetryClass(StrEnum):
    """How a failed attempt may be followed up."""

    #: Try the same processor again with the same idempotency key (after a backoff).
    RETRY_SAME = "retry_same"
    #: Move on to the next processor of the step's fallback chain.
    CASCADE = "cascade"
    #: Stop: trying again anywhere cannot change the answer.
    NEVER = "never"


class ErrorCode(StrEnum):
    """The error codes of ``payments.result.v1`` (the spec's five first)."""

    TIMEOUT = "timeout"
    DECLINED = "declined"
    INVALID_CARD = "invalid_card"
    NETWORK_FAILURE = "network_failure"
    UNKNOWN = "unknown"
    PROCESSING_ERROR = "processing_error"
    PROCESSOR_UNAVAILABLE = "processor_unavailable"
    RATE_LIMITED = "rate_limited"
    MALFORMED_RESPONSE = "malformed_response"
    POLICY_REJECTED = "policy_rejected"
    COVERAGE_SHORTFALL = "coverage_shortfall"
    PROCESSOR_ERROR = "processor_error"

    @classmethod
    def parse(cls, value: object, field: str = "error_code") -> ErrorCode:
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in cls._value2member_map_:
            return cls(value)
        raise UnknownErrorCodeError(field, value, f"must be one of {', '.join(c.value for c in cls)}")

    @property
    def retry_class(self) -> RetryClass:
        return _RETRY_CLASS[self]

    @property
    def retryable(self) -> bool:
        """True when some follow-up attempt (same processor or the next) may succeed."""
        return self.retry_class is not RetryClass.NEVER

    @property
    def outcome_unknown(self) -> bool:
        """True when the processor may have charged although the attempt did not say so.

        Such an attempt must be settled (status query or a retry with the same idempotency
        key) before the step moves to another processor.
        """
        return self in _OUTCOME_UNKNOWN

    @property
    def is_processor_fault(self) -> bool:
        """True when the failure says the processor is unhealthy (it counts against its circuit).

        Only what measures the processor itself counts: it did not answer (timeout), could not be
        reached, refused the traffic (unavailable, rate limited), crashed or answered garbage.
        An answer about the card or the request (declined, invalid card, a processing error on
        this card, an unclassified refusal) comes from a working processor and does not count:
        one shopper's card must not take a processor out of service for every merchant.
        """
        return self in _PROCESSOR_FAULTS

    @property
    def description(self) -> str:
        return _DESCRIPTION[self]


_RETRY_CLASS: dict[ErrorCode, RetryClass] = {
    ErrorCode.TIMEOUT: RetryClass.RETRY_SAME,
    ErrorCode.DECLINED: RetryClass.NEVER,
    ErrorCode.INVALID_CARD: RetryClass.NEVER,
    ErrorCode.NETWORK_FAILURE: RetryClass.CASCADE,
    ErrorCode.UNKNOWN: RetryClass.NEVER,
    ErrorCode.PROCESSING_ERROR: RetryClass.RETRY_SAME,
    ErrorCode.PROCESSOR_UNAVAILABLE: RetryClass.CASCADE,
    # A rate-limit refusal (Stripe's 429) charged nothing and asks the caller to back off and try
    # again: retried at the same processor after the backoff, then the next processor.
    ErrorCode.RATE_LIMITED: RetryClass.RETRY_SAME,
    ErrorCode.MALFORMED_RESPONSE: RetryClass.RETRY_SAME,
    ErrorCode.POLICY_REJECTED: RetryClass.NEVER,
    ErrorCode.COVERAGE_SHORTFALL: RetryClass.NEVER,
    ErrorCode.PROCESSOR_ERROR: RetryClass.RETRY_SAME,
}

_OUTCOME_UNKNOWN = frozenset({ErrorCode.TIMEOUT, ErrorCode.MALFORMED_RESPONSE, ErrorCode.PROCESSOR_ERROR})

# ``processing_error`` is not here: it is the card-level error of Stripe's card error family (its
# test card 4000000000000119), an answer the processor gave for this card and key. It stays
# retryable (RETRY_SAME), but a burst of such cards says nothing about the processor's health.
_PROCESSOR_FAULTS = frozenset(
    {
        ErrorCode.TIMEOUT,
        ErrorCode.NETWORK_FAILURE,
        ErrorCode.PROCESSOR_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.MALFORMED_RESPONSE,
        ErrorCode.PROCESSOR_ERROR,
    }
)

_DESCRIPTION: dict[ErrorCode, str] = {
    ErrorCode.TIMEOUT: "the processor did not answer in time; the outcome is unknown until settled",
    ErrorCode.DECLINED: "the issuer declined the payment; retrying cannot change the answer",
    ErrorCode.INVALID_CARD: "the card details are wrong (number, expiry or CVC)",
    ErrorCode.NETWORK_FAILURE: "the processor could not be reached; nothing was sent",
    ErrorCode.UNKNOWN: "an unclassified failure; the step stops",
    ErrorCode.PROCESSING_ERROR: "the processor could not process this card this time; it may be retried",
    ErrorCode.PROCESSOR_UNAVAILABLE: "the processor is unavailable (credentials refused or circuit open)",
    ErrorCode.RATE_LIMITED: "the processor refused the attempt for rate limiting; nothing was charged",
    ErrorCode.MALFORMED_RESPONSE: "the processor answered with something unreadable; outcome unknown",
    ErrorCode.POLICY_REJECTED: "a merchant policy (amount, currency or method) refused the payment",
    ErrorCode.COVERAGE_SHORTFALL: "the merchant's routing cannot cover the whole amount",
    ErrorCode.PROCESSOR_ERROR: "the processor failed (raised, hung or a 5xx); outcome unknown until settled",
}
