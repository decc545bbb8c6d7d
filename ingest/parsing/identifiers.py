"""The two identifiers a body may carry: the merchant id and the idempotency key.

Merchant id rules (field ``merchant_id``); the authenticated merchant is authoritative:

- Missing, null or blank: warning ``missing``.
- Exactly the authenticated merchant's id: fine. The same once whitespace is removed (or a JSON
  number whose text is the id): warning ``normalized``. Case counts: ``ACME`` is not ``acme``.
- Any other string or number names another merchant: error ``merchant_mismatch``, and the API
  answers 403. A boolean, array or object names no merchant: error ``invalid_type``.

Idempotency key rules (field ``idempotency_key``); the ``Idempotency-Key`` header wins:

- A key is a string of 1 to 255 printable ASCII characters (space to ``~``), not all spaces:
  :func:`idempotency_key_problem` is this rule, and the API checks the ``Idempotency-Key`` header
  with it too (400 there), so the body's key and the header's are held to one rule. A key is
  opaque, so it is never trimmed (a card number in it is masked by the API, which keeps it).
  Otherwise: error ``invalid_idempotency_key``, whose message says what is wrong and what a key
  may be (for the body's key, and for a header the API let through).
- Only in the body: used. In both and equal: fine. In both and different: error
  ``conflicting_idempotency_key`` (the header's key is the reading).

Shortcut (:mod:`ingest.parsing.shortcuts`): the two merchant readings every request of a merchant
repeats, no merchant id (warning ``missing``) and exactly the authenticated id, are read once and
then taken from a bounded cache keyed on the merchant id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from engine.config import MerchantConfig
from engine.context import MAX_IDEMPOTENCY_KEY_LENGTH
from engine.unchecked import unchecked
from engine.validation import ValidationIssue
from ingest.parsing import shortcuts
from ingest.parsing.fields import FieldName
from ingest.parsing.issues import error, quote, warning
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


#: What an idempotency key may be, in the words every message about one uses.
KEY_RULE = f"1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters (space to ~), not all spaces"
#: :data:`KEY_RULE` as a JSON Schema ``pattern`` (besides ``minLength`` and ``maxLength``), for the
#: header and the body's field alike: printable ASCII, one character at least not a space.
KEY_PATTERN = "^[ -~]*[!-~][ -~]*$"
_NOT_PRINTABLE_ASCII = re.compile("[^ -~]")


def _character(char: str) -> str:
    code = f"U+{ord(char):04X}"
    return f"{quote(char)} ({code})" if char.isprintable() else code


def idempotency_key_problem(key: JsonValue) -> str | None:
    """What is wrong with ``key`` as an idempotency key (``"is empty"``, ``"holds the character
    U+000A"``), or ``None`` when it is one: the rule :data:`KEY_RULE` states. Printable ASCII,
    because the key travels in an HTTP header, is logged and is stored: no control character, no
    text a terminal or a log reader could take for something else."""
    if not isinstance(key, str):
        return f"is {kind_of(key)}, not a string"
    if not key:
        return "is empty"
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        return f"has {len(key)} characters"
    # Printable ASCII is exactly space to ``~``: two string methods say so without the regex,
    # which only runs to name the character of a key that breaks the rule.
    if not (key.isascii() and key.isprintable()):
        unprintable = _NOT_PRINTABLE_ASCII.search(key)
        if unprintable is not None:
            return f"holds the character {_character(unprintable.group())}"
    if not key.strip(" "):
        return "is only spaces"
    return None


@dataclass(frozen=True, slots=True)
class KeyReading:
    key: str | None
    issues: tuple[ValidationIssue, ...] = ()


#: The common readings, built without a frozen dataclass's ``__init__`` (it has no check to skip):
#: a key alone, and no key at all, which is one shared reading.
_key_reading = unchecked(KeyReading)
_NO_KEY = KeyReading(None)


#: The field of every idempotency key issue, read once (an Enum member read off its class costs
#: about 1,100 instructions, a module global about 50).
_KEY_FIELD = FieldName.IDEMPOTENCY_KEY


def read_idempotency_key(body_key: JsonValue, header_key: str | None) -> KeyReading:
    """The request's idempotency key from the header and the body's ``idempotency_key``."""
    field = _KEY_FIELD
    if header_key is not None:
        problem = idempotency_key_problem(header_key)
        if problem is not None:
            message = f"the Idempotency-Key header {problem}; a key is {KEY_RULE}"
            return KeyReading(None, (error(field, "invalid_idempotency_key", message, header_key),))
        if body_key is None or body_key == header_key:
            return _key_reading(key=header_key)
        raw = as_text(body_key)
        message = (
            f"the body's idempotency key {quote(raw)} differs from the Idempotency-Key header "
            f"{quote(header_key)}"
        )
        return KeyReading(header_key, (error(field, "conflicting_idempotency_key", message, raw),))
    if body_key is None:
        return _NO_KEY
    problem = idempotency_key_problem(body_key)
    if problem is not None:
        message = f"the idempotency key {problem}; a key is {KEY_RULE}"
        return KeyReading(None, (error(field, "invalid_idempotency_key", message, as_text(body_key)),))
    return KeyReading(body_key if isinstance(body_key, str) else None)
