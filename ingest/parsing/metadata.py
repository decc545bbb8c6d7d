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
- A key given more than once (or two keys that are the same once masked) follows the rule of
  the request's fields (:mod:`ingest.parsing.fields`), on ``metadata.<key>``: every value the
  same (compared as JSON, before conversion), warning ``duplicate_field`` and the key is kept
  once; two different values, error ``conflicting_fields`` and the key is not kept (nor its
  other rules run). No value wins for being last.

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
from ingest.parsing.values import JsonObject, JsonValue, as_text, kind_of, same_value, to_json_text

FIELD = FieldName.METADATA


@dataclass(frozen=True, slots=True)
class MetadataReading:
    metadata: Mapping[str, str] = field(default_factory=dict)
    issues: tuple[ValidationIssue, ...] = ()


#: The reading of no metadata, which most requests give: one shared reading (nothing changes a
#: reading's empty dict; the context takes a copy of it) instead of a new one, about 5,000
#: instructions, each time.
_ABSENT = MetadataReading()


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


def _masking_note(where: str, what: str, masked: str) -> ValidationIssue:
    message = f"masked a card number in the {what}: only its first six and last four digits are kept"
    return warning(where, "card_number_masked", message, masked)


def _masked(text: str, where: str, what: str) -> tuple[str, list[ValidationIssue]]:
    masked = mask_card_numbers(text)
    if masked == text:
        return text, []
    return masked, [_masking_note(where, what, masked)]


def _plain_entry(key: str, item: str) -> bool:
    """Whether a string entry given once needs no masking or issue: the general steps keep it as is."""
    return (
        0 < len(key) <= MAX_METADATA_KEY_LENGTH
        and len(item) <= MAX_METADATA_VALUE_LENGTH
        and is_plain(key)
        and is_plain(item)
    )


def _grouped(value: JsonObject) -> dict[str, list[tuple[str, JsonValue]]]:
    """Every value given, under the key it is kept as (masked), keys in the order they first
    appear: a key given twice, or two keys that mask alike, make a group of more than one."""
    groups: dict[str, list[tuple[str, JsonValue]]] = {}
    repeats = value.repeats
    for raw_key, item in value.items():
        given = groups.setdefault(mask_card_numbers(raw_key), [])
        earlier = repeats.get(raw_key)
        if earlier is not None:
            given.extend((raw_key, before) for before in earlier)
        given.append((raw_key, item))
    return groups


def _conflict(where: str, given: list[tuple[str, JsonValue]]) -> ValidationIssue:
    shown = "; ".join(quote(as_text(item)) for _, item in given)
    message = f"the key is given {len(given)} times with different values ({shown}); none of them was used"
    raw = ", ".join(f"{to_json_text(raw_key)}: {to_json_text(item)}" for raw_key, item in given)
    return error(where, "conflicting_fields", message, raw)


def _entry(key: str, given: list[tuple[str, JsonValue]]) -> tuple[str, list[ValidationIssue]]:
    """The text kept under ``key`` for its values ``given`` (all the same), and the issues."""
    where = f"{FIELD}.{key}"
    raw_keys = list(dict.fromkeys(raw_key for raw_key, _ in given))
    issues = [issue for raw_key in raw_keys for issue in _key_issues(raw_key, where)]
    if any(raw_key != key for raw_key in raw_keys):
        issues.append(_masking_note(where, "key", key))
    item = given[-1][1]
    if len(given) > 1:
        message = f"the key is given {len(given)} times, each time with the value {quote(as_text(item))}"
        issues.append(warning(where, "duplicate_field", message, ", ".join(raw_keys)))
    text, conversion = _value_text(item, where)
    issues.extend(conversion)
    issues.extend(_value_issues(text, where))
    masked, value_masking = _masked(text, where, "value")
    issues.extend(value_masking)
    return masked, issues


def read_metadata(value: JsonValue) -> MetadataReading:
    """The ``metadata`` field's value (``None`` when absent or null) as bounded text."""
    if value is None:
        return _ABSENT
    if not isinstance(value, JsonObject):
        message = f"metadata must be an object of keys and values, not {kind_of(value)}"
        return MetadataReading(issues=(error(FIELD, "invalid_type", message, as_text(value)),))
    if len(value) > MAX_METADATA_KEYS:
        message = f"metadata has {len(value)} keys; at most {MAX_METADATA_KEYS} are allowed"
        return MetadataReading(issues=(error(FIELD, "too_many_keys", message, to_json_text(value)),))
    metadata: dict[str, str] = {}
    issues: list[ValidationIssue] = []
    for key, given in _grouped(value).items():
        if len(given) == 1:
            raw_key, item = given[0]
            if shortcuts.ENABLED and isinstance(item, str) and _plain_entry(raw_key, item):
                metadata[raw_key] = item
                continue
        else:
            last = given[-1][1]
            if not all(same_value(item, last) for _, item in given):
                issues.append(_conflict(f"{FIELD}.{key}", given))
                continue
        metadata[key], entry_issues = _entry(key, given)
        issues.extend(entry_issues)
    return MetadataReading(metadata, tuple(issues))
