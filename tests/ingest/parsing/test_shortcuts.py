"""The parser's shortcuts (``ingest.parsing.shortcuts``) never change a result.

Every body here is parsed with the shortcuts on (twice: the second time from warm caches) and
with them off, which is the general path; the two answers must be equal, down to the types and
the order of what they hold (compared through ``repr`` as well as ``==``). The helpers each
shortcut stands on are checked against their general versions one by one.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any
from unittest.mock import patch
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ingest.parsing.currency as currency_module
import ingest.parsing.identifiers as identifiers_module
import ingest.parsing.issues as issues_module
import ingest.parsing.method as method_module
from engine.config import MerchantConfig, RoutingRule
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId
from engine.validation import IssueSeverity
from ingest.parsing import ParsedRequest, mask_card_numbers, parse_payment_request, shortcuts
from ingest.parsing.body import decode_body
from ingest.parsing.currency import read_currency
from ingest.parsing.fields import FieldName, canonical_field
from ingest.parsing.identifiers import read_merchant
from ingest.parsing.issues import clean_text, has_unsafe_characters, is_plain, make_issue, safe_text
from ingest.parsing.masking import luhn_valid
from ingest.parsing.method import read_method
from ingest.parsing.values import json_object
from tests.ingest.parsing.support import FORM, JSON, MERCHANT, encode, luhn_number
from tests.ingest.parsing.test_properties import CONTENT_TYPES, json_values, requests

#: A second merchant: another default currency, and a low maximum that integer amounts cross.
SMALL = MerchantConfig(
    merchant_id=MerchantId("m_small"),
    api_keys=("key_small",),
    default_currency=Currency("EUR"),
    routing=(RoutingRule(PaymentMethod.CARD, (ProcessorId("sim_a"),)),),
    max_amount_cents=5000,
)


@contextmanager
def general_path() -> Iterator[None]:
    with patch.object(shortcuts, "ENABLED", False):
        yield


def _parse(
    body: bytes, content_type: str | None, header: str | None, merchant: MerchantConfig
) -> ParsedRequest:
    return parse_payment_request(
        body,
        content_type,
        merchant=merchant,
        request_id=RequestId("req_1"),
        payment_id=PaymentId("pay_1"),
        idempotency_key=header,
    )


def same_both_ways(
    body: object,
    content_type: str | None = JSON,
    header: str | None = None,
    merchant: MerchantConfig = MERCHANT,
) -> ParsedRequest:
    """The answer with shortcuts, after checking it is the general path's answer exactly."""
    raw = encode(body)
    fast = _parse(raw, content_type, header, merchant)
    warm = _parse(raw, content_type, header, merchant)
    with general_path():
        general = _parse(raw, content_type, header, merchant)
    assert fast == general
    assert warm == general
    assert repr(fast) == repr(general)
    for issue in fast.issues:
        assert all(type(text) is str for text in (issue.field, issue.code, issue.message))
        assert issue.raw is None or type(issue.raw) is str
    return fast


