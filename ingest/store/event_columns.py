"""The columns of ``events`` that say what an amount is and how its payment went (migration 8):
``currency``, ``method``, ``status``, ``attempt`` and ``latency_ms``.

Without them an analytics reader summed ``amount_cents`` of USD, EUR, JPY and KWD together and
could not tell card from Apple Pay: they were only in the ``payments.events.v1`` envelope, which
the reads and ``payorch export`` leave out. An envelope holds only what its event says, and a
``StepSucceeded`` names neither its currency nor its step's method: those are the payment's
:class:`PaymentTerms`, from its ``PaymentReceived`` and then its ``PlanBuilt``. The writer's caller
keeps each running payment's terms and hands them over with each event, whose columns the writer
cuts from the event (:func:`columns`); migration 8 fills the rows written before it from their
envelopes, read in ``seq`` order (:func:`fill_columns`), cut the same way (the tests hold the two
to the same rows), so an old row reads as a new one would.

Per event: ``currency`` is the payment's (on every event once it is known; ``null`` for a refused
request that gave none); ``method`` is the method asked for on ``PaymentReceived`` (``null``: none
usable) and the step's method on ``StepAttempted``, ``StepSucceeded``, ``StepFailed`` and
``CompensationIssued``; ``status`` is the payment's end on its last event (``succeeded`` or
``partially_succeeded`` on ``PaymentCompleted``, ``failed`` on ``PaymentFailed``, ``rejected`` on a
refused ``PaymentReceived``); ``attempt`` is that of ``StepAttempted``, ``StepSucceeded`` and
``StepFailed`` (0: nothing was sent); ``latency_ms`` that of ``StepSucceeded`` and ``StepFailed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
from google.protobuf.message import DecodeError
from payments.events.v1 import events_pb2

from engine.events import (
    CompensationIssued,
    DomainEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    StepAttempted,
    StepFailed,
    StepSucceeded,
)
from ingest.codec.enums import PAYMENT_METHODS, PAYMENT_STATUSES
from ingest.codec.result_json import REJECTED

#: The columns, in the table's order (after ``decline_code``): name, SQL type, Arrow type.
_TYPES: tuple[tuple[str, str, pa.DataType], ...] = (
    ("currency", "VARCHAR", pa.string()),
    ("method", "VARCHAR", pa.string()),
    ("status", "VARCHAR", pa.string()),
    ("attempt", "INTEGER", pa.int32()),
    ("latency_ms", "BIGINT", pa.int64()),
)
#: The columns as the writer's Arrow schema has them.
COLUMNS: tuple[tuple[str, pa.DataType], ...] = tuple((name, kind) for name, _, kind in _TYPES)
#: Migration 8's statements: the columns, NULL until :func:`fill_columns` fills them.
ADD_COLUMNS: tuple[str, ...] = tuple(f"ALTER TABLE events ADD COLUMN {name} {sql}" for name, sql, _ in _TYPES)

_METHODS = {int(wire): member.value for member, wire in PAYMENT_METHODS.pairs.items()}
_STATUSES = {int(wire): member.value for member, wire in PAYMENT_STATUSES.pairs.items()}
_FAILED = "failed"
_ENDINGS = frozenset({"payment_completed", "payment_failed"})


@dataclass(frozen=True, slots=True)
class PaymentTerms:
    """What every event of a payment is about: its currency (ISO 4217 code; ``None`` while none
    is known) and the method of each step of its plan, by step index."""

    currency: str | None
    methods: tuple[str | None, ...] = ()

    def method_of(self, step_index: int) -> str | None:
        return self.methods[step_index] if step_index < len(self.methods) else None


def terms_after(event: DomainEvent, terms: PaymentTerms | None) -> PaymentTerms | None:
    """A payment's terms once ``event`` happened to it (its earlier ``terms`` for most events)."""
    if type(event) is PaymentReceived:
        return PaymentTerms(None if event.currency is None else event.currency.code)
    if type(event) is PlanBuilt:
        return PaymentTerms(event.currency.code, tuple(step.method.value for step in event.steps))
    return terms


def _envelope_terms(envelope: events_pb2.DomainEvent, terms: PaymentTerms | None) -> PaymentTerms | None:
    """:func:`terms_after` of the event in ``envelope``."""
    kind = envelope.WhichOneof("event")
    if kind == "payment_received":
        received = envelope.payment_received
        return PaymentTerms(received.currency if received.HasField("currency") else None)
    if kind == "plan_built":
        plan = envelope.plan_built
        return PaymentTerms(plan.currency, tuple(_METHODS.get(step.method) for step in plan.steps))
    return terms


