"""Why a processor refused, in its own words, as a column of ``events`` (``failure_details``,
``ingest.store.failure_column``): as the writer keeps it, as the analytics reads give it (JSON and
Arrow) beside what ``GET /v1/payments/{id}`` shows on either store, as ``payorch export`` writes it
for Polars and DuckDB to query, and as migration 12 fills the rows a payorch of version 11 wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from engine.decline_codes import DeclineCode
from engine.error_codes import ErrorCode
from engine.events import DomainEvent, PaymentFailed, StepAttempted, StepFailed
from engine.failure_details import FailureDetails
from engine.methods import PaymentMethod
from engine.types import ProcessorId
from ingest.store.reads import EVENTS
from ingest.store.schema import CURRENT_VERSION, FILE_NAME, migrate
from payorch.cli import cli
from tests.cli.test_report_export import ALL_TIME, bounds, document, report
from tests.ingest.api.test_app import ACME as ACME_SIMULATED
from tests.ingest.api.test_app import JSON, body_of, call
from tests.ingest.api.test_circuits import pay
from tests.ingest.api.test_stripe_through_api import ACME, STRIPE_CONFIG
from tests.ingest.fake_stripe import FakeStripe
from tests.ingest.store.test_analytics_api import arrow_of, client, get
from tests.ingest.store.test_durable_api import pay as simulated_pay
from tests.ingest.store.test_durable_api import running
from tests.ingest.store.test_event_columns import ids_at, written
from tests.ingest.store.test_writer import as_version

STRIPE_ADMIN = {"Authorization": "Bearer adm_stripe"}
#: What Stripe says of an amount under its minimum (the fake's answer, as the result shows it).
TOO_SMALL = {
    "type": "invalid_request_error",
    "code": "amount_too_small",
    "decline_code": None,
    "param": "amount",
    "message": "Amount must be at least $0.50 usd",
}
#: The migration that added the column.
DETAILS = 12


async def _stripe_payments(app: object) -> dict[str, dict[str, Any]]:
    """An amount under Stripe's minimum, a card declined for insufficient funds and a payment
    that succeeds; the StepFailed event of each failed one, by payment id, as
    ``GET /v1/payments/{id}`` shows it."""
    too_small = await pay(app, ACME, {"amount": 30, "currency": "USD", "method": "card"})
    declined = await pay(
        app,
        ACME,
        {
            "amount": 1250,
            "currency": "USD",
            "method": "card",
            "metadata": {"card_number": "4000000000009995"},
        },
    )
    paid = await pay(app, ACME, {"amount": 1250, "currency": "USD", "method": "card"})
    assert [answer.json()["status"] for answer in (too_small, declined, paid)] == [
        "failed",
        "failed",
        "succeeded",
    ]
    shown: dict[str, dict[str, Any]] = {}
    for answer in (too_small, declined):
        payment_id = str(answer.json()["payment_id"])
        read = await call(app, "GET", f"/v1/payments/{payment_id}", [ACME], body_of(b""))
        events: list[dict[str, Any]] = read.json()["events"]  # type: ignore[assignment]
        (shown[payment_id],) = [event for event in events if event["type"] == "StepFailed"]
    return shown


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "duckdb"])
async def test_a_stripe_refusals_own_words_are_a_column_of_its_step_failed_row_as_json_and_arrow(
    tmp_path: Path, fake_stripe: FakeStripe, durable: bool
) -> None:
    """A reliability team reading the events saw ``error_code: unknown`` where Stripe had said
    ``amount_too_small`` on ``amount``: the reason was only in each row's protobuf envelope."""
    config = STRIPE_CONFIG.format(chain="stripe_live", api_base=fake_stripe.url)
    environ = {"PAYORCH_TEST_STRIPE_KEY": "sk_test_ops_1"}
    async with (
        running(tmp_path, config_text=config, durable=durable, environ=environ) as app,
        client(app) as http,
    ):
        shown = await _stripe_payments(app)
        as_json = await get(http, "events", headers=STRIPE_ADMIN)
        as_arrow = await get(http, "events", {"format": "arrow"}, headers=STRIPE_ADMIN)

    # Both stores show each StepFailed event with the processor's words.
    too_small, declined = shown.values()
    assert too_small["failure_details"] == TOO_SMALL
    assert declined["failure_details"]["type"] == "card_error"
    assert declined["failure_details"]["decline_code"] == "insufficient_funds"
    if not durable:
        assert as_json.status_code == 503  # no analytics reads without the store
        return
    for rows in (as_json.json()["events"], arrow_of(as_arrow).to_pylist()):
        detailed = {row["payment_id"]: row["failure_details"] for row in rows if row["failure_details"]}
        assert detailed == {payment_id: event["failure_details"] for payment_id, event in shown.items()}
        assert {row["event_type"] for row in rows if row["failure_details"]} == {"StepFailed"}
    assert arrow_of(as_arrow).schema.field("failure_details").type == pa.struct(
        [(name, pa.string()) for name in TOO_SMALL]
    )


