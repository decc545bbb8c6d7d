"""``GET /v1/payments``: a merchant lists its payments (it was 405), so that a payment whose answer
was lost, sent without an ``Idempotency-Key``, can be found instead of paid again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from engine.events import PaymentReceived, StepSucceeded
from engine.money import Currency
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from ingest.codec.result_json import refusal_to_json
from ingest.records import Records
from tests.ingest.api.test_app import ACME, ADMIN, GLOBEX, JSON, Answer, body_of, call

MOMENT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


async def listed(app: object, key: tuple[bytes, bytes], query: str = "", method: str = "GET") -> Answer:
    return await call(app, method, f"/v1/payments{query}", [key], body_of(b""))


def ids(answer: Answer) -> list[str]:
    assert answer.status == 200, answer.body
    payments: Any = answer.json()["payments"]
    return [str(payment["payment_id"]) for payment in payments]


async def pay(app: object, key: tuple[bytes, bytes], body: bytes) -> str:
    answer = await call(app, "POST", "/v1/payments", [key, JSON], body_of(body))
    assert answer.status in (200, 422), answer.body
    return str(answer.json()["payment_id"])


def received(payment_id: str, at: datetime, merchant: str = "m_acme", *, accepted: bool) -> PaymentReceived:
    return PaymentReceived(
        payment_id=PaymentId(payment_id),
        request_id=RequestId(f"req_{payment_id}"),
        merchant_id=MerchantId(merchant),
        timestamp=at,
        accepted=accepted,
        amount_cents=2500,
        currency=Currency("USD"),
    )


async def refused(records: Records, payment_id: str, at: datetime, merchant: str = "m_acme") -> None:
    """A request refused at ``at``, recorded as the payment path records one."""
    event = received(payment_id, at, merchant, accepted=False)
    await records.emit(event)
    await records.save_refusal(event, orjson.dumps(refusal_to_json(event)))


async def test_a_merchant_lists_its_own_payments_newest_first_as_each_reads(served: Any) -> None:
    first = await pay(served, ACME, b'{"amount": 1250}')
    rejected = await pay(served, ACME, b'{"amount": "12.345"}')
    declined_card = b'{"amount": 1250, "method": "card", "metadata": {"card_number": "4000000000000002"}}'
    declined = await pay(served, ACME, declined_card)
    globex = await pay(served, GLOBEX, b'{"amount": 700}')

    own = await listed(served, ACME)
    admin_all = await listed(served, ADMIN)
    admin_one = await listed(served, ADMIN, "?merchant_id=m_globex")
    globex_own = await listed(served, GLOBEX)
    naming_another = await listed(served, GLOBEX, "?merchant_id=m_acme")
    past_anothers = await listed(served, GLOBEX, f"?starting_after={first}")
    nobody = await listed(served, (b"x-nothing", b""))

    assert ids(own) == [declined, rejected, first]
    assert own.json()["has_more"] is False
    for payment in own.json()["payments"]:  # type: ignore[attr-defined]
        single = await call(served, "GET", f"/v1/payments/{payment['payment_id']}", [ACME], body_of(b""))
        assert payment == single.json()
    statuses: Any = [payment["status"] for payment in own.json()["payments"]]  # type: ignore[attr-defined]
    assert statuses == ["failed", "rejected", "succeeded"]
    assert ids(admin_all) == [globex, declined, rejected, first]
    assert ids(admin_one) == ids(globex_own) == [globex]
    assert (ids(naming_another), naming_another.json()["has_more"]) == ([], False)
    assert past_anothers.status == 422, past_anothers.body
    errors: Any = past_anothers.json()["errors"]
    assert [(error["field"], error["code"]) for error in errors] == [("starting_after", "unknown_payment")]
    assert nobody.status == 401


async def walk(app: Any, key: tuple[bytes, bytes], query: str, between: int = 0) -> list[dict[str, Any]]:
    """Every page of the list, each ``starting_after`` the last one seen; ``between`` more acme
    payments are received after the first page (newer than every other)."""
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = await listed(app, key, f"{query}&starting_after={cursor}")
        assert page.status == 200, page.body
        seen += page.json()["payments"]  # type: ignore[arg-type]
        if not page.json()["has_more"]:
            return seen
        cursor = seen[-1]["payment_id"]
        for number in range(between):
            await refused(app.state.parts.records, f"pay_later{number}", MOMENT + timedelta(hours=1))
        await app.state.parts.records.sync()
        between = 0


async def test_paging_lists_each_payment_once_when_many_share_a_timestamp(served: Any) -> None:
    records: Records = served.state.parts.records
    names = [f"pay_{number:03}" for number in range(23)]
    for number, payment_id in enumerate(names):  # five at each instant: a page ends amid them
        await refused(records, payment_id, MOMENT + timedelta(seconds=number // 5))
    await refused(records, "pay_g", MOMENT + timedelta(seconds=2), merchant="m_globex")
    await records.sync()

    seen = await walk(served, ACME, "?limit=4", between=3)
    everything = await walk(served, ADMIN, "?limit=7")
    window = await listed(served, ACME, "?from=2026-11-20T10:00:01Z&to=2026-11-20T10:00:03Z&limit=100")

    # Those received during the walk are newer than its first page: not in it, never repeated.
    assert [payment["payment_id"] for payment in seen] == list(reversed(names))
    assert sorted(payment["payment_id"] for payment in everything) == sorted(
        [*names, "pay_g", "pay_later0", "pay_later1", "pay_later2"]
    )
    assert ids(window) == list(reversed(names[5:15]))  # from inclusive, to exclusive


async def record_running(records: Records) -> None:
    """``pay_running``: received, one step charged, no result yet."""
    await records.emit(received("pay_running", MOMENT, accepted=True))
    charged = StepSucceeded(
        payment_id=PaymentId("pay_running"),
        request_id=RequestId("req_pay_running"),
        merchant_id=MerchantId("m_acme"),
        timestamp=MOMENT + timedelta(milliseconds=80),
        step_index=0,
        processor_id=ProcessorId("stripe_sim"),
        latency_ms=80,
        amount=1000,
    )
    await records.emit(charged)
    await records.sync()


async def test_a_payment_with_no_result_yet_is_listed_processing_not_missing(served: Any) -> None:
    records: Records = served.state.parts.records
    await record_running(records)
    await refused(records, "pay_refused", MOMENT - timedelta(seconds=1))
    await records.sync()

    every = await listed(served, ACME)
    running = await listed(served, ACME, "?status=processing")
    rejected = await listed(served, ACME, "?status=rejected")
    succeeded = await listed(served, ACME, "?status=succeeded")
    others = await listed(served, GLOBEX, "?status=processing")

    assert ids(every) == ["pay_running", "pay_refused"]
    shown: Any = every.json()["payments"]
    assert {name: shown[0][name] for name in ("status", "success", "total_amount", "currency")} == {
        "status": "processing",
        "success": False,
        "total_amount": 2500,
        "currency": "USD",
    }
    assert (shown[0]["total_processed"], shown[0]["remaining_amount"]) == (1000, 1500)  # charged so far
    assert [event["type"] for event in shown[0]["events"]] == ["PaymentReceived", "StepSucceeded"]
    assert ids(running) == ["pay_running"]
    assert ids(rejected) == ["pay_refused"]
    assert (ids(succeeded), ids(others)) == ([], [])


async def test_a_running_payment_reads_as_the_list_shows_it_not_as_missing(served: Any) -> None:
    # The list showed it `processing`; GET /v1/payments/{id} said 404 "No payment", which reads as
    # "never charged": a merchant retrying without its key on that answer paid twice.
    await record_running(served.state.parts.records)
    path = "/v1/payments/pay_running"

    in_list: Any = (await listed(served, ACME)).json()["payments"]
    single = await call(served, "GET", path, [ACME], body_of(b""))
    by_admin = await call(served, "GET", path, [ADMIN], body_of(b""))
    head = await call(served, "HEAD", path, [ACME], body_of(b""))
    anothers = await call(served, "GET", path, [GLOBEX], body_of(b""))
    anothers_head = await call(served, "HEAD", path, [GLOBEX], body_of(b""))
    unknown = await call(served, "GET", "/v1/payments/pay_never_made", [ACME], body_of(b""))
    complaint = {"complaint_id": "c-run", "category": "double_charge", "payment_id": "pay_running"}
    filed = await call(served, "POST", "/v1/complaints", [ACME, JSON], body_of(orjson.dumps(complaint)))

    assert (single.status, by_admin.status, head.status) == (200, 200, 200), single.body
    assert single.json() == by_admin.json() == in_list[0]
    assert single.json()["status"] == "processing"
    assert (head.body, head.headers["content-type"]) == (b"", "application/json")
    assert (anothers.status, anothers_head.status, unknown.status) == (404, 404, 404)
    assert filed.status == 201, filed.body  # a complaint may name it: it was "no payment" too


async def test_a_payment_just_received_reads_processing_before_its_first_commit(served: Any) -> None:
    # Its PaymentReceived queued, not committed yet: the read waits for the commit, not 404.
    await served.state.parts.records.emit(received("pay_just_now", MOMENT, accepted=True))

    head = await call(served, "HEAD", "/v1/payments/pay_just_now", [ACME], body_of(b""))
    single = await call(served, "GET", "/v1/payments/pay_just_now", [ACME], body_of(b""))

    assert (head.status, single.status) == (200, 200), single.body
    assert single.json()["status"] == "processing"


async def test_a_head_of_the_list_is_checked_as_its_get(served: Any) -> None:
    await pay(served, ACME, b'{"amount": 1250}')

    head = await listed(served, ACME, method="HEAD")
    bad_cursor = await listed(served, ACME, "?starting_after=pay_none", method="HEAD")

    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-type"] == "application/json"
    assert bad_cursor.status == 422


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("?since=2026-11-01", "since", "unknown_parameter"),
        ("?ending_before=pay_1", "ending_before", "unknown_parameter"),
        ("?limit=1&limit=2", "limit", "repeated_parameter"),
        ("?limit=0", "limit", "out_of_range"),
        ("?limit=10001", "limit", "out_of_range"),
        ("?status=paid", "status", "unknown_value"),
        ("?from=2026-11-02&to=2026-11-01", "from", "after_to"),
        ("?from=1764547200", "from", "invalid_format"),
        ("?starting_after=pay_none", "starting_after", "unknown_payment"),
    ],
)
async def test_a_list_query_it_cannot_read_is_refused(served: Any, query: str, field: str, code: str) -> None:
    for key in (ACME, ADMIN):
        refused_answer = await listed(served, key, query)

        assert refused_answer.status == 422, refused_answer.body
        errors: Any = refused_answer.json()["errors"]
        assert [(error["field"], error["code"]) for error in errors] == [(field, code)]


async def test_the_openapi_document_describes_the_list(served: Any) -> None:
    document: Any = (await call(served, "GET", "/openapi.json", [], body_of(b""))).json()
    operation = document["paths"]["/v1/payments"]["get"]

    assert operation["operationId"] == "listPayments"
    assert {parameter["name"] for parameter in operation["parameters"]} == {
        "merchant_id",
        "from",
        "to",
        "status",
        "limit",
        "starting_after",
    }
    assert "post" in document["paths"]["/v1/payments"]  # the payment itself is still there
