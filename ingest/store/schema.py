"""The database's tables, as numbered migrations applied on start.

Each migration runs once, in its own transaction, and is recorded in ``schema_migrations``;
opening a database that is already current changes nothing. A database newer than this code
(a migration number it does not know) is refused rather than written to; the commands that only
read a database (``payorch report --data``, ``payorch export``) refuse it too, and any file that
is not a payorch database (:func:`check_readable`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from ingest.errors import IngestError
from ingest.store import charged_column, event_columns, failure_column, ownership

FILE_NAME = "payorch.duckdb"


@dataclass(frozen=True, slots=True)
class Migration:
    """``statements``, then ``fill`` (what SQL alone cannot do, such as reading the events'
    envelopes), in one transaction."""

    version: int
    description: str
    statements: tuple[str, ...]
    fill: Callable[[duckdb.DuckDBPyConnection], None] | None = None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events, violations, payments, idempotency keys, complaints",
        (
            # One row per domain event. ``seq`` is the writer's order (the order events happened
            # in); the queryable columns are cut from the event (``accepted`` only for
            # PaymentReceived), ``proto`` is its ``payments.events.v1`` envelope, from which its
            # JSON is made when it is read.
            """CREATE TABLE events (
                seq BIGINT NOT NULL,
                payment_id VARCHAR NOT NULL,
                request_id VARCHAR NOT NULL,
                merchant_id VARCHAR NOT NULL,
                event_type VARCHAR NOT NULL,
                ts TIMESTAMPTZ NOT NULL,
                step_index INTEGER,
                processor_id VARCHAR,
                amount_cents BIGINT,
                error_code VARCHAR,
                accepted BOOLEAN,
                proto BLOB NOT NULL
            )""",
            """CREATE TABLE violations (
                seq BIGINT NOT NULL,
                contract_id VARCHAR NOT NULL,
                severity VARCHAR NOT NULL,
                owner VARCHAR NOT NULL,
                message VARCHAR NOT NULL,
                request_id VARCHAR NOT NULL,
                payment_id VARCHAR,
                merchant_id VARCHAR,
                ts TIMESTAMPTZ NOT NULL
            )""",
            # A payment's current state: its CompositeResult as answered (the newest row of a
            # payment counts). Rows are only ever added: an upsert costs twice an insert here.
            """CREATE TABLE payments (
                payment_id VARCHAR NOT NULL,
                merchant_id VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                document VARCHAR NOT NULL
            )""",
            "CREATE INDEX payments_by_id ON payments (payment_id)",
            # Every change of a key, in ``version`` order; the newest row of a key is its state:
            # ``in_flight`` (no answer yet), ``answered`` (status_code, body, media_type), or
            # ``released`` (its request was refused: the key is free again).
            """CREATE TABLE idempotency_keys (
                version BIGINT NOT NULL,
                merchant_id VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                state VARCHAR NOT NULL,
                fingerprint VARCHAR NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                status_code INTEGER,
                body BLOB,
                media_type VARCHAR
            )""",
            "CREATE INDEX idempotency_keys_by_key ON idempotency_keys (merchant_id, key)",
            """CREATE TABLE complaints (
                complaint_id VARCHAR PRIMARY KEY,
                merchant_id VARCHAR NOT NULL,
                received_at TIMESTAMPTZ NOT NULL,
                category VARCHAR NOT NULL,
                description VARCHAR NOT NULL,
                payment_id VARCHAR,
                request_id VARCHAR,
                contract_id VARCHAR
            )""",
        ),
    ),
    Migration(
        2,
        "a complaint_id is unique per merchant, not across merchants",
        (
            # Merchants choose their complaint ids (their support desks' ticket numbers), so two
            # merchants may use the same one. DuckDB cannot change a primary key in place: the
            # table is made anew and its rows moved over.
            """CREATE TABLE complaints_by_merchant (
                complaint_id VARCHAR NOT NULL,
                merchant_id VARCHAR NOT NULL,
                received_at TIMESTAMPTZ NOT NULL,
                category VARCHAR NOT NULL,
                description VARCHAR NOT NULL,
                payment_id VARCHAR,
                request_id VARCHAR,
                contract_id VARCHAR,
                PRIMARY KEY (merchant_id, complaint_id)
            )""",
            "INSERT INTO complaints_by_merchant SELECT * FROM complaints",
            "DROP TABLE complaints",
            "ALTER TABLE complaints_by_merchant RENAME TO complaints",
        ),
    ),
    Migration(
        3,
        "a payment's row names the seq range of its events",
        (
            # Where a payment's events lie in ``events`` (whose row groups hold seq ranges):
            # reading them by payment id alone scanned the whole table, a little slower with every
            # payment kept. NULL for rows written before (their events are then looked for in
            # the whole table) and for a bound the writer did not see (a payment a crash cut
            # short began before the restart).
            "ALTER TABLE payments ADD COLUMN first_seq BIGINT",
            "ALTER TABLE payments ADD COLUMN last_seq BIGINT",
        ),
    ),
    Migration(
        4,
        "a StepFailed's decline code is a column of events",
        (
            # Why a card was refused (insufficient_funds, lost_card, ...), queryable as the error
            # code is; it was only in the ``proto`` envelope. NULL for every other event, for a
            # failure without a reason, and for the rows written before (read their envelope).
            "ALTER TABLE events ADD COLUMN decline_code VARCHAR",
        ),
    ),
    Migration(
        5,
        "where crash recovery starts looking for interrupted payments",
        (
            # Each start's crash recovery notes that every accepted payment whose PaymentReceived
            # has a seq below ``below_seq`` has ended (the highest, also the newest, counts), so that the next
            # start reads only the events from there: it read every event ever written, its time
            # growing with the whole history. No row: from the first event.
            "CREATE TABLE recovery_marks (below_seq BIGINT NOT NULL, marked_at TIMESTAMPTZ NOT NULL)",
        ),
    ),
    Migration(
        6,
        "no index on idempotency_keys (merchant_id, key): no query used it",
        (
            # DuckDB 2.0.1 plans every statement on the table (the claim's lookup, the start's
            # load, the purge) as a scan: the index served none of them, and cost memory, CPU on
            # every insert and checkpoint, and write time growing with the table (a long run:
            # 10.9 to 13.5 s of writing per 100,000 payments between 100,000 and 600,000; flat
            # at 9.4-9.8 s without it).
            "DROP INDEX IF EXISTS idempotency_keys_by_key",
        ),
    ),
    Migration(
        7,
        "idempotency keys holding a card number written with dots are kept masked",
        # Nothing to change in the tables: the start renames the keys written before this
        # version (``ingest.store.idempotency``), which a payorch of version 6 kept as given. An
        # older payorch refuses the database from then on: it would look such a key up as given,
        # find nothing and charge again.
        (),
    ),
    Migration(
        8,
        "events say their payment's currency, their step's method, the payment's status, attempt, latency",
        # What an amount is in, and by which method: only in the ``proto`` envelope before, so
        # an analytics reader summed USD, EUR and JPY amounts together. The rows written before
        # are filled from their envelopes, and with them a PlanBuilt's ``amount_cents`` (its
        # total, NULL before) and the ``decline_code`` of the rows written before version 4
        # (``ingest.store.event_columns``).
        event_columns.ADD_COLUMNS,
        event_columns.fill_columns,
    ),
    Migration(
        9,
        "a payment's last event says what it charged, beside what was asked",
        # PaymentCompleted and PaymentFailed kept only the amount asked (amount_cents): summed, a
        # partially succeeded payment counted the whole amount, a refunded one all of it too. The
        # rows written before are filled from their envelopes (``ingest.store.charged_column``).
        (charged_column.ADD_COLUMN,),
        charged_column.fill_charged,
    ),
    Migration(
        10,
        "which service last started on the database: its instance, name, host and folder",
        # One row per start, only ever added: the newest (highest start_no) is the service that
        # owns the folder now. A start elsewhere (another host or folder: a copy) must not settle
        # the payments that service may still be finishing (``ingest.store.ownership``).
        (ownership.CREATE_TABLE,),
    ),
    Migration(
        11,
        "a complaint keeps the corrections made to it as it was filed",
        # Its validation_errors (the warnings of ``ingest.api.complaint_fields``), as JSON, as a
        # payment's are kept in its result's document: a field spelled another way, a received_at
        # without an offset read as UTC... NULL for the complaints stored before: none was kept.
        ("ALTER TABLE complaints ADD COLUMN validation_errors VARCHAR",),
    ),
    Migration(
        12,
        "a StepFailed says why its processor refused, in the processor's words",
        # Its failure_details (Stripe's type, code, decline_code, param, message, masked), a
        # struct: only in the ``proto`` envelope before, so a reader of the analytics reads or an
        # export saw ``unknown`` where Stripe said ``amount_too_small``. The StepFailed rows
        # written before are filled from their envelopes (``ingest.store.failure_column``).
        (failure_column.ADD_COLUMN,),
        failure_column.fill_details,
    ),
)

CURRENT_VERSION = MIGRATIONS[-1].version


def migrate(connection: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration the database lacks, in order; returns the versions applied now."""
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    applied = applied_versions(connection)
    if applied:
        _settle_version_1(connection, applied)
    done: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        connection.begin()
        try:
            for statement in migration.statements:
                connection.execute(statement)
            if migration.fill is not None:
                migration.fill(connection)
            connection.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [migration.version, migration.description, datetime.now(UTC)],
            )
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        done.append(migration.version)
    return done


