"""The column of ``events`` that says why a processor refused an attempt (migration 12):
``failure_details``.

A ``StepFailed`` carries the processor's own account of its refusal
(:class:`~engine.failure_details.FailureDetails`: Stripe's error ``type``, ``code``,
``decline_code``, ``param`` and ``message``, masked), but the row kept only ``error_code`` and the
closed ``decline_code``: a reliability team reading the events through the analytics reads or
``payorch export`` saw ``unknown`` where Stripe had said ``amount_too_small`` on ``amount``, and
had to decode each row's protobuf envelope to learn it.

It is one column of type ``STRUCT(type, code, decline_code, param, message)`` (each a string),
not five flat ones: its fields keep the names of the step result's and the event's
``failure_details`` (a ``decline_code`` of its own beside the row's, which is the closed list),
DuckDB and Polars SQL read a field as ``failure_details.code`` (Polars expressions as
``pl.col("failure_details").struct.field("code")``), and the JSON read shows it as the object the
payment's result shows. It is NULL on every event that is not a ``StepFailed`` with details, and
a field the processor did not give is NULL inside it.

The writer cuts it from the event (:func:`details_of`); migration 12 fills the rows written before
from their envelopes (:func:`fill_details`), reading only the ``StepFailed`` rows: the value the
writer would have cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Any

import duckdb
import pyarrow as pa
from google.protobuf.message import DecodeError
from payments.events.v1 import events_pb2

from engine.events import DomainEvent, StepFailed

#: The fields, in order, as ``FailureDetails`` and the proto name them.
FIELDS = ("type", "code", "decline_code", "param", "message")
#: The column as the writer's Arrow schema has it (after ``charged_cents``).
COLUMN: tuple[str, pa.DataType] = ("failure_details", pa.struct([(name, pa.string()) for name in FIELDS]))
#: Its SQL type.
SQL_TYPE = f"STRUCT({', '.join(f'{name} VARCHAR' for name in FIELDS)})"
#: Migration 12's statement: the column, NULL until :func:`fill_details` fills it.
ADD_COLUMN = f"ALTER TABLE events ADD COLUMN failure_details {SQL_TYPE}"
#: The column as a read of a database without it gives it: NULL on every row.
NO_COLUMN = f"CAST(NULL AS {SQL_TYPE}) AS failure_details"

#: Rows read and filled at a time by :func:`fill_details`.
FILL_ROWS = 50_000

_FILL = pa.schema([("seq", pa.int64()), COLUMN])
_VALUES = attrgetter(*FIELDS)


def _details(event: StepFailed) -> tuple[str | None, ...] | None:
    details = event.failure_details
    return None if details is None else _VALUES(details)


def details_of(kind: type[DomainEvent]) -> Callable[[Any], tuple[str | None, ...] | None] | None:
    """What the writer keeps of an event of ``kind``: its details as the column's fields in order
    (what Arrow takes for a struct) on a ``StepFailed`` that has them, else ``None``. Looked up
    once per kind; ``None`` for a kind that never has details (the column is NULL, no call)."""
    return _details if issubclass(kind, StepFailed) else None


def fill_details(connection: duckdb.DuckDBPyConnection, chunk_rows: int = FILL_ROWS) -> None:
    """Fill ``failure_details`` of every stored ``StepFailed`` whose envelope has them: migration
    12, in its transaction. A row whose envelope cannot be read stays NULL (as migrations 8 and 9
    leave it: ``GET /v1/payments/{id}`` refuses it)."""
    for fill in _fills(connection, chunk_rows):
        connection.register("details_fill", fill)
        try:
            connection.execute(
                "UPDATE events SET failure_details = f.failure_details FROM details_fill AS f "
                "WHERE events.seq = f.seq AND events.seq BETWEEN ? AND ?",
                [fill["seq"][0].as_py(), fill["seq"][-1].as_py()],
            )
        finally:
            connection.unregister("details_fill")


def _fills(connection: duckdb.DuckDBPyConnection, chunk_rows: int) -> Iterator[pa.Table]:
    """The details of the stored ``StepFailed`` events that have them, ``chunk_rows`` seqs at a
    time, as :data:`_FILL` tables; no other event is read."""
    bounds = connection.execute("SELECT min(seq), max(seq) FROM events").fetchall()[0]
    if bounds[0] is None:
        return
    for first in range(int(bounds[0]), int(bounds[1]) + 1, chunk_rows):
        rows = connection.execute(
            "SELECT seq, proto FROM events WHERE seq BETWEEN ? AND ? AND event_type = 'StepFailed' "
            "ORDER BY seq",
            [first, first + chunk_rows - 1],
        ).fetchall()
        seqs: list[int] = []
        details: list[tuple[str | None, ...]] = []
        for seq, proto in rows:
            try:
                envelope = events_pb2.DomainEvent.FromString(proto)
            except DecodeError:
                continue
            if envelope.WhichOneof("event") != "step_failed" or not envelope.step_failed.HasField(
                "failure_details"
            ):
                continue
            wire = envelope.step_failed.failure_details
            seqs.append(seq)
            details.append(tuple(getattr(wire, name) if wire.HasField(name) else None for name in FIELDS))
        if seqs:
            yield pa.Table.from_arrays(
                [pa.array(seqs, pa.int64()), pa.array(details, COLUMN[1])], schema=_FILL
            )
