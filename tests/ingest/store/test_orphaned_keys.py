"""Idempotency keys a crash left in flight without an interrupted payment behind them: the crash
came after the key's claim was committed and before the payment began (or before a refusal freed
the key), or after the payment ended and before its key's answer was committed. After the restart
a repeat must not get 409 until the key expires: it pays anew when nothing was charged, and
replays the stored result when the payment ended.

The crash is played by writing what its last commit left (a claim, or a key's answer missing)
and restarting the app on the same data folder.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from engine.events import PaymentReceived
from ingest.api.idempotency import Claimed, InFlight, StoredResponse, body_fingerprint
from ingest.api.settings import IDEMPOTENCY_TTL_S as DAY_S
from ingest.codec.events import event_from_bytes, event_to_bytes
from ingest.store.idempotency import DurableIdempotencyStore
from ingest.store.schema import FILE_NAME
from ingest.store.writer import Writer
from tests.ingest.store.test_durable_api import SPLIT, charges, pay, running


async def test_a_key_claimed_before_the_crash_by_a_request_that_charged_nothing_is_free(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as app:
        parts = app.state.parts  # type: ignore[attr-defined]
        fingerprint = body_fingerprint(SPLIT, "application/json")
        assert isinstance(await parts.idempotency.claim("m_acme", "order-cut", fingerprint), Claimed)
        parts.idempotency.hold("m_acme", "order-cut")  # its request went on to charge
        await parts.records.sync()  # the claim is durable, the payment never began
    assert charges(tmp_path) == []

    async with running(tmp_path) as app:
        first = await pay(app, key="order-cut")
        again = await pay(app, key="order-cut")

    assert first.status == 200, first.body
    assert "idempotent-replayed" not in first.headers
    assert first.json()["status"] == "succeeded"
    assert len(charges(tmp_path)) == 2  # the split payment's two legs, charged once
    assert again.status == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.body == first.body


async def test_a_key_whose_answer_the_crash_lost_replays_its_payments_result(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        answered = await pay(app, key="order-done")
    assert answered.status == 200, answered.body
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        # What the last commit left: the payment's events and result, not its key's answer.
        connection.execute("DELETE FROM idempotency_keys WHERE key = 'order-done' AND state = 'answered'")
        states = connection.execute("SELECT state FROM idempotency_keys WHERE key = 'order-done'").fetchall()
    assert states == [("in_flight",)]

    async with running(tmp_path) as app:
        repeat = await pay(app, key="order-done")

    assert repeat.status == 200, repeat.body
    assert repeat.headers["idempotent-replayed"] == "true"
    assert repeat.body == answered.body
    assert len(charges(tmp_path)) == 2  # charged once, by the first request


async def test_a_key_a_payorch_of_version_1_kept_unmasked_replays_the_payment_its_crash_left_unanswered(
    tmp_path: Path,
) -> None:
    key = "order 4242424242424242"
    async with running(tmp_path) as app:
        answered = await pay(app, key=key)
    assert answered.status == 200, answered.body
    with duckdb.connect(str(tmp_path / FILE_NAME)) as connection:
        # As a payorch of schema version 1 left it (keys kept as given), then cut off before the
        # key's answer was committed.
        connection.execute("DELETE FROM idempotency_keys WHERE state = 'answered'")
        connection.execute("UPDATE idempotency_keys SET key = ?", [key])
        [(seq, proto)] = connection.execute(
            "SELECT seq, proto FROM events WHERE event_type = 'PaymentReceived'"
        ).fetchall()
        received = event_from_bytes(bytes(proto))
        assert isinstance(received, PaymentReceived)
        as_given = event_to_bytes(dataclasses.replace(received, idempotency_key=key))
        connection.execute("UPDATE events SET proto = ? WHERE seq = ?", [as_given, seq])

    async with running(tmp_path) as app:
        repeat = await pay(app, key=key)

    assert repeat.status == 200, repeat.body
    assert repeat.headers["idempotent-replayed"] == "true"
    assert repeat.json() == answered.json()
    assert len(charges(tmp_path)) == 2  # charged once, by the first request


async def test_a_key_in_flight_older_than_a_day_survives_a_restart(tmp_path: Path) -> None:
    """A key whose payment crash recovery could not settle stays in flight, for days if its
    processor cannot say what it holds that long: a start a day later must not drop it, or a
    repeat would pay again beside a payment that may have charged."""
    claimed_at = datetime(2026, 11, 1, tzinfo=UTC)
    writer = Writer(tmp_path / FILE_NAME)
    keys = DurableIdempotencyStore(writer, DAY_S, lambda: 0.0, wall=lambda: claimed_at, hot_s=600.0)
    assert isinstance(await keys.claim("m_acme", "order-stuck", "f"), Claimed)
    keys.hold("m_acme", "order-stuck")
    assert isinstance(await keys.claim("m_acme", "order-done", "f"), Claimed)
    keys.hold("m_acme", "order-done")
    await keys.complete("m_acme", "order-done", StoredResponse(200, b"{}"))
    assert writer.close()

    later = claimed_at + timedelta(days=3)
    writer = Writer(tmp_path / FILE_NAME)
    keys = DurableIdempotencyStore(writer, DAY_S, lambda: 0.0, wall=lambda: later, hot_s=600.0)
    try:
        assert isinstance(await keys.claim("m_acme", "order-stuck", "f"), InFlight)
        assert keys.unanswered() == {("m_acme", "order-stuck"): claimed_at}
        assert isinstance(await keys.claim("m_acme", "order-done", "f"), Claimed)  # answered: expired
    finally:
        writer.close()