#: How the first payorch releases (568669e to 091d8ab) made the tables of version 1, before the
#: version settled: their rows are read into the tables as version 1 makes them now. ``events``
#: kept each event's JSON (``document``) where ``accepted`` now stands; ``payments`` and
#: ``idempotency_keys`` were upserted (primary keys), and a key was one row, without ``version``
#: or ``state`` (in flight until it had an answer).
_FIRST_TABLES: tuple[tuple[str, str, str], ...] = (
    (
        "events",
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'events' AND column_name = 'document'",
        "SELECT * EXCLUDE (document), CASE WHEN event_type = 'PaymentReceived' "
        "THEN CAST(json_extract(document, '$.accepted') AS BOOLEAN) END AS accepted "
        "FROM earlier ORDER BY seq",
    ),
    (
        "payments",
        "SELECT count(*) FROM duckdb_constraints() "
        "WHERE table_name = 'payments' AND constraint_type = 'PRIMARY KEY'",
        "SELECT * FROM earlier",
    ),
    (
        "idempotency_keys",
        "SELECT count(*) = 0 FROM duckdb_columns() "
        "WHERE table_name = 'idempotency_keys' AND column_name = 'version'",
        "SELECT *, row_number() OVER (ORDER BY created_at) AS version, "
        "CASE WHEN status_code IS NULL THEN 'in_flight' ELSE 'answered' END AS state FROM earlier",
    ),
)


