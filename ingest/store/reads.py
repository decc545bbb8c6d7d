"""The analytics inputs (events, violations, complaints) of a time window, as Arrow tables.

Each input is one query with a declared Arrow schema. The schema fixes the column types whatever
DuckDB's session time zone is (timestamps are always ``timestamp[us, tz=UTC]``), and it gives an
empty window the same columns as a full one. ``payorch export`` writes the same queries to
Parquet (``ingest.store.export``), so the read endpoints and the exported files have the same
columns, and one analytics source can read either.

Only the queryable columns are read: an event's ``proto`` envelope stays in the database
(``GET /v1/payments/{id}`` shows the events as documents, made from it).

The retrospective reads one more table (:func:`report_tables`): the violations of the payments
and requests its window's complaints name, whenever they were recorded. A complaint usually comes
after its payment, so its payment's violations are often older than the window; the query reads
exactly those, under the complaint's own merchant, not the whole history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from engine.config import StoreConfig
from ingest.errors import IngestError
from ingest.store import failure_column, records, spill
from ingest.store import memory as store_memory
from ingest.store.schema import FILE_NAME, check_readable
from ingest.store.writer import Table


class WindowError(IngestError):
    """A window whose bounds are naive or out of order."""


class DatabaseUnavailableError(IngestError):
    """A data folder's database cannot be opened for reading; the message is one line."""


class DatabaseHeldError(DatabaseUnavailableError):
    """The database is held by a running ``payorch serve``: DuckDB lets no other process open
    it, not even to read."""


def open_read_only(data_dir: Path, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """``DATA_DIR/payorch.duckdb`` opened read-only, for a command run while no service holds it,
    holding at most ``memory_limit`` (DuckDB's spelling; ``None``: the default of
    ``ingest.store.memory``, never DuckDB's own 80% of the host's memory)."""
    path = data_dir / FILE_NAME
    if not path.is_file():
        raise DatabaseUnavailableError(
            f"no database at {path}: pass --data with the folder `payorch serve` uses"
        )
    try:
        # Beside the service's, its owner's only; not cleared: other readers may spill there. A
        # folder it cannot make (a backup mounted read-only) leaves the read without a spill.
        temp_directory = spill.prepare(path)
    except IngestError:
        temp_directory = ""
    settings: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit or store_memory.memory_limit(StoreConfig()),
        "temp_directory": temp_directory,
    }
    try:
        # Absolute: DuckDB reads a leading ``~`` as the home folder, not as the folder ``./~``.
        connection = duckdb.connect(str(path.absolute()), read_only=True, config=settings)
    except duckdb.Error as error:
        if "lock" in str(error).lower():
            raise DatabaseHeldError(f"{path} is held by a running payorch serve") from None
        raise DatabaseUnavailableError(f"cannot open {path}: {first_line(error)}") from None
    try:
        # Read without migrating: a database of another schema would be misread, or its missing
        # tables found among Python's variables (DuckDB's replacement scans), not refused.
        check_readable(connection)
    except IngestError as error:
        connection.close()
        raise DatabaseUnavailableError(f"cannot read {path}: {error}") from None
    except duckdb.Error as error:
        connection.close()
        raise DatabaseUnavailableError(f"cannot read {path}: {first_line(error)}") from None
    return connection


def first_line(error: BaseException) -> str:
    """An error's first line (DuckDB's messages go on with context), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dataclass(frozen=True, slots=True)
class Window:
    """From ``since`` (inclusive) to ``until`` (exclusive); both aware, ``since <= until``."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise WindowError("a window's bounds must carry a time zone")
        if self.since > self.until:
            raise WindowError(f"the window starts ({self.since}) after it ends ({self.until})")


@dataclass(frozen=True, slots=True)
class Input:
    """One analytics input: ``select`` gives its columns in ``schema`` order; ``time`` names the
    column a window filters on (and the export partitions by); ``order`` is the rows' order.
    ``before`` gives, by migration, the select for a database that lacks that migration (read
    without migrating it: ``payorch export``), the columns it added read as NULL."""

    name: str
    select: str
    time: str
    order: str
    schema: pa.Schema
    before: Mapping[int, str] = field(default_factory=dict)
    #: The select for the table as the first releases left it (``schema.has_first_release_events``).
    first_release: str | None = None

    def select_for(self, applied: set[int], *, first_release: bool = False) -> str:
        """The select for a database with the migrations ``applied`` (``first_release``: whose
        events table is still the first releases')."""
        if first_release and self.first_release is not None:
            return self.first_release
        missing = [version for version in sorted(self.before) if version not in applied]
        return self.before[missing[0]] if missing else self.select


def _columns(table: Table, *, leave_out: tuple[str, ...] = ()) -> pa.Schema:
    """The read columns of a stored table: its own types (one place says what a column is), the
    time column ``ts`` shown as ``timestamp``, the columns left out that are not for analytics."""
    return pa.schema(
        [("timestamp" if f.name == "ts" else f.name, f.type) for f in table.schema if f.name not in leave_out]
    )


