"""Composite results and violations as JSON: valid against their schemas, figures from the domain."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from jsonschema import Draft202012Validator, FormatChecker

from engine.contracts import ContractViolation
from engine.error_codes import ErrorCode
from engine.events import PaymentReceived
from engine.methods import PaymentMethod
from engine.results import CompositeResult, PaymentStatus
from ingest.codec.result_json import REJECTED, composite_result_to_json, refusal_to_json, violation_to_json
from tests.strategies import composite_results, payment_received, violations

PROTO = Path(__file__).resolve().parents[2] / "proto"
RESULT_SCHEMA = PROTO / "payments/result/v1/composite_result.schema.json"
VIOLATION_SCHEMA = PROTO / "payments/contracts/v1/contract_violation.schema.json"

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE)
formats = FormatChecker()


@formats.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time (jsonschema checks it only with an optional extra installed)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    return datetime.fromisoformat(value.upper()).tzinfo is not None


def _validator(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=formats)


result_validator = _validator(RESULT_SCHEMA)
violation_validator = _validator(VIOLATION_SCHEMA)


def _errors(validator: Draft202012Validator, document: object) -> list[str]:
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(document)]


@given(composite_results())
def test_composite_result_json_is_valid_and_agrees_with_the_domain(result: CompositeResult) -> None:
    document: dict[str, Any] = json.loads(json.dumps(composite_result_to_json(result)))
    assert _errors(result_validator, document) == []
    assert document["status"] == result.status.value
    assert document["success"] is (result.status is PaymentStatus.SUCCEEDED)
    counted = sum(
        step["amount_processed"]
        for step in document["step_results"]
        if step["success"] and not step["compensated"]
    )
    assert document["total_processed"] == counted == result.total_processed
    assert document["remaining_amount"] == document["total_amount"] - counted
    assert document["final_error"] == (None if result.final_error is None else result.final_error.value)
    for step, domain_step in zip(document["step_results"], result.step_results, strict=True):
        assert step["retryable"] is domain_step.retryable
        assert step["compensated"] is domain_step.compensated
        assert step["error_code"] == (
            None if domain_step.error_code is None else domain_step.error_code.value
        )
        assert step["decline_code"] == (
            None if domain_step.decline_code is None else domain_step.decline_code.value
        )
    assert len(document["validation_errors"]) == len(result.validation_errors)


@given(payment_received().filter(lambda received: not received.accepted))
def test_a_refused_request_looked_up_is_valid(received: PaymentReceived) -> None:
    """``GET /v1/payments/{id}`` of a request refused 422 or 403: status ``rejected``, and
    ``currency`` and the amounts null when the request gave nothing usable (the schema had
    neither, so a client validating the answer refused it)."""
    document: dict[str, Any] = json.loads(json.dumps(refusal_to_json(received)))
    assert _errors(result_validator, document) == []
    assert (document["status"], document["success"], document["step_results"]) == (REJECTED, False, [])
    assert document["total_processed"] == 0
    assert document["total_amount"] == document["remaining_amount"] == received.amount_cents


@given(violations)
def test_violation_json_is_valid_and_keeps_the_instant(violation: ContractViolation) -> None:
    document: dict[str, Any] = json.loads(json.dumps(violation_to_json(violation)))
    assert _errors(violation_validator, document) == []
    assert datetime.fromisoformat(document["timestamp"]) == violation.timestamp
    assert document["timestamp"].endswith("Z")
    assert document["payment_id"] == violation.payment_id
    assert document["merchant_id"] == violation.merchant_id


PRODUCT_EXAMPLE = {
    "payment_id": "pay_1",
    "request_id": "req_1",
    "merchant_id": "m_acme",
    "status": "succeeded",
    "success": True,
    "currency": "USD",
    "total_amount": 10000,
    "total_processed": 10000,
    "remaining_amount": 0,
    "step_results": [
        {
            "step_index": 0,
            "method": "apple_pay",
            "processor_id": "applepay_sim",
            "success": True,
            "error_code": None,
            "amount_processed": 6000,
            "latency_ms": 12,
            "retryable": False,
            "attempts": 1,
        }
    ],
    "final_error": None,
    "validation_errors": [],
}


def test_the_product_example_is_valid() -> None:
    assert _errors(result_validator, PRODUCT_EXAMPLE) == []


def test_extra_top_level_keys_are_allowed() -> None:
    assert _errors(result_validator, {**PRODUCT_EXAMPLE, "events": []}) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("status", "pending"), ("final_error", "exploded"), ("currency", "usd"), ("total_amount", -1)],
)
def test_values_outside_the_contract_are_rejected(key: str, value: object) -> None:
    assert _errors(result_validator, {**PRODUCT_EXAMPLE, key: value}) != []


def test_schema_enumerates_every_domain_code_method_and_status() -> None:
    schema = json.loads(RESULT_SCHEMA.read_text(encoding="utf-8"))
    definitions = schema["$defs"]
    assert set(definitions["NullableErrorCode"]["enum"]) == {code.value for code in ErrorCode} | {None}
    assert set(definitions["PaymentMethod"]["enum"]) == {method.value for method in PaymentMethod}
    statuses = {status.value for status in PaymentStatus} | {REJECTED}
    assert set(definitions["PaymentStatus"]["enum"]) == statuses


def test_violation_timestamp_must_be_a_date_time() -> None:
    document = {
        "contract_id": "router/timeout",
        "request_id": "req_1",
        "severity": "major",
        "message": "timed out",
        "owner": "routing",
        "timestamp": "2026-11-12T08:30:00Z",
        "payment_id": None,
        "merchant_id": "m_acme",
    }
    assert _errors(violation_validator, document) == []
    assert _errors(violation_validator, {**document, "timestamp": "yesterday"}) != []
    assert _errors(violation_validator, {**document, "timestamp": "2026-13-40T00:00:00Z"}) != []
