"""The app in-process, driven through ASGI: limits, timeouts, faults and metrics that a client
over a real socket cannot easily provoke. (The end-to-end tests run a real server.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.results import CompositeResult
from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.records import MemoryRecords
from tests.e2e.server import CONFIG

ACME = (b"authorization", b"Bearer sk_e2e_acme")
JSON = (b"content-type", b"application/json")

Receive = Callable[[], Awaitable[dict[str, object]]]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)

    def json(self) -> dict[str, object]:
        document: dict[str, object] = orjson.loads(self.body)
        return document


async def call(
    app: object, method: str, path: str, headers: list[tuple[bytes, bytes]], receive: Receive
) -> Answer:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    answer = Answer(0, {})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(scope, receive, send)  # type: ignore[operator]
    return answer


def body_of(*chunks: bytes, then_wait: bool = False) -> Receive:
    pending = list(chunks)

    async def receive() -> dict[str, object]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or then_wait}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


class FailingRecords(MemoryRecords):
    """Records whose result store breaks: the fault must not reach the client."""

    async def save_result(self, result: CompositeResult, document: bytes) -> None:
        raise OSError("/var/lib/payorch/payorch.duckdb: disk I/O error")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[object]:
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, body_timeout_s=0.05)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_chunked_body_over_64_kib_is_413_before_it_is_all_read(app: object) -> None:
    chunk = b"x" * 40_000
    answer = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(chunk, chunk, chunk))

    assert answer.status == 413
    assert answer.json()["code"] == "payload_too_large"


async def test_a_body_that_stops_arriving_is_408(app: object) -> None:
    answer = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount":', then_wait=True))

    assert answer.status == 408
    assert answer.headers["content-type"] == "application/problem+json"


async def test_a_fault_after_charging_is_a_plain_500_kept_under_the_key(tmp_path: Path) -> None:
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, records=FailingRecords())
    application = create_app(settings)
    headers = [ACME, JSON, (b"idempotency-key", b"order-17")]
    async with application.router.lifespan_context(application):
        first = await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 500}'))
        again = await call(application, "POST", "/v1/payments", headers, body_of(b'{"amount": 500}'))

    assert first.status == again.status == 500
    assert again.headers["idempotent-replayed"] == "true"
    assert first.body == again.body
    text = first.body.decode()
    assert "disk I/O" not in text
    assert "/var/lib" not in text
    assert "Traceback" not in text
    assert first.json()["code"] == "internal_error"


async def test_validation_issues_and_outcomes_are_counted(app: object) -> None:
    await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "1,000", "currency": "usd"}'))
    await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "nope"}'))
    scraped = await call(app, "GET", "/metrics", [], body_of(b""))

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.body.decode())
        for sample in family.samples
    }
    assert (
        samples["payorch_validation_issues_total", (("code", "ambiguous_separator"), ("field", "amount"))]
        == 1
    )
    assert samples["payorch_validation_issues_total", (("code", "invalid_amount"), ("field", "amount"))] == 1
    assert samples["payorch_payments_total", (("status", "succeeded"),)] == 1
    assert samples["payorch_payments_total", (("status", "rejected"),)] == 1


async def test_bad_idempotency_keys_are_400(app: object) -> None:
    for key in (b"", b"k" * 256, b"tab\there"):
        answer = await call(
            app, "POST", "/v1/payments", [ACME, JSON, (b"idempotency-key", key)], body_of(b'{"amount": 5}')
        )
        assert answer.status == 400, key
        assert answer.json()["errors"] == [
            {
                "field": "Idempotency-Key",
                "code": "invalid_idempotency_key",
                "message": "is empty, too long or not printable",
                "severity": "error",
            }
        ]


async def test_a_trailing_slash_is_a_404_that_names_the_route(app: object) -> None:
    answer = await call(app, "POST", "/v1/payments/", [ACME, JSON], body_of(b'{"amount": 1250}'))
    assert answer.status == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == (
        "No route matches this path; /v1/payments (without the trailing slash) is one."
    )
    elsewhere = await call(app, "GET", "/v1/nowhere/", [ACME], body_of(b""))
    assert (elsewhere.status, elsewhere.json()["detail"]) == (404, "No route matches this path.")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (b"application/x-www-form-urlencoded", b'{"category": "timeout"}'),
        (b"application/json", b'["timeout"]'),
    ],
)
async def test_a_complaint_that_is_not_a_json_object_is_422_saying_what_to_send(
    app: object, content_type: bytes, body: bytes
) -> None:
    answer = await call(app, "POST", "/v1/complaints", [ACME, (b"content-type", content_type)], body_of(body))
    assert answer.status == 422
    assert answer.json()["errors"] == [
        {
            "field": "body",
            "code": "model_attributes_type",
            "message": "the body must be a JSON object, sent with Content-Type: application/json",
            "severity": "error",
        }
    ]


GLOBEX = (b"authorization", b"Bearer sk_e2e_globex")


async def complain(app: object, key: tuple[bytes, bytes], **fields: object) -> Answer:
    body = orjson.dumps({"category": "double_charge", "description": "charged twice", **fields})
    return await call(app, "POST", "/v1/complaints", [key, JSON], body_of(body))


async def test_a_complaint_may_name_only_its_own_merchants_payment(app: object) -> None:
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    payment_id = paid.json()["payment_id"]

    own = await complain(app, ACME, payment_id=payment_id)
    others = await complain(app, GLOBEX, payment_id=payment_id)
    unknown = await complain(app, GLOBEX, payment_id="pay_nowhere")

    assert own.status == 201
    assert own.json()["payment_id"] == payment_id
    # Another merchant's payment and a payment that does not exist get the same answer.
    for refused, named in ((others, payment_id), (unknown, "pay_nowhere")):
        assert refused.status == 422
        assert refused.json()["errors"] == [
            {
                "field": "payment_id",
                "code": "unknown_payment",
                "message": f"no payment {named!r} for this merchant",
                "severity": "error",
            }
        ]


async def test_a_card_number_in_a_complaint_is_kept_masked(app: object) -> None:
    filed = await complain(
        app, ACME, complaint_id="cmp_card", description="card 4242 4242 4242 4242 billed twice"
    )
    again = await complain(
        app, ACME, complaint_id="cmp_card", description="card 4242 4242 4242 4242 billed twice"
    )
    as_category = await complain(app, ACME, category="4242424242424242")

    assert filed.status == 201
    assert filed.json()["description"] == "card 424242******4242 billed twice"
    assert again.status == 200  # the stored complaint, as kept
    assert again.json()["description"] == "card 424242******4242 billed twice"
    assert as_category.status == 422
    assert b"4242424242424242" not in as_category.body


ADMIN = (b"authorization", b"Bearer adm_e2e_admin")


@pytest.fixture(params=["duckdb", "memory"])
async def either_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """The app over the DuckDB store, and over the memory records."""
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, durable=request.param == "duckdb")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_complaint_ids_are_each_merchants_own(either_app: object) -> None:
    app = either_app
    acme = await complain(app, ACME, complaint_id="ticket-1", description="acme's")
    globex = await complain(app, GLOBEX, complaint_id="ticket-1", description="globex's")
    acme_again = await complain(app, ACME, complaint_id="ticket-1", description="acme's")
    globex_again = await complain(app, GLOBEX, complaint_id="ticket-1", description="globex's")

    assert (acme.status, globex.status) == (201, 201)
    assert (acme.json()["merchant_id"], globex.json()["merchant_id"]) == ("m_acme", "m_globex")
    # A retry gets its own merchant's complaint back, as stored, and nothing of the other's.
    assert (acme_again.status, acme_again.json()) == (200, acme.json())
    assert (globex_again.status, globex_again.json()) == (200, globex.json())
    assert b"acme" not in globex_again.body


@pytest.mark.parametrize(
    ("card", "code", "retryable", "attempts"),
    [("4000000000000002", "declined", False, 1), ("4000000000000119", "processing_error", True, 2)],
)
async def test_a_failed_steps_events_show_whether_it_may_be_retried(
    either_app: object, card: str, code: str, retryable: bool, attempts: int
) -> None:
    body = orjson.dumps({"amount": 500, "method": "card", "metadata": {"card_number": card}})
    paid = await call(either_app, "POST", "/v1/payments", [ACME, JSON], body_of(body))
    got = await call(either_app, "GET", f"/v1/payments/{paid.json()['payment_id']}", [ACME], body_of(b""))

    steps: list[dict[str, object]] = paid.json()["step_results"]  # type: ignore[assignment]
    events: list[dict[str, object]] = got.json()["events"]  # type: ignore[assignment]
    assert [(s["error_code"], s["retryable"], s["attempts"]) for s in steps] == [(code, retryable, attempts)]
    failed = [(e["attempt"], e["error_code"], e["retryable"]) for e in events if e["type"] == "StepFailed"]
    # The same retry flag as the step's result, on every failed attempt.
    assert failed == [(n, code, retryable) for n in range(1, attempts + 1)]


async def test_a_complaint_id_filed_again_with_other_content_is_409_and_the_first_is_kept(
    either_app: object,
) -> None:
    app = either_app
    first = await complain(app, ACME, complaint_id="ticket-2", description="charged twice")
    other = await complain(app, ACME, complaint_id="ticket-2", description="charged three times")
    other_time = await complain(
        app, ACME, complaint_id="ticket-2", description="charged twice", received_at="2026-01-01T00:00:00Z"
    )
    again = await complain(app, ACME, complaint_id="ticket-2", description="charged twice")

    assert first.status == 201
    assert (other.status, other.json()["code"]) == (409, "complaint_exists")
    assert "ticket-2" in str(other.json()["detail"])
    assert other_time.status == 409  # a received_at given in the body is part of the complaint
    assert (again.status, again.json()) == (200, first.json())


async def test_a_card_number_where_an_id_belongs_is_refused_without_being_shown(app: object) -> None:
    answers = {
        name: await complain(app, ACME, **{name: value})
        for name, value in (
            ("complaint_id", "4000000000000127"),
            ("request_id", "req-4000000000000069"),
            ("payment_id", "4242424242424242"),
            ("category", "4000000000000002"),
        )
    }

    for name, answer in answers.items():
        assert answer.status == 422, name
        assert answer.json()["errors"] == [
            {
                "field": name,
                "code": "card_number",
                "message": "looks like a card number, which is neither stored nor shown",
                "severity": "error",
            }
        ]
        for number in (b"4000000000000127", b"4000000000000069", b"4242424242424242", b"4000000000000002"):
            assert number not in answer.body


async def test_an_admin_files_complaints_only_for_configured_merchants(app: object) -> None:
    known = await complain(app, ADMIN, merchant_id="m_globex")
    unknown = await complain(app, ADMIN, merchant_id="m_nope")

    assert (known.status, known.json()["merchant_id"]) == (201, "m_globex")
    assert unknown.status == 422
    assert unknown.json()["errors"] == [
        {
            "field": "merchant_id",
            "code": "unknown_merchant",
            "message": "no merchant 'm_nope' is configured",
            "severity": "error",
        }
    ]


async def test_head_is_get_without_the_body(app: object) -> None:
    paid = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 1250}'))
    path = f"/v1/payments/{paid.json()['payment_id']}"

    got = await call(app, "GET", path, [ACME], body_of(b""))
    head = await call(app, "HEAD", path, [ACME], body_of(b""))
    health = await call(app, "HEAD", "/healthz", [], body_of(b""))
    post_only = await call(app, "HEAD", "/v1/payments", [ACME], body_of(b""))

    assert (got.status, head.status, health.status) == (200, 200, 200)
    assert head.body == b"" and health.body == b""
    assert head.headers["content-length"] == str(len(got.body))
    assert head.headers["content-type"] == got.headers["content-type"]
    assert (post_only.status, post_only.headers["allow"]) == (405, "POST")
    assert post_only.body == b""


async def test_head_refused_for_its_declared_length_has_no_body(app: object) -> None:
    too_long = (b"content-length", b"999999999")

    head = await call(app, "HEAD", "/healthz", [too_long], body_of(b""))
    get = await call(app, "GET", "/healthz", [too_long], body_of(b""))

    assert (head.status, get.status) == (413, 413)
    assert head.body == b""
    assert head.headers["content-length"] == str(len(get.body))
    assert b"limit" in get.body
