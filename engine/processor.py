"""The processor port: what the router asks of a payment processor, and what it may answer.

Contract every adapter keeps:

* **Idempotent.** ``charge`` with an idempotency key that already has a definitive outcome
  (succeeded, declined, invalid card) returns that outcome again and never charges twice.
  Transient failures (``processing_error``, ``network_failure``, ``processor_unavailable``,
  ``rate_limited``) are not definitive: a repeat with the same key is a new attempt, unless the
  answer says ``final_for_key`` (the processor stored it under the key and gives it again to any
  repeat, as Stripe does for its card errors): then the router stops repeating it with the key,
  moving on to the next processor once nothing is in doubt (an unknown outcome is settled first).
* **Settleable.** ``status`` answers, by idempotency key, whether the processor holds a charge,
  so an attempt whose outcome is unknown (a timeout) can be settled before anything else. It
  answers ``NOT_CHARGED`` only when that is known (not, say, because an index that lags behind
  writes has nothing yet), and ``UNKNOWN`` when it cannot tell.
* **Compensable.** ``void_or_refund`` undoes a charge by its idempotency key; repeating it
  refunds once; refunding a key that never charged succeeds with nothing refunded. A success
  reports what was refunded now: 0 means the key is known to hold nothing. When the adapter cannot
  tell whether the key holds money, the refund fails (outcome unknown) instead.
* **Truthful.** A success (or a ``CHARGED`` status) reports what the processor really holds for
  the key: its ``amount_cents`` and, when the processor says so, its ``currency``. The engine
  never counts a charge that differs from the request (another amount or another currency): it
  fails the step and voids that charge in full (:mod:`engine.router`, :mod:`engine.orchestrator`).
  A ``RefundRequest`` undoes up to its amount; ``MAX_MINOR_UNITS`` asks for all the key holds.
* Adapters report ``latency_ms``. They should never raise, hang or answer with anything but the
  types below; :mod:`engine.guard` turns any of that into a normalized response regardless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from engine.error_codes import ErrorCode
from engine.errors import InvalidFieldError, ResultInvariantError
from engine.failure_details import FailureDetails, check_failure_details
from engine.methods import PaymentMethod
from engine.money import Currency, check_minor_units
from engine.types import PaymentId, ProcessorId, check_count, check_identifier, check_text


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """Charge ``amount_cents`` for one step. ``metadata`` holds card numbers only masked."""

    payment_id: PaymentId
    step_index: int
    idempotency_key: str
    amount_cents: int
    currency: Currency
    method: PaymentMethod
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        check_identifier("charge.payment_id", self.payment_id)
        check_count("charge.step_index", self.step_index)
        check_text("charge.idempotency_key", self.idempotency_key, max_length=255)
        check_minor_units("charge.amount_cents", self.amount_cents)
        if self.amount_cents == 0:
            raise InvalidFieldError("charge.amount_cents", 0, "must be positive")


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Void or refund what the charge with ``idempotency_key`` took (up to ``amount_cents``)."""

    payment_id: PaymentId
    step_index: int
    idempotency_key: str
    amount_cents: int
    currency: Currency

    def __post_init__(self) -> None:
        check_identifier("refund.payment_id", self.payment_id)
        check_count("refund.step_index", self.step_index)
        check_text("refund.idempotency_key", self.idempotency_key, max_length=255)
        check_minor_units("refund.amount_cents", self.amount_cents)


@dataclass(frozen=True, slots=True)
class ProcessorResponse:
    """A processor's answer to ``charge`` or ``void_or_refund``.

    Invariant: ``success`` exactly when ``error_code`` is ``None``. ``amount_cents`` is what was
    charged (or refunded), in ``currency`` when the processor names it (``None``: the request's);
    ``reference`` is the processor's own id for it; ``decline_code`` is the issuer's reason when
    there is one (``insufficient_funds``, ``lost_card``); ``final_for_key`` says that a repeat
    with the same idempotency key gets this same answer, so retrying here cannot change it;
    ``failure_details`` is the processor's own account of a refusal (:mod:`engine.failure_details`),
    only on a failure.
    """

    success: bool
    latency_ms: int
    amount_cents: int = 0
    error_code: ErrorCode | None = None
    reference: str | None = None
    decline_code: str | None = None
    currency: Currency | None = None
    final_for_key: bool = False
    failure_details: FailureDetails | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.success, bool):
            raise InvalidFieldError("response.success", self.success, "must be a bool")
        if not isinstance(self.final_for_key, bool):
            raise InvalidFieldError("response.final_for_key", self.final_for_key, "must be a bool")
        check_count("response.latency_ms", self.latency_ms)
        check_minor_units("response.amount_cents", self.amount_cents)
        if self.error_code is not None and not isinstance(self.error_code, ErrorCode):
            raise InvalidFieldError("response.error_code", self.error_code, "must be an ErrorCode")
        if self.success == (self.error_code is not None):
            raise ResultInvariantError(
                "response.error_code", self.error_code, "is set exactly when it failed"
            )
        if self.reference is not None:
            check_text("response.reference", self.reference, max_length=255)
        if self.decline_code is not None:
            check_text("response.decline_code", self.decline_code, max_length=100)
        _check_currency("response.currency", self.currency)
        check_failure_details("response.failure_details", self.failure_details)
        if self.success and self.failure_details is not None:
            raise ResultInvariantError(
                "response.failure_details", self.failure_details, "is set only on a failure"
            )

    @classmethod
    def failed(
        cls,
        error_code: ErrorCode,
        latency_ms: int,
        decline_code: str | None = None,
        *,
        final_for_key: bool = False,
        failure_details: FailureDetails | None = None,
    ) -> ProcessorResponse:
        return cls(False, latency_ms, 0, error_code, None, decline_code, None, final_for_key, failure_details)


class Settlement(StrEnum):
    """What a processor holds for an idempotency key."""

    CHARGED = "charged"
    NOT_CHARGED = "not_charged"
    REFUNDED = "refunded"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """The answer to ``status``: ``UNKNOWN`` when the processor could not be asked.

    ``amount_cents`` is what is held (``CHARGED``) or was refunded (``REFUNDED``), in ``currency``
    when the processor names it (``None``: the request's).
    """

    settlement: Settlement
    latency_ms: int
    amount_cents: int = 0
    reference: str | None = None
    currency: Currency | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.settlement, Settlement):
            raise InvalidFieldError("status.settlement", self.settlement, "must be a Settlement")
        check_count("status.latency_ms", self.latency_ms)
        check_minor_units("status.amount_cents", self.amount_cents)
        _check_currency("status.currency", self.currency)


def _check_currency(field: str, currency: object) -> None:
    if currency is not None and not isinstance(currency, Currency):
        raise InvalidFieldError(field, currency, "must be a Currency or None")


class Processor(Protocol):
    """A payment processor adapter (simulated, Stripe, ...)."""

    @property
    def processor_id(self) -> ProcessorId: ...

    async def charge(self, request: ChargeRequest) -> ProcessorResponse: ...

    async def void_or_refund(self, request: RefundRequest) -> ProcessorResponse: ...

    async def status(self, idempotency_key: str) -> StatusAnswer: ...
