"""Payment methods and the merchant's partial-payment policy."""

from __future__ import annotations

from enum import StrEnum

from engine.errors import InvalidFieldError, UnknownPaymentMethodError


class PaymentMethod(StrEnum):
    """The normalized payment methods payorch routes."""

    CARD = "card"
    APPLE_PAY = "apple_pay"
    GOOGLE_PAY = "google_pay"
    PAYPAL = "paypal"
    BANK_TRANSFER = "bank_transfer"

    @classmethod
    def parse(cls, value: object, field: str = "method") -> PaymentMethod:
        """The method named exactly ``value`` (already normalized; the API's parser is lenient)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in cls._value2member_map_:
            return cls(value)
        raise UnknownPaymentMethodError(field, value, f"must be one of {', '.join(m.value for m in cls)}")


class PartialPolicy(StrEnum):
    """What happens to the successful legs of a split payment when a later leg fails."""

    ALL_OR_NOTHING = "all_or_nothing"
    ALLOW_PARTIAL = "allow_partial"

    @classmethod
    def parse(cls, value: object, field: str = "partial_policy") -> PartialPolicy:
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in cls._value2member_map_:
            return cls(value)
        raise InvalidFieldError(field, value, f"must be one of {', '.join(p.value for p in cls)}")