# Bodies in the shapes the shortcuts are for, and just beside them.
ARABIC_INDIC_DIGITS = "".join(chr(0x660 + digit) for digit in range(10))  # \d, but not ASCII
CANONICAL_NAMES = [name.value for name in FieldName]
OTHER_NAMES = ["merchantId", "Amount", "currency_code", "payment_method", "meta_data", "IdempotencyKey", "x"]
cards = st.integers(13, 19).map(luhn_number)
#: Amounts beside the plain-digits shortcut: zeros, bare points, signs, spaces, other digits.
NEAR_PLAIN_AMOUNTS = ["0", "00", "0.0", "0.", ".5", "12.", "1,234", " 12.50", "12.50 ", "+1", "12.5.0"]
NEAR_PLAIN_AMOUNTS.append(ARABIC_INDIC_DIGITS[1:3])
amounts = st.one_of(
    st.integers(-3, 6000),
    st.integers(1, 2**64),
    st.from_regex(r"[0-9]{1,22}(\.[0-9]{0,5})?", fullmatch=True),
    st.sampled_from(NEAR_PLAIN_AMOUNTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
)
currencies = st.one_of(
    st.sampled_from(
        ["USD", "usd", "Usd", "EUR", "JPY", "BHD", "XAU", "ZZZ", " usd ", "840", "$", "¥", "euro", ""]
    ),
    st.text(max_size=4),
    st.text(min_size=30, max_size=40),
    st.integers(0, 1000),
    st.none(),
)
methods = st.one_of(
    st.sampled_from([*(method.value for method in PaymentMethod), "ApplePay", "gpay", "visa", "crypto", " "]),
    st.text(max_size=6),
    st.text(min_size=30, max_size=40),
    st.integers(),
    st.none(),
)
merchant_ids = st.one_of(
    st.none(),
    st.sampled_from(["m_acme", "m_small", " m_acme", "M_ACME", "", " "]),
    st.integers(),
    st.booleans(),
)
metadata_keys = st.one_of(
    st.text(max_size=42), cards, st.sampled_from(["", "k" * 40, "k" * 41, "a\x00", "\ud800"])
)
metadata_values = st.one_of(
    st.text(max_size=20),
    cards,
    cards.map(lambda number: f"{number[:4]} {number[4:8]} {number[8:]}"),
    st.text(min_size=498, max_size=502),
    st.sampled_from(["\x00", "x\ud800", "4242424242424242" * 2, "x" * 500, "x" * 501]),
    json_values,
)


class Entries(list[tuple[str, Any]]):
    """An object written entry by entry, so that a key may repeat."""


#: Keys that repeat, or meet once masked (a card number's mask is a key of its own).
COLLIDING_KEYS = st.sampled_from(["a", "A", "4242424242424242", "424242******4242", "4242 4242 4242 4242"])
metadata = st.one_of(
    st.lists(st.tuples(st.one_of(metadata_keys, COLLIDING_KEYS), metadata_values), max_size=6).map(Entries),
    st.none(),
    st.text(max_size=5),
    st.integers(),
)
field_values = {
    "merchant_id": merchant_ids,
    "amount": amounts,
    "currency": currencies,
    "method": methods,
    "metadata": metadata,
    "idempotency_key": st.one_of(st.none(), st.text(max_size=8), st.integers()),
}


@st.composite
def pairs(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Key-value pairs of a body: mostly canonical names, sometimes another spelling or a repeat."""
    names = draw(st.lists(st.sampled_from(CANONICAL_NAMES), max_size=7))
    if draw(st.booleans()):
        names.append(draw(st.sampled_from(OTHER_NAMES)))
    return [(name, draw(field_values.get(name, amounts))) for name in names]


def json_text(items: list[tuple[str, Any]]) -> str:
    """A JSON object of ``items`` in order, repeated keys kept (json.dumps of a dict cannot)."""
    return "{" + ", ".join(f"{json.dumps(key)}: {value_text(value)}" for key, value in items) + "}"


def value_text(value: Any) -> str:
    return json_text(value) if isinstance(value, Entries) else json.dumps(value)


headers = st.one_of(st.none(), st.sampled_from(["k1", "k-2"]), st.text(max_size=8))
content_types = st.sampled_from(
    [JSON, None, "application/json; charset=utf-8", "text/plain", "Application/JSON"]
)


@settings(max_examples=400)
@given(pairs(), content_types, headers, st.sampled_from([MERCHANT, SMALL]))
def test_a_request_of_the_common_shapes_parses_the_same_both_ways(
    items: list[tuple[str, Any]], content_type: str | None, header: str | None, merchant: MerchantConfig
) -> None:
    same_both_ways(json_text(items), content_type, header, merchant)


@settings(max_examples=200)
@given(pairs(), headers)
def test_a_form_encoded_request_parses_the_same_both_ways(
    items: list[tuple[str, Any]], header: str | None
) -> None:
    fields: list[tuple[str, str]] = []
    for name, value in items:
        if isinstance(value, Entries):
            fields.extend((f"{name}[{key}]", json.dumps(item)) for key, item in value)
        else:
            fields.append((name, value if isinstance(value, str) else json.dumps(value)))
    same_both_ways(urlencode(fields, errors="surrogatepass"), FORM, header)


@settings(max_examples=200)
@given(requests, st.sampled_from(CONTENT_TYPES), headers)
def test_a_request_of_any_known_field_names_parses_the_same_both_ways(
    fields: dict[str, Any], content_type: str, header: str | None
) -> None:
    same_both_ways(json.dumps(fields), content_type, header)


@settings(max_examples=200)
@given(st.one_of(json_values.map(json.dumps).map(str.encode), st.binary(max_size=100)))
def test_any_body_parses_the_same_both_ways(body: bytes) -> None:
    same_both_ways(body)


def test_the_benchmark_bodies_parse_the_same_both_ways() -> None:
    assert same_both_ways('{"amount": 10000, "currency": "USD"}', header="k1").accepted
    metadata = '{"a": 1, "card_number": "4242424242424242"}'
    body = (
        '{"amount": "12.50", "currency": "usd", "method": "ApplePay", "merchant_id": "m_acme", '
        f'"metadata": {metadata}}}'
    )
    result = same_both_ways(body, header="k1")
    assert result.context is not None
    assert dict(result.context.metadata) == {"a": "1", "card_number": "424242******4242"}


@pytest.mark.parametrize("amount", [1, 4999, 5000, 5001, 2**63 - 1, 2**63])
@pytest.mark.parametrize("currency", [None, "USD", "usd", "XAU", "ZZZ"])
def test_an_integer_amount_settles_the_same_both_ways_at_the_merchants_maximum(
    amount: int, currency: str | None
) -> None:
    same_both_ways({"amount": amount, "currency": currency}, merchant=SMALL)


@pytest.mark.parametrize("levels", [1, 32, 63, 64, 65, 66, 2000])
@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ('{"a":', "}")])
def test_nesting_near_the_depth_limit_is_refused_the_same_both_ways(
    levels: int, opening: str, closing: str
) -> None:
    inner = opening * levels + "1" + closing * levels
    same_both_ways('{"amount": 100, "metadata": {"k": ' + inner + "}}")
    same_both_ways('{"amount": 100, "x": "' + "[" * 100 + '"}')  # brackets inside a string only


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf\xef\xbb\xbf{}",
        b"\xef\xbb\xbf" + b'{"amount": 100}',
        b'{"amount": 100, "amount": 100}',
        b'{"amount": 100, "metadata": {"a": "1", "a": "2"}}',
        b'{"amount": 100, "metadata": {"k": "' + b"x" * 500 + b'", "' + b"k" * 40 + b'": ""}}',
        b'{"amount": 100, "metadata": {"k": "' + b"x" * 501 + b'"}}',
        b'{"amount": 100, "metadata": {"' + b"k" * 41 + b'": "v", "": "v"}}',
        b'{"amount": 100, "metadata": {"4242424242424242": "x", "424242******4242": "y"}}',
        b'{"amount": 100, "metadata": {"a": "4242424242424242", "b": "4242 4242 4242 4242"}}',
        b'{"amount": 100, "Amount": 200}',
        b'{"amount": 100} x',
        b'{"amount": 100}\n',
        b'{"amount": 100} \r\n\t',
        b'{"amount": 100}{}',
        b'{"amount": 100',
        b'{"amount": 100,}',
        b'{"amount": }',
        b'{"amount": [1,]}',
        b'{"amount": -}',
        b"{}",
        b"{",
        b'{"amount": NaN}',
        b'{"amount": 1' + b"0" * 150 + b"}",
        b'{"amount": 1e999999999}',
        b"[]",
        b"",
    ],
)
def test_edge_bodies_parse_the_same_both_ways(body: bytes) -> None:
    same_both_ways(body)


def test_an_object_body_is_scanned_without_the_decoders_whitespace_searches() -> None:
    """A body that is one JSON object and nothing after it is read by the decoder's scanner alone:
    ``JSONDecoder.decode`` around it searches for whitespace twice (about 6,000 instructions)."""
    calls: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":  # a Python function: JSONDecoder.decode is one
            calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")
        elif event == "c_call":
            calls.append(getattr(arg, "__name__", ""))

    sys.setprofile(profile)
    try:
        decoded = decode_body(b'{"amount": 10000, "currency": "USD"}', JSON)
    finally:
        sys.setprofile(None)
    assert decoded.fields == {"amount": 10000, "currency": "USD"}
    assert not [
        call for call in calls if call.endswith(("json/decoder.py:decode", "json/decoder.py:raw_decode"))
    ]
    assert "match" not in calls


# The helpers under the shortcuts, against their general versions.
texts = st.text(alphabet=st.one_of(st.sampled_from("0123456789 -*\x00\ud800\udfff\u0663x"), st.characters()))


@settings(max_examples=500)
@given(texts, st.integers(0, 80))
def test_safe_text_is_the_general_cleaning(text: str, limit: int) -> None:
    assert safe_text(text, limit) == clean_text(text, limit)
    assert type(safe_text(text, limit)) is str


@settings(max_examples=500)
@given(texts)
def test_the_text_checks_agree_with_the_regular_expressions(text: str) -> None:
    unsafe = re.search("[\x00\ud800-\udfff]", text) is not None
    assert has_unsafe_characters(text) is unsafe
    with general_path():
        assert has_unsafe_characters(text) is unsafe
    if is_plain(text):  # conservative: a run of digits that is no card number is not plain
        assert not unsafe
        assert clean_text(text, len(text)) == text
    if unsafe:
        assert not is_plain(text)


def test_a_field_name_enum_still_makes_a_plain_string_field() -> None:
    assert type(safe_text(FieldName.AMOUNT, 200)) is str
    issue = make_issue(FieldName.AMOUNT, "missing", "no amount", IssueSeverity.WARNING)
    assert type(issue.field) is str


@settings(max_examples=500)
@given(st.text(alphabet="0123456789" + ARABIC_INDIC_DIGITS, max_size=25))
def test_the_table_luhn_check_is_the_general_one(digits: str) -> None:
    fast = luhn_valid(digits)
    with general_path():
        assert luhn_valid(digits) is fast


@settings(max_examples=500)
@given(
    st.one_of(
        st.text(alphabet="0123456789 -x", max_size=60), cards, st.text(alphabet="0123456789", max_size=40)
    )
)
def test_masking_with_shortcuts_is_the_general_masking(text: str) -> None:
    fast = mask_card_numbers(text)
    with general_path():
        assert mask_card_numbers(text) == fast


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from("abcA"), st.integers()), max_size=6))
def test_an_object_with_repeated_keys_is_built_the_same_both_ways(items: list[tuple[str, Any]]) -> None:
    fast = json_object(list(items))
    with general_path():
        general = json_object(list(items))
    assert list(fast.items()) == list(general.items())
    assert fast.repeats == general.repeats


@pytest.mark.parametrize(
    "content_type",
    [None, JSON, "application/json; charset=utf-8", "application/json; charset=UTF-8", FORM, "text/plain"],
)
def test_the_common_content_types_are_read_as_the_general_rule_reads_them(content_type: str | None) -> None:
    for body in (b'{"amount": 1}', b"amount=1"):
        fast = decode_body(body, content_type)
        with general_path():
            assert decode_body(body, content_type) == fast


def test_every_canonical_name_is_its_own_spelling() -> None:
    for name in FieldName:
        assert canonical_field(name.value) is name


def test_the_caches_are_bounded() -> None:
    caches = [
        issues_module._cached_issue,
        currency_module._cached_reading,
        method_module._cached_reading,
        identifiers_module._common_reading,
    ]
    for cache in caches:
        assert cache.cache_info().maxsize is not None


def test_long_texts_do_not_enter_the_issue_cache() -> None:
    before = issues_module._cached_issue.cache_info()
    make_issue("amount", "invalid_amount", "x" * 400, IssueSeverity.ERROR, "y")
    after = issues_module._cached_issue.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_cached_readings_are_the_general_readings() -> None:
    for value in ["USD", "usd", " usd ", "euro", "XAU", None]:
        fast = read_currency(value)
        with general_path():
            assert read_currency(value) == fast
    for method in ["card", "ApplePay", "crypto", None, " "]:
        fast_method = read_method(method)
        with general_path():
            assert read_method(method) == fast_method
    for merchant_id in [None, "m_acme", "m_other"]:
        fast_merchant = read_merchant((merchant_id,), MERCHANT)
        with general_path():
            assert read_merchant((merchant_id,), MERCHANT) == fast_merchant
