"""The parser's request-level contract: the context it builds, the order and safety of its
issues, its defence in depth, and the packages it may import."""

from __future__ import annotations

import ast
import gzip
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from engine.errors import InvalidFieldError
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.types import PaymentId, RequestId
from engine.validation import IssueSeverity, ValidationIssue
from ingest.parsing import ParsedRequest, parse_payment_request
from tests.ingest.parsing.support import MERCHANT, encode, parse

CARD = "4242424242424242"
PARSING = Path(__file__).resolve().parents[3] / "ingest" / "parsing"


def test_a_clean_request_becomes_a_context_with_every_reading() -> None:
    result = parse(
        {
            "merchant_id": "m_acme",
            "amount": "12.50",
            "currency": "EUR",
            "method": "apple_pay",
            "metadata": {"order": "A-1"},
            "idempotency_key": "k-1",
        }
    )
    assert result.issues == ()
    assert result.accepted
    context = result.context
    assert context is not None
    assert (context.merchant_id, context.request_id, context.payment_id) == ("m_acme", "req_1", "pay_1")
    assert (context.amount_cents, context.currency) == (1250, Currency("EUR"))
    assert context.payment_method is PaymentMethod.APPLE_PAY
    assert context.idempotency_key == "k-1"
    assert dict(context.metadata) == {"order": "A-1"}


def test_warnings_travel_in_the_context_and_never_block() -> None:
    result = parse({"amount": "1,234", "currency": " eur ", "method": "ApplePay"})
    assert result.context is not None
    assert all(issue.severity is IssueSeverity.WARNING for issue in result.issues)
    assert result.context.validation_errors == result.issues
    assert [issue.field for issue in result.issues] == ["merchant_id", "amount", "currency", "method"]


def test_issues_come_in_the_documented_field_order() -> None:
    result = parse(
        {
            "idempotency_key": "",
            "metadata": "x",
            "method": "crypto",
            "currency": "ZZZ",
            "amount": 0,
            "merchant_id": "m_other",
            "extra": 1,
        }
    )
    assert [issue.field for issue in result.issues] == [
        "extra",
        "merchant_id",
        "amount",
        "currency",
        "method",
        "metadata",
        "idempotency_key",
    ]
    assert result.merchant_mismatch


def test_the_same_request_always_gives_the_same_issues() -> None:
    body = '{"amount": "1,234", "Amount": "1,234", "x": 1, "y": 2, "metadata": {"b": 1, "a": null}}'
    assert parse(body).issues == parse(body).issues


def test_a_card_number_never_reaches_an_issue_unmasked() -> None:
    result = parse({CARD: 1, "amount": f"{CARD} USD", "currency": CARD, "metadata": {"k": f"{CARD} " * 40}})
    texts = [text for issue in result.issues for text in (issue.field, issue.message, issue.raw or "")]
    assert texts
    assert not any(CARD in text for text in texts)
    assert any("424242******4242" in text for text in texts)


def test_raw_is_cut_to_five_hundred_characters_and_made_valid_text() -> None:
    body = '{"amount": 1, "metadata": {"k": "\\ud800' + "x" * 2000 + '"}}'
    (issue,) = [issue for issue in parse(body).issues if issue.code == "invalid_text"]
    assert issue.raw is not None
    assert len(issue.raw) == 500
    assert issue.raw.startswith("\ufffdxxx")


def test_a_malformed_request_id_is_an_error_issue_not_an_exception() -> None:
    result = parse_payment_request(
        encode({"amount": 100}),
        "application/json",
        merchant=MERCHANT,
        request_id=RequestId("not an id"),
        payment_id=PaymentId("pay_1"),
    )
    assert not result.accepted
    assert result.issues[-1].code == "invalid_context"
    assert result.issues[-1].field == "request_id"