def _settle_version_1(connection: duckdb.DuckDBPyConnection, applied: set[int]) -> None:
    """Give the tables a first release of version 1 made the shape version 1 has (see
    :data:`_FIRST_TABLES`), then what the later migrations ``applied`` did to them, their rows
    kept, in one transaction: migrated as they were, the database took the later migrations and
    then failed at every start (a Binder Error on a column), where the release that wrote it
    refused it as newer. A database left so is settled too."""
    earlier = [entry for entry in _FIRST_TABLES if _count(connection, entry[1])]
    if not earlier:
        return
    connection.begin()
    try:
        for table, _, rows in earlier:
            connection.execute(f"ALTER TABLE {table} RENAME TO earlier")
            for statement in MIGRATIONS[0].statements:  # the table and its index, as version 1
                if statement.startswith(f"CREATE TABLE {table} (") or f"INDEX {table}_by_" in statement:
                    connection.execute(statement)
            for migration in MIGRATIONS[1:]:
                if migration.version in applied:
                    for statement in migration.statements:
                        if (
                            statement.startswith(f"ALTER TABLE {table} ")
                            or f"INDEX IF EXISTS {table}_" in statement
                        ):
                            connection.execute(statement)
            connection.execute(f"INSERT INTO {table} BY NAME {rows}")
            connection.execute("DROP TABLE earlier")
        connection.commit()
    except BaseException:
        connection.rollback()
        raise


def has_first_release_events(connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``events`` is still as a first release made it (see :data:`_FIRST_TABLES`: each
    event's JSON where ``accepted`` now stands), for a reader that does not migrate it."""
    return bool(_count(connection, _FIRST_TABLES[0][1]))


def _count(connection: duckdb.DuckDBPyConnection, query: str) -> int:
    row = connection.execute(query).fetchone()
    return 0 if row is None else int(row[0])


def check_readable(connection: duckdb.DuckDBPyConnection) -> None:
    """Refuse, as :func:`migrate` does, a database that a command reading it (without migrating it)
    would misread: one that is not payorch's, or one newer than this code."""
    found = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'schema_migrations'"
    ).fetchall()
    if found[0][0] == 0:
        raise IngestError("it is not a payorch database (it has no schema_migrations table)")
    applied_versions(connection)


def applied_versions(connection: duckdb.DuckDBPyConnection) -> set[int]:
    """The versions applied to the database; raises for a version this code does not know."""
    rows = connection.execute("SELECT version FROM schema_migrations").fetchall()
    applied = {int(row[0]) for row in rows}
    unknown = sorted(applied - {migration.version for migration in MIGRATIONS})
    if unknown:
        raise IngestError(
            f"the database has schema version {unknown[-1]}, newer than this payorch knows "
            f"({CURRENT_VERSION}); use a newer payorch"
        )
    return applied
