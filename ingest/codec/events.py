"""Domain events <-> ``payments.events.v1.DomainEvent`` envelopes and their bytes.

The envelope carries the fields every event shares (payment, request, merchant, timestamp) and
the event itself in its ``event`` oneof. Timestamps travel as instants and decode in UTC, so a
decoded event equals the original although its timestamp's offset may differ.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypedDict

from google.protobuf.message import DecodeError
from payments.events.v1 import events_pb2

from engine.decline_codes import DeclineCode
from engine.errors import InvalidFieldError, InvalidTimestampError
from engine.events import (
    CompensationIssued,
    DomainEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    PlannedStep,
    StepAttempted,
    StepFailed,
    StepSucceeded,
)
from engine.failure_details import FailureDetails
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from engine.validation import ValidationIssue
from ingest.codec.enums import (
    ERROR_CODES,
    ISSUE_SEVERITIES,
    PARTIAL_POLICIES,
    PAYMENT_METHODS,
    PAYMENT_STATUSES,
)
from ingest.codec.wire import EPOCH, MAX_SECONDS, MIN_SECONDS, currency_from_proto, timestamp_from_proto


class _Common(TypedDict):
    """The envelope fields, as keyword arguments of every event's constructor."""

    payment_id: PaymentId
    request_id: RequestId
    merchant_id: MerchantId
    timestamp: datetime


def event_to_bytes(event: DomainEvent) -> bytes:
    return event_to_proto(event).SerializeToString()


def event_from_bytes(data: bytes) -> DomainEvent:
    """The event serialized in ``data``; bytes that are no valid envelope raise a domain error."""
    try:
        envelope = events_pb2.DomainEvent.FromString(data)
    except DecodeError as exc:
        raise InvalidFieldError(
            "event", f"{len(data)} bytes", f"is not a payments.events.v1.DomainEvent: {exc}"
        ) from exc
    return event_from_proto(envelope)


def event_to_proto(event: DomainEvent) -> events_pb2.DomainEvent:
    """The envelope of ``event``, with the event in the envelope's ``event`` oneof.

    The store encodes every event of every payment on its writer thread, so this is built for
    speed: the envelope is made empty and its fields set one by one (keyword arguments to its
    constructor cost 0.27 µs an event more), each submessage filled in place (built apart and
    handed over, it is copied: a third of the encoding once), the event's body found by its type
    in a table (a ``match`` tried the kinds in turn), the wire numbers of enums read from their
    tables' mappings, the timestamp's seconds and nanoseconds worked out here rather than in a
    function of their own (each Python call costs about 500 instructions an event).
    """
    timestamp = event.timestamp
    try:
        # Python refuses to subtract an aware datetime from one without an offset (no ``tzinfo``,
        # or one whose ``utcoffset`` is ``None``): that refusal is the check, with no call of its
        # own (``utcoffset()`` asked first cost 0.12 µs of the 0.43 this took).
        since = timestamp - EPOCH
    except TypeError:
        raise InvalidTimestampError("event.timestamp", timestamp, "must be timezone-aware") from None
    seconds = since.days * 86_400 + since.seconds
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise InvalidTimestampError("event.timestamp", timestamp, "is outside the years 1 to 9999 in UTC")
    fill = _BODIES.get(type(event))
    if fill is None:
        raise InvalidFieldError("event", type(event).__name__, "is not an event of payments.events.v1")
    try:
        envelope = events_pb2.DomainEvent()
        envelope.payment_id = event.payment_id
        envelope.request_id = event.request_id
        envelope.merchant_id = event.merchant_id
        stamp = envelope.timestamp
        stamp.seconds = seconds
        stamp.nanos = since.microseconds * 1_000
        fill(event, envelope)
    except (ValueError, TypeError) as exc:
        raise InvalidFieldError(f"event {event.event_type}", None, f"cannot be encoded: {exc}") from exc
    return envelope


#: The wire number of each domain member (the tables' own mappings: no call per field).
_METHOD_WIRE = PAYMENT_METHODS.pairs
_STATUS_WIRE = PAYMENT_STATUSES.pairs
_ERROR_WIRE = ERROR_CODES.pairs

# Each body's first assignment puts it in the envelope's oneof (as ``SetInParent`` would), even of
# a value that is its field's default; a body with no field to assign says so with ``SetInParent``.


def _received(event: PaymentReceived, envelope: events_pb2.DomainEvent) -> None:
    received = envelope.payment_received
    received.accepted = event.accepted
    if event.amount_cents is not None:
        received.amount_cents = event.amount_cents
    if event.currency is not None:
        received.currency = event.currency.code
    if event.method is not None:
        received.method = _METHOD_WIRE[event.method]
    if event.idempotency_key is not None:
        received.idempotency_key = event.idempotency_key
    if event.validation_issues:
        received.validation_issues.extend(issue_to_proto(issue) for issue in event.validation_issues)


