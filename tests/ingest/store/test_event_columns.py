"""What the events table says an amount is in and how its payment went (``currency``, ``method``,
``status``, ``attempt``, ``latency_ms``; ``ingest.store.event_columns``): as the writer cuts each
event's row, and as migration 8 fills the rows a payorch of every earlier version wrote."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine.decline_codes import DeclineCode
from engine.error_codes import ErrorCode
from engine.events import (
    CompensationIssued,
    DomainEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentReceived,
    PlanBuilt,
    PlannedStep,
    StepAttempted,
    StepFailed,
    StepSucceeded,
)
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.results import PaymentStatus
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.store.records import DuckDBRecords
from ingest.store.schema import CURRENT_VERSION, FILE_NAME, migrate
from ingest.store.writer import Writer
from tests.ingest.store.test_writer import as_version

START = datetime(2026, 11, 20, 8, tzinfo=UTC)
APPLE, CARD = PaymentMethod.APPLE_PAY, PaymentMethod.CARD
APPLEPAY, STRIPE, ADYEN = ProcessorId("applepay_sim"), ProcessorId("stripe_sim"), ProcessorId("adyen_sim")


def ids_at(payment: str, minute: int) -> dict[str, Any]:
    """The ids and time of ``payment``'s event ``minute`` minutes after :data:`START` (m_acme's)."""
    return {
        "payment_id": PaymentId(payment),
        "request_id": RequestId(f"req_{payment}"),
        "merchant_id": MerchantId("m_acme"),
        "timestamp": START + timedelta(minutes=minute),
    }


def _story() -> list[DomainEvent]:
    """Three payments, their events interleaved: a USD split (Apple Pay, then a card declined, the
    first leg refunded), a JPY card payment (its first processor skipped, then charged), and a
    request refused without a currency."""
    usd, jpy, refused = "pay_usd", "pay_jpy", "pay_refused"
    return [
        PaymentReceived(
            **ids_at(usd, 0), accepted=True, amount_cents=9000, currency=Currency("USD"), method=APPLE
        ),
        PaymentReceived(
            **ids_at(jpy, 1), accepted=True, amount_cents=1500, currency=Currency("JPY"), method=CARD
        ),
        PlanBuilt(
            **ids_at(usd, 2),
            total_amount_cents=9000,
            currency=Currency("USD"),
            steps=(PlannedStep(0, APPLE, 6000, (APPLEPAY,)), PlannedStep(1, CARD, 3000, (STRIPE,))),
        ),
        PlanBuilt(
            **ids_at(jpy, 3),
            total_amount_cents=1500,
            currency=Currency("JPY"),
            steps=(PlannedStep(0, CARD, 1500, (STRIPE, ADYEN)),),
        ),
        StepAttempted(
            **ids_at(usd, 4),
            step_index=0,
            processor_id=APPLEPAY,
            attempt=1,
            method=APPLE,
            amount_cents=6000,
            idempotency_key="k0",
        ),
        PaymentReceived(**ids_at(refused, 5), accepted=False),
        StepFailed(
            **ids_at(jpy, 6),
            step_index=0,
            processor_id=STRIPE,
            error_code=ErrorCode.PROCESSOR_UNAVAILABLE,
            retryable=True,
            latency_ms=0,
            attempt=0,
        ),
        StepSucceeded(**ids_at(usd, 7), step_index=0, processor_id=APPLEPAY, latency_ms=41, amount=6000),
        StepAttempted(
            **ids_at(jpy, 8),
            step_index=0,
            processor_id=ADYEN,
            attempt=1,
            method=CARD,
            amount_cents=1500,
            idempotency_key="k1",
        ),
        StepAttempted(
            **ids_at(usd, 9),
            step_index=1,
            processor_id=STRIPE,
            attempt=1,
            method=CARD,
            amount_cents=3000,
            idempotency_key="k2",
        ),
        StepSucceeded(**ids_at(jpy, 10), step_index=0, processor_id=ADYEN, latency_ms=90, amount=1500),
        StepFailed(
            **ids_at(usd, 11),
            step_index=1,
            processor_id=STRIPE,
            error_code=ErrorCode.DECLINED,
            retryable=False,
            latency_ms=35,
            decline_code=DeclineCode.INSUFFICIENT_FUNDS,
        ),
        PaymentCompleted(
            **ids_at(jpy, 12), total_amount=1500, total_processed=1500, status=PaymentStatus.SUCCEEDED
        ),
        CompensationIssued(
            **ids_at(usd, 13), step_index=0, processor_id=APPLEPAY, amount=6000, succeeded=True
        ),
        PaymentFailed(**ids_at(usd, 14), total_amount=9000, final_error=ErrorCode.DECLINED),
    ]


#: Per event of :func:`_story`: type, amount_cents, currency, method, status, attempt, latency_ms.
EXPECTED = [
    ("PaymentReceived", 9000, "USD", "apple_pay", None, None, None),
    ("PaymentReceived", 1500, "JPY", "card", None, None, None),
    ("PlanBuilt", 9000, "USD", None, None, None, None),
    ("PlanBuilt", 1500, "JPY", None, None, None, None),
    ("StepAttempted", 6000, "USD", "apple_pay", None, 1, None),
    ("PaymentReceived", None, None, None, "rejected", None, None),
    ("StepFailed", None, "JPY", "card", None, 0, 0),
    ("StepSucceeded", 6000, "USD", "apple_pay", None, 1, 41),
    ("StepAttempted", 1500, "JPY", "card", None, 1, None),
    ("StepAttempted", 3000, "USD", "card", None, 1, None),
    ("StepSucceeded", 1500, "JPY", "card", None, 1, 90),
    ("StepFailed", None, "USD", "card", None, 1, 35),
    ("PaymentCompleted", 1500, "JPY", None, "succeeded", None, None),
    ("CompensationIssued", 6000, "USD", "apple_pay", None, None, None),
    ("PaymentFailed", 9000, "USD", None, "failed", None, None),
]

_SELECTED = "event_type, amount_cents, currency, method, status, attempt, latency_ms"


async def written(folder: Path, events: Iterable[DomainEvent]) -> Path:
    """``events`` written as the service writes them, into a new ``folder``'s database."""
    folder.mkdir()
    writer = Writer(folder / FILE_NAME)
    records = DuckDBRecords(writer)
    for event in events:
        await records.emit(event)
    await records.sync()
    writer.close()
    return folder / FILE_NAME


