"""Domain events as JSON objects: ``{"type": "StepSucceeded", "timestamp": ..., ...fields}``."""

from __future__ import annotations

from dataclasses import fields
from enum import Enum

from engine.events import DomainEvent, PlannedStep
from engine.money import Currency
from engine.validation import ValidationIssue
from ingest.codec.result_json import JsonObject, issue_to_json, utc_timestamp


def event_to_json(event: DomainEvent) -> JsonObject:
    """``{"type": "StepSucceeded", "timestamp": ..., ...fields}`` with wire values throughout."""
    document: JsonObject = {"type": event.event_type}
    for item in fields(event):
        value = getattr(event, item.name)
        if item.name == "timestamp":
            document["timestamp"] = utc_timestamp("event.timestamp", value)
        else:
            document[item.name] = _wire(value)
    return document


def _wire(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Currency):
        return value.code
    if isinstance(value, ValidationIssue):
        return issue_to_json(value)
    if isinstance(value, PlannedStep):
        return {
            "index": value.index,
            "method": value.method.value,
            "amount_cents": value.amount_cents,
            "processor_ids": list(value.processor_ids),
        }
    if isinstance(value, tuple | list):
        return [_wire(item) for item in value]
    return value
