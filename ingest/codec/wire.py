"""Scalar conversions shared by the protobuf codecs: timestamps, currencies, presence, encoding.

Protobuf's own errors are translated here, at the boundary, into domain errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from engine.errors import InvalidFieldError, InvalidTimestampError, UnknownCurrencyError
from engine.money import Currency

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The range google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
_NANOS_PER_SECOND = 1_000_000_000


def timestamp_from_proto(field: str, value: Timestamp) -> datetime:
    """The instant as an aware UTC datetime; nanoseconds below a microsecond are dropped."""
    if not MIN_SECONDS <= value.seconds <= MAX_SECONDS:
        raise InvalidTimestampError(field, value.seconds, "is outside the years 1 to 9999 in UTC")
    if not 0 <= value.nanos < _NANOS_PER_SECOND:
        raise InvalidTimestampError(f"{field}.nanos", value.nanos, "must be within 0 and 999999999")
    return EPOCH + timedelta(seconds=value.seconds, microseconds=value.nanos // 1_000)


def currency_from_proto(field: str, code: str) -> Currency:
    """The active ISO 4217 currency named exactly ``code`` (upper case, no spaces)."""
    try:
        return Currency(code)
    except UnknownCurrencyError as exc:
        raise UnknownCurrencyError(field, code, exc.reason) from exc


def require(message: Message, name: str, field: str) -> None:
    """Raise naming ``field`` when the sub-message ``name`` of ``message`` is absent."""
    if not message.HasField(name):
        raise InvalidFieldError(field, None, "is required")


@contextmanager
def encoding(what: str) -> Iterator[None]:
    """Translate protobuf's refusal of a value (out of the wire type's range, not UTF-8)."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise InvalidFieldError(what, None, f"cannot be encoded: {exc}") from exc
