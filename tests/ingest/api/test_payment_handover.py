"""How a payment's answer reaches its request: the payment runs in a task of its own, which a
cancelled request (its server stopping) must not cancel, and hands its answer over in the
callbacks it schedules as it ends (``ingest.api.payments._hand_over``), not through
``asyncio.shield``, whose outer future scheduled a callback of its own for every payment."""

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
from tests.ingest.api.test_app import ACME, JSON, body_of, call

PAYMENTS = "/v1/payments"
#: The e2e config's slow merchant, its processor made to take about 0.2 s.
QUICKER = CONFIG.replace("latency_ms: {p50: 1500, p99: 1800}", "latency_ms: {p50: 200, p99: 220}")
SLOW = (b"authorization", b"Bearer sk_e2e_slow")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Any]:
    settings = Settings(config=parse_config(QUICKER), data_dir=tmp_path, durable=False)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def _ended(desk: Any) -> None:
    for _ in range(500):  # 5 s at most: the processor takes about 0.2 s
        if not desk.in_flight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the payment did not end")


async def test_a_payment_whose_request_is_cancelled_runs_to_its_end_and_keeps_its_answer(app: Any) -> None:
    key = (b"idempotency-key", b"handover-1")
    desk = app.state.parts.desk
    request = asyncio.ensure_future(
        call(app, "POST", PAYMENTS, [SLOW, JSON, key], body_of(b'{"amount": 2500}'))
    )
    while not desk.in_flight:  # at its processor
        await asyncio.sleep(0.01)
    request.cancel()  # what the server does to its requests when it stops without waiting
    with pytest.raises(asyncio.CancelledError):
        await request
    await _ended(desk)  # the payment went on: a cancelled one would leave its key in flight (409)

    again = await call(app, "POST", PAYMENTS, [SLOW, JSON, key], body_of(b'{"amount": 2500}'))
    assert (again.status, again.json()["status"]) == (200, "succeeded")
    assert again.headers.get("idempotent-replayed") == "true"


async def test_a_payment_answer_schedules_no_callback_of_its_own(app: Any) -> None:
    """Each callback is a turn of the event loop (measured: about 12,000 instructions a payment
    for one). Beside the tasks' own steps and wake-ups, a payment schedules only its task's one
    callback (the desk's bookkeeping and the hand-over, see test_payment_path_cost.py):
    ``asyncio.shield`` scheduled a third, on its outer future."""
    loop = asyncio.get_running_loop()
    scheduled: list[str] = []
    call_soon = loop.call_soon

    def counting(callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        done = args[0] if args else None
        wakes_a_task = isinstance(getattr(callback, "__self__", None), asyncio.Task)
        if isinstance(done, asyncio.Future) and not isinstance(done, asyncio.Task) and not wakes_a_task:
            scheduled.append(getattr(callback, "__qualname__", repr(callback)))
        return call_soon(callback, *args, context=context)

    loop.call_soon = counting  # type: ignore[method-assign,assignment]
    try:
        answer = await call(app, "POST", PAYMENTS, [ACME, JSON], body_of(b'{"amount": 1250}'))
    finally:
        del loop.call_soon
    assert answer.status == 200
    assert scheduled == []


async def test_the_answer_is_handed_over_even_when_the_desk_s_bookkeeping_fails(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-over shares its callback with the desk's bookkeeping: a bug there must not leave
    the request waiting for ever on an answer its payment has."""
    desk = app.state.parts.desk

    def broken(*_: object) -> None:
        raise RuntimeError("the desk's bookkeeping failed")

    monkeypatch.setattr(type(desk), "_leave", broken)  # a class with slots
    answer = await asyncio.wait_for(
        call(app, "POST", PAYMENTS, [ACME, JSON], body_of(b'{"amount": 1250}')), timeout=10
    )
    assert (answer.status, answer.json()["status"]) == (200, "succeeded")