_EVENT_COLUMNS = (
    'seq, payment_id, request_id, merchant_id, event_type, ts AS "timestamp", step_index, '
    "processor_id, amount_cents, error_code"
)
#: The columns migration 8 added (``ingest.store.event_columns``), after ``accepted``, which
#: the reads left out before.
_TERMS_COLUMNS = "accepted, currency, method, status, attempt, latency_ms"
_NO_TERMS_AFTER_ACCEPTED = (
    "CAST(NULL AS VARCHAR) AS currency, CAST(NULL AS VARCHAR) AS method, "
    "CAST(NULL AS VARCHAR) AS status, CAST(NULL AS INTEGER) AS attempt, CAST(NULL AS BIGINT) AS latency_ms"
)
_NO_TERMS = f"accepted, {_NO_TERMS_AFTER_ACCEPTED}"
#: ``accepted`` of an events table the first releases made, from each event's JSON (``document``),
#: as version 1 reads it when it settles such a table (``schema._FIRST_TABLES``).
_FIRST_ACCEPTED = (
    "CASE WHEN event_type = 'PaymentReceived' "
    "THEN CAST(json_extract(document, '$.accepted') AS BOOLEAN) END AS accepted"
)
#: The column migration 9 added (``ingest.store.charged_column``), last.
_NO_CHARGED = "CAST(NULL AS BIGINT) AS charged_cents"
#: The column migration 12 added (``ingest.store.failure_column``), last.
_NO_DETAILS = failure_column.NO_COLUMN
_STORED_EVENT = _columns(records.EVENTS, leave_out=("proto",))
#: The read columns in the select's order.
_EVENT_READ = (
    *("seq", "payment_id", "request_id", "merchant_id", "event_type", "timestamp", "step_index"),
    *("processor_id", "amount_cents", "error_code", "decline_code"),
    *("accepted", "currency", "method", "status", "attempt", "latency_ms", "charged_cents"),
    "failure_details",
)
EVENTS = Input(
    "events",
    f"SELECT {_EVENT_COLUMNS}, decline_code, {_TERMS_COLUMNS}, charged_cents, failure_details FROM events",  # noqa: S608 - constant SQL
    "timestamp",
    "seq",
    # The table's types in the select's order: ``accepted`` after ``decline_code``, so that the
    # columns read before keep their places.
    pa.schema([_STORED_EVENT.field(name) for name in _EVENT_READ]),
    {
        # Migration 4 added decline_code, 8 the payment's terms, 9 what a payment charged, 12 why
        # a processor refused.
        4: f"SELECT {_EVENT_COLUMNS}, CAST(NULL AS VARCHAR) AS decline_code, {_NO_TERMS}, {_NO_CHARGED}, "  # noqa: S608
        f"{_NO_DETAILS} FROM events",
        8: f"SELECT {_EVENT_COLUMNS}, decline_code, {_NO_TERMS}, {_NO_CHARGED}, {_NO_DETAILS} FROM events",  # noqa: S608
        9: f"SELECT {_EVENT_COLUMNS}, decline_code, {_TERMS_COLUMNS}, {_NO_CHARGED}, {_NO_DETAILS} "  # noqa: S608
        "FROM events",
        12: f"SELECT {_EVENT_COLUMNS}, decline_code, {_TERMS_COLUMNS}, charged_cents, {_NO_DETAILS} "  # noqa: S608
        "FROM events",
    },
    # Its JSON where ``accepted`` now stands; no later column (such a database has version 1 only).
    f"SELECT {_EVENT_COLUMNS}, CAST(NULL AS VARCHAR) AS decline_code, {_FIRST_ACCEPTED}, "  # noqa: S608
    f"{_NO_TERMS_AFTER_ACCEPTED}, {_NO_CHARGED}, {_NO_DETAILS} FROM events",
)

VIOLATIONS = Input(
    "violations",
    "SELECT seq, contract_id, severity, owner, message, request_id, payment_id, merchant_id, "
    'ts AS "timestamp" FROM violations',
    "timestamp",
    '"timestamp", seq',
    _columns(records.VIOLATIONS),
)

COMPLAINTS = Input(
    "complaints",
    "SELECT complaint_id, merchant_id, received_at, category, description, payment_id, request_id, "
    "contract_id FROM complaints",
    "received_at",
    "received_at, complaint_id",
    # The corrections made as each was filed are the complaint's reads' (GET /v1/complaints).
    _columns(records.COMPLAINTS, leave_out=("validation_errors",)),
)

INPUTS = (EVENTS, VIOLATIONS, COMPLAINTS)


def read_window(connection: duckdb.DuckDBPyConnection, source: Input, window: Window) -> pa.Table:
    """``source``'s rows whose time is in ``window``, in ``source.order``."""
    # A cursor of its own: DuckDB 2.x refuses new work on a connection another caller left with
    # an unfinished result (a ``fetchone``), and the writer's reading connection is shared.
    with connection.cursor() as cursor:
        return _read(cursor, source, window)


