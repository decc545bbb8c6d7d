"""What the payment path does per request, kept from creeping back (issue 4's benchmark).

Each test pins one piece of work taken off the path, by what can be observed of it, not by time:
a timing test would measure the machine. The figures are in the commits that made each cut.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.events import PaymentReceived, PlanBuilt, StepSucceeded
from engine.types import MerchantId
from ingest.api import payments
from ingest.api.app import create_app
from ingest.api.application import PayorchAPI
from ingest.api.front import Front, route_template
from ingest.api.idempotency import body_fingerprint
from ingest.api.settings import Settings
from ingest.codec.event_json import _shape
from ingest.config_file import parse_config
from ingest.parsing.masking import mask_card_numbers
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, JSON, body_of, call, collecting

PAYMENTS = "/v1/payments"


class _Route(NamedTuple):
    path: str


def test_route_template_is_made_once_per_path() -> None:
    """A route's template names every request's span and metric label: it is made once per path,
    not by a regular expression on every request (1.75 µs a call, twice a request)."""
    route = _Route("/v1/complaints/{complaint_id:reference}")
    first = route_template(route)
    assert first == "/v1/complaints/{complaint_id}"
    assert route_template(_Route("/v1/complaints/{complaint_id:reference}")) is first
    assert route_template(_Route("/v1/payments")) == "/v1/payments"
    assert route_template(object()) is None


async def test_a_payment_task_ending_schedules_one_callback(tmp_path: Path) -> None:
    """When a payment's task ends, the desk forgets it, gives its place back and hands its answer
    to the request in one callback (each is a turn of the event loop)."""
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=False)
    application = create_app(settings)
    loop = asyncio.get_running_loop()
    scheduled: list[str] = []
    call_soon = loop.call_soon

    def counting(callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        task = args[0] if args else None
        coroutine = task.get_coro() if isinstance(task, asyncio.Task) else None
        if getattr(coroutine, "__qualname__", "") == "PaymentDesk._run":
            scheduled.append(getattr(callback, "__qualname__", repr(callback)))
        return call_soon(callback, *args, context=context)

    async with application.router.lifespan_context(application):
        loop.call_soon = counting  # type: ignore[method-assign,assignment]
        try:
            answer = await call(application, "POST", PAYMENTS, [ACME, JSON], body_of(b'{"amount": 1250}'))
        finally:
            del loop.call_soon
        desk = application.state.parts.desk
        assert answer.status == 200
        assert desk.in_flight == 0
        assert desk.running(MerchantId("m_acme")) == 0
    assert len(scheduled) == 1, scheduled


def test_an_event_row_converts_only_the_fields_that_may_hold_a_currency() -> None:
    """Two events of every payment have a currency, shown as its code: a row of one looks at that
    field only (a pass over every field cost 2.1 µs an event, this 0.5). The rows themselves are
    checked against the full documents in tests/ingest/codec/test_event_json.py."""
    for kind in (PaymentReceived, PlanBuilt):
        shape = _shape(kind)
        assert [shape.names[at - 1] for at in shape.currencies] == ["currency"]
    assert _shape(StepSucceeded).currencies == ()


_THIRTEEN = re.compile(r"[0-9]{13}")


def test_an_issued_id_is_searched_for_card_numbers_only_with_thirteen_digits_in_a_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every request and payment gets a new id, which must hold no card number: the masking's own
    search (2.3 µs on 24 hex digits) runs only for digits with thirteen decimal digits in a row,
    which a card number in hex digits needs (about 1 id in 40)."""
    searched: list[str] = []

    def counting(text: str) -> str:
        searched.append(text)
        return mask_card_numbers(text)

    monkeypatch.setattr(payments, "mask_card_numbers", counting)
    issued = [payments.new_id("pay") for _ in range(2_000)]
    assert all(mask_card_numbers(one) == one for one in issued)
    assert [text for text in searched if _THIRTEEN.search(text) is None] == []
    assert len(searched) < 200


