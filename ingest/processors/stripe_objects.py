"""Stripe's answers read into small frozen views, checked field by field.

The SDK turns any JSON it receives into a ``StripeObject`` without checking it; these readers
are where an answer that lacks a field, or holds one with the wrong type, becomes a
:class:`MalformedProcessorResponseError` instead of an ``AttributeError`` deep in the adapter.
Values that pass are safe to put in the engine's responses (ids of at most 255 characters,
amounts that are non-negative integers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stripe import StripeObject

from engine.errors import UnknownCurrencyError
from engine.money import Currency
from ingest.processors.errors import MalformedProcessorResponseError

_MAX_ID = 255
_MAX_DECLINE_CODE = 100
_MAX_AMOUNT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ChargeView:
    """The parts of a Charge that say whether it was refunded."""

    id: str
    amount_refunded: int
    refunded: bool


@dataclass(frozen=True, slots=True)
class IntentView:
    """The parts of a PaymentIntent the adapter decides on.

    Amounts are Stripe's, in ``currency`` (see :mod:`ingest.processors.stripe_amounts`).
    ``charge`` is present only when ``latest_charge`` was expanded; ``decline_code`` comes from
    ``last_payment_error`` when the intent failed; ``metadata`` holds the string values only.
    """

    id: str
    status: str
    amount: int
    amount_received: int
    amount_capturable: int
    currency: Currency
    charge: ChargeView | None
    decline_code: str | None
    metadata: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RefundView:
    id: str
    amount: int
    status: str


@dataclass(frozen=True, slots=True)
class IntentPage:
    """One page of a list of PaymentIntents (newest first)."""

    intents: tuple[IntentView, ...]
    has_more: bool


def read_intent(answer: object) -> IntentView:
    """A PaymentIntent, from what the SDK returned for a create, retrieve or cancel."""
    return _intent(_fields(answer, "payment_intent"))


def read_intents(answer: object) -> tuple[IntentView, ...]:
    """The PaymentIntents of a search result."""
    fields = _fields(answer, "search_result")
    data = fields.get("data")
    if not isinstance(data, list):
        raise MalformedProcessorResponseError("search_result.data", "must be a list")
    return tuple(_intent(_fields(item, "payment_intent")) for item in data)


def read_intent_page(answer: object) -> IntentPage:
    """A page of ``GET /v1/payment_intents``."""
    fields = _fields(answer, "list")
    data = fields.get("data")
    has_more = fields.get("has_more")
    if not isinstance(data, list):
        raise MalformedProcessorResponseError("list.data", "must be a list")
    if not isinstance(has_more, bool):
        raise MalformedProcessorResponseError("list.has_more", "must be a boolean")
    return IntentPage(tuple(_intent(_fields(item, "payment_intent")) for item in data), has_more)


def read_refund(answer: object) -> RefundView:
    fields = _fields(answer, "refund")
    return RefundView(
        id=_text(fields, "refund", "id", _MAX_ID),
        amount=_amount(fields, "refund", "amount"),
        status=_text(fields, "refund", "status", _MAX_ID),
    )


def _intent(fields: Mapping[str, Any]) -> IntentView:
    where = "payment_intent"
    latest = fields.get("latest_charge")
    charge = _charge(_fields(latest, "charge")) if isinstance(latest, dict) else None
    if latest is not None and not isinstance(latest, str | dict):
        raise MalformedProcessorResponseError(f"{where}.latest_charge", "must be an id or a charge")
    return IntentView(
        id=_text(fields, where, "id", _MAX_ID),
        status=_text(fields, where, "status", _MAX_ID),
        amount=_amount(fields, where, "amount"),
        amount_received=_amount(fields, where, "amount_received"),
        amount_capturable=_amount(fields, where, "amount_capturable"),
        currency=_currency(fields, where),
        charge=charge,
        decline_code=_decline_code(fields.get("last_payment_error")),
        metadata=_metadata(fields.get("metadata")),
    )


def _currency(fields: Mapping[str, Any], where: str) -> Currency:
    value = fields.get("currency")
    if not isinstance(value, str) or len(value) != 3:
        raise MalformedProcessorResponseError(f"{where}.currency", "must be a three-letter currency code")
    try:
        return Currency(value.upper())
    except UnknownCurrencyError:
        raise MalformedProcessorResponseError(
            f"{where}.currency", "is not an ISO 4217 currency with minor units"
        ) from None


def _metadata(metadata: object) -> Mapping[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise MalformedProcessorResponseError("payment_intent.metadata", "must be an object")
    return {name: value for name, value in metadata.items() if isinstance(value, str)}


def _charge(fields: Mapping[str, Any]) -> ChargeView:
    refunded = fields.get("refunded")
    if not isinstance(refunded, bool):
        raise MalformedProcessorResponseError("charge.refunded", "must be a boolean")
    return ChargeView(
        id=_text(fields, "charge", "id", _MAX_ID),
        amount_refunded=_amount(fields, "charge", "amount_refunded"),
        refunded=refunded,
    )


def _decline_code(error: object) -> str | None:
    if not isinstance(error, dict):
        return None
    code = error.get("decline_code") or error.get("code")
    if isinstance(code, str) and 0 < len(code) <= _MAX_DECLINE_CODE:
        return code
    return None


def _fields(answer: object, expected: str) -> Mapping[str, Any]:
    if isinstance(answer, StripeObject):
        answer = answer.to_dict()
    if not isinstance(answer, dict):
        raise MalformedProcessorResponseError(expected, f"expected an object, got {type(answer).__name__}")
    kind = answer.get("object")
    if kind != expected:
        raise MalformedProcessorResponseError(expected, f"expected object {expected!r}, got {kind!r}")
    return answer


def _text(fields: Mapping[str, Any], where: str, name: str, max_length: int) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise MalformedProcessorResponseError(
            f"{where}.{name}", f"must be a string of 1 to {max_length} characters"
        )
    return value


def _amount(fields: Mapping[str, Any], where: str, name: str) -> int:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_AMOUNT:
        raise MalformedProcessorResponseError(f"{where}.{name}", "must be a non-negative integer")
    return value
