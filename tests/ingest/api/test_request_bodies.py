"""Bodies the JSON routes cannot read are refused as ``POST /v1/payments`` refuses them: 422, with
the reason as a ``body`` issue (a complaint in Latin-1 or gzipped was a 400 saying only that the
request could not be read, and one labelled gzip but sent plain was stored)."""

from __future__ import annotations

import gzip

import pytest

from tests.ingest.api.test_app import ACME, JSON, app, body_of, call

__all__ = ["app"]  # the fixture, for the tests below

COMPLAINT = '{"complaint_id": "c-1", "category": "timeout", "description": "trop lent, café froid"}'


def issues(document: dict[str, object]) -> list[tuple[str, str]]:
    errors: list[dict[str, str]] = document["errors"]  # type: ignore[assignment]
    return [(error["field"], error["code"]) for error in errors]


async def test_a_complaint_body_that_is_not_utf8_is_422_naming_the_byte(app: object) -> None:
    answer = await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(COMPLAINT.encode("latin-1")))

    assert answer.status == 422
    document = answer.json()
    assert document["code"] == "validation_failed"
    assert issues(document) == [("body", "invalid_encoding")]
    assert "byte 0xe9" in str(document["errors"])


async def test_a_coded_complaint_body_is_422_whether_or_not_it_is_compressed(app: object) -> None:
    coded = [ACME, JSON, (b"content-encoding", b"gzip")]
    compressed = await call(app, "POST", "/v1/complaints", coded, body_of(gzip.compress(COMPLAINT.encode())))
    plain = await call(app, "POST", "/v1/complaints", coded, body_of(COMPLAINT.encode()))
    identity = [ACME, JSON, (b"content-encoding", b"identity")]
    taken = await call(app, "POST", "/v1/complaints", identity, body_of(COMPLAINT.encode()))

    for answer in (compressed, plain):
        assert answer.status == 422
        assert issues(answer.json()) == [("body", "unsupported_content_encoding")]
    assert taken.status == 201


async def test_an_unreadable_complaint_body_without_a_key_is_401(app: object) -> None:
    answer = await call(app, "POST", "/v1/complaints", [JSON], body_of(COMPLAINT.encode("latin-1")))

    assert answer.status == 401


async def test_a_body_declared_in_another_charset_is_told_so_on_either_route(app: object) -> None:
    declared = [ACME, (b"content-type", b"application/json; charset=utf-16")]
    complaint = await call(app, "POST", "/v1/complaints", declared, body_of(COMPLAINT.encode("utf-16")))
    payment = await call(
        app, "POST", "/v1/payments", declared, body_of(b'{"amount": 1250}'.decode().encode("utf-16"))
    )

    for answer in (complaint, payment):
        assert answer.status == 422, answer.body
        document = answer.json()
        assert issues(document) == [("body", "invalid_encoding")]
        assert 'declared charset="utf-16"' in str(document["errors"])


@pytest.mark.parametrize(
    "label",
    [
        None,
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data",
        b"text/json",
        b"nonsense",
    ],
)
async def test_a_complaint_that_is_a_json_object_is_taken_whatever_its_label(
    app: object, label: bytes | None
) -> None:
    """As a payment is (PRODUCT.md section 5): a complaint sent without a Content-Type (curl's
    --data-binary), or under curl -d's form type, was 422 "the body must be a JSON object"."""
    headers = [ACME] if label is None else [ACME, (b"content-type", label)]
    filed = await call(app, "POST", "/v1/complaints", headers, body_of(b"\xef\xbb\xbf " + COMPLAINT.encode()))

    assert filed.status == 201, filed.body
    assert filed.json()["complaint_id"] == "c-1"


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"complaint_id=c-1&category=timeout", "not_an_object"), (b"{nope", "invalid_json")],
)
async def test_a_complaint_that_is_not_a_json_object_is_still_told_what_to_send(
    app: object, body: bytes, code: str
) -> None:
    refused = await call(app, "POST", "/v1/complaints", [ACME], body_of(body))

    assert refused.status == 422, refused.body
    assert issues(refused.json()) == [("body", code)]


async def test_a_complaint_with_a_query_parameter_is_refused_not_stored_without_it(app: object) -> None:
    """``POST /v1/complaints?payment_id=pay_1`` stored the complaint without its payment: the
    query was ignored. As for a payment, the fields are read from the body only."""
    refused = await call(
        app, "POST", "/v1/complaints?payment_id=pay_1", [ACME, JSON], body_of(COMPLAINT.encode())
    )
    keyless = await call(app, "POST", "/v1/complaints?payment_id=pay_1", [JSON], body_of(COMPLAINT.encode()))
    filed = await call(app, "POST", "/v1/complaints", [ACME, JSON], body_of(COMPLAINT.encode()))

    assert refused.status == 422, refused.body
    document = refused.json()
    assert issues(document) == [("payment_id", "unknown_parameter")]
    assert "read from the body only" in str(document["detail"])
    assert keyless.status == 401
    assert filed.status == 201  # the refused one was not stored
