"""Results and violations as JSON objects (``payments.result.v1`` and ``payments.contracts.v1``).

The shapes are those of ``proto/payments/result/v1/composite_result.schema.json`` and
``proto/payments/contracts/v1/contract_violation.schema.json``; derived figures
(``success``, ``total_processed``, ``remaining_amount``, ``retryable``) come from the domain.

A result's enum members (its status, each step's method, error and decline codes) go into the
document as they are: each is a ``StrEnum``, a ``str`` whose characters are its value, which orjson
and ``json`` write as that value. Reading ``member._value_`` (``value`` is a property written in
Python on 3.11) cost about 550 instructions a read, five a two-step payment, for the same bytes.
(An issue's severity, off the payment's path, is still read as ``member._value_``.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from engine.contracts import ContractViolation
from engine.errors import InvalidTimestampError
from engine.events import PaymentReceived
from engine.failure_details import FailureDetails
from engine.results import CompositeResult, Result
from engine.validation import IssueSeverity, ValidationIssue

#: A JSON object as ``json.dumps`` takes it.
JsonObject = dict[str, object]


def composite_result_to_json(result: CompositeResult) -> JsonObject:
    """The CompositeResult of PRODUCT.md section 6, key for key."""
    # The steps are summed once: ``remaining_amount`` is the total less this sum, and reading it
    # from the result summed them again (3,500 instructions, every payment's answer).
    processed = result.total_processed
    return {
        "payment_id": result.payment_id,
        "request_id": result.request_id,
        "merchant_id": result.merchant_id,
        "status": result.status,
        "success": result.success,
        "currency": result.currency.code,
        "total_amount": result.total_amount,
        "total_processed": processed,
        "remaining_amount": result.total_amount - processed,
        "step_results": [step_result_to_json(step) for step in result.step_results],
        "final_error": result.final_error,
        "validation_errors": [issue_to_json(issue) for issue in result.validation_errors],
    }


#: The status of a request refused 422 (or 403): recorded, never processed, nothing charged.
REJECTED = "rejected"


def refusal_to_json(received: PaymentReceived) -> JsonObject:
    """What ``GET /v1/payments/{id}`` shows of a refused request (its ``PaymentReceived`` with
    ``accepted: false``): the result's keys, status ``rejected``, no step, nothing processed, and
    the issues that refused it. ``currency``, ``total_amount`` and ``remaining_amount`` are null
    when the request gave nothing usable."""
    amount = received.amount_cents
    return {
        "payment_id": received.payment_id,
        "request_id": received.request_id,
        "merchant_id": received.merchant_id,
        "status": REJECTED,
        "success": False,
        "currency": None if received.currency is None else received.currency.code,
        "total_amount": amount,
        "total_processed": 0,
        "remaining_amount": amount,
        "step_results": [],
        "final_error": None,
        "validation_errors": [issue_to_json(issue) for issue in received.validation_issues],
    }


#: The status of a payment whose result is not recorded yet: running, or cut short by a crash
#: (the next start settles it), never of one whose result was stored.
PROCESSING = "processing"


def running_to_json(events: Sequence[Mapping[str, object]]) -> JsonObject:
    """What ``GET /v1/payments`` lists of a payment with no result yet, from ``events``, its
    events so far (as ``event_json`` gives them, oldest first): the result's keys, status
    ``processing``, ``total_processed`` what its steps hold charged so far (charged, less what
    was given back), no step result (those come with the result), and the corrections made to
    its request. So a merchant whose answer was lost sees that it is under way, not missing, and
    does not pay again."""
    first = events[0] if events else {}
    total: object = first.get("amount_cents")
    charged = 0
    for event in events:
        kind = event.get("type")
        if kind == "PlanBuilt":
            total = event.get("total_amount_cents", total)
        elif kind == "StepSucceeded":
            charged += _cents(event.get("amount"))
        elif kind == "CompensationIssued" and event.get("succeeded"):
            charged -= _cents(event.get("amount"))
    return {
        "payment_id": first.get("payment_id"),
        "request_id": first.get("request_id"),
        "merchant_id": first.get("merchant_id"),
        "status": PROCESSING,
        "success": False,
        "currency": first.get("currency"),
        "total_amount": total,
        "total_processed": max(charged, 0),
        "remaining_amount": max(_cents(total) - charged, 0) if isinstance(total, int) else None,
        "step_results": [],
        "final_error": None,
        "validation_errors": list(_issues(first.get("validation_issues"))),
        "events": list(events),
        "interrupted": None,  # why a start left it unsettled: the API says (``ingest.api.payment_reads``)
    }


def _cents(value: object) -> int:
    return value if isinstance(value, int) else 0


def _issues(value: object) -> Sequence[object]:
    return value if isinstance(value, list) else []


def step_result_to_json(step: Result) -> JsonObject:
    """One step's outcome; ``compensated``, ``decline_code`` and ``failure_details`` are always
    present (the schema defaults them to false and null)."""
    return {
        "step_index": step.step_index,
        "method": step.method,
        "processor_id": step.processor_id,
        "success": step.success,
        "error_code": step.error_code,
        "amount_processed": step.amount_processed,
        "latency_ms": step.latency_ms,
        "retryable": step.retryable,
        "attempts": step.attempts,
        "compensated": step.compensated,
        "decline_code": step.decline_code,
        "failure_details": None
        if step.failure_details is None
        else failure_details_to_json(step.failure_details),
    }


def failure_details_to_json(details: FailureDetails) -> JsonObject:
    """A processor's account of a refusal: every field, null when the processor gave none."""
    return {
        "type": details.type,
        "code": details.code,
        "decline_code": details.decline_code,
        "param": details.param,
        "message": details.message,
    }


def issue_to_json(issue: ValidationIssue) -> JsonObject:
    return {
        "field": issue.field,
        "code": issue.code,
        "message": issue.message,
        "severity": issue.severity._value_,
        "raw": issue.raw,
    }


def issue_from_json(document: JsonObject) -> ValidationIssue:
    """An issue as :func:`issue_to_json` wrote it (a complaint's, kept as JSON in its row)."""
    raw = document["raw"]
    return ValidationIssue(
        field=str(document["field"]),
        code=str(document["code"]),
        message=str(document["message"]),
        severity=IssueSeverity(str(document["severity"])),
        raw=None if raw is None else str(raw),
    )


def violation_to_json(violation: ContractViolation) -> JsonObject:
    """A contract violation; its timestamp is RFC 3339 in UTC (``2026-11-12T08:30:00Z``)."""
    return {
        "contract_id": violation.contract_id,
        "request_id": violation.request_id,
        "severity": violation.severity.value,
        "message": violation.message,
        "owner": violation.owner,
        "timestamp": utc_timestamp("violation.timestamp", violation.timestamp),
        "payment_id": violation.payment_id,
        "merchant_id": violation.merchant_id,
    }


def utc_timestamp(field: str, value: datetime) -> str:
    """``value`` as RFC 3339 in UTC with a ``Z``, microseconds kept when there are any."""
    try:
        instant = value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidTimestampError(field, value, "is outside the years 1 to 9999 in UTC") from exc
    return instant.isoformat().replace("+00:00", "Z")
