"""Field names: which of the body's keys mean which field of the request.

Rules:

- A key is matched case- and separator-insensitively: it is lower-cased and ``_``, ``-``, space
  and ``.`` are removed, so ``MerchantID``, ``merchantId``, ``merchant_id``, ``merchant-id`` and
  ``merchant id`` all mean ``merchant_id``. ``method`` is also spelled ``payment_method``,
  ``currency`` also ``currency_code``.
- A field given more than once, whether the body repeats a key exactly (JSON or form) or spells
  the field two ways, is one rule over every value given: all the same value, warning
  ``duplicate_field`` and the value is used; two different values, error ``conflicting_fields``
  and none is used (the field's reader is not run, so it reports nothing more). No value wins
  for being last: a client's JSON library or form builder decides which one that is.
- Any other key: warning ``unknown_field`` on the key itself (cut to 200 characters), value
  ignored. Only the first :data:`MAX_UNKNOWN_REPORTED` are reported one by one; the rest are
  counted in one more warning, so a hostile body cannot make the issue list unbounded.
- Values are compared as JSON: ``1``, ``1.0`` and ``true`` are different values.

Shortcut (:mod:`ingest.parsing.shortcuts`): a body whose keys are all canonical names
(``amount``, ``merchant_id``...), none repeated, has one key per field and nothing to report; its
fields are taken directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from engine.unchecked import unchecked
from engine.validation import ValidationIssue
from ingest.parsing import shortcuts
from ingest.parsing.issues import error, quote, warning
from ingest.parsing.values import JsonObject, JsonValue, as_text, same_value, to_json_text

MAX_UNKNOWN_REPORTED = 20


class FieldName(StrEnum):
    """The canonical fields of a payment request, in the order the parser reports them."""

    MERCHANT_ID = "merchant_id"
    AMOUNT = "amount"
    CURRENCY = "currency"
    METHOD = "method"
    METADATA = "metadata"
    IDEMPOTENCY_KEY = "idempotency_key"


#: The fields in reporting order (iterating the Enum itself is slower).
_ORDER: tuple[FieldName, ...] = tuple(FieldName)
_CANONICAL: Mapping[str, FieldName] = {name.value: name for name in _ORDER}

_SEPARATORS = str.maketrans("", "", "_- .")

_SPELLINGS: Mapping[str, FieldName] = {
    "merchantid": FieldName.MERCHANT_ID,
    "amount": FieldName.AMOUNT,
    "currency": FieldName.CURRENCY,
    # A currency under another common name must not fall back silently to the default currency.
    "currencycode": FieldName.CURRENCY,
    "method": FieldName.METHOD,
    "paymentmethod": FieldName.METHOD,
    "metadata": FieldName.METADATA,
    "idempotencykey": FieldName.IDEMPOTENCY_KEY,
}


def normalize_name(name: str) -> str:
    """A key as it is matched: lower case, without ``_``, ``-``, spaces and dots."""
    return name.lower().translate(_SEPARATORS)


def canonical_field(name: str) -> FieldName | None:
    """The field a key names, or ``None`` for a key the request does not have."""
    return _SPELLINGS.get(normalize_name(name))


@dataclass(frozen=True, slots=True)
class SortedFields:
    """The body's keys sorted into fields.

    ``values`` holds each readable field once; ``conflicting`` lists the fields given twice with
    different values, with every value given (a reader may still look at them).
    """

    values: Mapping[FieldName, JsonValue] = field(default_factory=dict)
    conflicting: Mapping[FieldName, tuple[JsonValue, ...]] = field(default_factory=dict)
    issues: tuple[ValidationIssue, ...] = ()

    def get(self, name: FieldName) -> JsonValue:
        """The field's value; ``None`` when absent, null or conflicting."""
        return self.values.get(name)

    def has(self, name: FieldName) -> bool:
        return name in self.values


#: :class:`SortedFields` built without a frozen dataclass's ``__init__`` (it has no check to skip),
#: for the shortcut, which every clean body takes.
_sorted_fields = unchecked(SortedFields)
#: The shortcut's ``conflicting``: one shared empty mapping, which nobody can change, rather than
#: a new dict for every body (about 500 instructions).
_NO_CONFLICTS: Mapping[FieldName, tuple[JsonValue, ...]] = MappingProxyType({})


def _spellings(names: list[str]) -> str:
    return ", ".join(quote(name) for name in names)


def sort_fields(body: JsonObject) -> SortedFields:
    """Sort a decoded body's keys into the request's fields."""
    if shortcuts.ENABLED and not body.repeats:
        # Distinct canonical names name distinct fields: no duplicate, conflict or unknown key.
        # A plain loop that stops at the first other key: a key-set test and a comprehension
        # cost about 2,300 instructions more.
        values: dict[FieldName, JsonValue] = {}
        for name, value in body.items():
            canonical = _CANONICAL.get(name)
            if canonical is None:
                break
            values[canonical] = value
        else:
            return _sorted_fields(values=values, conflicting=_NO_CONFLICTS)
    # Every value each field was given, under the key that gave it: a key the body repeats gives
    # all of its values, so exact repeats and other spellings meet the same rule below.
    seen: dict[FieldName, list[tuple[str, JsonValue]]] = {}
    unknown: list[str] = []
    repeats = body.repeats
    for name, value in body.items():
        canonical = canonical_field(name)
        if canonical is None:
            unknown.append(name)
            continue
        occurrences = seen.setdefault(canonical, [])
        earlier = repeats.get(name)
        if earlier is not None:
            occurrences.extend((name, before) for before in earlier)
        occurrences.append((name, value))

    issues: list[ValidationIssue] = []
    values = {}
    conflicting: dict[FieldName, tuple[JsonValue, ...]] = {}
    for canonical in _ORDER:
        given = seen.get(canonical)
        if given is None:
            continue
        last_value = given[-1][1]
        if not all(same_value(value, last_value) for _, value in given):
            conflicting[canonical] = tuple(value for _, value in given)
            shown = "; ".join(f"{quote(name)}: {quote(as_text(value))}" for name, value in given)
            issues.append(
                error(
                    canonical,
                    "conflicting_fields",
                    f"{canonical} is given {len(given)} times with different values ({shown}); "
                    "none of them was used",
                    raw=", ".join(f"{name}={to_json_text(value)}" for name, value in given),
                )
            )
            continue
        values[canonical] = last_value
        if len(given) > 1:
            names = list(dict.fromkeys(name for name, _ in given))
            issues.append(
                warning(
                    canonical,
                    "duplicate_field",
                    f"{canonical} is given {len(given)} times (as {_spellings(names)}), each time with "
                    f"the value {quote(as_text(last_value))}",
                    raw=", ".join(names),
                )
            )

    for name in unknown[:MAX_UNKNOWN_REPORTED]:
        issues.append(warning(name, "unknown_field", f"ignored the unknown field {quote(name)}", raw=name))
    if len(unknown) > MAX_UNKNOWN_REPORTED:
        more = len(unknown) - MAX_UNKNOWN_REPORTED
        issues.append(
            warning("body", "unknown_field", f"ignored {more} more unknown fields", raw=f"{more} fields")
        )
    return SortedFields(values=values, conflicting=conflicting, issues=tuple(issues))