def _failed(payment: str, minute: int, **fields: Any) -> StepFailed:
    return StepFailed(
        **ids_at(payment, minute),
        step_index=0,
        processor_id=ProcessorId("stripe_live"),
        latency_ms=40,
        **{"error_code": ErrorCode.UNKNOWN, "retryable": False, **fields},
    )


#: A refused request to Stripe, a card declined with every field, a timeout (no words), and the
#: events of no refusal around them.
STORY: list[DomainEvent] = [
    StepAttempted(
        **ids_at("pay_small", 0),
        step_index=0,
        processor_id=ProcessorId("stripe_live"),
        method=PaymentMethod.CARD,
        attempt=1,
        amount_cents=30,
        idempotency_key="k0",
    ),
    _failed("pay_small", 1, failure_details=FailureDetails(**TOO_SMALL)),
    _failed(
        "pay_declined",
        2,
        error_code=ErrorCode.DECLINED,
        decline_code=DeclineCode.INSUFFICIENT_FUNDS,
        failure_details=FailureDetails(
            type="card_error",
            code="card_declined",
            decline_code="insufficient_funds",
            param="payment_method",
            message="Your card has insufficient funds.",
        ),
    ),
    _failed("pay_slow", 3, error_code=ErrorCode.TIMEOUT, retryable=True),
    PaymentFailed(**ids_at("pay_small", 4), total_amount=30, final_error=ErrorCode.UNKNOWN),
]
#: Per event of :data:`STORY`: its type, the column, and its ``code`` field.
EXPECTED = [
    ("StepAttempted", None, None),
    ("StepFailed", TOO_SMALL, "amount_too_small"),
    (
        "StepFailed",
        {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "param": "payment_method",
            "message": "Your card has insufficient funds.",
        },
        "card_declined",
    ),
    ("StepFailed", None, None),
    ("PaymentFailed", None, None),
]
SELECTED = "SELECT event_type, failure_details, failure_details.code FROM events ORDER BY seq"


async def _written(folder: Path) -> Path:
    return await written(folder, STORY)


async def test_the_writer_keeps_each_refusals_details_and_nothing_on_other_events(tmp_path: Path) -> None:
    database = await _written(tmp_path / "new")
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute(SELECTED).fetchall() == EXPECTED


