"""The column of ``events`` that says what a payment charged (migration 9): ``charged_cents``.

A payment's last event, ``PaymentCompleted`` or ``PaymentFailed``, holds two amounts: what the
merchant asked for (``total_amount``) and what the payment holds charged at its end
(``total_processed``: all of it when it succeeded, the legs kept when it partially succeeded,
what compensation could not undo when it failed). The row kept only the first, in
``amount_cents``, so a reader summing the amounts of ended payments counted the 100.00 asked of
a payment that charged 60.00 (``partially_succeeded``), and of one whose legs were all refunded.
``charged_cents`` is the second, on those two events only (NULL on every other, whose amounts
are a step's or a request's): summed over the table, per ``currency``, it is the money the
payments hold. ``amount_cents`` keeps what was asked, as on ``PaymentReceived`` and ``PlanBuilt``.

The writer cuts it from the event (:func:`charged_cents`); migration 9 fills the rows written
before from their envelopes (:func:`fill_charged`), the same value the writer would have cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import attrgetter

import duckdb
import pyarrow as pa
from google.protobuf.message import DecodeError
from payments.events.v1 import events_pb2

from engine.events import DomainEvent, PaymentCompleted, PaymentFailed

#: The column as the writer's Arrow schema has it (after ``latency_ms``).
COLUMN: tuple[str, pa.DataType] = ("charged_cents", pa.int64())
#: Migration 9's statement: the column, NULL until :func:`fill_charged` fills it.
ADD_COLUMN = "ALTER TABLE events ADD COLUMN charged_cents BIGINT"

#: Rows read and filled at a time by :func:`fill_charged`.
FILL_ROWS = 50_000

_FILL = pa.schema([("seq", pa.int64()), COLUMN])


def charged_cents(event: DomainEvent) -> int | None:
    """What ``event``'s payment holds charged at its end, on its last event; ``None`` otherwise."""
    if isinstance(event, PaymentCompleted | PaymentFailed):
        return event.total_processed
    return None


def charged_of(kind: type[DomainEvent]) -> Callable[[DomainEvent], int | None] | None:
    """What :func:`charged_cents` does for an event of ``kind``: the writer looks it up once per kind.
    ``None`` for a kind that never has a charged amount: the writer leaves the column NULL with no
    call at all (a call returning ``None`` cost every other event about 600 instructions)."""
    if issubclass(kind, PaymentCompleted | PaymentFailed):
        return attrgetter("total_processed")
    return None


def fill_charged(connection: duckdb.DuckDBPyConnection, chunk_rows: int = FILL_ROWS) -> None:
    """Fill ``charged_cents`` of every stored ``PaymentCompleted`` and ``PaymentFailed`` from its
    envelope: migration 9, in its transaction. A row whose envelope cannot be read stays NULL (as
    migration 8 leaves it: ``GET /v1/payments/{id}`` refuses it)."""
    for fill in _fills(connection, chunk_rows):
        connection.register("charged_fill", fill)
        try:
            connection.execute(
                "UPDATE events SET charged_cents = f.charged_cents FROM charged_fill AS f "
                "WHERE events.seq = f.seq AND events.seq BETWEEN ? AND ?",
                [fill["seq"][0].as_py(), fill["seq"][-1].as_py()],
            )
        finally:
            connection.unregister("charged_fill")


def _fills(connection: duckdb.DuckDBPyConnection, chunk_rows: int) -> Iterator[pa.Table]:
    """The charged amounts of the ended payments' events, ``chunk_rows`` seqs at a time, as
    :data:`_FILL` tables; only those two kinds of event are read (a payment's last of several)."""
    bounds = connection.execute("SELECT min(seq), max(seq) FROM events").fetchall()[0]
    if bounds[0] is None:
        return
    for first in range(int(bounds[0]), int(bounds[1]) + 1, chunk_rows):
        rows = connection.execute(
            "SELECT seq, proto FROM events WHERE seq BETWEEN ? AND ? "
            "AND event_type IN ('PaymentCompleted', 'PaymentFailed') ORDER BY seq",
            [first, first + chunk_rows - 1],
        ).fetchall()
        seqs: list[int] = []
        charged: list[int] = []
        for seq, proto in rows:
            try:
                envelope = events_pb2.DomainEvent.FromString(proto)
            except DecodeError:
                continue
            kind = envelope.WhichOneof("event")
            if kind == "payment_completed":
                charged.append(envelope.payment_completed.total_processed)
            elif kind == "payment_failed":
                charged.append(envelope.payment_failed.total_processed)
            else:
                continue
            seqs.append(seq)
        if seqs:
            yield pa.Table.from_arrays(
                [pa.array(seqs, pa.int64()), pa.array(charged, pa.int64())], schema=_FILL
            )
