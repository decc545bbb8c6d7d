"""Shared identifier aliases and the checks that every identifier passes."""

from __future__ import annotations

import re
from typing import Any, NewType

from engine.errors import InvalidFieldError, InvalidIdentifierError

MerchantId = NewType("MerchantId", str)
PaymentId = NewType("PaymentId", str)
RequestId = NewType("RequestId", str)
ProcessorId = NewType("ProcessorId", str)
ContractId = NewType("ContractId", str)

#: Identifiers are printable ASCII without spaces: safe in logs, URLs and metric labels.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]*")
MAX_IDENTIFIER_LENGTH = 255


#: Identifiers already found well-formed (at most the default length). A payment checks the same
#: few ids in every event it emits; remembering them keeps the checks off the hot path's profile.
_KNOWN_IDENTIFIERS: set[str] = set()
_KNOWN_LIMIT = 65_536


def check_identifier(field: str, value: object, *, max_length: int = MAX_IDENTIFIER_LENGTH) -> str:
    """Return ``value`` when it is a well-formed identifier, else raise naming ``field``."""
    if type(value) is str and max_length >= MAX_IDENTIFIER_LENGTH:
        if value in _KNOWN_IDENTIFIERS:
            return value
        # An ASCII Python identifier that starts with a letter holds only letters, digits and _,
        # which the pattern takes: a payment's new ids (``pay_`` and 24 hex digits, seen once)
        # are checked so without the regular expression or the set (2,400 instructions less).
        # Anything else goes on to the pattern.
        if value.isascii() and value.isidentifier() and value[0] != "_" and len(value) <= max_length:
            return value
    if not isinstance(value, str):
        raise InvalidIdentifierError(field, value, "must be a string")
    if not value:
        raise InvalidIdentifierError(field, value, "must not be empty")
    if len(value) > max_length:
        raise InvalidIdentifierError(field, value, f"must be at most {max_length} characters")
    if not _IDENTIFIER.fullmatch(value):
        raise InvalidIdentifierError(
            field, value, "may hold only letters, digits and _ . : / - and start with a letter or digit"
        )
    if type(value) is str and len(value) <= MAX_IDENTIFIER_LENGTH:
        if len(_KNOWN_IDENTIFIERS) >= _KNOWN_LIMIT:
            _KNOWN_IDENTIFIERS.clear()
        _KNOWN_IDENTIFIERS.add(value)
    return value


def check_text(field: str, value: object, *, max_length: int, allow_empty: bool = False) -> str:
    """Return ``value`` when it is a string of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise InvalidIdentifierError(field, value, "must be a string")
    if not value and not allow_empty:
        raise InvalidIdentifierError(field, value, "must not be empty")
    if len(value) > max_length:
        raise InvalidIdentifierError(field, value, f"must be at most {max_length} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidIdentifierError(
                field, value, "must be valid Unicode text (no lone surrogates)"
            ) from None
    return value


#: Counts (indexes, attempts, milliseconds) fit an unsigned 32-bit integer on every wire format.
MAX_COUNT = 2**32 - 1


def check_count(field: str, value: object, *, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """Return ``value`` when it is an integer (not a bool) within the bounds."""
    if type(value) is int and minimum <= value <= maximum:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFieldError(field, value, "must be an integer")
    if value < minimum:
        raise InvalidFieldError(field, value, f"must be at least {minimum}")
    if value > maximum:
        raise InvalidFieldError(field, value, f"must be at most {maximum}")
    return value


def check_sequence(field: str, value: object) -> tuple[Any, ...]:
    """Return ``value`` as a tuple when it is a list or tuple (a lone string is refused)."""
    if not isinstance(value, list | tuple):
        raise InvalidFieldError(field, value, "must be a list")
    return tuple(value)