def _read(cursor: duckdb.DuckDBPyConnection, source: Input, window: Window) -> pa.Table:
    # DuckDB 2.x warns that Arrow from a DB-API result (execute) copies the rows; a relation does not.
    relation = cursor.sql(
        f"SELECT * FROM ({source.select}) "  # noqa: S608 - the inputs' SQL is constant
        f'WHERE "{source.time}" >= $since AND "{source.time}" < $until ORDER BY {source.order}',
        params={"since": window.since, "until": window.until},
    )
    return relation.to_arrow_table().cast(source.schema)


def window_reader(
    cursor: duckdb.DuckDBPyConnection, source: Input, window: Window, batch_rows: int
) -> WindowReader:
    """``source``'s rows in ``window`` as :func:`read_window` gives them, in batches of about
    ``batch_rows`` rows, each made when it is read: a window of millions of rows is never held
    whole. ``cursor`` is the reader's own (a result being read blocks its connection) and stays
    open, its transaction too, until the reader is read to its end or closed."""
    relation = cursor.sql(
        f"SELECT * FROM ({source.select}) "  # noqa: S608 - the inputs' SQL is constant
        f'WHERE "{source.time}" >= $since AND "{source.time}" < $until ORDER BY {source.order}',
        params={"since": window.since, "until": window.until},
    )
    return WindowReader(relation.to_arrow_reader(batch_rows), source.schema)


class WindowReader:
    """DuckDB's batches of a window, each cast to the input's ``schema``. Closing it lets DuckDB's
    result go at once (its sort of the whole window: 160 MB for 520,000 events), whoever still
    holds the reader; a reader wrapped around DuckDB's (``RecordBatchReader.from_batches``) kept
    it until the wrapper itself was collected, after a full collection when anything in a
    reference cycle held it (a cancelled answer does)."""

    __slots__ = ("_batches", "schema")

    def __init__(self, batches: pa.RecordBatchReader, schema: pa.Schema) -> None:
        self._batches = batches
        self.schema = schema

    def read_next_batch(self) -> pa.RecordBatch:
        """The next batch; ``StopIteration`` after the last."""
        return self._batches.read_next_batch().cast(self.schema)

    def close(self) -> None:
        self._batches.close()


#: Every violation, whenever recorded, of a payment or request that a complaint received in the
#: window names, under the complaint's merchant (a null id or merchant matches nothing).
NAMED_VIOLATIONS = (
    f"SELECT * FROM ({VIOLATIONS.select}) AS v WHERE "  # noqa: S608 - constant SQL
    "EXISTS (SELECT 1 FROM complaints AS c WHERE c.received_at >= $since AND c.received_at < $until "
    "AND c.merchant_id = v.merchant_id AND c.payment_id = v.payment_id) "
    "OR EXISTS (SELECT 1 FROM complaints AS c WHERE c.received_at >= $since AND c.received_at < $until "
    "AND c.merchant_id = v.merchant_id AND c.request_id = v.request_id) "
    f"ORDER BY {VIOLATIONS.order}"
)


@dataclass(frozen=True, slots=True)
class ReportTables:
    """What the retrospective of a window is made of, read in one snapshot: the ``violations``
    counted (recorded in the window), the ``complaints`` received in it, and ``named_violations``
    (:func:`named_violations`), which the complaints are mapped through. All three have the
    columns of :data:`VIOLATIONS` or :data:`COMPLAINTS`."""

    violations: pa.Table
    complaints: pa.Table
    named_violations: pa.Table


def report_tables(connection: duckdb.DuckDBPyConnection, window: Window) -> ReportTables:
    """The retrospective's three tables for ``window``, read in one transaction so that they see
    the same commits (a violation committed between two reads would be mapped to, and not
    counted, or the reverse)."""
    with connection.cursor() as cursor:
        cursor.begin()
        try:
            return ReportTables(
                _read(cursor, VIOLATIONS, window),
                _read(cursor, COMPLAINTS, window),
                _named(cursor, window),
            )
        finally:
            cursor.rollback()  # it only read


def named_violations(connection: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Every violation, whenever it was recorded (before, in or after ``window``), of a payment or
    a request that a complaint received in ``window`` names, recorded for that complaint's
    merchant; oldest first, with the columns of :data:`VIOLATIONS`."""
    with connection.cursor() as cursor:
        return _named(cursor, window)


def _named(cursor: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    relation = cursor.sql(NAMED_VIOLATIONS, params={"since": window.since, "until": window.until})
    return relation.to_arrow_table().cast(VIOLATIONS.schema)


def events(connection: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Domain events in ``window``, in the order they were written (``seq``)."""
    return read_window(connection, EVENTS, window)


def violations(connection: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Contract violations in ``window``, oldest first."""
    return read_window(connection, VIOLATIONS, window)


def complaints(connection: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Complaints received in ``window``, oldest first."""
    return read_window(connection, COMPLAINTS, window)
