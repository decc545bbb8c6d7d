"""Domain events as JSON: ``{"type": "StepSucceeded", "timestamp": "2026-11-26T08:00:00.123456Z",
...fields}``, with enums as their values, currencies as their codes, planned steps and validation
issues as objects, and tuples as arrays.

:func:`event_row` is the compact form a store keeps: ``["StepSucceeded", value, ...]``, the values
in field order, about a third of the cost of an object. :func:`event_values` is the same row not
yet encoded, for a store that encodes a payment's rows together (:func:`rows_json`, one encoder
call for all of them); :func:`rows_to_json` reads stored rows back into the objects
:func:`event_json` gives.

orjson writes dataclasses, datetimes (RFC 3339, ``Z``), enums and tuples itself, so most events are
encoded straight from the object, with the ``type`` spliced in front. Events with a ``Currency``
field (a dataclass that must appear as its bare code) and timestamps outside UTC go through a
dict first. Every event is encoded once on the payment path, so this is kept lean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from operator import attrgetter
from types import UnionType
from typing import Union, get_args, get_origin, get_type_hints

import orjson

from engine.events import DomainEvent
from engine.money import Currency


class _Shape:
    """What encoding one event class needs: its field names, its ``{"type":...,`` prefix, a getter
    of its type and every field's value, its document as a dict, its stored row as a tuple, and
    where a field may hold a ``Currency``."""

    __slots__ = ("currencies", "document", "has_currency", "names", "prefix", "row", "values")

    def __init__(self, kind: type[DomainEvent]) -> None:
        own = fields(kind)
        self.names = tuple(field.name for field in own)
        #: In a row of :func:`event_values` (the type first), the fields that may hold a Currency.
        self.currencies = tuple(at + 1 for at, field in enumerate(own) if "Currency" in str(field.type))
        self.has_currency = bool(self.currencies)
        self.prefix = b'{"type":' + orjson.dumps(kind.event_type) + b","
        # The type first, then every field: attrgetter of several names gives a tuple.
        self.values: Callable[[DomainEvent], tuple[object, ...]] = attrgetter("event_type", *self.names)
        self.document, self.row = _generated(kind, self.names, self.currencies)


def _generated(
    kind: type[DomainEvent], names: tuple[str, ...], currencies: tuple[int, ...]
) -> tuple[Callable[[DomainEvent], dict[str, object]], Callable[[DomainEvent], tuple[object, ...]]]:
    """Two functions of the event, each one generated expression: its document as a dict (its
    type, then every field) and its row as a tuple (its type, then every field's value), a
    currency as its code. orjson writes the slotted dataclass itself at about 12k instructions
    (it first looks up the ``__dict__`` the event lacks, which formats an AttributeError each
    time), this dict at under half that; ``dict(zip(names, values))`` cost as much as it saved. A
    log line encodes one event, seven a payment, on the drain's thread.

    The slotted dataclasses an event holds (a plan's steps, a request's validation issues, a
    refusal's details) are dicts in both, for the same reason: orjson took about 5.8k
    instructions for each, their dicts about a fifth of that (four of them a two-step payment,
    in its log lines and again in its stored rows)."""
    try:
        hints = get_type_hints(kind)
    except (NameError, TypeError):  # an annotation that does not resolve: orjson writes the field
        hints = {}
    namespace: dict[str, object] = {"_type": kind.event_type, "_Currency": Currency}
    values = []
    for at, name in enumerate(names):
        value = f"event.{name}"
        nested = _nested(hints.get(name))
        if at + 1 in currencies:
            value = f"(v.code if type(v := {value}) is _Currency else v)"
        elif nested is not None:
            namespace[f"_{name}"] = _nested_documenter(nested[0])
            value = nested[1].format(f"_{name}", value)
        values.append(value)
    members = ", ".join(f'"{name}": {value}' for name, value in zip(names, values, strict=True))
    source = (
        f'def document(event):\n    return {{"type": _type, {members}}}\n'
        f"def row(event):\n    return (_type, {', '.join(values)})\n"
    )
    exec(source, namespace)  # noqa: S102 - generated from the dataclass's own field names
    document: Callable[[DomainEvent], dict[str, object]] = namespace["document"]  # type: ignore[assignment]
    row: Callable[[DomainEvent], tuple[object, ...]] = namespace["row"]  # type: ignore[assignment]
    return document, row


def _nested(hint: object) -> tuple[type, str] | None:
    """The dataclass a field of this type holds (``D``, ``D | None`` or ``tuple[D, ...]``), and
    the expression giving its dict(s) from ``{0}``, the dataclass's function, and ``{1}``, the
    field's value; ``None`` for any other type."""
    held = [arg for arg in get_args(hint) if arg is not type(None) and arg is not Ellipsis] or [hint]
    if len(held) != 1 or not isinstance(held[0], type) or not is_dataclass(held[0]):
        return None
    if get_origin(hint) is tuple:
        return held[0], "tuple(map({0}, {1}))"
    if get_origin(hint) in (UnionType, Union):
        return held[0], "(None if (v := {1}) is None else {0}(v))"
    return held[0], "{0}({1})"


def _nested_documenter(kind: type) -> Callable[[object], dict[str, object]]:
    """A function giving a dataclass held by an event as the dict of its fields, in order."""
    members = ", ".join(f'"{field.name}": value.{field.name}' for field in fields(kind))
    namespace: dict[str, object] = {}
    exec(f"def nested(value):\n    return {{{members}}}\n", namespace)  # noqa: S102 - the fields' names
    nested: Callable[[object], dict[str, object]] = namespace["nested"]  # type: ignore[assignment]
    return nested


_SHAPES: dict[type, _Shape] = {}
_BY_TYPE: dict[str, _Shape] = {}


def _shape(kind: type[DomainEvent]) -> _Shape:
    shape = _SHAPES.get(kind)
    if shape is None:
        shape = _SHAPES[kind] = _BY_TYPE[kind.event_type] = _Shape(kind)
    return shape


def _wire(value: object) -> object:
    if type(value) is Currency:
        return value.code
    if type(value) is datetime and value.tzinfo is not UTC:
        return value.astimezone(UTC)  # the engine clock is UTC; another offset is shown in UTC
    return value


def event_json(event: DomainEvent) -> bytes:
    """The event as JSON bytes."""
    shape = _shape(type(event))
    if not shape.has_currency and event.timestamp.tzinfo is UTC:
        return shape.prefix + orjson.dumps(event, option=orjson.OPT_UTC_Z)[1:]
    document: dict[str, object] = {"type": event.event_type}
    for name in shape.names:
        document[name] = _wire(getattr(event, name))
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)


def event_document(kind: type[DomainEvent]) -> Callable[[DomainEvent], dict[str, object]]:
    """A function giving an event of ``kind`` whose timestamp is in UTC as a dict that orjson,
    with ``OPT_UTC_Z``, writes as :func:`event_json` does (a currency as its code). A log line
    splices that JSON after its own members: the caller keeps the function, so that each line
    makes one call (the lookup of the event's shape and a wrapper round it cost about a fifth
    of what encoding the event does)."""
    return _shape(kind).document


def event_fields(event: DomainEvent) -> dict[str, object]:
    """The event's fields by name, as values orjson writes (a currency as its code; nested steps
    and issues stay dataclasses, enums stay enums): the JSON of :func:`event_json` without the
    ``type``, not yet encoded."""
    shape = _shape(type(event))
    fields = dict(zip(shape.names, shape.values(event)[1:], strict=True))
    if shape.has_currency:
        for name, value in fields.items():
            if type(value) is Currency:
                fields[name] = value.code
    return fields


def event_values(event: DomainEvent) -> tuple[object, ...]:
    """The event's row before encoding: its type, then its fields' values in field order (a
    currency as its code, a dataclass it holds as a dict of its fields)."""
    row = _shape(type(event)).row(event)
    if event.timestamp.tzinfo is not UTC:
        return tuple(_wire(value) for value in row)
    return row


def rows_json(rows: list[tuple[object, ...]]) -> bytes:
    """Rows of :func:`event_values`, encoded together, comma-separated (no brackets)."""
    return orjson.dumps(rows, option=orjson.OPT_UTC_Z)[1:-1]


def event_row(event: DomainEvent) -> bytes:
    """The event as a compact JSON array: its type, then its fields' values in field order."""
    return orjson.dumps(event_values(event), option=orjson.OPT_UTC_Z)


def rows_to_json(rows: bytes) -> list[dict[str, object]]:
    """Comma-separated rows of :func:`event_row` as the documents :func:`event_json` gives.

    A row stored before its event gained a field (fields are only ever added at the end, each with
    the default ``None``: ``StepFailed.failure_details``) is shorter: the missing fields read null.
    """
    documents: list[dict[str, object]] = []
    for row in orjson.loads(b"[" + rows + b"]"):
        kind, *values = row
        names = _BY_TYPE[kind].names
        if len(values) < len(names):
            values += [None] * (len(names) - len(values))
        documents.append({"type": kind, **dict(zip(names, values, strict=True))})
    return documents
