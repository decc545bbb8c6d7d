"""Properties of the parser over generated input: it is total, and its answers keep their
invariants (accepted exactly without errors, a positive amount within the merchant's maximum,
no card number unmasked in any issue or in the context)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.money import Currency, Money
from ingest.parsing import ParsedRequest
from tests.ingest.parsing.support import FORM, JSON, MAX_AMOUNT, luhn_number, parse, unmasked_card_numbers

CONTENT_TYPES = [
    JSON,
    FORM,
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
    "application/problem+json",
    "json",
    "",
]

NAME_VARIANTS = [
    "merchant_id", "MerchantID", "merchantId", "merchant-id", "merchant id",
    "amount", "Amount", "AMOUNT", "amount_",
    "currency", "Currency", "CURRENCY",
    "method", "payment_method", "paymentMethod", "Payment-Method",
    "metadata", "Meta_Data", "meta.data",
    "idempotency_key", "IdempotencyKey", "idempotency-key",
    "unknown", "",
]  # fmt: skip

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
cards = st.integers(13, 19).map(luhn_number)
amount_texts = st.from_regex(
    r"[-+]?[$€£¥]?\s?[0-9]{1,9}([.,' \u00a0][0-9]{1,4}){0,3}\s?(USD|eur|JPY|BHD|XAU)?", fullmatch=True
)
field_values = st.one_of(
    json_values,
    amount_texts,
    st.sampled_from(["USD", " usd ", "840", "¥", "euro", "m_acme", "ApplePay", "gpay", "XAU", "ZZZ"]),
    st.dictionaries(st.text(max_size=45), st.one_of(json_values, cards), max_size=6),
    cards,
)
requests = st.dictionaries(st.sampled_from(NAME_VARIANTS), field_values, max_size=8)


def check(result: ParsedRequest) -> None:
    errors = [issue for issue in result.issues if issue.blocks]
    assert result.accepted is (not errors)
    assert (result.context is None) is bool(errors)
    for issue in result.issues:
        assert issue.code != "invalid_context", issue
        for text in (issue.field, issue.message, issue.raw or ""):
            assert unmasked_card_numbers(text) == [], issue
    if result.context is not None:
        assert 0 < result.context.amount_cents <= MAX_AMOUNT
        assert result.context.validation_errors == result.issues
        for key, value in result.context.metadata.items():
            assert unmasked_card_numbers(key) == []
            assert unmasked_card_numbers(value) == []


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode("ascii")


@settings(max_examples=200)
@given(json_values)
def test_any_json_value_as_the_body_gives_an_answer(value: Any) -> None:
    check(parse(dumps(value)))


@settings(max_examples=200)
@given(st.binary(max_size=200), st.one_of(st.none(), st.sampled_from(CONTENT_TYPES), st.text(max_size=20)))
def test_any_bytes_with_any_content_type_give_an_answer(body: bytes, content_type: str | None) -> None:
    check(parse(body, content_type))


@settings(max_examples=300)
@given(requests, st.one_of(st.none(), st.text(max_size=20)))
def test_any_request_of_the_known_field_names_gives_an_answer(
    fields: dict[str, Any], header: str | None
) -> None:
    check(parse(dumps(fields), JSON, header))


@settings(max_examples=100)
@given(requests)
def test_the_same_request_form_encoded_gives_an_answer(fields: dict[str, Any]) -> None:
    pairs: list[tuple[str, str]] = []
    for name, value in fields.items():
        if isinstance(value, dict):
            pairs.extend((f"{name}[{key}]", json.dumps(item)) for key, item in value.items())
        else:
            pairs.append((name, value if isinstance(value, str) else json.dumps(value)))
    body = urlencode(pairs, errors="surrogatepass").encode("ascii")
    check(parse(body, FORM))


@settings(max_examples=100)
@given(st.integers(1, MAX_AMOUNT), st.sampled_from(["USD", "EUR", "JPY", "KRW", "BHD", "KWD", "JOD"]))
def test_a_clean_minor_unit_amount_is_taken_exactly(amount: int, currency: str) -> None:
    result = parse({"merchant_id": "m_acme", "amount": amount, "currency": currency, "method": "card"})
    assert result.context is not None
    assert result.context.amount_cents == amount
    assert result.issues == ()


@settings(max_examples=100)
@given(st.integers(1, MAX_AMOUNT), st.sampled_from(["USD", "EUR", "JPY", "KRW", "BHD", "KWD", "JOD"]))
def test_an_amount_written_in_major_units_reads_back_to_the_same_minor_units(
    amount: int, currency: str
) -> None:
    major = Money(amount, Currency(currency)).format().split(" ")[0]
    result = parse({"merchant_id": "m_acme", "amount": major + " " + currency, "method": "card"})
    assert result.amount_cents == amount
    assert [issue.code for issue in result.issues] == ["currency_from_amount"]