def stored_terms(connection: duckdb.DuckDBPyConnection, payment_id: str) -> PaymentTerms:
    """The terms of a payment received since the last start began (``PaymentTerms(None)`` when its
    events do not say): read from its stored events above the newest recovery mark, below which
    every payment has ended (``ingest.store.recovery``)."""
    mark = connection.execute("SELECT coalesce(max(below_seq), 0) FROM recovery_marks").fetchall()
    rows = connection.execute(
        "SELECT proto FROM events WHERE seq >= ? AND payment_id = ? "
        "AND event_type IN ('PaymentReceived', 'PlanBuilt') ORDER BY seq",
        [int(mark[0][0]), payment_id],
    ).fetchall()
    terms: PaymentTerms | None = None
    for row in rows:
        terms = _envelope_terms(events_pb2.DomainEvent.FromString(bytes(row[0])), terms)
    return PaymentTerms(None) if terms is None else terms


def _received(event: Any, _: PaymentTerms | None) -> tuple[Any, ...]:
    currency, method = event.currency, event.method
    return (
        None if currency is None else currency.code,
        None if method is None else method.value,
        None if event.accepted else REJECTED,
        None,
        None,
    )


def _planned(event: Any, _: PaymentTerms | None) -> tuple[Any, ...]:
    return (event.currency.code, None, None, None, None)


def _attempted(event: Any, terms: PaymentTerms | None) -> tuple[Any, ...]:
    return (None if terms is None else terms.currency, event.method.value, None, event.attempt, None)


def _answered(event: Any, terms: PaymentTerms | None) -> tuple[Any, ...]:
    if terms is None:
        return (None, None, None, event.attempt, event.latency_ms)
    return (terms.currency, terms.method_of(event.step_index), None, event.attempt, event.latency_ms)


def _compensated(event: Any, terms: PaymentTerms | None) -> tuple[Any, ...]:
    if terms is None:
        return (None, None, None, None, None)
    return (terms.currency, terms.method_of(event.step_index), None, None, None)


def _completed(event: Any, terms: PaymentTerms | None) -> tuple[Any, ...]:
    return (None if terms is None else terms.currency, None, event.status.value, None, None)


def _failed(_: Any, terms: PaymentTerms | None) -> tuple[Any, ...]:
    return (None if terms is None else terms.currency, None, _FAILED, None, None)


def _nothing(_: Any, __: PaymentTerms | None) -> tuple[Any, ...]:
    return (None, None, None, None, None)


_CUTS: dict[type[DomainEvent], Callable[[Any, PaymentTerms | None], tuple[Any, ...]]] = {
    PaymentReceived: _received,
    PlanBuilt: _planned,
    StepAttempted: _attempted,
    StepSucceeded: _answered,
    StepFailed: _answered,
    CompensationIssued: _compensated,
    PaymentCompleted: _completed,
    PaymentFailed: _failed,
}


def columns(event: DomainEvent, terms: PaymentTerms | None) -> tuple[Any, ...]:
    """The event's :data:`COLUMNS`, its payment's ``terms`` known before it (see the module text):
    what the writer stores. Cut from the event itself (reading its envelope cost the writer a
    microsecond an event more); :func:`_cut` cuts the same from an envelope."""
    return _CUTS.get(type(event), _nothing)(event, terms)


def cut_of(kind: type[DomainEvent]) -> Callable[[Any, PaymentTerms | None], tuple[Any, ...]]:
    """What :func:`columns` does for an event of ``kind``: the writer looks it up once per kind."""
    return _CUTS.get(kind, _nothing)


