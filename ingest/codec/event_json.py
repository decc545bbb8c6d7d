"""Domain events as JSON: ``{"type": "StepSucceeded", "timestamp": "2026-11-26T08:00:00.123456Z",
...fields}``, with enums as their values, currencies as their codes, planned steps and validation
issues as objects, and tuples as arrays.

orjson writes dataclasses, datetimes (RFC 3339, ``Z``), enums and tuples itself, so most events are
encoded straight from the object, with the ``type`` spliced in front. Events with a ``Currency``
field (a dataclass that must appear as its bare code) and timestamps outside UTC go through a
dict first. Every event is encoded once on the payment path, so this is kept lean.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

import orjson

from engine.events import DomainEvent
from engine.money import Currency


class _Shape:
    """What encoding one event class needs: its field names, its ``{"type":...,`` prefix, and
    whether a field may hold a ``Currency``."""

    __slots__ = ("has_currency", "names", "prefix")

    def __init__(self, kind: type[DomainEvent]) -> None:
        own = fields(kind)
        self.names = tuple(field.name for field in own)
        self.has_currency = any("Currency" in str(field.type) for field in own)
        self.prefix = b'{"type":' + orjson.dumps(kind.event_type) + b","


_SHAPES: dict[type, _Shape] = {}


def event_json(event: DomainEvent) -> bytes:
    """The event as JSON bytes."""
    kind = type(event)
    shape = _SHAPES.get(kind)
    if shape is None:
        shape = _SHAPES[kind] = _Shape(kind)
    if not shape.has_currency and event.timestamp.tzinfo is UTC:
        return shape.prefix + orjson.dumps(event, option=orjson.OPT_UTC_Z)[1:]
    document: dict[str, object] = {"type": event.event_type}
    for name in shape.names:
        value = getattr(event, name)
        if type(value) is Currency:
            value = value.code
        elif type(value) is datetime and value.tzinfo is not UTC:
            value = value.astimezone(UTC)  # the engine clock is UTC; another offset is shown in UTC
        document[name] = value
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)
