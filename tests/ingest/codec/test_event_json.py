"""Events as JSON: the fast orjson encoding against a plain, field-by-field reading of the event,
and the compact rows a store keeps against the full documents."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from enum import Enum

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.error_codes import ErrorCode
from engine.events import DomainEvent, PaymentReceived, PlannedStep, StepFailed, event_ids
from engine.failure_details import FailureDetails
from engine.money import Currency
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from engine.validation import IssueSeverity, ValidationIssue
from ingest.codec.event_json import (
    event_document,
    event_json,
    event_row,
    event_values,
    rows_json,
    rows_to_json,
)
from tests.strategies import EVENT_STRATEGIES, events


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
    rows = b",".join(event_row(event) for event in stored)

    assert rows_to_json(rows) == [json.loads(event_json(event)) for event in stored]


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

    assert json.loads(event_row(event)) == [
        "PaymentReceived",
        "pay_1",
        "req_1",
        "m_1",
        "2026-11-26T08:00:00Z",
        True,
        1000,
        "USD",
        None,
        None,
        [
            {
                "field": "amount",
                "code": "coerced",
                "message": "read 10.00 as 1000",
                "severity": "warning",
                "raw": None,
            }
        ],
    ]
    assert rows_to_json(b"") == []


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
    assert [row["retryable"] for row in rows_to_json(event_row(timed_out) + b"," + event_row(declined))] == [
        True,
        False,
    ]


def test_a_row_stored_before_a_field_was_added_reads_it_as_null() -> None:
    ids = event_ids(
        PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_1"), datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    )
    failed = StepFailed(
        **ids,
        step_index=0,
        processor_id=ProcessorId("stripe_live"),
        error_code=ErrorCode.UNKNOWN,
        retryable=False,
        latency_ms=30,
        failure_details=FailureDetails(code="amount_too_small", param="amount"),
    )
    row = json.loads(event_row(failed))
    older = json.dumps(row[:-1]).encode()  # a row written before StepFailed had failure_details

    (document,) = rows_to_json(older)

    assert document["failure_details"] is None
    assert rows_to_json(event_row(failed))[0]["failure_details"] == {
        "type": None,
        "code": "amount_too_small",
        "decline_code": None,
        "param": "amount",
        "message": None,
    }


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
    """A row as the records encoded it before their rows held dicts: every field's value handed to
    orjson as it is (the dataclasses an event holds too), a currency as its code, a time in UTC."""
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


@settings(max_examples=200)
@given(st.lists(events, max_size=6), st.sampled_from(list(EVENT_STRATEGIES)), st.data())
def test_a_payments_rows_are_the_bytes_orjson_wrote_from_the_events_themselves(
    stored: list[DomainEvent], kind: type[DomainEvent], data: st.DataObject
) -> None:
    """The bytes the memory records keep for a payment's events (rows_json of their rows) are the
    ones they kept when orjson was given the events' dataclasses; every kind is among them."""
    stored.append(data.draw(EVENT_STRATEGIES[kind]))

    encoded = rows_json([event_values(event) for event in stored])

    assert encoded == b",".join(_row_as_orjson_wrote_it(event) for event in stored)
    assert rows_to_json(encoded) == [json.loads(event_json(event)) for event in stored]


@settings(max_examples=100)
@given(events)
def test_a_stored_rows_values_hold_dicts_not_the_slotted_dataclasses(event: DomainEvent) -> None:
    """orjson formats and discards an AttributeError for each slotted dataclass it writes (it looks
    for ``__dict__`` first): a plan's steps and a request's validation issues, four a two-step
    payment, reach it from the memory records' rows as dicts."""
    row = event_values(event)
    held = [value for value in row if value is not None]
    held += [item for value in held if type(value) is tuple for item in value]
    assert not any(dataclasses.is_dataclass(value) for value in held)
