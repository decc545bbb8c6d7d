"""What a payment charged, beside what was asked, on its last event's row of ``events``
(``charged_cents``, ``ingest.store.charged_column``): as the writer cuts it from a payment that
partially succeeded or failed, as the analytics reads give it, and as migration 9 fills the rows
a payorch of version 8 wrote."""

from __future__ import annotations

from pathlib import Path

import duckdb

from engine.error_codes import ErrorCode
from engine.events import DomainEvent, PaymentCompleted, PaymentFailed, StepSucceeded
from engine.results import PaymentStatus
from engine.types import ProcessorId
from ingest.store.schema import CURRENT_VERSION, FILE_NAME, migrate
from tests.ingest.api.test_app import body_of, call
from tests.ingest.store.test_analytics_api import arrow_of, client, get
from tests.ingest.store.test_durable_api import running
from tests.ingest.store.test_event_columns import ids_at, written
from tests.ingest.store.test_writer import as_version

#: Two merchants with the same split (Apple Pay up to 60.00, then card), one keeping what it
#: charged when a leg fails, one refunding it.
SPLITS = """
admin_api_keys: [adm_e2e_admin]
merchants:
  - merchant_id: m_partial
    api_keys: [sk_e2e_partial]
    default_currency: USD
    partial_policy: allow_partial
    routing: &split
      - {method: apple_pay, max_amount_cents: 6000, processors: [applepay_sim]}
      - {method: card, processors: [stripe_sim]}
  - merchant_id: m_whole
    api_keys: [sk_e2e_whole]
    default_currency: USD
    partial_policy: all_or_nothing
    routing: *split
processors:
  - {id: applepay_sim, kind: simulated, seed: 7, latency_ms: {p50: 0, p99: 0}}
  - {id: stripe_sim, kind: simulated, seed: 42, latency_ms: {p50: 0, p99: 0}}
"""
#: 100.00 USD whose card leg (40.00) is declined.
DECLINED_SPLIT = (
    b'{"amount": "100.00", "currency": "USD", "method": "apple_pay", '
    b'"metadata": {"card_number": "4000000000000002"}}'
)


async def test_a_partial_and_a_refunded_payments_last_rows_say_what_was_charged_and_what_was_asked(
    tmp_path: Path,
) -> None:
    """The PaymentCompleted of a payment that charged 60.00 of 100.00 read 100.00 (amount_cents)
    and nothing else: summed, the ended payments overstated the money taken."""
    json_body = (b"content-type", b"application/json")
    async with running(tmp_path, config_text=SPLITS) as app, client(app) as http:
        answers = [
            await call(
                app,
                "POST",
                "/v1/payments",
                [(b"authorization", f"Bearer {key}".encode()), json_body],
                body_of(DECLINED_SPLIT),
            )
            for key in ("sk_e2e_partial", "sk_e2e_whole")
        ]
        as_json = (await get(http, "events")).json()["events"]
        as_arrow = arrow_of(await get(http, "events", {"format": "arrow"})).to_pylist()

    partial, whole = (answer.json() for answer in answers)
    assert (partial["status"], partial["total_amount"], partial["total_processed"]) == (
        "partially_succeeded",
        10_000,
        6000,
    )
    assert (whole["status"], whole["total_amount"], whole["total_processed"]) == ("failed", 10_000, 0)
    for rows in (as_json, as_arrow):
        ended = {
            row["payment_id"]: (row["event_type"], row["status"], row["amount_cents"], row["charged_cents"])
            for row in rows
            if row["event_type"] in ("PaymentCompleted", "PaymentFailed")
        }
        assert ended == {
            partial["payment_id"]: ("PaymentCompleted", "partially_succeeded", 10_000, 6000),
            whole["payment_id"]: ("PaymentFailed", "failed", 10_000, 0),
        }
        # Only the ended payments' rows carry it: summed over every event, the money still charged.
        assert sum(row["charged_cents"] or 0 for row in rows) == 6000


#: The last events of four payments: paid in full, kept in part, refunded, and failed with a
#: refund that failed too (30.00 still charged); and a step's success, which charged no payment.
ENDINGS: list[DomainEvent] = [
    StepSucceeded(
        **ids_at("pay_kept", 0),
        step_index=0,
        processor_id=ProcessorId("applepay_sim"),
        latency_ms=9,
        amount=6000,
    ),
    PaymentCompleted(**ids_at("pay_paid", 1), total_amount=1500, total_processed=1500),
    PaymentCompleted(
        **ids_at("pay_kept", 2),
        total_amount=10_000,
        total_processed=6000,
        status=PaymentStatus.PARTIALLY_SUCCEEDED,
    ),
    PaymentFailed(**ids_at("pay_refunded", 3), total_amount=9000, final_error=ErrorCode.DECLINED),
    PaymentFailed(
        **ids_at("pay_stuck", 4), total_amount=9000, final_error=ErrorCode.DECLINED, total_processed=3000
    ),
]
#: Per event of :data:`ENDINGS`: type, amount_cents (asked), charged_cents.
EXPECTED = [
    ("StepSucceeded", 6000, None),
    ("PaymentCompleted", 1500, 1500),
    ("PaymentCompleted", 10_000, 6000),
    ("PaymentFailed", 9000, 0),
    ("PaymentFailed", 9000, 3000),
]


async def _written(folder: Path) -> Path:
    return await written(folder, ENDINGS)


async def test_the_writer_keeps_what_each_ended_payment_charged(tmp_path: Path) -> None:
    database = await _written(tmp_path / "new")
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute("SELECT event_type, amount_cents, charged_cents FROM events ORDER BY seq")
        assert rows.fetchall() == EXPECTED


async def test_a_version_8_database_is_given_what_its_ended_payments_charged_at_its_first_start(
    tmp_path: Path,
) -> None:
    new = await _written(tmp_path / "new")
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        as_version(connection, 8)
        kept = [row[0] for row in connection.execute("DESCRIBE events").fetchall()]
        assert "charged_cents" not in kept
        connection.execute(f"ATTACH '{new}' AS new (READ_ONLY)")
        connection.execute(f"INSERT INTO events ({', '.join(kept)}) SELECT {', '.join(kept)} FROM new.events")  # noqa: S608

        assert migrate(connection) == list(range(9, CURRENT_VERSION + 1))
        migrated = connection.execute("SELECT * FROM events ORDER BY seq").fetchall()
        written = connection.execute("SELECT * FROM new.events ORDER BY seq").fetchall()
        filled = connection.execute("SELECT event_type, amount_cents, charged_cents FROM events ORDER BY seq")
        assert filled.fetchall() == EXPECTED
    assert migrated == written
