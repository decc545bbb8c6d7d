"""Domain events as JSON: ``{"type": "StepSucceeded", "timestamp": "2026-11-26T08:00:00.123456Z",
...fields}``, with enums as their values, currencies as their codes, planned steps and validation
issues as objects, and tuples as arrays.

:func:`event_values` is the compact form the memory records keep: ``("StepSucceeded", value,
...)``, the values in field order, each a plain value (a string, number, bool, ``None`` or
datetime; an enum as its value, a currency as its code, a dataclass the event holds as the tuple
of its values). :func:`events_json` encodes a payment's rows together, as the memory records keep
them, and :func:`stored_json_to_documents` reads them back into the objects :func:`event_json`
gives.

orjson writes dataclasses, datetimes (RFC 3339, ``Z``), enums and tuples itself, so most events are
encoded straight from the object, with the ``type`` spliced in front. Events with a ``Currency``
field (a dataclass that must appear as its bare code) and timestamps outside UTC go through a
dict first. Every event is encoded once on the payment path, so this is kept lean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from itertools import chain
from operator import attrgetter
from types import UnionType
from typing import Union, get_args, get_origin, get_type_hints

import orjson

from engine.events import DomainEvent
from engine.money import Currency


class _Shape:
    """What encoding one event class needs: its field names, its ``{"type":...,`` prefix, a getter
    of its type and every field's value, its document as a dict, its stored row as a tuple, where
    a field may hold a ``Currency``, and the dataclasses its row holds as tuples (``held``)."""

    __slots__ = (
        "currencies",
        "document",
        "has_currency",
        "held",
        "names",
        "prefix",
        "refiller",
        "row",
        "values",
    )

    def __init__(self, kind: type[DomainEvent]) -> None:
        own = fields(kind)
        self.names = tuple(field.name for field in own)
        #: In a row of :func:`event_values` (the type first), the fields that may hold a Currency.
        self.currencies = tuple(at + 1 for at, field in enumerate(own) if "Currency" in str(field.type))
        self.has_currency = bool(self.currencies)
        self.prefix = b'{"type":' + orjson.dumps(kind.event_type) + b","
        # The type first, then every field: attrgetter of several names gives a tuple.
        self.values: Callable[[DomainEvent], tuple[object, ...]] = attrgetter("event_type", *self.names)
        self.document, self.row, self.refiller, self.held = _generated(kind, self.names, self.currencies)


def _generated(
    kind: type[DomainEvent], names: tuple[str, ...], currencies: tuple[int, ...]
) -> tuple[
    Callable[[DomainEvent], dict[str, object]],
    Callable[[DomainEvent], tuple[object, ...]],
    Callable[[], Callable[[DomainEvent], dict[str, object]]],
    tuple[_Held, ...],
]:
    """Two functions of the event, each one generated expression: its document as a dict (its
    type, then every field; a currency as its code), for a log line, and its stored row as a
    tuple of plain values (:func:`event_values`); a maker of the document function that refills
    one dict of its own (:func:`refilled_event_document`); and where the row holds dataclasses
    as tuples.

    orjson writes the slotted dataclass itself at about 12k instructions (it first looks up the
    ``__dict__`` the event lacks, which formats an AttributeError each time), the document at
    under half that; ``dict(zip(names, values))`` cost as much as it saved. A log line encodes
    one event, seven a payment, on the drain's thread. The slotted dataclasses an event holds (a
    plan's steps, a request's validation issues, a refusal's details) are dicts in the document,
    for the same reason: orjson took about 5.8k instructions for each, their dicts about a fifth
    of that.

    The row is only built when a payment ends, for all its events at once, and encoded with them
    in one call (:func:`events_json`). Its values are strings, numbers, datetimes and flat tuples
    of them."""
    try:
        hints = get_type_hints(kind)
    except (NameError, TypeError):  # an annotation that does not resolve: orjson writes the field
        hints = {}
    namespace: dict[str, object] = {"_type": kind.event_type, "_Currency": Currency}
    documented, stored, held = [], [], []
    for at, name in enumerate(names):
        value = f"event.{name}"
        nested = _nested(hints.get(name))
        if at + 1 in currencies:
            value = f"(v.code if type(v := {value}) is _Currency else v)"
            documented.append(value)
            stored.append(value)
        elif nested is not None:
            namespace[f"_{name}"] = _nested_documenter(nested[0])
            documented.append(_nested_document(nested[0], nested[1], f"_{name}", value))
            stored.append(_nested_row(nested[0], nested[1], value))
            held.append(_Held(at, tuple(field.name for field in fields(nested[0])), nested[1]))
        else:
            documented.append(value)
            stored.append(_stored_value(hints.get(name), value))
    members = ", ".join(f'"{name}": {value}' for name, value in zip(names, documented, strict=True))
    empty = ", ".join(f'"{name}": None' for name in names)
    fills = "".join(
        f'        kept["{name}"] = {value}\n' for name, value in zip(names, documented, strict=True)
    )
    source = (
        f'def document(event):\n    return {{"type": _type, {members}}}\n'
        f"def row(event):\n    return (_type, {', '.join(stored)})\n"
        f'def refiller():\n    kept = {{"type": _type, {empty}}}\n'
        f"    def refill(event):\n{fills}        return kept\n    return refill\n"
    )
    exec(source, namespace)  # noqa: S102 - generated from the dataclass's own field names
    document: Callable[[DomainEvent], dict[str, object]] = namespace["document"]  # type: ignore[assignment]
    row: Callable[[DomainEvent], tuple[object, ...]] = namespace["row"]  # type: ignore[assignment]
    refiller: Callable[[], Callable[[DomainEvent], dict[str, object]]] = namespace["refiller"]  # type: ignore[assignment]
    return document, row, refiller, tuple(held)


@dataclass(frozen=True, slots=True)
class _Held:
    """A field of a stored row holding dataclasses as their values (:func:`_nested_row`): where it
    is among the row's values (after the type), the dataclass's field names, and how many it
    holds (the expression of :func:`_nested`: a tuple of them, one or ``None``, or exactly one)."""

    at: int
    names: tuple[str, ...]
    form: str

    @property
    def many(self) -> bool:
        """Whether the field holds a tuple of them (stored as all their values in one tuple)."""
        return self.form.startswith("tuple")

    def document(self, value: list[object] | None) -> object:
        """The field's value, read back from JSON, as the dict(s) :func:`event_json` gives."""
        if value is None:
            return None
        if not self.many:
            return dict(zip(self.names, value, strict=True))
        size = len(self.names)
        return [
            dict(zip(self.names, value[at : at + size], strict=True)) for at in range(0, len(value), size)
        ]


def _stored_value(hint: object, value: str) -> str:
    """The expression of a stored row's value of a field of this type, read by ``value``: an
    enum as its value (an enum member is an object the collector tracks, a string is not). Any
    other value is kept as it is. A value not of its field's type (a string in an enum field)
    fails here: :func:`events_rows` then reads the event with :func:`_plain`."""
    held = [arg for arg in get_args(hint) if arg is not type(None)] or [hint]
    if len(held) != 1 or not isinstance(held[0], type) or not issubclass(held[0], Enum):
        return value
    if type(None) in get_args(hint):
        return f"(None if {value} is None else {value}._value_)"
    return f"{value}._value_"


def _nested_row(kind: type, form: str, value: str) -> str:
    """The expression of a stored row's value of a field holding ``kind`` dataclasses (``form``,
    of :func:`_nested`), read by ``value``: one as the tuple of its fields' stored values, a tuple
    of them as one tuple of all their values, one after the other (a tuple of tuples would be
    more objects for the collector to track until it drops them, a level a collection). Made inline:
    a function called per dataclass cost about three times as much; a tuple of one or two (a
    request's warnings, a plan's steps) is written out, as a comprehension is a function call of
    its own (about 1k instructions on Python 3.11)."""
    try:
        hints = get_type_hints(kind)
    except (NameError, TypeError):
        hints = {}
    names = [field.name for field in fields(kind)]

    def values(first: str) -> str:  # the dataclass's values, the first read through ``first``
        reads = [f"{first}.{names[0]}", *(f"d.{name}" for name in names[1:])]
        return ", ".join(
            _stored_value(hints.get(name), read) for name, read in zip(names, reads, strict=True)
        )

    if not form.startswith("tuple"):
        return f"(({values('d')},) if (d := {value}) is not None else None)"
    first, second = values("(d := v[0])"), values("(d := v[1])")
    return (
        f"(() if not (v := {value}) else ({first},) if len(v) == 1 else ({first}, {second}) "
        f"if len(v) == 2 else tuple([x for d in v for x in ({values('d')},)]))"
    )


def _nested_document(kind: type, form: str, function: str, value: str) -> str:
    """The expression of a document's value of a field holding ``kind`` dataclasses (``form``, of
    :func:`_nested`), read by ``value``: each as the dict of its fields, in order, written out
    inline for one or two of them (a request's warnings, a plan's steps), and made by ``function``
    (:func:`_nested_documenter`) for more. A call of that function for each, through ``map``, cost
    about 1.7k instructions a dataclass, two a payment in a PaymentReceived and two in a
    PlanBuilt; the dict written out, about a third of that."""
    names = [field.name for field in fields(kind)]

    def document(first: str) -> str:  # the dataclass's dict, its first field read through ``first``
        reads = [f"{first}.{names[0]}", *(f"d.{name}" for name in names[1:])]
        return "{" + ", ".join(f'"{name}": {read}' for name, read in zip(names, reads, strict=True)) + "}"

    if form.startswith("tuple"):
        return (
            f"(() if not (v := {value}) else ({document('(d := v[0])')},) if len(v) == 1 else "
            f"({document('(d := v[0])')}, {document('(d := v[1])')}) if len(v) == 2 else "
            f"{form.format(function, 'v')})"
        )
    if form.startswith("(None"):
        return f"(None if (d := {value}) is None else {document('d')})"
    return document(f"(d := {value})")


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


def refilled_event_document(kind: type[DomainEvent]) -> Callable[[DomainEvent], dict[str, object]]:
    """:func:`event_document`'s function, but giving one dict of its own each call, its values
    replaced: the caller owns it only until its next call, and only one thread may call it (a
    log writer's drain thread, which encodes it at once). Setting the values of a dict that has
    its keys already cost about 850 instructions less than building a new one and freeing it,
    for each of a payment's seven log lines."""
    refill: Callable[[DomainEvent], dict[str, object]] = _shape(kind).refiller()
    return refill


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
    """The event's stored row: its type, then its fields' values in field order, each a plain
    value (a currency as its code, an enum as its value, a dataclass it holds as the tuple of its
    fields' values, the timestamp as it is, in whatever zone), as :func:`rows_to_json` reads it
    back."""
    return _shape(type(event)).row(event)


class _Rows(dict[type, Callable[[DomainEvent], tuple[object, ...]]]):
    """Every event kind's row function (:func:`event_values` without its two calls a row)."""

    def __missing__(self, kind: type[DomainEvent]) -> Callable[[DomainEvent], tuple[object, ...]]:
        row = self[kind] = _shape(kind).row
        return row


_ROWS = _Rows()


def events_rows(events: Sequence[DomainEvent]) -> tuple[tuple[object, ...], ...]:
    """The events' stored rows (:func:`event_values`), in order, made in one call once a payment
    ends (:func:`events_json` encodes them)."""
    rows = _ROWS
    try:
        return tuple([rows[type(event)](event) for event in events])
    except AttributeError:  # a value not of its field's type: each value read for what it is
        return tuple([_plain_row(event) for event in events])


def _plain_row(event: DomainEvent) -> tuple[object, ...]:
    """The event's stored row made value by value, whatever the values' types: what
    :func:`event_values` makes of an event whose values are of their fields' types."""
    shape = _shape(type(event))
    values = [_plain(value) for value in shape.values(event)[1:]]
    for held in shape.held:
        if held.many and type(values[held.at]) is tuple:
            values[held.at] = tuple(chain.from_iterable(values[held.at]))  # type: ignore[arg-type]
    return (event.event_type, *values)


def _plain(value: object) -> object:
    """``value`` as a stored row holds it: an enum as its value, a currency as its code, another
    dataclass as the tuple of its fields' values, a tuple as the tuple of its items'."""
    if isinstance(value, Enum):
        return value._value_
    if type(value) is Currency:
        return value.code
    if is_dataclass(value) and not isinstance(value, type):
        return tuple(_plain(getattr(value, field.name)) for field in fields(value))
    if type(value) is tuple:
        return tuple(_plain(item) for item in value)
    return value


def events_json(events: Sequence[DomainEvent]) -> bytes:
    """The events' rows (:func:`events_rows`) as JSON, comma-separated without brackets (two
    payments' are joined with a comma): what the memory records keep of a payment's events once
    it ends, read back by :func:`stored_json_to_documents`.

    Bytes, which the collector never looks at. Kept as tuples, a row holding a tuple (a
    PaymentReceived's issues, a PlanBuilt's steps) and each payment's tuple of rows outlived
    their first collection (the collector checks the outer tuple before the inner one it has just
    moved), so every payment left tuples for the next generation: its collections took 7-10 ms
    instead of 2-4 at 30,000 payments, in one pause each. The encoding costs about 1.5 µs a payment;
    the slice makes bytes of their own length (orjson's keep its whole buffer)."""
    rows: Sequence[tuple[object, ...]] = events_rows(events)
    for event in events:
        if event.timestamp.tzinfo is not UTC:
            rows = _in_utc(rows)
            break
    return orjson.dumps(rows, option=orjson.OPT_UTC_Z)[1:-1]


def _in_utc(rows: Sequence[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The rows with every time in UTC: the engine clock is UTC; another offset is shown in UTC."""
    return [
        tuple(
            value.astimezone(UTC) if type(value) is datetime and value.tzinfo is not UTC else value
            for value in row
        )
        for row in rows
    ]


def rows_to_json(rows: Sequence[tuple[object, ...]]) -> list[dict[str, object]]:
    """Rows (:func:`event_values`) as the documents :func:`event_json` gives, in order: encoded as
    :func:`events_json` encodes them, and read back by :func:`stored_json_to_documents`."""
    return stored_json_to_documents(orjson.dumps(_in_utc(rows), option=orjson.OPT_UTC_Z)[1:-1])


def stored_json_to_documents(stored: bytes) -> list[dict[str, object]]:
    """What :func:`events_json` kept, as the documents :func:`event_json` gives, in order: every
    value reads as it does there, and the values of the dataclasses a row holds become their
    dicts again."""
    documents: list[dict[str, object]] = []
    if not stored:
        return documents
    for kind, *values in orjson.loads(b"[" + stored + b"]"):
        shape = _BY_TYPE[kind]
        for held in shape.held:
            values[held.at] = held.document(values[held.at])
        documents.append({"type": kind, **dict(zip(shape.names, values, strict=True))})
    return documents
