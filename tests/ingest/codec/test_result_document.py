"""A payment's answer document (``composite_result_to_json``) made with less work per payment, and
byte for byte the document it was: the answers stored under idempotency keys are replayed as they
were, and a client may compare them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given

from engine.results import CompositeResult, Result
from ingest.codec.result_json import composite_result_to_json, failure_details_to_json, issue_to_json
from tests.strategies import composite_results


def _step_by_values(step: Result) -> dict[str, object]:
    """A step as the document held it before: every enum member read as its ``value``."""
    return {
        "step_index": step.step_index,
        "method": step.method.value,
        "processor_id": step.processor_id,
        "success": step.success,
        "error_code": None if step.error_code is None else step.error_code.value,
        "amount_processed": step.amount_processed,
        "latency_ms": step.latency_ms,
        "retryable": step.retryable,
        "attempts": step.attempts,
        "compensated": step.compensated,
        "decline_code": None if step.decline_code is None else step.decline_code.value,
        "failure_details": None
        if step.failure_details is None
        else failure_details_to_json(step.failure_details),
    }


def _by_values(result: CompositeResult) -> dict[str, object]:
    """The document as it was made before (a deliberate copy: the reference must not move)."""
    return {
        "payment_id": result.payment_id,
        "request_id": result.request_id,
        "merchant_id": result.merchant_id,
        "status": result.status.value,
        "success": result.success,
        "currency": result.currency.code,
        "total_amount": result.total_amount,
        "total_processed": result.total_processed,
        "remaining_amount": result.remaining_amount,
        "step_results": [_step_by_values(step) for step in result.step_results],
        "final_error": None if result.final_error is None else result.final_error.value,
        "validation_errors": [issue_to_json(issue) for issue in result.validation_errors],
    }


@given(composite_results())
def test_a_result_document_is_byte_for_byte_the_one_made_from_enum_values(result: CompositeResult) -> None:
    assert orjson.dumps(composite_result_to_json(result)) == orjson.dumps(_by_values(result))


@given(composite_results())
def test_a_result_document_sums_the_steps_once(result: CompositeResult) -> None:
    """``remaining_amount`` is the total less the steps' sum: reading it from the result summed
    the steps a second time (3,500 instructions for every payment's answer)."""
    summed: list[CompositeResult] = []
    counted = vars(CompositeResult)["total_processed"]  # the property itself

    def counting(self: CompositeResult) -> int:
        summed.append(self)
        value: int = counted.fget(self)
        return value

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CompositeResult, "total_processed", property(counting))
        document: dict[str, Any] = composite_result_to_json(result)
    assert len(summed) == 1
    assert document["remaining_amount"] == result.total_amount - document["total_processed"]
