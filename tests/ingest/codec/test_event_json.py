"""Events as JSON: the fast orjson encoding against a plain, field-by-field reading of the event."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from enum import Enum

from hypothesis import given, settings

from engine.events import DomainEvent, PlannedStep
from engine.money import Currency
from engine.validation import ValidationIssue
from ingest.codec.event_json import event_json
from tests.strategies import events


def _expected(value: object) -> object:
    if isinstance(value, datetime):
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
        return text + "Z"
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Currency):
        return value.code
    if isinstance(value, ValidationIssue | PlannedStep):
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