def test_a_parsed_request_refuses_a_context_beside_an_error() -> None:
    accepted = parse({"amount": 100})
    error = ValidationIssue("amount", "too_large", "too large", IssueSeverity.ERROR)
    with pytest.raises(InvalidFieldError, match="context"):
        ParsedRequest(accepted.context, (error,), 100, None, None, None, False)
    with pytest.raises(InvalidFieldError, match="context"):
        ParsedRequest(None, (), None, None, None, None, False)


def test_the_parser_imports_only_the_standard_library_engine_and_iso4217() -> None:
    allowed = set(sys.stdlib_module_names) | {"engine", "ingest", "iso4217"}
    for path in sorted(PARSING.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
                if name.startswith("ingest"):
                    assert name.startswith("ingest.parsing"), f"{path.name} imports {name}"


#: Two values of each field that differ, and a second spelling of its name.
DIFFERENT_VALUES = [
    ("merchant_id", "merchantId", "m_acme", "m_other"),
    ("amount", "Amount", 1250, 99),
    ("currency", "CURRENCY", "USD", "EUR"),
    ("method", "payment_method", "card", "paypal"),
    ("metadata", "Meta_Data", {"a": "1"}, {"a": "2"}),
    ("idempotency_key", "IdempotencyKey", "k-1", "k-2"),
]


@pytest.mark.parametrize(("name", "variant", "first", "second"), DIFFERENT_VALUES)
def test_a_repeated_key_and_a_second_spelling_meet_one_rule(
    name: str, variant: str, first: object, second: object
) -> None:
    def body(second_name: str, second_value: object) -> str:
        pairs = [(name, first), (second_name, second_value)]
        return "{" + ", ".join(f"{json.dumps(key)}: {json.dumps(value)}" for key, value in pairs) + "}"

    for second_name in (name, variant):
        differing = parse(body(second_name, second))
        assert not differing.accepted
        conflict = [issue for issue in differing.issues if issue.code == "conflicting_fields"]
        assert [issue.field for issue in conflict] == [name]
        assert f"{name} is given 2 times with different values" in conflict[0].message
        assert not any(issue.code == "duplicate_field" for issue in differing.issues)

        repeated = parse(body(second_name, first))
        assert [issue.field for issue in repeated.issues if issue.code == "duplicate_field"] == [name]
        assert not any(issue.code == "conflicting_fields" for issue in repeated.issues)


def _amount_issue(body: object) -> ValidationIssue:
    (issue,) = [issue for issue in parse(body).issues if issue.field == "amount"]
    return issue


def test_text_with_no_digits_is_said_to_be_no_amount() -> None:
    issue = _amount_issue({"amount": "abc"})
    assert (issue.code, issue.message) == ("invalid_amount", '"abc" is not an amount: there are no digits')
    word = _amount_issue({"amount": "12 abc"})
    assert word.message == '"12 abc" is not an amount: "abc" is not a currency'


@pytest.mark.parametrize("text", ["NaN", "nan", "inf", "Infinity", "-Infinity", "+INF", "NaN USD", "$nan"])
def test_text_naming_nan_or_infinity_is_refused_as_the_json_literals_are(text: str) -> None:
    literal = _amount_issue('{"amount": NaN}')
    issue = _amount_issue({"amount": text})
    assert (issue.code, issue.message) == (literal.code, f'"{text}" is not a finite number')


@pytest.mark.parametrize(
    "body",
    [
        {"amount": "9223372036854775808"},
        {"amount": 2**63},
        '{"amount": ' + "9" * 150 + "}",
        '{"amount": 1e400}',
        {"amount": "9223372036854775808.00 USD"},
    ],
)
def test_an_amount_beyond_the_internal_range_is_over_the_merchants_maximum(body: object) -> None:
    issue = _amount_issue(body)
    assert issue.code == "over_maximum"
    assert "is more than the merchant's maximum of 1000000000 minor units" in issue.message
    assert str(2**63 - 1) not in issue.message


def test_an_amount_beyond_the_range_is_over_a_maximum_set_at_the_range_itself() -> None:
    merchant = replace(MERCHANT, max_amount_cents=2**63 - 1)
    result = parse_payment_request(
        encode({"amount": 2**63}),
        "application/json",
        merchant=merchant,
        request_id=RequestId("req_1"),
        payment_id=PaymentId("pay_1"),
    )
    (issue,) = [issue for issue in result.issues if issue.field == "amount"]
    assert issue.code == "over_maximum"
    assert issue.message == f'"{2**63}" is more than the merchant\'s maximum of {2**63 - 1} minor units'


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("clé-ü", 'holds the character "é" (U+00E9)'),
        ("line1\nline2\u001b[31m", "holds the character U+000A"),
        ("", "is empty"),
        ("   ", "is only spaces"),
        ("k" * 256, "has 256 characters"),
        (7, "is a number, not a string"),
    ],
)
def test_an_invalid_body_key_is_refused_saying_what_a_key_may_be(key: object, problem: str) -> None:
    result = parse({"amount": 100, "idempotency_key": key})
    (issue,) = [issue for issue in result.issues if issue.field == "idempotency_key"]
    assert (issue.code, issue.severity) == ("invalid_idempotency_key", IssueSeverity.ERROR)
    assert issue.message == (
        f"the idempotency key {problem}; a key is 1 to 255 printable ASCII characters (space to ~), "
        "not all spaces"
    )
    assert result.idempotency_key is None
    assert not result.accepted


