"""The strict request context every payment runs on, built only by the boundary parser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.errors import InvalidAmountError, InvalidFieldError
from engine.methods import PaymentMethod
from engine.money import Currency, Money, check_minor_units
from engine.types import MerchantId, PaymentId, RequestId, check_identifier, check_sequence, check_text
from engine.validation import ValidationIssue

MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
MAX_IDEMPOTENCY_KEY_LENGTH = 255


def _frozen_metadata(metadata: Mapping[str, str]) -> Mapping[str, str]:
    # A dict (what the parser gives) skips the ABC's instance check, a Python call.
    if type(metadata) is not dict and not isinstance(metadata, Mapping):
        raise InvalidFieldError("metadata", metadata, "must be a mapping of strings to strings")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidFieldError(
            "metadata", f"{len(metadata)} keys", f"must have at most {MAX_METADATA_KEYS} keys"
        )
    for key, value in metadata.items():
        check_text("metadata key", key, max_length=MAX_METADATA_KEY_LENGTH)
        check_text(f"metadata.{key}", value, max_length=MAX_METADATA_VALUE_LENGTH, allow_empty=True)
    return MappingProxyType(dict(metadata))


@dataclass(frozen=True, slots=True)
class CoreRequestContext:
    """A merchant's payment request after parsing: every field valid, every correction recorded.

    Invariants: the amount is positive; no issue in ``validation_errors`` is an error (a request
    with errors is answered 422 and never becomes a context); metadata is bounded and holds
    strings only. ``payment_method`` is ``None`` when the merchant's routing decides.
    """

    merchant_id: MerchantId
    request_id: RequestId
    payment_id: PaymentId
    amount_cents: int
    currency: Currency
    payment_method: PaymentMethod | None = None
    idempotency_key: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    validation_errors: tuple[ValidationIssue, ...] = ()

    def __post_init__(self) -> None:
        check_identifier("merchant_id", self.merchant_id)
        check_identifier("request_id", self.request_id)
        check_identifier("payment_id", self.payment_id)
        check_minor_units("amount_cents", self.amount_cents)
        if self.amount_cents == 0:
            raise InvalidAmountError("amount_cents", self.amount_cents, "must be positive")
        if not isinstance(self.currency, Currency):
            raise InvalidFieldError("currency", self.currency, "must be a Currency")
        if self.payment_method is not None and not isinstance(self.payment_method, PaymentMethod):
            raise InvalidFieldError("payment_method", self.payment_method, "must be a PaymentMethod")
        if self.idempotency_key is not None:
            check_text("idempotency_key", self.idempotency_key, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
        object.__setattr__(self, "metadata", _frozen_metadata(self.metadata))
        issues = check_sequence("validation_errors", self.validation_errors)
        for issue in issues:
            if not isinstance(issue, ValidationIssue):
                raise InvalidFieldError("validation_errors", issue, "must hold ValidationIssues")
            if issue.blocks:
                raise InvalidFieldError(
                    "validation_errors", issue.code, "a request with an error issue cannot be processed"
                )
        object.__setattr__(self, "validation_errors", issues)

    @property
    def amount(self) -> Money:
        return Money(self.amount_cents, self.currency)