async def _written(folder: Path) -> Path:
    """The story written as the service writes it, into ``folder``'s database."""
    return await written(folder, _story())


async def test_each_event_says_its_payments_currency_its_steps_method_and_how_the_payment_ended(
    tmp_path: Path,
) -> None:
    database = await _written(tmp_path / "new")
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(f"SELECT {_SELECTED} FROM events ORDER BY seq").fetchall()  # noqa: S608
    assert rows == EXPECTED


#: The migration that added these columns.
TERMS = 8


@pytest.mark.parametrize("version", range(1, TERMS))
async def test_the_events_an_earlier_version_wrote_are_filled_from_their_envelopes(
    tmp_path: Path, version: int
) -> None:
    """The rows a payorch of ``version`` wrote (its columns; a PlanBuilt without its amount) read,
    once migrated, as the writer writes them now: every column, for every event."""
    new = await _written(tmp_path / "new")
    with duckdb.connect(str(tmp_path / "earlier.duckdb")) as connection:
        as_version(connection, version)
        kept = [row[0] for row in connection.execute("DESCRIBE events").fetchall()]
        then = ", ".join(
            "CASE WHEN event_type = 'PlanBuilt' THEN NULL ELSE amount_cents END"
            if name == "amount_cents"
            else name
            for name in kept
        )
        connection.execute(f"ATTACH '{new}' AS new (READ_ONLY)")
        connection.execute(f"INSERT INTO events ({', '.join(kept)}) SELECT {then} FROM new.events")  # noqa: S608
        assert "currency" not in kept

        assert migrate(connection) == list(range(version + 1, CURRENT_VERSION + 1))
        migrated = connection.execute("SELECT * FROM events ORDER BY seq").fetchall()
        written = connection.execute("SELECT * FROM new.events ORDER BY seq").fetchall()
        filled = connection.execute(f"SELECT {_SELECTED} FROM events ORDER BY seq").fetchall()  # noqa: S608
    assert migrated == written
    assert filled == EXPECTED


def test_an_envelope_that_cannot_be_read_leaves_its_row_as_it_was(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        as_version(connection, TERMS - 1)
        connection.execute(
            "INSERT INTO events VALUES (1, 'pay_1', 'req_1', 'm_acme', 'StepFailed', "
            "TIMESTAMPTZ '2026-11-20 08:00:00+00', 0, 'stripe_sim', NULL, 'declined', NULL, 'envelope', NULL)"
        )
        assert migrate(connection) == list(range(TERMS, CURRENT_VERSION + 1))
        row = connection.execute(f"SELECT {_SELECTED}, proto FROM events").fetchall()  # noqa: S608
    assert row == [("StepFailed", None, None, None, None, None, None, b"envelope")]