def test_an_invalid_body_key_is_listed_with_the_other_errors() -> None:
    result = parse({"amount": "abc", "currency": "ZZZ", "idempotency_key": "clé"})
    assert [(issue.field, issue.code) for issue in result.issues if issue.blocks] == [
        ("amount", "invalid_amount"),
        ("currency", "unknown_currency"),
        ("idempotency_key", "invalid_idempotency_key"),
    ]


def test_a_multipart_body_is_refused_saying_what_to_send() -> None:
    body = '--x\r\nContent-Disposition: form-data; name="amount"\r\n\r\n1250\r\n--x--\r\n'
    result = parse(body, "multipart/form-data; boundary=x")
    (issue,) = result.issues
    assert (issue.field, issue.code) == ("body", "unsupported_content_type")
    assert issue.message == (
        'content type "multipart/form-data; boundary=x": multipart bodies are not accepted; send the '
        "fields as JSON (application/json) or as form fields (application/x-www-form-urlencoded)"
    )


@pytest.mark.parametrize(
    "encoding", ["gzip", "GZIP", "br", "gzip, identity", "identity, deflate", "x-custom"]
)
def test_a_body_with_a_content_coding_is_refused_unread(encoding: str) -> None:
    compressed = gzip.compress(encode({"amount": 1250}))
    for body in (compressed, encode({"amount": 1250})):  # not sniffed: the header alone decides
        result = parse(body, "application/json", "k-1", encoding=encoding)
        (issue,) = result.issues
        assert (issue.field, issue.code, issue.severity) == (
            "body",
            "unsupported_content_encoding",
            IssueSeverity.ERROR,
        )
        assert "is not supported: send the body uncompressed" in issue.message
        assert issue.raw == encoding
        assert result.idempotency_key == "k-1"


@pytest.mark.parametrize("encoding", ["identity", "Identity", " identity ", "", "identity, identity"])
def test_the_identity_coding_changes_nothing(encoding: str) -> None:
    assert parse({"amount": 1250}, encoding=encoding).issues == parse({"amount": 1250}).issues


def test_a_nested_form_metadata_key_is_ignored_with_a_warning_naming_it() -> None:
    result = parse("amount=1250&metadata[a][b]=1", "application/x-www-form-urlencoded")
    assert result.context is not None
    assert dict(result.context.metadata) == {}
    issues = [issue for issue in result.issues if issue.code == "unknown_field"]
    assert [(issue.field, issue.message) for issue in issues] == [
        ("metadata[a][b]", 'ignored the unknown field "metadata[a][b]"')
    ]
