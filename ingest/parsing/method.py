"""The payment method, normalized from the many ways merchants name it.

Rules (issues on field ``method``; none of them blocks, the merchant's routing decides):

- Names are matched case- and separator-insensitively (lower-cased, without ``_``, ``-``, space
  and ``.``): ``ApplePay``, ``APPLE PAY``, ``apple-pay`` and ``applepay`` are all ``apple_pay``.
- Card brands and kinds mean ``card`` (``visa``, ``mastercard``, ``amex``, ``cc``, ``credit_card``,
  ``debit_card``...); ``gpay`` is ``google_pay``; ``pay pal`` is ``paypal``; ``bank``, ``sepa``,
  ``ach`` and ``wire`` are ``bank_transfer``.
- The exact canonical spelling (``card``) passes silently; any other accepted spelling adds
  warning ``normalized``.
- Missing, null or blank: warning ``missing``, no method. Anything else, including a value that
  is not a string: warning ``unknown_method``, no method.

Shortcut (:mod:`ingest.parsing.shortcuts`): a missing method and short strings (``"card"``,
``"ApplePay"``) are answered with the reading the general path gave them, from a bounded cache:
readings are immutable and most requests repeat the same few spellings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from engine.methods import PaymentMethod
from engine.validation import ValidationIssue
from ingest.parsing import shortcuts
from ingest.parsing.fields import FieldName, normalize_name
from ingest.parsing.issues import quote, warning
from ingest.parsing.values import JsonValue, as_text

FIELD = FieldName.METHOD
#: Readings of strings up to this long are cached (see the shortcut above).
_CACHED_LENGTH = 32

_ALIASES: dict[PaymentMethod, tuple[str, ...]] = {
    PaymentMethod.CARD: (
        "card",
        "cards",
        "creditcard",
        "debitcard",
        "credit",
        "debit",
        "cc",
        "visa",
        "mastercard",
        "amex",
        "americanexpress",
        "discover",
        "jcb",
        "diners",
        "dinersclub",
        "maestro",
        "unionpay",
    ),
    PaymentMethod.APPLE_PAY: ("applepay", "apple"),
    PaymentMethod.GOOGLE_PAY: ("googlepay", "gpay", "google", "androidpay"),
    PaymentMethod.PAYPAL: ("paypal",),
    PaymentMethod.BANK_TRANSFER: (
        "banktransfer",
        "bank",
        "sepa",
        "sepatransfer",
        "sepacredittransfer",
        "ach",
        "achtransfer",
        "wire",
        "wiretransfer",
        "bankwire",
    ),
}

_BY_NAME: Mapping[str, PaymentMethod] = MappingProxyType(
    {alias: method for method, aliases in _ALIASES.items() for alias in aliases}
)


@dataclass(frozen=True, slots=True)
class MethodReading:
    method: PaymentMethod | None
    issues: tuple[ValidationIssue, ...] = ()


def read_method(value: JsonValue) -> MethodReading:
    """The ``method`` field's value (``None`` when absent or null) as a payment method."""
    if shortcuts.ENABLED and (value is None or (type(value) is str and len(value) <= _CACHED_LENGTH)):
        return _cached_reading(value)
    return _read_method(value)


@lru_cache(maxsize=256)
def _cached_reading(value: str | None) -> MethodReading:
    return _read_method(value)


def _read_method(value: JsonValue) -> MethodReading:
    """The general path of :func:`read_method`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        message = "no payment method given; the merchant's routing decides"
        return MethodReading(None, (warning(FIELD, "missing", message, None if value is None else value),))
    raw = as_text(value)
    method = _BY_NAME.get(normalize_name(value)) if isinstance(value, str) else None
    if method is None:
        message = f"{quote(raw)} is not a payment method payorch knows; the merchant's routing decides"
        return MethodReading(None, (warning(FIELD, "unknown_method", message, raw),))
    if value == method.value:
        return MethodReading(method)
    message = f"read {quote(raw)} as {method.value}"
    return MethodReading(method, (warning(FIELD, "normalized", message, raw),))
