"""The JSON Schema comparator finds exactly the breaking changes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tools.schema_diff import breaking_changes

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "proto/payments/result/v1/composite_result.schema.json"
BASE: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _edited(path: list[str], value: object) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    target = schema
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return schema


_DELETE = object()


def test_an_unchanged_schema_has_no_breaking_change() -> None:
    assert breaking_changes(BASE, copy.deepcopy(BASE)) == []


def test_a_new_optional_property_is_not_breaking() -> None:
    schema = _edited(["properties", "note"], {"type": "string"})
    assert breaking_changes(BASE, schema) == []


def test_widening_is_not_breaking() -> None:
    schema = _edited(["$defs", "PaymentStatus", "enum"], [*BASE["$defs"]["PaymentStatus"]["enum"], "held"])
    schema["properties"]["total_amount"] = {"type": ["integer", "null"], "minimum": 0}
    assert breaking_changes(BASE, schema) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["properties", "final_error"], _DELETE, "final_error: property removed"),
        (["properties", "success"], {"type": "string"}, "success: type changed from boolean to string"),
        (["properties", "total_amount", "type"], "boolean", "total_amount: type changed"),
        (["$defs", "StepResult", "properties", "latency_ms", "type"], "string", "step_results[].latency_ms"),
        (["$defs", "PaymentStatus", "enum"], ["succeeded", "failed"], "'partially_succeeded' removed"),
        (["$defs", "StepResult", "required"], ["step_index"], "step_results[].method: property no longer"),
        (["additionalProperties"], False, "(root): additionalProperties turned false"),
        (["properties", "payment_id", "maxLength"], 10, "payment_id: maxLength tightened"),
        (["properties", "currency", "pattern"], "^[A-Z]{4}$", "currency: pattern changed"),
        (["$defs", "StepResult", "properties", "compensated"], _DELETE, "compensated: property removed"),
    ],
)
def test_breaking_edits_are_named(path: list[str], value: object, expected: str) -> None:
    changes = breaking_changes(BASE, _edited(path, value))
    assert any(expected in change for change in changes), changes


def test_a_newly_required_property_is_breaking() -> None:
    schema = _edited(["properties", "note"], {"type": "string"})
    schema["required"] = [*schema["required"], "note"]
    assert breaking_changes(BASE, schema) == ["note: property newly required"]


def test_number_to_integer_narrows_but_integer_to_number_widens() -> None:
    number = {"type": "object", "properties": {"x": {"type": "number"}}}
    integer = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert breaking_changes(integer, number) == []
    assert breaking_changes(number, integer) == ["x: type changed from number to integer"]


def test_an_enum_where_any_value_was_allowed_narrows() -> None:
    old = {"type": "object", "properties": {"x": {"type": "string"}}}
    new = {"type": "object", "properties": {"x": {"type": "string", "enum": ["a"]}}}
    assert breaking_changes(old, new) == ["x: values narrowed to an enum"]


def test_items_where_any_item_was_allowed_narrow() -> None:
    """An array without ``items`` takes any item: constraining them refuses documents the old
    version accepted (the comparison followed ``items`` only when both versions had one)."""
    old = {"type": "object", "properties": {"tags": {"type": "array"}}}
    new = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    free = {"type": "object", "properties": {"tags": {"type": "array", "items": True}}}

    assert breaking_changes(old, new) == ["tags[]: items constrained where any item was allowed"]
    assert breaking_changes(old, free) == []
    assert breaking_changes(new, old) == []


def _error_codes_without(code: str) -> list[object]:
    codes: list[object] = BASE["$defs"]["NullableErrorCode"]["enum"]
    return [value for value in codes if value not in (code, None)]


def test_a_nullable_enum_rewritten_as_any_of_that_drops_a_value_is_breaking() -> None:
    schema = _edited(["$defs", "ErrorCode"], {"type": "string", "enum": _error_codes_without("unknown")})
    schema["properties"]["final_error"] = {"anyOf": [{"$ref": "#/$defs/ErrorCode"}, {"type": "null"}]}

    assert breaking_changes(BASE, schema) == ["final_error: anyOf added or changed"]


def test_the_alternatives_of_an_any_of_are_compared_and_new_ones_widen() -> None:
    def nullable(*codes: str) -> dict[str, Any]:
        alternatives = [{"type": "string", "enum": list(codes)}, {"type": "null"}]
        return {"type": "object", "properties": {"code": {"anyOf": alternatives}}}

    widened = nullable("timeout", "declined")
    widened["properties"]["code"]["anyOf"].append({"type": "integer"})

    assert breaking_changes(nullable("timeout", "declined"), widened) == []
    assert breaking_changes(nullable("timeout", "declined"), nullable("timeout")) == [
        "code(anyOf[0]): enum value 'declined' removed"
    ]


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("format", "date-time", "payment_id: format added or changed"),
        ("not", {"const": "pay_0"}, "payment_id: not added or changed"),
        ("allOf", [{"minLength": 5}], "payment_id: allOf added or changed"),
        ("oneOf", [{"pattern": "^pay_"}], "payment_id: oneOf added or changed"),
        ("additionalProperties", {"type": "string"}, "payment_id: additionalProperties constrained"),
    ],
)
def test_a_new_constraint_the_comparison_does_not_model_is_reported(
    keyword: str, value: object, expected: str
) -> None:
    assert breaking_changes(BASE, _edited(["properties", "payment_id", keyword], value)) == [expected]
