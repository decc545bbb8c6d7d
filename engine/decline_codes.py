"""Why a card was refused: the decline codes a failed step may report beside its error code.

A step that failed ``declined`` or ``invalid_card`` may say why, in Stripe's words (its decline
codes, docs.stripe.com/declines/codes): ``insufficient_funds`` (ask for another card),
``lost_card`` and ``stolen_card`` (never retry the card), ``expired_card``, ``incorrect_cvc``, ...
Merchants act on the reason, so it is a closed set: what a processor reports passes only when it
is one of :class:`DeclineCode`'s values, and any other reason becomes ``generic_decline`` (Stripe's
own code for a refusal whose reason is not given), never free text from outside. A step that
failed for another error, or whose processor gave no reason, reports none.
"""

from __future__ import annotations

from enum import StrEnum

from engine.error_codes import ErrorCode
from engine.errors import InvalidFieldError, ResultInvariantError


class DeclineCode(StrEnum):
    """Stripe's decline codes for card payments."""

    APPROVE_WITH_ID = "approve_with_id"
    AUTHENTICATION_REQUIRED = "authentication_required"
    CALL_ISSUER = "call_issuer"
    CARD_NOT_SUPPORTED = "card_not_supported"
    CARD_VELOCITY_EXCEEDED = "card_velocity_exceeded"
    CURRENCY_NOT_SUPPORTED = "currency_not_supported"
    DO_NOT_HONOR = "do_not_honor"
    DO_NOT_TRY_AGAIN = "do_not_try_again"
    DUPLICATE_TRANSACTION = "duplicate_transaction"
    EXPIRED_CARD = "expired_card"
    FRAUDULENT = "fraudulent"
    GENERIC_DECLINE = "generic_decline"
    INCORRECT_CVC = "incorrect_cvc"
    INCORRECT_NUMBER = "incorrect_number"
    INCORRECT_PIN = "incorrect_pin"
    INCORRECT_ZIP = "incorrect_zip"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_ACCOUNT = "invalid_account"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_CVC = "invalid_cvc"
    INVALID_EXPIRY_MONTH = "invalid_expiry_month"
    INVALID_EXPIRY_YEAR = "invalid_expiry_year"
    INVALID_NUMBER = "invalid_number"
    INVALID_PIN = "invalid_pin"
    ISSUER_NOT_AVAILABLE = "issuer_not_available"
    LOST_CARD = "lost_card"
    MERCHANT_BLACKLIST = "merchant_blacklist"
    NEW_ACCOUNT_INFORMATION_AVAILABLE = "new_account_information_available"
    NO_ACTION_TAKEN = "no_action_taken"
    NOT_PERMITTED = "not_permitted"
    OFFLINE_PIN_REQUIRED = "offline_pin_required"
    ONLINE_OR_OFFLINE_PIN_REQUIRED = "online_or_offline_pin_required"
    PICKUP_CARD = "pickup_card"
    PIN_TRY_EXCEEDED = "pin_try_exceeded"
    PROCESSING_ERROR = "processing_error"
    REENTER_TRANSACTION = "reenter_transaction"
    RESTRICTED_CARD = "restricted_card"
    REVOCATION_OF_ALL_AUTHORIZATIONS = "revocation_of_all_authorizations"
    REVOCATION_OF_AUTHORIZATION = "revocation_of_authorization"
    SECURITY_VIOLATION = "security_violation"
    SERVICE_NOT_ALLOWED = "service_not_allowed"
    STOLEN_CARD = "stolen_card"
    STOP_PAYMENT_ORDER = "stop_payment_order"
    TESTMODE_DECLINE = "testmode_decline"
    TRANSACTION_NOT_ALLOWED = "transaction_not_allowed"
    TRY_AGAIN_LATER = "try_again_later"
    WITHDRAWAL_COUNT_LIMIT_EXCEEDED = "withdrawal_count_limit_exceeded"

    @classmethod
    def parse(cls, value: object, field: str = "decline_code") -> DeclineCode:
        """The decline code named exactly ``value``; anything else raises (a decoder's check)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in cls._value2member_map_:
            return cls(value)
        raise InvalidFieldError(field, value, "is not one of payorch's decline codes (Stripe's)")


#: The error codes whose failures are about the card and may carry a decline code.
WITH_DECLINE_CODE = frozenset({ErrorCode.DECLINED, ErrorCode.INVALID_CARD})


def decline_code_for(error_code: ErrorCode | None, reported: str | None) -> DeclineCode | None:
    """The decline code a failure with ``error_code`` reports, from the processor's ``reported``
    reason: ``None`` for other errors or no reason, ``generic_decline`` for a reason not listed."""
    if error_code not in WITH_DECLINE_CODE or not reported:
        return None
    known = DeclineCode._value2member_map_.get(reported)
    return known if isinstance(known, DeclineCode) else DeclineCode.GENERIC_DECLINE


def check_decline_code(field: str, decline_code: object, error_code: ErrorCode | None) -> None:
    """Refuse a decline code that is not a :class:`DeclineCode`, or one on an error that has none."""
    if decline_code is None:
        return
    if not isinstance(decline_code, DeclineCode):
        raise InvalidFieldError(field, decline_code, "must be a DeclineCode or None")
    if error_code not in WITH_DECLINE_CODE:
        shown = None if error_code is None else error_code.value
        raise ResultInvariantError(
            field, decline_code.value, f"is set only on declined or invalid_card, not {shown}"
        )