def test_an_issued_id_is_searched_only_with_decimal_digits_at_positions_11_and_12(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Thirteen digits in a row among 24 cover positions 11 and 12: an id with a letter at either
    (5 in 8) needs no search for them (3,700 instructions)."""
    searched: list[str] = []

    class Counting:
        def search(self, text: str) -> re.Match[str] | None:
            searched.append(text)
            return _THIRTEEN.search(text)

    monkeypatch.setattr(payments, "_THIRTEEN_DIGITS", Counting())
    issued = [payments.new_id("pay").removeprefix("pay_") for _ in range(400)]
    assert all(one[11:13].isdecimal() for one in searched)
    assert {one for one in issued if one[11:13].isdecimal()} <= set(searched)
    assert 0 < len(searched) < len(issued)


@given(st.text(alphabet="0123456789abcdef", max_size=40))
def test_hex_digits_without_thirteen_digits_in_a_row_hold_no_card_number(digits: str) -> None:
    """Why the shortcut above is safe: masking never changes such hex digits."""
    if _THIRTEEN.search(digits) is None:
        assert mask_card_numbers(digits) == digits


async def test_a_payment_goes_round_fastapis_middleware_stack(tmp_path: Path) -> None:
    """FastAPI's own layers (its 500, its exception telemetry, its body limit) do nothing for a
    payment that the front does not (see ingest.api.application): a payment goes to the front
    first, every other request through the whole stack."""
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=False)
    application = create_app(settings)
    assert isinstance(application, PayorchAPI)
    entered: list[str] = []
    async with application.router.lifespan_context(application):
        assert (await call(application, "GET", "/healthz", [], body_of(b""))).status == 200
        stack = application.middleware_stack
        assert stack is not None

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            entered.append(f"{scope['method']} {scope['path']}")
            await stack(scope, receive, send)

        application.middleware_stack = counting
        paid = await call(application, "POST", PAYMENTS, [ACME, JSON], body_of(b'{"amount": 1250}'))
        healthy = await call(application, "GET", "/healthz", [], body_of(b""))
    assert (paid.status, paid.json()["status"], healthy.status) == (200, "succeeded", 200)
    assert "request-id" in paid.headers
    assert entered == ["GET /healthz"]


class _BrokenSpans:
    def start_server(self, *args: object) -> None:
        raise RuntimeError("the span buffer broke")


async def test_an_error_escaping_the_front_of_a_payment_is_the_apps_500_and_goes_on_to_the_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As FastAPI's ``ServerErrorMiddleware`` did for it: the app's handler answers 500 (a problem
    document, its error logged with its traceback), then the error goes on to the server."""
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=False)
    application = create_app(settings)
    answer, send = collecting()
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PAYMENTS,
        "raw_path": PAYMENTS.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), ACME, JSON],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    async with application.router.lifespan_context(application):
        assert (await call(application, "GET", "/healthz", [], body_of(b""))).status == 200
        layer: object = application.middleware_stack
        while not isinstance(layer, Front):
            layer = getattr(layer, "app")  # noqa: B009 - any layer of the stack
        layer.spans = _BrokenSpans()  # type: ignore[assignment]
        with pytest.raises(RuntimeError, match="the span buffer broke"):
            await application(scope, body_of(b'{"amount": 1250}'), send)  # type: ignore[arg-type]
    assert answer.status == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert str(answer.json()["type"]).endswith("internal_error")
    logged = [record.getMessage() for record in caplog.records if record.exc_info]
    assert logged == ["unhandled error on POST /v1/payments"]


async def test_only_a_payment_with_a_key_has_its_body_fingerprinted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body's fingerprint is what a key's repeat is compared by: a payment with no key (in its
    header or its body) is compared with nothing, and its fingerprint is not made (1.2-1.75 µs)."""
    fingerprinted: list[bytes] = []

    def counting(body: bytes, content_type: str | None = None) -> str:
        fingerprinted.append(body)
        return body_fingerprint(body, content_type)

    monkeypatch.setattr(payments, "body_fingerprint", counting)
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=False)
    application = create_app(settings)
    keyed = (b"idempotency-key", b"k-1")
    in_body = b'{"amount": 1250, "idempotency_key": "k-2"}'
    async with application.router.lifespan_context(application):
        plain = await call(application, "POST", PAYMENTS, [ACME, JSON], body_of(b'{"amount": 1250}'))
        assert fingerprinted == []
        first = await call(application, "POST", PAYMENTS, [ACME, JSON, keyed], body_of(b'{"amount": 1250}'))
        again = await call(application, "POST", PAYMENTS, [ACME, JSON], body_of(in_body))
        repeat = await call(application, "POST", PAYMENTS, [ACME, JSON], body_of(in_body))
    assert [plain.status, first.status, again.status, repeat.status] == [200, 200, 200, 200]
    assert repeat.headers.get("idempotent-replayed") == "true"
    assert fingerprinted == [b'{"amount": 1250}', in_body, in_body]
