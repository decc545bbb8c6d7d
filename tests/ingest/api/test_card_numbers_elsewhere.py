"""Card numbers a client puts where no card number belongs (the amount, the path) are kept only
masked: in answers, in the events and in the spans (PRODUCT.md section 5)."""

from __future__ import annotations

import orjson

from tests.ingest.api.test_app import ACME, ADMIN, JSON, body_of, call
from tests.ingest.observe import test_seed_observed
from tests.ingest.observe.test_seed_observed import Watched

watched = test_seed_observed.watched  # the fixture: the app with its spans and log lines caught

PAN = "4000000000000002"  # Luhn-valid: a Stripe test card


async def test_a_card_number_given_as_the_amount_is_in_no_event(watched: Watched) -> None:
    refused = await call(
        watched.app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "4000000000000002"}')
    )
    read = await call(
        watched.app,
        "GET",
        "/v1/analytics/events",
        [ADMIN],
        body_of(b""),
    )
    watched.flush()

    assert refused.status == 422
    assert PAN not in refused.body.decode()
    assert "400000******0002" in refused.body.decode()  # the issue says what was refused, masked
    events = orjson.loads(read.body)["events"]
    received = [event for event in events if event["event_type"] == "PaymentReceived"]
    assert len(received) == 1
    assert received[0]["amount_cents"] is None
    assert PAN not in read.body.decode()
    assert all(PAN not in orjson.dumps(line).decode() for line in watched.lines.records())


async def test_a_card_number_in_the_path_is_masked_in_the_answer_and_the_span(watched: Watched) -> None:
    missing = await call(watched.app, "GET", f"/v1/payments/{PAN}", [ACME], body_of(b""))
    slashed = await call(watched.app, "GET", f"/v1/payments/{PAN}/", [ACME], body_of(b""))
    watched.flush()

    assert (missing.status, slashed.status) == (404, 404)
    assert missing.json()["detail"] == "No payment '400000******0002' for this key."
    assert "/v1/payments/400000******0002 (without the trailing slash)" in str(slashed.json()["detail"])
    paths = [
        span.attributes.get("url.path") for span in watched.spans.get_finished_spans() if span.attributes
    ]
    assert f"/v1/payments/{PAN}" not in paths
    assert "/v1/payments/400000******0002" in paths
    assert "/v1/payments/400000******0002/" in paths


async def test_a_card_number_sent_as_the_method_is_masked_in_the_span(watched: Watched) -> None:
    # Any token is a method to HTTP; one the service does not know is kept in an attribute.
    answer = await call(watched.app, PAN, "/v1/payments", [ACME], body_of(b""))
    watched.flush()

    assert answer.status == 405
    assert PAN not in answer.body.decode()
    originals = [
        span.attributes.get("http.request.method_original")
        for span in watched.spans.get_finished_spans()
        if span.attributes and "http.request.method_original" in span.attributes
    ]
    assert originals == ["400000******0002"]


async def test_a_card_number_echoed_by_a_refusal_is_masked_in_its_problem(watched: Watched) -> None:
    contract = await call(watched.app, "GET", f"/v1/violations?contract_id={PAN}", [ADMIN], body_of(b""))
    complaint = orjson.dumps(
        {"complaint_id": "c-1", "category": "timeout", "description": "charged twice", PAN: "x"}
    )
    field = await call(watched.app, "POST", "/v1/complaints", [ACME, JSON], body_of(complaint))

    assert (contract.status, field.status) == (422, 422)
    assert contract.json()["errors"] == [
        {
            "field": "contract_id",
            "code": "unknown_contract",
            "message": "'400000******0002' is not in the registry",
            "severity": "error",
        }
    ]
    errors = orjson.loads(field.body)["errors"]
    assert [error["field"] for error in errors] == ["400000******0002"]
    assert PAN not in contract.body.decode() + field.body.decode()
