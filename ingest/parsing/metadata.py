"""Metadata: the merchant's own keys and values, bounded, as text, and without card numbers.

Rules (issues on ``metadata`` or ``metadata.<key>``):

- Missing or null: no metadata. Anything but an object (form: ``metadata[key]=value``): error
  ``invalid_type``.
- At most 50 keys (error ``too_many_keys``; the keys are then not looked at one by one). A key
  is 1 to 40 characters (errors ``empty_key``, ``key_too_long``); a value at most 500 characters
  once converted to text (error ``value_too_long``). A key or value holding NUL or a lone
  surrogate (JSON ``"\\ud800"``): error ``invalid_text``.
- Values that are not strings become text, with warning ``converted``: numbers as their JSON
  text, booleans ``true``/``false``, null the empty string, arrays and objects compact JSON.
- Anything that looks like a card number, in a key or a value, is kept only masked
  (``424242******4242``), with warning ``card_number_masked``; the simulated processors still
  recognise a masked test card by its first six and last four digits.
- A key given twice (or two keys that are the same once masked): the last value wins, warning
  ``duplicate_field``.

Shortcut (:mod:`ingest.parsing.shortcuts`): a string value under a key of the right length, given
once, where neither holds NUL, a lone surrogate or anything that could be a card number, passes
every rule untouched; it is kept without running them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.context import MAX_METADATA_KEY_LENGTH, MAX_METADATA_KEYS, MAX_METADATA_VALUE_LENGTH
from engine.validation import ValidationIssue
from ingest.parsing import shortcuts
from ingest.parsing.fields import FieldName
from ingest.parsing.issues import error, has_unsafe_characters, is_plain, quote, warning
from ingest.parsing.masking import mask_card_numbers
from ingest.parsing.values import JsonObject, JsonValue, as_text, kind_of, to_json_text

FIELD = FieldName.METADATA


@dataclass(frozen=True, slots=True)
class MetadataReading:
    metadata: Mapping[str, str] = field(default_factory=dict)
    issues: tuple[ValidationIssue, ...] = ()


def _key_issues(key: str, where: str) -> list[ValidationIssue]:
    if has_unsafe_characters(key):
        return [error(where, "invalid_text", "the key holds a NUL character or an unpaired surrogate", key)]
    if not key:
        return [error(where, "empty_key", "a metadata key is empty", key)]
    if len(key) > MAX_METADATA_KEY_LENGTH:
        message = f"the key has {len(key)} characters; at most {MAX_METADATA_KEY_LENGTH} are allowed"
        return [error(where, "key_too_long", message, key)]
    return []


def _value_text(value: JsonValue, where: str) -> tuple[str, list[ValidationIssue]]:
    if isinstance(value, str):
        return value, []
    text = "" if value is None else to_json_text(value)
    message = f"converted {kind_of(value)} to the text {quote(text)}"
    return text, [warning(where, "converted", message, to_json_text(value))]


def _value_issues(text: str, where: str) -> list[ValidationIssue]:
    if has_unsafe_characters(text):
        return [
            error(where, "invalid_text", "the value holds a NUL character or an unpaired surrogate", text)
        ]
    if len(text) > MAX_METADATA_VALUE_LENGTH:
        message = f"the value has {len(text)} characters; at most {MAX_METADATA_VALUE_LENGTH} are allowed"
        return [error(where, "value_too_long", message, text)]
    return []


def _masked(text: str, where: str, what: str) -> tuple[str, list[ValidationIssue]]:
    masked = mask_card_numbers(text)
    if masked == text:
        return text, []
    message = f"masked a card number in the {what}: only its first six and last four digits are kept"
    return masked, [warning(where, "card_number_masked", message, masked)]


def _plain_entry(key: str, item: str, seen: Mapping[str, str], repeated: set[str]) -> bool:
    """Whether a string entry needs no masking or issue: the general steps keep it as is."""
    return (
        0 < len(key) <= MAX_METADATA_KEY_LENGTH
        and len(item) <= MAX_METADATA_VALUE_LENGTH
        and key not in repeated
        and key not in seen
        and is_plain(key)
        and is_plain(item)
    )


def read_metadata(value: JsonValue) -> MetadataReading:
    """The ``metadata`` field's value (``None`` when absent or null) as bounded text."""
    if value is None:
        return MetadataReading()
    if not isinstance(value, JsonObject):
        message = f"metadata must be an object of keys and values, not {kind_of(value)}"
        return MetadataReading(issues=(error(FIELD, "invalid_type", message, as_text(value)),))
    if len(value) > MAX_METADATA_KEYS:
        message = f"metadata has {len(value)} keys; at most {MAX_METADATA_KEYS} are allowed"
        return MetadataReading(issues=(error(FIELD, "too_many_keys", message, to_json_text(value)),))
    repeated = set(value.duplicate_keys)
    metadata: dict[str, str] = {}
    issues: list[ValidationIssue] = []
    for raw_key, item in value.items():
        if shortcuts.ENABLED and isinstance(item, str) and _plain_entry(raw_key, item, metadata, repeated):
            metadata[raw_key] = item
            continue
        key, key_masking = _masked(raw_key, f"{FIELD}.{raw_key}", "key")
        where = f"{FIELD}.{key}"
        issues.extend(_key_issues(raw_key, where))
        issues.extend(key_masking)
        if raw_key in repeated or key in metadata:
            message = "the key is given more than once; kept the last value"
            issues.append(warning(where, "duplicate_field", message, raw_key))
        text, conversion = _value_text(item, where)
        issues.extend(conversion)
        issues.extend(_value_issues(text, where))
        masked, value_masking = _masked(text, where, "value")
        issues.extend(value_masking)
        metadata[key] = masked
    return MetadataReading(metadata, tuple(issues))