def _cut(kind: str | None, envelope: events_pb2.DomainEvent, terms: PaymentTerms | None) -> tuple[Any, ...]:
    currency = None if terms is None else terms.currency
    if kind == "payment_received":
        received = envelope.payment_received
        return (
            received.currency if received.HasField("currency") else None,
            _METHODS.get(received.method) if received.HasField("method") else None,
            None if received.accepted else REJECTED,
            None,
            None,
        )
    if kind == "plan_built":
        return (envelope.plan_built.currency, None, None, None, None)
    if kind == "step_attempted":
        attempted = envelope.step_attempted
        return (currency, _METHODS.get(attempted.method), None, attempted.attempt, None)
    if kind in ("step_succeeded", "step_failed"):
        step = envelope.step_succeeded if kind == "step_succeeded" else envelope.step_failed
        method = None if terms is None else terms.method_of(step.step_index)
        return (currency, method, None, step.attempt, step.latency_ms)
    if kind == "compensation_issued":
        index = envelope.compensation_issued.step_index
        return (currency, None if terms is None else terms.method_of(index), None, None, None)
    if kind == "payment_completed":
        return (currency, None, _STATUSES.get(envelope.payment_completed.status), None, None)
    if kind == "payment_failed":
        return (currency, None, _FAILED, None, None)
    return (None, None, None, None, None)


#: Rows read and filled at a time by :func:`fill_columns`.
FILL_ROWS = 50_000

#: A chunk's values: ``plan_amount_cents`` is a PlanBuilt's total, ``decline_code`` a StepFailed's
#: (NULL in the rows written before migration 4).
_FILL = pa.schema(
    [("seq", pa.int64()), ("plan_amount_cents", pa.int64()), ("decline_code", pa.string()), *COLUMNS]
)


def fill_columns(connection: duckdb.DuckDBPyConnection, chunk_rows: int = FILL_ROWS) -> None:
    """Fill :data:`COLUMNS` of every stored event from its envelope, the ``amount_cents`` of every
    ``PlanBuilt`` (its total, left NULL before) and the ``decline_code`` of every ``StepFailed``
    written before migration 4: migration 8, in its transaction."""
    for fill in _fills(connection, chunk_rows):
        connection.register("event_fill", fill)
        try:
            connection.execute(
                "UPDATE events SET amount_cents = coalesce(events.amount_cents, f.plan_amount_cents), "
                "decline_code = coalesce(events.decline_code, f.decline_code), currency = f.currency, "
                "method = f.method, status = f.status, attempt = f.attempt, latency_ms = f.latency_ms "
                "FROM event_fill AS f "
                "WHERE events.seq = f.seq AND events.seq BETWEEN ? AND ?",
                [fill["seq"][0].as_py(), fill["seq"][-1].as_py()],
            )
        finally:
            connection.unregister("event_fill")


def _fills(connection: duckdb.DuckDBPyConnection, chunk_rows: int) -> Iterator[pa.Table]:
    """The values of the events, ``chunk_rows`` seqs at a time in ``seq`` order, as :data:`_FILL`
    tables. Each chunk is read whole: the connection runs each chunk's update in between."""
    bounds = connection.execute("SELECT min(seq), max(seq) FROM events").fetchall()[0]
    if bounds[0] is None:
        return
    running: dict[str, PaymentTerms] = {}  # the terms of payments whose last event is yet to come
    new_terms = ("payment_received", "plan_built")
    for first in range(int(bounds[0]), int(bounds[1]) + 1, chunk_rows):
        rows = connection.execute(
            "SELECT seq, payment_id, proto FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq",
            [first, first + chunk_rows - 1],
        ).fetchall()
        if not rows:
            continue
        values: list[tuple[Any, ...]] = []
        for seq, payment_id, proto in rows:
            try:
                envelope = events_pb2.DomainEvent.FromString(proto)
            except DecodeError:  # kept as it is (GET /v1/payments/{id} refuses it): NULLs here
                values.append((seq, None, None, None, None, None, None, None))
                continue
            kind = envelope.WhichOneof("event")
            terms = running.get(payment_id)
            plan = reason = None
            if kind == "plan_built":
                plan = envelope.plan_built.total_amount_cents
            elif kind == "step_failed" and envelope.step_failed.HasField("decline_code"):
                reason = envelope.step_failed.decline_code
            values.append((seq, plan, reason, *_cut(kind, envelope, terms)))
            if kind in _ENDINGS or (kind == "payment_received" and not envelope.payment_received.accepted):
                running.pop(payment_id, None)
            elif kind in new_terms and (after := _envelope_terms(envelope, terms)) is not None:
                running[payment_id] = after
        yield pa.Table.from_arrays(
            [
                pa.array(column, type=field.type)
                for column, field in zip(zip(*values, strict=True), _FILL, strict=True)
            ],
            schema=_FILL,
        )
