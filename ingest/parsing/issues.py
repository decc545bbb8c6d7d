"""Building :class:`~engine.validation.ValidationIssue` values from hostile input, safely.

Rules:

- Every piece of merchant text that goes into an issue (``field``, ``raw``, the quotes inside
  ``message``) is first made valid text: NUL and lone surrogates become U+FFFD, because
  ``check_text`` refuses surrogates and NUL has no business in logs.
- It is then masked with :func:`mask_card_numbers` and cut: ``raw`` to 500 characters
  (``MAX_RAW_LENGTH``), ``field`` to 200, a quote in a message to 60. The text is masked again
  after the cut, since cutting a long digit run can leave a shorter one that passes Luhn.
- Only a bounded prefix of a long input is masked: a mask is never longer than what it replaces,
  so four times the limit is more than enough to decide the characters that survive the cut.

So the constructors here never raise: parser code builds issues only through them.

Shortcuts (:mod:`ingest.parsing.shortcuts`):

- Text already within its limit that holds no NUL, no lone surrogate and nothing that could start
  a card number is returned as it is, which is what the cleaning would return. ASCII text is only
  searched for NUL, as it cannot hold a surrogate.
- Issues are immutable, and most requests repeat a few of them word for word (``merchant_id``
  missing, currency ``defaulted``): an issue whose texts are short is built once, then taken from
  a bounded cache keyed on all of its texts.
"""

from __future__ import annotations

import re
from functools import lru_cache

from engine.validation import MAX_RAW_LENGTH, IssueSeverity, ValidationIssue
from ingest.parsing import shortcuts
from ingest.parsing.masking import CARD_CANDIDATE, MIN_CARD_DIGITS, mask_card_numbers

MAX_FIELD_LENGTH = 200
MAX_MESSAGE_LENGTH = 1000
QUOTE_LENGTH = 60

_UNSAFE = re.compile("[\x00\ud800-\udfff]")

#: Module globals: reading an Enum member off its class goes through EnumType.__getattr__.
_WARNING = IssueSeverity.WARNING
_ERROR = IssueSeverity.ERROR

#: Issues whose field, message and raw together are at most this long are cached; the bound keeps
#: the cache small (and a hostile body's long texts out of it).
_CACHED_TEXT_LENGTH = 300
_CACHE_SIZE = 1024


def has_unsafe_characters(text: str) -> bool:
    """Whether ``text`` holds NUL or a lone surrogate."""
    if shortcuts.ENABLED and text.isascii():  # no surrogate: only NUL to look for, no regex
        return "\x00" in text
    return _UNSAFE.search(text) is not None


def is_plain(text: str) -> bool:
    """Whether ``text`` holds no NUL, no lone surrogate and nothing that could be a card number:
    text that cleaning and masking leave as it is."""
    # A candidate needs MIN_CARD_DIGITS characters. Two checks: one regex of both alternatives
    # would be slower than the two together (it defeats the regex engine's prefix search).
    if has_unsafe_characters(text):
        return False
    return len(text) < MIN_CARD_DIGITS or CARD_CANDIDATE.search(text) is None


def clean_text(text: str, limit: int) -> str:
    """``text`` as valid, masked text of at most ``limit`` characters: the general path."""
    cleaned = _UNSAFE.sub("\ufffd", text[: 4 * limit + 64])
    return mask_card_numbers(mask_card_numbers(cleaned)[:limit])


def safe_text(text: str, limit: int) -> str:
    """``text`` as valid, masked text of at most ``limit`` characters."""
    # A plain ``str`` (not a subclass such as a FieldName) within the limit with nothing to clean
    # is what clean_text would return; the type check keeps every issue text a plain ``str``.
    if shortcuts.ENABLED and type(text) is str and len(text) <= limit and is_plain(text):
        return text
    return clean_text(text, limit)


def quote(text: str) -> str:
    """``text`` in double quotes for a message, shortened with an ellipsis past 60 characters."""
    shown = safe_text(text, QUOTE_LENGTH + 1)
    if len(shown) > QUOTE_LENGTH:
        shown = shown[: QUOTE_LENGTH - 1] + "\u2026"
    return f'"{shown}"'


def field_name(text: str) -> str:
    """A merchant-supplied name as an issue's ``field``; an empty name is reported on ``body``."""
    return safe_text(text, MAX_FIELD_LENGTH) or "body"


def build_issue(
    field: str, code: str, message: str, severity: IssueSeverity, raw: str | None = None
) -> ValidationIssue:
    """An issue whose every text is safe; ``field`` and ``message`` are cleaned as well, though
    parser code already builds them from safe pieces. The general path of :func:`make_issue`."""
    return ValidationIssue(
        field=field_name(field),
        code=code,
        message=safe_text(message, MAX_MESSAGE_LENGTH) or code,
        severity=severity,
        raw=None if raw is None else safe_text(raw, MAX_RAW_LENGTH),
    )


#: build_issue, remembered: its result depends on its arguments alone, and is immutable.
_cached_issue = lru_cache(maxsize=_CACHE_SIZE)(build_issue)


def make_issue(
    field: str, code: str, message: str, severity: IssueSeverity, raw: str | None = None
) -> ValidationIssue:
    """An issue whose every text is safe (see :func:`build_issue`); short ones come from a cache."""
    if shortcuts.ENABLED and len(field) + len(message) + len(raw or "") <= _CACHED_TEXT_LENGTH:
        return _cached_issue(field, code, message, severity, raw)
    return build_issue(field, code, message, severity, raw)


def warning(field: str, code: str, message: str, raw: str | None = None) -> ValidationIssue:
    return make_issue(field, code, message, _WARNING, raw)


def error(field: str, code: str, message: str, raw: str | None = None) -> ValidationIssue:
    return make_issue(field, code, message, _ERROR, raw)