async def test_a_version_11_database_is_given_its_refusals_details_at_its_first_start(tmp_path: Path) -> None:
    new = await _written(tmp_path / "new")
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        as_version(connection, DETAILS - 1)
        kept = [row[0] for row in connection.execute("DESCRIBE events").fetchall()]
        assert "failure_details" not in kept
        connection.execute(f"ATTACH '{new}' AS new (READ_ONLY)")
        connection.execute(f"INSERT INTO events ({', '.join(kept)}) SELECT {', '.join(kept)} FROM new.events")  # noqa: S608
        # An envelope that cannot be read keeps its row as it was (NULL), as migrations 8 and 9 do.
        connection.execute(
            "INSERT INTO events (seq, payment_id, request_id, merchant_id, event_type, ts, proto) "
            "VALUES (99, 'pay_x', 'req_x', 'm_acme', 'StepFailed', TIMESTAMPTZ '2026-11-20 09:00:00+00', "
            "'envelope')"
        )

        assert migrate(connection) == list(range(DETAILS, CURRENT_VERSION + 1))
        migrated = connection.execute("SELECT * FROM events WHERE seq < 99 ORDER BY seq").fetchall()
        written = connection.execute("SELECT * FROM new.events ORDER BY seq").fetchall()
        assert connection.execute(SELECTED).fetchall() == [*EXPECTED, ("StepFailed", None, None)]
    assert migrated == written


def _export(data: Path, out: Path) -> None:
    done = CliRunner().invoke(cli, ["export", "--data", str(data), "--out", str(out)])
    assert done.exit_code == 0, done.output


async def test_the_export_is_queried_for_a_refusals_code_by_polars_and_duckdb(tmp_path: Path) -> None:
    await _written(tmp_path / "data")
    out = tmp_path / "export"
    _export(tmp_path / "data", out)

    events = pl.scan_parquet(out / "events", hive_partitioning=True)
    by_expression = events.filter(pl.col("failure_details").struct.field("code") == "amount_too_small")
    assert by_expression.select("event_type", "failure_details").collect().rows() == [
        ("StepFailed", TOO_SMALL)
    ]
    by_sql = pl.SQLContext(events=events).execute(
        "SELECT failure_details.code AS code FROM events WHERE failure_details IS NOT NULL ORDER BY seq",
        eager=True,
    )
    assert by_sql["code"].to_list() == ["amount_too_small", "card_declined"]
    files = str(out / "events" / "**" / "*.parquet").replace("'", "''")
    with duckdb.connect() as connection:
        found = connection.execute(
            f"SELECT failure_details.code, failure_details.param FROM read_parquet('{files}') "  # noqa: S608
            "WHERE failure_details.decline_code = 'insufficient_funds'"
        ).fetchall()
    assert found == [("card_declined", "payment_method")]


async def test_a_version_11_database_is_exported_with_the_column_empty(tmp_path: Path) -> None:
    await _written(tmp_path / "data")
    with duckdb.connect(str(tmp_path / "data" / FILE_NAME)) as connection:  # as version 11 left it
        connection.execute("ALTER TABLE events DROP COLUMN failure_details")
        connection.execute("DELETE FROM schema_migrations WHERE version >= ?", [DETAILS])
    out = tmp_path / "export"
    _export(tmp_path / "data", out)

    events = pl.read_parquet(out / "events", hive_partitioning=True)
    assert events.columns == [*EVENTS.schema.names, "date"]
    assert events.schema["failure_details"] == pl.Struct(dict.fromkeys(TOO_SMALL, pl.String))
    assert events["failure_details"].null_count() == events.height == len(STORY)


async def test_a_report_reads_an_export_made_before_the_column_as_it_reads_one_made_now(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with running(data) as app:
        assert (await simulated_pay(app)).status == 200
        assert (await simulated_pay(app, body=b'{"amount": "lots"}')).status == 422  # a violation
        complaint = b'{"complaint_id": "c_1", "category": "timeout"}'
        assert (
            await call(app, "POST", "/v1/complaints", [ACME_SIMULATED, JSON], body_of(complaint))
        ).status == 201
    out = tmp_path / "export"
    _export(data, out)
    made_now = document(report("--export", str(out), *bounds(ALL_TIME), "--format", "json"))
    assert made_now["violations"] and made_now["complaints"]["received"] == 1

    # What a payorch before the column wrote: the same files, without it.
    for path in (out / "events").resolve().rglob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["failure_details"]), path)
    assert "failure_details" not in pl.scan_parquet(out / "events", hive_partitioning=True).collect_schema()

    assert document(report("--export", str(out), *bounds(ALL_TIME), "--format", "json")) == made_now
