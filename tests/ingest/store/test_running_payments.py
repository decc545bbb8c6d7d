"""The DuckDB store's maps of running payments, bounded, let go of their oldest entries only: where
each one's events begin, which lets ``GET /v1/payments/{id}`` read a payment that has no result yet
(the payments running when it reaches its bound still read ``processing``), and each one's terms,
cut into its events' rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.events import StepAttempted
from engine.methods import PaymentMethod
from engine.types import ProcessorId
from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.records import Records
from ingest.store import records as duckdb_records
from ingest.store.writer import Writer
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, body_of, call
from tests.ingest.api.test_payment_list import MOMENT, received
from tests.ingest.store.test_durable_api import held

#: The bound the tests run the map at: a few entries stand for 65,536.
BOUND = 4


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.setattr(duckdb_records, "_MAX_OPENED", BOUND)
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=True)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def status_of(app: object, payment_id: str) -> tuple[int, object]:
    answer = await call(app, "GET", f"/v1/payments/{payment_id}", [ACME], body_of(b""))
    return answer.status, answer.json().get("status") if answer.status == 200 else None


async def test_the_newest_running_payments_stay_readable_when_the_map_reaches_its_bound(served: Any) -> None:
    # The map was cleared whole at its bound: every payment running then read 404, "no such
    # payment", which says "never charged", until it ended.
    records: Records = served.state.parts.records
    names = [f"pay_run{number}" for number in range(BOUND + 2)]
    for number, payment_id in enumerate(names):
        await records.emit(received(payment_id, MOMENT + timedelta(seconds=number), accepted=True))
    await records.sync()

    read = {payment_id: await status_of(served, payment_id) for payment_id in names}

    assert [read[payment_id] for payment_id in names[-BOUND:]] == [(200, "processing")] * BOUND
    # The oldest, let go to keep the map bounded, read as before: no result, nowhere to look.
    assert [read[payment_id] for payment_id in names[:-BOUND]] == [(404, None)] * 2


def attempted(payment_id: str) -> StepAttempted:
    first = received(payment_id, MOMENT, accepted=True)
    return StepAttempted(
        payment_id=first.payment_id,
        request_id=first.request_id,
        merchant_id=first.merchant_id,
        timestamp=MOMENT + timedelta(minutes=1),
        step_index=0,
        processor_id=ProcessorId("stripe_sim"),
        attempt=1,
        method=PaymentMethod.CARD,
        amount_cents=2500,
        idempotency_key=f"{payment_id}_0",
    )


async def test_the_newest_running_payments_keep_their_terms_when_the_map_reaches_its_bound(
    served: Any,
) -> None:
    # The terms map was cleared whole at its bound too: a payment whose first events were not
    # committed yet then had its later events' rows written without its currency (a read of its
    # stored events found none), and every other running payment's next event waited for a read.
    records: Records = served.state.parts.records
    writer: Writer = served.state.parts.writer
    names = [f"pay_run{number}" for number in range(BOUND + 2)]
    disk = await held(writer)
    try:
        for payment_id in names:
            await records.emit(received(payment_id, MOMENT, accepted=True))
        attempts = [asyncio.create_task(records.emit(attempted(name))) for name in names[-BOUND:]]
        async with asyncio.timeout(10):
            while writer.depth < len(names) + BOUND:  # every attempt queued behind the hold
                await asyncio.sleep(0.005)
    finally:
        disk.set()
    await asyncio.gather(*attempts)
    await records.sync()

    rows = writer.read_now(
        lambda c: c.execute(
            "SELECT payment_id, currency FROM events WHERE event_type = 'StepAttempted' ORDER BY seq"
        ).fetchall()
    )

    assert sorted(rows) == [(payment_id, "USD") for payment_id in names[-BOUND:]]
