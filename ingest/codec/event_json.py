"""Domain events as JSON: ``{"type": "StepSucceeded", "timestamp": "2026-11-26T08:00:00.123456Z",
...fields}``, with enums as their values, currencies as their codes, planned steps and validation
issues as objects, and tuples as arrays.

:func:`event_json` encodes with orjson, which writes datetimes (RFC 3339, ``Z``), enums, tuples and
plain dataclasses itself; only ``Currency`` (a dataclass that must appear as its bare code) is
converted first. Every event is encoded once on the payment path, so this is kept lean.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

import orjson

from engine.events import DomainEvent
from engine.money import Currency

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _names(kind: type[DomainEvent]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(field.name for field in fields(kind))
    return names


def event_json(event: DomainEvent) -> bytes:
    """The event as JSON bytes."""
    document: dict[str, object] = {"type": event.event_type}
    for name in _names(type(event)):
        value = getattr(event, name)
        if type(value) is Currency:
            value = value.code
        elif type(value) is datetime and value.tzinfo is not UTC:
            value = value.astimezone(UTC)  # the engine clock is UTC; another offset is shown in UTC
        document[name] = value
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)
