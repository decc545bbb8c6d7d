"""Events as JSON: the fast orjson encoding against a plain, field-by-field reading of the event,
and the compact rows the memory records keep against the full documents."""

from __future__ import annotations

import dataclasses
import gc
import json
from datetime import UTC, datetime
from enum import Enum

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.error_codes import ErrorCode
from engine.events import (
    DomainEvent,
    PaymentReceived,
    PlanBuilt,
    PlannedStep,
    StepAttempted,
    StepFailed,
    event_ids,
)
from engine.failure_details import FailureDetails
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from engine.validation import IssueSeverity, ValidationIssue
from ingest.codec.event_json import (
    _plain_row,
    event_document,
    event_json,
    event_values,
    events_rows,
    refilled_event_document,
    rows_to_json,
)
from tests.ingest.observe.test_telemetry_calls import _python_calls
from tests.strategies import EVENT_STRATEGIES, events

AT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def _expected(value: object) -> object:
    if isinstance(value, datetime):
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
        return text + "Z"
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Currency):
        return value.code
    if isinstance(value, ValidationIssue | PlannedStep | FailureDetails):
        return {field.name: _expected(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_expected(item) for item in value]
    return value


@settings(max_examples=300)
@given(events)
def test_every_event_is_its_type_plus_every_field_in_wire_form(event: DomainEvent) -> None:
    document = json.loads(event_json(event))

    expected = {"type": event.event_type} | {
        field.name: _expected(getattr(event, field.name)) for field in dataclasses.fields(event)
    }
    assert document == expected
    assert document["timestamp"].endswith("Z")


@settings(max_examples=300)
@given(events)
def test_an_events_document_is_written_as_its_json(event: DomainEvent) -> None:
    """What a log line splices after its own members (ingest.observe.logs) is the event's document."""
    utc = dataclasses.replace(event, timestamp=event.timestamp.astimezone(UTC))
    document = event_document(type(utc))(utc)
    assert orjson.dumps(document, option=orjson.OPT_UTC_Z) == event_json(utc) == event_json(event)


@settings(max_examples=200)
@given(st.lists(events, min_size=1, max_size=8))
def test_stored_rows_read_back_as_the_full_documents_in_order(stored: list[DomainEvent]) -> None:
    assert rows_to_json(events_rows(stored)) == [json.loads(event_json(event)) for event in stored]


def test_a_row_is_the_type_then_the_values_in_field_order() -> None:
    issue = ValidationIssue("amount", "coerced", "read 10.00 as 1000", IssueSeverity.WARNING)
    event = PaymentReceived(
        payment_id=PaymentId("pay_1"),
        request_id=RequestId("req_1"),
        merchant_id=MerchantId("m_1"),
        timestamp=datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
        accepted=True,
        amount_cents=1000,
        currency=Currency("USD"),
        validation_issues=(issue,),
    )

    assert event_values(event) == (
        "PaymentReceived",
        "pay_1",
        "req_1",
        "m_1",
        datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
        True,
        1000,
        "USD",
        None,
        None,
        ("amount", "coerced", "read 10.00 as 1000", "warning", None),
    )
    issues = event_values(event)[-1]
    assert isinstance(issues, tuple)
    assert type(issues[3]) is str  # the enum's value, not the member
    assert rows_to_json(()) == []


def test_a_failed_step_shows_whether_it_may_be_retried() -> None:
    ids = event_ids(
        PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_1"), datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    )
    timed_out, declined = (
        StepFailed(
            **ids,
            step_index=0,
            processor_id=ProcessorId("stripe_sim"),
            error_code=code,
            retryable=code.retryable,
            latency_ms=30,
            attempt=1,
        )
        for code in (ErrorCode.TIMEOUT, ErrorCode.DECLINED)
    )

    assert json.loads(event_json(timed_out)) == {
        "type": "StepFailed",
        "payment_id": "pay_1",
        "request_id": "req_1",
        "merchant_id": "m_1",
        "timestamp": "2026-11-26T08:00:00Z",
        "step_index": 0,
        "processor_id": "stripe_sim",
        "error_code": "timeout",
        "retryable": True,
        "latency_ms": 30,
        "attempt": 1,
        "decline_code": None,
        "failure_details": None,
    }
    assert json.loads(event_json(declined))["retryable"] is False
    assert [row["retryable"] for row in rows_to_json(events_rows([timed_out, declined]))] == [True, False]


def _failed_with_details() -> StepFailed:
    """A failed step whose processor said why (a dataclass the event holds)."""
    return StepFailed(
        **event_ids(PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_1"), AT),
        step_index=0,
        processor_id=ProcessorId("stripe_live"),
        error_code=ErrorCode.UNKNOWN,
        retryable=False,
        latency_ms=30,
        failure_details=FailureDetails(code="amount_too_small", param="amount"),
    )


def test_a_failed_steps_details_read_back_as_their_object() -> None:
    failed = _failed_with_details()
    without = dataclasses.replace(failed, failure_details=None)

    documents = rows_to_json(events_rows([failed, without]))

    assert [document["failure_details"] for document in documents] == [
        {"type": None, "code": "amount_too_small", "decline_code": None, "param": "amount", "message": None},
        None,
    ]


@settings(max_examples=100)
@given(events)
def test_a_log_lines_event_is_encoded_from_a_dict_not_the_slotted_event(event: DomainEvent) -> None:
    """orjson writes a slotted event about half as fast as a dict of its fields (it looks up the
    missing ``__dict__`` first): each of a payment's seven log lines pays that on the drain's thread.
    The dataclasses an event holds (a plan's steps, validation issues, failure details) are dicts too."""
    utc = dataclasses.replace(event, timestamp=event.timestamp.astimezone(UTC))
    document = event_document(type(utc))(utc)
    assert type(document) is dict
    held = [value for value in document.values() if value is not None]
    held += [item for value in held if type(value) is tuple for item in value]
    assert not any(dataclasses.is_dataclass(value) for value in held)


def _row_as_orjson_wrote_it(event: DomainEvent) -> bytes:
    """A row as the records encoded it before they kept rows unencoded: every field's value handed
    to orjson as it is (the dataclasses an event holds too), a currency as its code, a time in UTC."""
    values = [event.event_type, *(getattr(event, field.name) for field in dataclasses.fields(event))]
    wire = [
        value.code
        if isinstance(value, Currency)
        else value.astimezone(UTC)
        if isinstance(value, datetime)
        else value
        for value in values
    ]
    return orjson.dumps(wire, option=orjson.OPT_UTC_Z)


def _documents_as_read_before(encoded: bytes) -> list[dict[str, object]]:
    """What the records read back from those bytes: each row's values named by its kind's fields."""
    names = {kind.event_type: [field.name for field in dataclasses.fields(kind)] for kind in EVENT_STRATEGIES}
    return [
        {"type": kind, **dict(zip(names[kind], values, strict=True))}
        for kind, *values in orjson.loads(encoded)
    ]


@settings(max_examples=200)
@given(st.lists(events, max_size=6), st.sampled_from(list(EVENT_STRATEGIES)), st.data())
def test_a_payments_rows_read_back_as_the_documents_read_from_the_bytes_kept_before(
    stored: list[DomainEvent], kind: type[DomainEvent], data: st.DataObject
) -> None:
    """The memory records once kept a payment's events as the bytes orjson wrote of them; the
    documents read back from the rows they keep now are the same, value for value and key for key
    (in order): a plan's steps, validation issues, failure details, currencies, enums, and
    timestamps in any zone; every kind is among them."""
    stored.append(data.draw(EVENT_STRATEGIES[kind]))
    before = _documents_as_read_before(
        b"[" + b",".join(_row_as_orjson_wrote_it(event) for event in stored) + b"]"
    )

    documents = rows_to_json(events_rows(stored))

    assert documents == before
    assert [list(document.items()) for document in documents] == [
        list(document.items()) for document in before
    ]
    assert orjson.dumps(documents) == orjson.dumps(before)


@settings(max_examples=100)
@given(events)
def test_a_row_made_value_by_value_is_the_generated_one(event: DomainEvent) -> None:
    """What the records fall back to when a value is not of its field's type (a string where an
    enum belongs) is the row the generated function makes."""
    assert _plain_row(event) == event_values(event)
    loose = StepAttempted(
        **event_ids(event.payment_id, event.request_id, event.merchant_id, AT),
        step_index=0,
        processor_id=ProcessorId("p"),
        attempt=1,
        method=PaymentMethod.CARD,
        amount_cents=1,
        idempotency_key="k",
    )
    object.__setattr__(loose, "method", "card")  # as an unchecked constructor could leave it
    assert events_rows([event, loose]) == (event_values(event), _plain_row(loose))
    assert rows_to_json(events_rows([loose]))[0]["method"] == "card"


@settings(max_examples=100)
@given(events)
def test_a_stored_row_holds_plain_values_the_collector_stops_tracking(event: DomainEvent) -> None:
    """A long-running memory service keeps a row for every event: a row the collector tracks (one
    holding an enum member or a dataclass) would be walked by every full collection for good."""
    row = event_values(event)
    for _ in range(4):  # a tuple is dropped from view once those it holds are: a level a collection at worst
        gc.collect()
    assert not gc.is_tracked(row)
    held = [value for value in row if type(value) is tuple]
    held += [item for value in held for item in value if type(item) is tuple]
    assert not any(gc.is_tracked(value) for value in held)
    assert not any(isinstance(value, Enum) for value in (*row, *(item for value in held for item in value)))


def _plan_with(count: int) -> PlanBuilt:
    steps = tuple(
        PlannedStep(index, PaymentMethod.CARD, 100 + index, (ProcessorId(f"sim_{index}"),))
        for index in range(count)
    )
    return PlanBuilt(
        **event_ids(PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_1"), AT),
        total_amount_cents=sum(step.amount_cents for step in steps) or 1,
        currency=Currency("USD"),
        steps=steps,
        coverage_shortfall_cents=0 if steps else 1,  # nothing planned: the whole amount short
    )


def test_a_document_writes_one_or_two_held_dataclasses_out_without_a_call_each() -> None:
    """A payment's PaymentReceived holds its warnings (two when the merchant and method are left
    to the defaults) and its PlanBuilt its steps (two for a split): a call a dataclass cost about
    1.4k instructions more than its dict written out, on the log drain's thread."""
    issue = ValidationIssue("amount", "coerced", "read 10.00 as 1000", IssueSeverity.WARNING)
    failed = _failed_with_details()
    received = [
        PaymentReceived(
            **event_ids(PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_1"), AT),
            accepted=True,
            validation_issues=(issue,) * count,
        )
        for count in (1, 2)
    ]

    for event in (_plan_with(1), _plan_with(2), failed, *received):
        assert _python_calls(event_document(type(event)), event) == ["document"]


def test_held_dataclasses_are_their_fields_dicts_in_order_however_many_there_are() -> None:
    for count in range(4):
        plan = _plan_with(count)
        document = event_document(PlanBuilt)(plan)
        assert document["steps"] == tuple(
            {"index": at, "method": "card", "amount_cents": 100 + at, "processor_ids": (f"sim_{at}",)}
            for at in range(count)
        )
        assert orjson.dumps(document, option=orjson.OPT_UTC_Z) == event_json(plan)


@settings(max_examples=100)
@given(st.lists(events, min_size=1, max_size=12))
def test_a_refilled_document_is_each_events_own_document(stored: list[DomainEvent]) -> None:
    """One dict a kind, refilled event after event, holds nothing of the event before."""
    refills = {kind: refilled_event_document(kind) for kind in {type(event) for event in stored}}
    kept: dict[type, dict[str, object]] = {}
    for event in stored:
        utc = dataclasses.replace(event, timestamp=event.timestamp.astimezone(UTC))
        document = refills[type(utc)](utc)
        assert kept.setdefault(type(utc), document) is document
        assert document == event_document(type(utc))(utc)
        assert list(document) == list(event_document(type(utc))(utc))
        assert orjson.dumps(document, option=orjson.OPT_UTC_Z) == event_json(event)