def _built(event: PlanBuilt, envelope: events_pb2.DomainEvent) -> None:
    built = envelope.plan_built
    built.total_amount_cents = event.total_amount_cents
    built.currency = event.currency.code
    steps = built.steps
    for step in event.steps:
        planned = steps.add()
        planned.index = step.index
        planned.method = _METHOD_WIRE[step.method]
        planned.amount_cents = step.amount_cents
        planned.processor_ids.extend(step.processor_ids)
    built.coverage_shortfall_cents = event.coverage_shortfall_cents
    if event.partial_policy is not None:
        built.partial_policy = PARTIAL_POLICIES.to_wire(event.partial_policy)


def _attempted(event: StepAttempted, envelope: events_pb2.DomainEvent) -> None:
    attempted = envelope.step_attempted
    attempted.step_index = event.step_index
    attempted.processor_id = event.processor_id
    attempted.attempt = event.attempt
    attempted.method = _METHOD_WIRE[event.method]
    attempted.amount_cents = event.amount_cents
    attempted.idempotency_key = event.idempotency_key


def _succeeded(event: StepSucceeded, envelope: events_pb2.DomainEvent) -> None:
    succeeded = envelope.step_succeeded
    succeeded.step_index = event.step_index
    succeeded.processor_id = event.processor_id
    succeeded.latency_ms = event.latency_ms
    succeeded.amount = event.amount
    succeeded.attempt = event.attempt


def _failed(event: StepFailed, envelope: events_pb2.DomainEvent) -> None:
    failed = envelope.step_failed
    failed.step_index = event.step_index
    failed.processor_id = event.processor_id
    failed.error_code = _ERROR_WIRE[event.error_code]
    failed.latency_ms = event.latency_ms
    failed.attempt = event.attempt
    failed.retryable = event.retryable
    if event.decline_code is not None:
        failed.decline_code = event.decline_code.value
    if event.failure_details is not None:
        _details_to_proto(event.failure_details, failed.failure_details)


def _issued(event: CompensationIssued, envelope: events_pb2.DomainEvent) -> None:
    issued = envelope.compensation_issued
    issued.step_index = event.step_index
    issued.processor_id = event.processor_id
    issued.amount = event.amount
    issued.succeeded = event.succeeded
    if event.error_code is not None:
        issued.error_code = _ERROR_WIRE[event.error_code]


def _completed(event: PaymentCompleted, envelope: events_pb2.DomainEvent) -> None:
    completed = envelope.payment_completed
    completed.total_amount = event.total_amount
    completed.total_processed = event.total_processed
    completed.status = _STATUS_WIRE[event.status]


def _ended(event: PaymentFailed, envelope: events_pb2.DomainEvent) -> None:
    ended = envelope.payment_failed
    ended.total_amount = event.total_amount
    ended.final_error = _ERROR_WIRE[event.final_error]
    ended.total_processed = event.total_processed


#: How each kind of event fills its body (a subclass of an event is no event of the schema).
_BODIES: dict[type[DomainEvent], Callable[[Any, events_pb2.DomainEvent], None]] = {
    PaymentReceived: _received,
    PlanBuilt: _built,
    StepAttempted: _attempted,
    StepSucceeded: _succeeded,
    StepFailed: _failed,
    CompensationIssued: _issued,
    PaymentCompleted: _completed,
    PaymentFailed: _ended,
}


def event_from_proto(envelope: events_pb2.DomainEvent) -> DomainEvent:
    """The domain event in ``envelope``; every invariant of the event is checked again."""
    if not envelope.HasField("timestamp"):
        raise InvalidTimestampError("event.timestamp", None, "is required")
    common = _Common(
        payment_id=PaymentId(envelope.payment_id),
        request_id=RequestId(envelope.request_id),
        merchant_id=MerchantId(envelope.merchant_id),
        timestamp=timestamp_from_proto("event.timestamp", envelope.timestamp),
    )
    kind = envelope.WhichOneof("event")
    match kind:
        case "payment_received":
            return _payment_received(common, envelope.payment_received)
        case "plan_built":
            return _plan_built(common, envelope.plan_built)
        case "step_attempted":
            return _step_attempted(common, envelope.step_attempted)
        case "step_succeeded":
            return _step_succeeded(common, envelope.step_succeeded)
        case "step_failed":
            return _step_failed(common, envelope.step_failed)
        case "compensation_issued":
            return _compensation_issued(common, envelope.compensation_issued)
        case "payment_completed":
            return _payment_completed(common, envelope.payment_completed)
        case "payment_failed":
            return _payment_failed(common, envelope.payment_failed)
    raise InvalidFieldError("event.event", kind, "must hold one of the events of payments.events.v1")


