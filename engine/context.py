"""The strict request context every payment runs on, built only by the boundary parser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.errors import InvalidAmountError, InvalidFieldError
from engine.methods import PaymentMethod
from engine.money import MAX_MINOR_UNITS, Currency, Money, check_minor_units
from engine.types import MerchantId, PaymentId, RequestId, check_identifier, check_sequence, check_text
from engine.unchecked import slot_filler
from engine.validation import IssueSeverity, ValidationIssue

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


#: A context's metadata when it has none: one shared empty mapping that nothing can change.
_NO_METADATA: Mapping[str, str] = MappingProxyType({})
#: A module global: reading an Enum member off its class goes through EnumType.__getattr__.
_ERROR = IssueSeverity.ERROR


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(
        self,
        merchant_id: MerchantId,
        request_id: RequestId,
        payment_id: PaymentId,
        amount_cents: int,
        currency: Currency,
        payment_method: PaymentMethod | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, str] = _NO_METADATA,
        validation_errors: tuple[ValidationIssue, ...] = (),
    ) -> None:
        """Check every invariant, in this fixed order (the first rule broken is the error raised),
        then set the fields.

        Every context is built here, one a payment, so the checks are written for the values the
        parser gives: each first tests the common shape inline (a plain ``int`` in range, a plain
        ``str`` within its limit, a ``tuple`` of issues) and calls the general check, which
        raises, only for anything else. The dataclass's own ``__init__`` and ``__post_init__``
        made the same checks in about 37,000 instructions.
        """
        check_identifier("merchant_id", merchant_id)
        check_identifier("request_id", request_id)
        check_identifier("payment_id", payment_id)
        if type(amount_cents) is not int or not 0 < amount_cents <= MAX_MINOR_UNITS:
            check_minor_units("amount_cents", amount_cents)
            if amount_cents == 0:
                raise InvalidAmountError("amount_cents", amount_cents, "must be positive")
        if not isinstance(currency, Currency):
            raise InvalidFieldError("currency", currency, "must be a Currency")
        if payment_method is not None and not isinstance(payment_method, PaymentMethod):
            raise InvalidFieldError("payment_method", payment_method, "must be a PaymentMethod")
        if idempotency_key is not None and not (
            type(idempotency_key) is str
            and 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH
            and idempotency_key.isascii()
        ):
            check_text("idempotency_key", idempotency_key, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
        if metadata is _NO_METADATA or (type(metadata) is dict and not metadata):
            frozen = _NO_METADATA
        else:
            frozen = _frozen_metadata(metadata)
        issues = (
            validation_errors
            if type(validation_errors) is tuple
            else check_sequence("validation_errors", validation_errors)
        )
        for issue in issues:
            if type(issue) is not ValidationIssue and not isinstance(issue, ValidationIssue):
                raise InvalidFieldError("validation_errors", issue, "must hold ValidationIssues")
            if issue.severity is _ERROR if type(issue) is ValidationIssue else issue.blocks:
                raise InvalidFieldError(
                    "validation_errors", issue.code, "a request with an error issue cannot be processed"
                )
        _fill(
            self,
            merchant_id,
            request_id,
            payment_id,
            amount_cents,
            currency,
            payment_method,
            idempotency_key,
            frozen,
            issues,
        )

    @property
    def amount(self) -> Money:
        return Money(self.amount_cents, self.currency)


#: Sets a context's fields through their slots, once :meth:`CoreRequestContext.__init__` checked them.
_fill = slot_filler(CoreRequestContext)
