"""What a refusal's ``detail`` tells the developer who reads only it (a client library's error
message, a log line): the field at fault and what to do, not just that something was wrong."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from ingest.api.app import create_app
from ingest.api.settings import Settings
from ingest.config_file import parse_config
from ingest.records import MemoryRecords
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import ACME, ADMIN, JSON, body_of, call


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[object]:
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path, records=MemoryRecords())
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_refused_payments_detail_names_the_fields_that_blocked_it(app: object) -> None:
    """The detail said "1 field could not be used", and the first of ``errors`` was the warning
    that no merchant id was given: the amount at fault was the third entry."""
    zero = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": 0}'))
    two = await call(
        app, "POST", "/v1/payments", [ACME, JSON], body_of(b'{"amount": "12.345", "metadata": "order=1"}')
    )
    queried = await call(app, "POST", "/v1/payments?amount=1", [ACME, JSON], body_of(b'{"amount": 1250}'))

    assert zero.status == 422
    assert zero.json()["detail"] == '1 field could not be used (amount: "0" is zero); nothing was charged.'
    assert two.status == 422
    detail = str(two.json()["detail"])
    assert detail.startswith("2 fields could not be used (")
    assert 'amount: "12.345"' in detail
    assert "metadata: metadata must be an object" in detail
    assert "merchant_id" not in detail  # a warning: it blocks nothing
    assert queried.status == 422
    assert "(amount: " in str(queried.json()["detail"])  # the query parameter, named as the issue does


async def test_a_refusal_of_many_fields_names_the_first_and_counts_the_rest(app: object) -> None:
    metadata = ", ".join(f'"{"k" * 41}{index}": "v"' for index in range(5))
    body = b'{"amount": 0, "metadata": {%s}}' % metadata.encode()
    answer = await call(app, "POST", "/v1/payments", [ACME, JSON], body_of(body))

    assert answer.status == 422
    detail = str(answer.json()["detail"])
    assert detail.startswith("6 fields could not be used (amount: ")
    assert detail.endswith("; and 3 more in errors); nothing was charged.")
    assert len(answer.json()["errors"]) >= 6  # type: ignore[arg-type]


async def test_a_query_parameter_that_does_not_fit_is_named_in_the_detail(app: object) -> None:
    """``?limit=0`` was 422 "The request does not fit this endpoint.", whatever was wrong."""
    answers = {
        query: await call(app, "GET", f"/v1/violations?{query}", [ADMIN], body_of(b""))
        for query in ("limit=0", "limit=abc", "from=yesterday", "limit=0&to=tomorrow")
    }
    report = await call(app, "GET", "/v1/reports/retrospective?format=csv", [ADMIN], body_of(b""))

    for query, answer in answers.items():
        assert answer.status == 422, (query, answer.body)
        errors: Any = answer.json()["errors"]
        named = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
        assert answer.json()["detail"] == f"The request does not fit this endpoint ({named}).", query
    assert "(limit: must be a whole number" in str(answers["limit=abc"].json()["detail"])
    assert "(from: must be an ISO 8601 date" in str(answers["from=yesterday"].json()["detail"])
    assert "limit: " in str(answers["limit=0&to=tomorrow"].json()["detail"])
    assert "to: " in str(answers["limit=0&to=tomorrow"].json()["detail"])
    assert (report.status, "(format: " in str(report.json()["detail"])) == (422, True)


#: The codes a parameter or a field that does not fit may carry (README, "The merchant API").
PARAMETER_CODES = {
    "missing",
    "invalid_type",
    "out_of_range",
    "value_too_long",
    "value_too_short",
    "unknown_value",
    "invalid_format",
    "unknown_field",
    "invalid_json",
    "not_an_object",
    "invalid",
}
LONG = "x" * 300


@pytest.mark.parametrize(
    ("key", "target", "body", "field", "code", "message"),
    [
        (ADMIN, "/v1/violations?limit=0", None, "limit", "out_of_range", "must be at least 1"),
        (ADMIN, "/v1/violations?limit=10001", None, "limit", "out_of_range", "must be at most 10000"),
        (ADMIN, "/v1/violations?limit=1.0", None, "limit", "invalid_format", None),
        (ADMIN, f"/v1/violations?contract_id={LONG}", None, "contract_id", "value_too_long", None),
        (ADMIN, f"/v1/violations?request_id={LONG}", None, "request_id", "value_too_long", None),
        (ADMIN, "/v1/violations?from=yesterday", None, "from", "invalid_format", None),
        (ACME, "/v1/payments?status=paid", None, "status", "unknown_value", None),
        (ACME, "/v1/payments?limit=0", None, "limit", "out_of_range", "must be at least 1"),
        (ACME, f"/v1/payments?starting_after={LONG}", None, "starting_after", "value_too_long", None),
        (ACME, f"/v1/payments/{LONG}", None, "payment_id", "value_too_long", None),
        (ACME, "/v1/complaints?limit=10001", None, "limit", "out_of_range", None),
        (ACME, f"/v1/complaints/{LONG}", None, "complaint_id", "value_too_long", None),
        (ADMIN, f"/v1/complaints/c-1?merchant_id={LONG}", None, "merchant_id", "value_too_long", None),
        (
            ADMIN,
            "/v1/analytics/events?format=csv",
            None,
            "format",
            "unknown_value",
            "must be 'json' or 'arrow'",
        ),
        (ADMIN, "/v1/analytics/violations?to=2026-11-20T25:00", None, "to", "invalid_format", None),
        (ADMIN, "/v1/reports/retrospective?format=xml", None, "format", "unknown_value", None),
        (ACME, f"/problems/{LONG}", None, "code", "value_too_long", "must be at most 64 characters"),
        (ACME, "/v1/complaints", b'{"category": ""}', "category", "value_too_short", "must not be empty"),
        (ACME, "/v1/complaints", b'{"category": 5}', "category", "invalid_type", None),
        (ACME, "/v1/complaints", b'{"category": "a", "zz": 1}', "zz", "unknown_field", None),
        (ACME, "/v1/complaints", b'{"description": "d"}', "category", "missing", "is required"),
        (ACME, "/v1/complaints", b'{"category": "#!"}', "category", "invalid_format", None),
        (ACME, "/v1/complaints", b"[1]", "body", "not_an_object", None),
        (ACME, "/v1/complaints", b"{nope", "body", "invalid_json", None),
    ],
)
async def test_a_parameter_that_does_not_fit_has_a_code_of_payorchs_own(
    app: object, key: Any, target: str, body: bytes | None, field: str, code: str, message: str | None
) -> None:
    """Every other refusal carries payorch's codes; these carried pydantic's (``greater_than_equal``,
    ``literal_error``, ``string_too_long``, ``model_attributes_type``), with its words ("Input
    should be greater than or equal to 1")."""
    method = "GET" if body is None else "POST"
    answer = await call(app, method, target, [key, JSON], body_of(body or b""))

    assert answer.status == 422, answer.body
    errors: Any = answer.json()["errors"]
    assert [(error["field"], error["code"]) for error in errors] == [(field, code)]
    assert code in PARAMETER_CODES
    if message is not None:
        assert errors[0]["message"] == message
    assert not errors[0]["message"].startswith(("Input should", "String should"))


async def test_a_filed_complaint_says_where_it_is_read_back(app: object) -> None:
    """A 201 without ``Location`` names the request's URI, the list, as what it made (RFC 9110
    section 15.3.2); a client following it found no complaint there."""
    filed = {
        key: await call(app, "POST", "/v1/complaints", [key[0], JSON], body_of(orjson.dumps(fields)))
        for key, fields in (
            ((ACME, "own"), {"complaint_id": "c-1", "category": "timeout", "description": "slow"}),
            ((ACME, "slash"), {"complaint_id": "zendesk/4711", "category": "timeout", "description": "x"}),
            (
                (ADMIN, "admin"),
                {"complaint_id": "c-1", "merchant_id": "m_globex", "category": "timeout", "description": "y"},
            ),
        )
    }
    again = await call(
        app,
        "POST",
        "/v1/complaints",
        [ACME, JSON],
        body_of(b'{"complaint_id": "c-1", "category": "timeout", "description": "slow"}'),
    )

    locations = {name: answer.headers.get("location") for (_, name), answer in filed.items()}
    assert [answer.status for answer in filed.values()] == [201, 201, 201]
    assert locations == {
        "own": "/v1/complaints/c-1",
        "slash": "/v1/complaints/zendesk%2F4711",
        "admin": "/v1/complaints/c-1?merchant_id=m_globex",
    }
    for (key, name), answer in filed.items():
        read = await call(app, "GET", unquote(str(locations[name])), [key], body_of(b""))
        assert read.status == 200, (name, read.body)
        assert read.json()["complaint_id"] == answer.json()["complaint_id"]
        assert read.json()["merchant_id"] == answer.json()["merchant_id"]
    assert again.status == 200


async def test_a_method_a_path_does_not_take_is_named_with_those_it_takes(app: object) -> None:
    """A 405 was "This path does not take this method.": which ones the path takes were only in
    ``Allow``, which a client library rarely shows. ``Allow`` names every route's methods of the
    path, not the first route's alone (``POST /v1/payments`` said only ``POST``)."""
    put = await call(app, "PUT", "/v1/payments", [ACME], body_of(b""))
    deleted = await call(app, "DELETE", "/v1/payments/pay_x", [ACME], body_of(b""))

    assert (put.status, put.headers["allow"]) == (405, "GET, HEAD, POST")
    assert put.json()["detail"] == "/v1/payments does not take PUT; it takes GET, HEAD, POST."
    assert (deleted.status, deleted.headers["allow"]) == (405, "GET, HEAD")
    assert deleted.json()["detail"] == "/v1/payments/pay_x does not take DELETE; it takes GET, HEAD."


async def test_a_reused_key_is_named_where_the_request_gave_it(app: object) -> None:
    """A key sent in the body's ``idempotency_key`` was told "This Idempotency-Key was already
    used", a header the client never sent."""
    keyed = (b"idempotency-key", b"k-header")
    in_body = [
        await call(
            app,
            "POST",
            "/v1/payments",
            [ACME, JSON],
            body_of(b'{"amount": %d, "idempotency_key": "k-body"}' % n),
        )
        for n in (1250, 1251)
    ]
    in_header = [
        await call(app, "POST", "/v1/payments", [ACME, JSON, keyed], body_of(b'{"amount": %d}' % n))
        for n in (1250, 1251)
    ]

    assert [answer.status for answer in (*in_body, *in_header)] == [200, 422, 200, 422]
    assert (in_body[1].json()["code"], in_header[1].json()["code"]) == ("idempotency_key_reused",) * 2
    assert "(the body's idempotency_key)" in str(in_body[1].json()["detail"])
    assert "Idempotency-Key" not in str(in_body[1].json()["detail"])
    assert "(the Idempotency-Key header)" in str(in_header[1].json()["detail"])


async def test_a_reused_keys_violation_names_where_the_request_gave_it(app: object) -> None:
    """The ``idempotency/key-reused`` violation of a key sent in the body said "Idempotency-Key
    reused", as the 422 once did: a reader of the violations looked for a header the client never
    sent."""
    keyed = (b"idempotency-key", b"k-header")
    for n in (1250, 1251):
        await call(
            app,
            "POST",
            "/v1/payments",
            [ACME, JSON],
            body_of(b'{"amount": %d, "idempotency_key": "k-body"}' % n),
        )
        await call(app, "POST", "/v1/payments", [ACME, JSON, keyed], body_of(b'{"amount": %d}' % n))

    listed = await call(
        app, "GET", "/v1/violations?contract_id=idempotency/key-reused", [ADMIN], body_of(b"")
    )

    assert listed.status == 200, listed.body
    violations = listed.json()["violations"]
    assert isinstance(violations, list)
    messages = [violation["message"] for violation in violations]
    assert sorted(messages) == [
        "Idempotency-Key reused with a different request body",
        "idempotency_key (in the body) reused with a different request body",
    ]


async def test_the_body_key_and_the_header_key_are_one_rule_in_the_openapi_document(app: object) -> None:
    """The body's key had the pattern ``^[ -~]+$``, which takes a key of spaces only, which the
    service refuses (and the header's pattern did not take)."""
    document: Any = (await call(app, "GET", "/openapi.json", [], body_of(b""))).json()
    operation = document["paths"]["/v1/payments"]["post"]
    header = next(p["schema"] for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    for media in ("application/json", "application/x-www-form-urlencoded"):
        field = operation["requestBody"]["content"][media]["schema"]["properties"]["idempotency_key"]
        rule = {name: field[name] for name in ("minLength", "maxLength", "pattern")}
        assert rule == {name: header[name] for name in ("minLength", "maxLength", "pattern")}, media
    pattern = re.compile(header["pattern"])
    assert [bool(pattern.search(key)) for key in ("   ", "a b", " a", "k\t1")] == [False, True, True, False]
