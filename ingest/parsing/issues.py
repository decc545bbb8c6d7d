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
"""

from __future__ import annotations

import re

from engine.validation import MAX_RAW_LENGTH, IssueSeverity, ValidationIssue
from ingest.parsing.masking import mask_card_numbers

MAX_FIELD_LENGTH = 200
MAX_MESSAGE_LENGTH = 1000
QUOTE_LENGTH = 60

_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def safe_text(text: str, limit: int) -> str:
    """``text`` as valid, masked text of at most ``limit`` characters."""
    cleaned = _UNSAFE.sub("\ufffd", text[: 4 * limit + 64])
    return mask_card_numbers(mask_card_numbers(cleaned)[:limit])


def has_unsafe_characters(text: str) -> bool:
    """Whether ``text`` holds NUL or a lone surrogate."""
    return _UNSAFE.search(text) is not None


def quote(text: str) -> str:
    """``text`` in double quotes for a message, shortened with an ellipsis past 60 characters."""
    shown = safe_text(text, QUOTE_LENGTH + 1)
    if len(shown) > QUOTE_LENGTH:
        shown = shown[: QUOTE_LENGTH - 1] + "\u2026"
    return f'"{shown}"'


def field_name(text: str) -> str:
    """A merchant-supplied name as an issue's ``field``; an empty name is reported on ``body``."""
    return safe_text(text, MAX_FIELD_LENGTH) or "body"


def make_issue(
    field: str, code: str, message: str, severity: IssueSeverity, raw: str | None = None
) -> ValidationIssue:
    """An issue whose every text is safe; ``field`` and ``message`` are cleaned as well, though
    parser code already builds them from safe pieces."""
    return ValidationIssue(
        field=field_name(field),
        code=code,
        message=safe_text(message, MAX_MESSAGE_LENGTH) or code,
        severity=severity,
        raw=None if raw is None else safe_text(raw, MAX_RAW_LENGTH),
    )


def warning(field: str, code: str, message: str, raw: str | None = None) -> ValidationIssue:
    return make_issue(field, code, message, IssueSeverity.WARNING, raw)


def error(field: str, code: str, message: str, raw: str | None = None) -> ValidationIssue:
    return make_issue(field, code, message, IssueSeverity.ERROR, raw)
