"""The two identifiers a body may carry: the merchant id and the idempotency key.

Merchant id rules (field ``merchant_id``); the authenticated merchant is authoritative:

- Missing, null or blank: warning ``missing``.
- Exactly the authenticated merchant's id: fine. The same once whitespace is removed (or a JSON
  number whose text is the id): warning ``normalized``. Case counts: ``ACME`` is not ``acme``.
- Any other string or number names another merchant: error ``merchant_mismatch``, and the API
  answers 403. A boolean, array or object names no merchant: error ``invalid_type``.

Idempotency key rules (field ``idempotency_key``); the ``Idempotency-Key`` header wins:

- A key is a non-blank string of at most 255 characters without NUL or lone surrogates; it is
  opaque, so it is never trimmed or masked. Otherwise: error ``invalid_idempotency_key`` (for
  the body's key, and for a header the API let through).
- Only in the body: used. In both and equal: fine. In both and different: error
  ``conflicting_idempotency_key`` (the header's key is the reading).

Shortcut (:mod:`ingest.parsing.shortcuts`): the two merchant readings every request of a merchant
repeats, no merchant id (warning ``missing``) and exactly the authenticated id, are read once and
then taken from a bounded cache keyed on the merchant id.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from engine.config import MerchantConfig
from engine.context import MAX_IDEMPOTENCY_KEY_LENGTH
from engine.validation import ValidationIssue
from ingest.parsing import shortcuts
from ingest.parsing.fields import FieldName
from ingest.parsing.issues import error, has_unsafe_characters, quote, warning
from ingest.parsing.values import JsonValue, as_text, kind_of


@dataclass(frozen=True, slots=True)
class MerchantReading:
    mismatch: bool
    issues: tuple[ValidationIssue, ...] = ()


def _merchant_issue(value: JsonValue, expected: str) -> ValidationIssue | None:
    field = FieldName.MERCHANT_ID
    if value is None or (isinstance(value, str) and not value.strip()):
        message = f"no merchant id given; the request is for the authenticated merchant {quote(expected)}"
        return warning(field, "missing", message, None if value is None else value)
    raw = as_text(value)
    if isinstance(value, bool | list | dict):
        return error(field, "invalid_type", f"the merchant id must be a string, not {kind_of(value)}", raw)
    if value == expected:
        return None
    if "".join(raw.split()) == expected:
        return warning(field, "normalized", f"read {quote(raw)} as the merchant id {quote(expected)}", raw)
    message = f"the body names merchant {quote(raw)}, but the request is authenticated as {quote(expected)}"
    return error(field, "merchant_mismatch", message, raw)


_MERCHANT_CACHE_SIZE = 512


def read_merchant(values: tuple[JsonValue, ...], merchant: MerchantConfig) -> MerchantReading:
    """Check every merchant id the body gives (more than one when spellings conflict) against the
    authenticated merchant."""
    expected = merchant.merchant_id
    if shortcuts.ENABLED and len(values) == 1:
        (value,) = values
        if value is None or (type(value) is str and value == expected):
            return _common_reading(value, expected)
    return _read_merchant(values, expected)


@lru_cache(maxsize=_MERCHANT_CACHE_SIZE)
def _common_reading(value: str | None, expected: str) -> MerchantReading:
    # Only ever called with no id or the expected id itself: two entries per merchant.
    return _read_merchant((value,), expected)


def _read_merchant(values: tuple[JsonValue, ...], expected: str) -> MerchantReading:
    """The general path of :func:`read_merchant`, for the authenticated merchant id ``expected``."""
    issues: list[ValidationIssue] = []
    for value in values:
        issue = _merchant_issue(value, expected)
        if issue is not None and issue not in issues:
            issues.append(issue)
    mismatch = any(issue.code == "merchant_mismatch" for issue in issues)
    return MerchantReading(mismatch, tuple(issues))


def _key_problem(value: JsonValue) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {kind_of(value)}"
    if not value.strip():
        return "must not be blank"
    if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
        return f"has {len(value)} characters; at most {MAX_IDEMPOTENCY_KEY_LENGTH} are allowed"
    if has_unsafe_characters(value):
        return "holds a NUL character or an unpaired surrogate"
    return None


@dataclass(frozen=True, slots=True)
class KeyReading:
    key: str | None
    issues: tuple[ValidationIssue, ...] = ()


def read_idempotency_key(body_key: JsonValue, header_key: str | None) -> KeyReading:
    """The request's idempotency key from the header and the body's ``idempotency_key``."""
    field = FieldName.IDEMPOTENCY_KEY
    if header_key is not None:
        problem = _key_problem(header_key)
        if problem is not None:
            message = f"the Idempotency-Key header {problem}"
            return KeyReading(None, (error(field, "invalid_idempotency_key", message, header_key),))
        if body_key is None or body_key == header_key:
            return KeyReading(header_key)
        raw = as_text(body_key)
        message = (
            f"the body's idempotency key {quote(raw)} differs from the Idempotency-Key header "
            f"{quote(header_key)}"
        )
        return KeyReading(header_key, (error(field, "conflicting_idempotency_key", message, raw),))
    if body_key is None:
        return KeyReading(None)
    problem = _key_problem(body_key)
    if problem is not None:
        raw = as_text(body_key)
        return KeyReading(
            None, (error(field, "invalid_idempotency_key", f"the idempotency key {problem}", raw),)
        )
    return KeyReading(body_key if isinstance(body_key, str) else None)
