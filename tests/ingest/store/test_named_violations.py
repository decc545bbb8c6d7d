"""``ingest.store.reads.named_violations`` and ``report_tables``: the violations a window's
complaints are mapped through are those of the payments and requests they name, whenever they
were recorded, under the complaint's own merchant, and no others."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from ingest.store import reads
from ingest.store.reads import COMPLAINTS, VIOLATIONS, Window
from ingest.store.schema import migrate

#: The report's window: 2026-11-26 from 17:15 to 18:00 UTC.
START = datetime(2026, 11, 26, 17, 15, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(minutes=45))


def at(minute: int) -> datetime:
    """``minute`` minutes after 17:00 on the window's day (negative: before)."""
    return datetime(2026, 11, 26, 17, tzinfo=UTC) + timedelta(minutes=minute)


@pytest.fixture
def store() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(":memory:") as connection:
        migrate(connection)
        yield connection


def violation(
    connection: duckdb.DuckDBPyConnection,
    seq: int,
    minute: int,
    *,
    request_id: str,
    payment_id: str | None = None,
    merchant_id: str | None = "m_acme",
    contract_id: str = "api/validation",
) -> None:
    connection.execute(
        "INSERT INTO violations VALUES (?, ?, 'minor', 'api-platform', 'broken', ?, ?, ?, ?)",
        [seq, contract_id, request_id, payment_id, merchant_id, at(minute)],
    )


def complaint(
    connection: duckdb.DuckDBPyConnection,
    complaint_id: str,
    minute: int,
    *,
    payment_id: str | None = None,
    request_id: str | None = None,
    merchant_id: str = "m_acme",
) -> None:
    connection.execute(
        "INSERT INTO complaints VALUES (?, ?, ?, 'timeout', '', ?, ?, NULL, NULL)",
        [complaint_id, merchant_id, at(minute), payment_id, request_id],
    )


def seqs(table: pa.Table) -> list[int]:
    values: list[int] = table.column("seq").to_pylist()
    return values


def test_the_named_payments_and_requests_violations_are_read_whenever_they_were_recorded(
    store: duckdb.DuckDBPyConnection,
) -> None:
    violation(store, 1, 9, request_id="req_x", payment_id="pay_x")  # before the window
    violation(store, 2, -60 * 24 * 30, request_id="req_y")  # a month before, named by request
    violation(store, 3, 20, request_id="req_x2", payment_id="pay_x")  # in the window
    violation(store, 4, 120, request_id="req_x3", payment_id="pay_x")  # after the window
    complaint(store, "c6", 18, payment_id="pay_x")
    complaint(store, "c7", 30, request_id="req_y")

    named = reads.named_violations(store, WINDOW)

    assert named.schema == VIOLATIONS.schema
    assert seqs(named) == [2, 1, 3, 4]  # oldest first
    assert named.column("timestamp").to_pylist()[1] == at(9)


def test_only_what_the_windows_complaints_name_is_read(store: duckdb.DuckDBPyConnection) -> None:
    violation(store, 1, 9, request_id="req_1", payment_id="pay_named")
    violation(store, 2, 9, request_id="req_2", payment_id="pay_other")  # named by no complaint
    violation(store, 3, 9, request_id="req_3", payment_id="pay_early")  # named before the window
    violation(store, 4, 9, request_id="req_4", payment_id="pay_late")  # named at its end (excluded)
    violation(store, 5, 20, request_id="req_5", payment_id="pay_unnamed")  # in the window, unnamed
    complaint(store, "c1", 20, payment_id="pay_named")
    complaint(store, "c2", 14, payment_id="pay_early")
    complaint(store, "c3", 60, payment_id="pay_late")

    assert seqs(reads.named_violations(store, WINDOW)) == [1]


def test_another_merchants_violations_of_the_same_ids_are_not_read(store: duckdb.DuckDBPyConnection) -> None:
    violation(store, 1, 9, request_id="req_1", payment_id="pay_x", merchant_id="m_globex")
    violation(store, 2, 9, request_id="req_y", merchant_id="m_globex")
    violation(store, 3, 9, request_id="req_y", merchant_id=None)  # refused before its merchant was known
    violation(store, 4, 10, request_id="req_2", payment_id="pay_x")
    complaint(store, "c1", 20, payment_id="pay_x", request_id="req_y")

    assert seqs(reads.named_violations(store, WINDOW)) == [4]


def test_a_complaint_without_ids_names_no_violation(store: duckdb.DuckDBPyConnection) -> None:
    violation(store, 1, 9, request_id="req_1")  # no payment: a null id matches no null id
    complaint(store, "c1", 20)

    named = reads.named_violations(store, WINDOW)

    assert named.num_rows == 0
    assert named.schema == VIOLATIONS.schema


def test_the_report_tables_are_the_windows_counts_and_the_named_history(
    store: duckdb.DuckDBPyConnection,
) -> None:
    violation(store, 1, 9, request_id="req_x", payment_id="pay_x")
    violation(store, 2, 20, request_id="req_z", payment_id="pay_z")
    complaint(store, "c5", 10, payment_id="pay_z")  # received before the window
    complaint(store, "c6", 18, payment_id="pay_x")

    tables = reads.report_tables(store, WINDOW)

    assert tables.violations.equals(reads.violations(store, WINDOW))
    assert tables.complaints.equals(reads.complaints(store, WINDOW))
    assert tables.named_violations.equals(reads.named_violations(store, WINDOW))
    assert (seqs(tables.violations), seqs(tables.named_violations)) == ([2], [1])
    assert tables.complaints.column("complaint_id").to_pylist() == ["c6"]
    assert tables.complaints.schema == COMPLAINTS.schema
    # It only read: the connection takes new work, and nothing is left in a transaction.
    store.execute("BEGIN TRANSACTION")
    store.execute("ROLLBACK")