def _payment_received(common: _Common, body: events_pb2.PaymentReceived) -> PaymentReceived:
    has = body.HasField
    return PaymentReceived(
        **common,
        accepted=body.accepted,
        amount_cents=body.amount_cents if has("amount_cents") else None,
        currency=currency_from_proto("event.currency", body.currency) if has("currency") else None,
        method=PAYMENT_METHODS.from_wire("event.method", body.method) if has("method") else None,
        idempotency_key=body.idempotency_key if has("idempotency_key") else None,
        validation_issues=tuple(issue_from_proto(issue) for issue in body.validation_issues),
    )


def _plan_built(common: _Common, body: events_pb2.PlanBuilt) -> PlanBuilt:
    policy = None
    if body.HasField("partial_policy"):  # absent: an event written before the policy was recorded
        policy = PARTIAL_POLICIES.from_wire("event.partial_policy", body.partial_policy)
    return PlanBuilt(
        **common,
        total_amount_cents=body.total_amount_cents,
        currency=currency_from_proto("event.currency", body.currency),
        steps=tuple(
            PlannedStep(
                index=step.index,
                method=PAYMENT_METHODS.from_wire("planned_step.method", step.method),
                amount_cents=step.amount_cents,
                processor_ids=tuple(ProcessorId(processor) for processor in step.processor_ids),
            )
            for step in body.steps
        ),
        coverage_shortfall_cents=body.coverage_shortfall_cents,
        partial_policy=policy,
    )


def _step_attempted(common: _Common, body: events_pb2.StepAttempted) -> StepAttempted:
    return StepAttempted(
        **common,
        step_index=body.step_index,
        processor_id=ProcessorId(body.processor_id),
        attempt=body.attempt,
        method=PAYMENT_METHODS.from_wire("event.method", body.method),
        amount_cents=body.amount_cents,
        idempotency_key=body.idempotency_key,
    )


def _step_succeeded(common: _Common, body: events_pb2.StepSucceeded) -> StepSucceeded:
    return StepSucceeded(
        **common,
        step_index=body.step_index,
        processor_id=ProcessorId(body.processor_id),
        latency_ms=body.latency_ms,
        amount=body.amount,
        attempt=body.attempt,
    )


def _step_failed(common: _Common, body: events_pb2.StepFailed) -> StepFailed:
    decline_code = None
    if body.HasField("decline_code"):
        decline_code = DeclineCode.parse(body.decline_code, "event.decline_code")
    return StepFailed(
        **common,
        step_index=body.step_index,
        processor_id=ProcessorId(body.processor_id),
        error_code=ERROR_CODES.from_wire("event.error_code", body.error_code),
        retryable=body.retryable,
        latency_ms=body.latency_ms,
        attempt=body.attempt,
        decline_code=decline_code,
        failure_details=_details_from_proto(body) if body.HasField("failure_details") else None,
    )


#: The fields of ``FailureDetails``, the same names on both sides.
_DETAIL_FIELDS = ("type", "code", "decline_code", "param", "message")


def _details_to_proto(details: FailureDetails, out: events_pb2.FailureDetails) -> None:
    out.SetInParent()
    for name in _DETAIL_FIELDS:
        value = getattr(details, name)
        if value is not None:
            setattr(out, name, value)


def _details_from_proto(body: events_pb2.StepFailed) -> FailureDetails:
    wire = body.failure_details
    values = {name: getattr(wire, name) if wire.HasField(name) else None for name in _DETAIL_FIELDS}
    return FailureDetails(**values)


def _compensation_issued(common: _Common, body: events_pb2.CompensationIssued) -> CompensationIssued:
    error_code = None
    if body.HasField("error_code"):
        error_code = ERROR_CODES.from_wire("event.error_code", body.error_code)
    return CompensationIssued(
        **common,
        step_index=body.step_index,
        processor_id=ProcessorId(body.processor_id),
        amount=body.amount,
        succeeded=body.succeeded,
        error_code=error_code,
    )


def _payment_completed(common: _Common, body: events_pb2.PaymentCompleted) -> PaymentCompleted:
    return PaymentCompleted(
        **common,
        total_amount=body.total_amount,
        total_processed=body.total_processed,
        status=PAYMENT_STATUSES.from_wire("event.status", body.status),
    )


def _payment_failed(common: _Common, body: events_pb2.PaymentFailed) -> PaymentFailed:
    return PaymentFailed(
        **common,
        total_amount=body.total_amount,
        final_error=ERROR_CODES.from_wire("event.final_error", body.final_error),
        total_processed=body.total_processed,
    )


def issue_to_proto(issue: ValidationIssue) -> events_pb2.ValidationIssue:
    return events_pb2.ValidationIssue(
        field=issue.field,
        code=issue.code,
        message=issue.message,
        severity=ISSUE_SEVERITIES.to_wire(issue.severity),
        raw=issue.raw,
    )


def issue_from_proto(message: events_pb2.ValidationIssue) -> ValidationIssue:
    return ValidationIssue(
        field=message.field,
        code=message.code,
        message=message.message,
        severity=ISSUE_SEVERITIES.from_wire("issue.severity", message.severity),
        raw=message.raw if message.HasField("raw") else None,
    )
