"""What ``POST /v1/complaints`` corrects in a complaint's body, each correction a warning kept
with the complaint (its ``validation_errors``, as a payment's, PRODUCT.md section 5).

A complaint is a strict intake (its fields are checked as given, an unknown one refused), but
what a payment's parser corrects with a warning a complaint's support desk writes alike, and the
corrections were made, or refused, without a word:

- A field name is matched as a payment's are (:func:`ingest.parsing.fields.normalize_name`: case
  and ``_``, ``-``, space, ``.`` aside): ``complaintId``, ``Complaint-ID`` and ``received at`` are
  ``complaint_id`` and ``received_at``, each with warning ``normalized`` (it was 422
  ``extra_forbidden``). A field given twice, spelled two ways: the same value, warning
  ``duplicate_field``; two values, error ``conflicting_fields`` and nothing stored.
- An identifier, the category or ``received_at`` with spaces around it is read without them,
  with warning ``normalized`` (it was 422 ``string_pattern_mismatch``). The description is free
  text, kept as given.
- A ``received_at`` without an offset is read as UTC, and a date alone as its midnight, UTC, with
  warning ``normalized`` saying what was assumed (both were silent).

A card number masked in the description or the ``complaint_id`` is reported where it is masked
(``ingest.api.complaint_intake``), with warning ``card_number_masked``, as in a payment's metadata.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from engine.validation import ValidationIssue
from ingest.moments import parse_moment
from ingest.parsing.fields import normalize_name
from ingest.parsing.issues import quote, warning

#: A complaint's fields, in the order PRODUCT.md section 9 lists them.
FIELDS = (
    "complaint_id",
    "merchant_id",
    "received_at",
    "category",
    "description",
    "payment_id",
    "request_id",
    "contract_id",
)
_SPELLINGS: Mapping[str, str] = {normalize_name(name): name for name in FIELDS}
#: The fields read without the spaces around them: what is an identifier, a category or a time.
_TRIMMED = frozenset(FIELDS) - {"description"}
_DATE_ALONE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_OFFSET = re.compile(r"(?:[Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII)


def corrected(body: Mapping[str, object]) -> tuple[dict[str, object], list[ValidationIssue]]:
    """``body`` under its fields' own names and trimmed, and a warning for each correction; a
    key that names no field is kept as given (the model refuses it). Raises
    :class:`ValidationError` (``conflicting_fields``) for a field given two values."""
    given: dict[str, list[tuple[str, object]]] = {}
    fields: dict[str, object] = {}
    for key, value in body.items():
        name = _SPELLINGS.get(normalize_name(key))
        if name is None:
            fields[key] = value
        else:
            given.setdefault(name, []).append((key, value))
    issues: list[ValidationIssue] = []
    conflicts: list[InitErrorDetails] = []
    for name in FIELDS:
        spelled = given.get(name)
        if spelled is None:
            continue
        value = spelled[-1][1]
        if len(spelled) > 1:
            keys = ", ".join(quote(key) for key, _ in spelled)
            if any(other != value for _, other in spelled):
                message = f"{name} is given {len(spelled)} times with different values (as {keys})"
                conflicts.append(_conflict(name, message, body))
                continue
            issues.append(
                warning(name, "duplicate_field", f"{name} is given {len(spelled)} times (as {keys})")
            )
        elif spelled[0][0] != name:
            key = spelled[0][0]
            issues.append(warning(name, "normalized", f"read the field {quote(key)} as {name}", raw=key))
        fields[name] = _trimmed(name, value, issues)
    if conflicts:
        raise ValidationError.from_exception_data("ComplaintIn", conflicts)
    return fields, issues


def _conflict(name: str, message: str, body: Mapping[str, object]) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("conflicting_fields", message + "; none of them was used"),
        loc=(name,),
        input=dict(body),
    )


def _trimmed(name: str, value: object, issues: list[ValidationIssue]) -> object:
    if name not in _TRIMMED or not isinstance(value, str):
        return value
    trimmed = value.strip()
    if trimmed == value or not trimmed:  # nothing to trim, or nothing left: refused as given
        return value
    issues.append(warning(name, "normalized", f"dropped the spaces around {quote(trimmed)}", raw=value))
    return trimmed


def received_at_issue(text: object) -> ValidationIssue | None:
    """The warning for a ``received_at`` read with an assumption (no offset: UTC; a date alone:
    its midnight), or ``None``; ``text`` is the value the model read (already valid)."""
    if not isinstance(text, str) or _OFFSET.search(text):
        return None
    moment = parse_moment(text).astimezone(UTC).isoformat().replace("+00:00", "Z")
    assumed = "a date alone: its midnight, UTC" if _DATE_ALONE.fullmatch(text) else "no offset: UTC"
    return warning("received_at", "normalized", f"read {quote(text)} as {moment} ({assumed})", raw=text)
