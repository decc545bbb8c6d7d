"""One merchant's flood against the others: each merchant's payments in flight are capped
(``merchants[].max_in_flight``), and a payment over the cap is 429 ``rate_limited``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import JSON, Answer, body_of, call

SLOW = (b"authorization", b"Bearer sk_e2e_slow")  # m_slow: its processor takes about 1.5 s
GLOBEX = (b"authorization", b"Bearer sk_e2e_globex")
#: m_slow may have two payments in flight.
LIMITED = CONFIG.replace("    timeout_ms: 5000\n", "    timeout_ms: 5000\n    max_in_flight: 2\n")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Any]:
    assert LIMITED != CONFIG
    settings = Settings(config=parse_config(LIMITED), data_dir=tmp_path)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def pay(app: Any, key: tuple[bytes, bytes], idempotency_key: bytes) -> Answer:
    headers = [key, JSON, (b"idempotency-key", idempotency_key)]
    return await call(app, "POST", "/v1/payments", headers, body_of(b'{"amount": 2500, "method": "card"}'))


async def test_a_merchant_over_its_payments_in_flight_is_429_while_another_merchant_pays(app: Any) -> None:
    desk = app.state.parts.desk
    running = [asyncio.create_task(pay(app, SLOW, f"slow-{n}".encode())) for n in range(2)]
    while desk.in_flight < 2:  # both are at the slow processor
        await asyncio.sleep(0.001)

    over = await pay(app, SLOW, b"slow-3")
    other = await pay(app, GLOBEX, b"globex-1")

    assert over.status == 429
    assert over.headers["content-type"] == "application/problem+json"
    assert over.headers["retry-after"] == "1"
    assert over.json()["code"] == "rate_limited"
    assert other.status == 200  # the other merchant is not held back
    assert other.json()["status"] == "succeeded"
    assert [answer.status for answer in await asyncio.gather(*running)] == [200, 200]
    # Nothing was kept of the refused request: once the others ended, its key pays, once.
    again = await pay(app, SLOW, b"slow-3")
    assert again.status == 200
    assert "idempotent-replayed" not in again.headers
    assert desk.in_flight == 0


async def test_a_refused_request_does_not_count_against_the_limit(app: Any) -> None:
    desk = app.state.parts.desk
    for n in range(3):  # refused (422) one after the other: each leaves the count as it found it
        headers = [SLOW, JSON, (b"idempotency-key", f"refused-{n}".encode())]
        refused = await call(app, "POST", "/v1/payments", headers, body_of(b'{"amount": -5}'))
        assert refused.status == 422
    assert desk.running("m_slow") == 0
    assert (await pay(app, SLOW, b"after-refusals")).status == 200


async def test_a_repeat_of_a_key_given_in_the_body_does_not_count_against_the_limit(app: Any) -> None:
    # The body's idempotency_key is claimed after the payment counts against the limit; its
    # replays returned without leaving, so two repeats used m_slow's two places for good.
    desk = app.state.parts.desk
    body = b'{"amount": 2500, "method": "card", "idempotency_key": "body-key-1"}'
    first = await call(app, "POST", "/v1/payments", [SLOW, JSON], body_of(body))
    repeats = [await call(app, "POST", "/v1/payments", [SLOW, JSON], body_of(body)) for _ in range(2)]

    assert first.status == 200
    assert [(r.status, r.headers.get("idempotent-replayed")) for r in repeats] == [(200, "true")] * 2
    assert desk.running("m_slow") == 0
    assert (await pay(app, SLOW, b"after-repeats")).status == 200
