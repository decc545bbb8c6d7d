"""A table of messy merchant payloads, each with the exact outcome the parser must give.

Each row states the readings (amount in minor units, currency, method, metadata, idempotency key,
merchant mismatch) and the exact list of issues as ``(field, code, severity)``. A row accepts
the request exactly when it lists no error. Rows build on a clean body (``pay()``) and change
only what they are about, so every issue listed is one that row provokes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.ingest.parsing.support import FORM, JSON, MAX_AMOUNT, luhn_number, parse

OMIT: Any = object()
Issue = tuple[str, str, str]


def W(field_name: str, code: str) -> Issue:  # noqa: N802 - reads like the severity it stands for
    return (field_name, code, "warning")


def E(field_name: str, code: str) -> Issue:  # noqa: N802
    return (field_name, code, "error")


def pay(overrides: dict[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
    """A clean request (no issue at all) with ``overrides`` and ``fields`` applied; ``OMIT`` drops
    a field."""
    body: dict[str, Any] = {"merchant_id": "m_acme", "amount": 1250, "currency": "USD", "method": "card"}
    body.update(overrides or {})
    body.update(fields)
    return {name: value for name, value in body.items() if value is not OMIT}


@dataclass(frozen=True)
class Outcome:
    issues: tuple[Issue, ...]
    amount: int | None
    currency: str | None
    method: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    mismatch: bool = False


def case(
    case_id: str,
    body: object,
    *issues: Issue,
    amount: int | None = 1250,
    currency: str | None = "USD",
    method: str | None = "card",
    metadata: dict[str, str] | None = None,
    key: str | None = None,
    mismatch: bool = False,
    content_type: str | None = JSON,
    header: str | None = None,
) -> Any:
    outcome = Outcome(issues, amount, currency, method, metadata or {}, key, mismatch)
    return pytest.param(body, content_type, header, outcome, id=case_id)


def form_of_one_unknown_key(case_id: str, body: str) -> Any:
    """``body`` sent as a form and read as one: a single key, unknown, so no field at all."""
    return case(
        case_id,
        body,
        W(body, "unknown_field"),
        W("merchant_id", "missing"),
        E("amount", "missing"),
        W("currency", "defaulted"),
        W("method", "missing"),
        amount=None,
        method=None,
        content_type=FORM,
    )


CARD = "4242424242424242"
FIFTY = {f"k{i}": "v" for i in range(50)}
FIFTY_ONE = {f"k{i}": "v" for i in range(51)}
NO_CURRENCY: dict[str, Any] = {"currency": OMIT}
CLEAN_JSON = '{"merchant_id": "m_acme", "amount": 1250, "currency": "USD", "method": "card"}'
FORM_BODY = "merchant_id=m_acme&amount=12.50&currency=USD&method=card"
MULTIPART = (
    '--x\r\nContent-Disposition: form-data; name="amount"\r\n\r\n1250\r\n'
    '--x\r\nContent-Disposition: form-data; name="currency"\r\n\r\nUSD\r\n--x--\r\n'
)

AMOUNTS = [
    case("amount-int-minor-units", pay(amount=1250)),
    case("amount-digit-string-minor", pay(amount="1250")),
    case("amount-digit-string-trimmed", pay(amount="  1250\t")),
    case("amount-digit-string-leading-zeros", pay(amount="0001250")),
    case("amount-decimal-string-usd", pay(amount="12.50")),
    case("amount-one-decimal-usd", pay(amount="12.5")),
    case("amount-float-usd", pay(amount=12.5)),
    case("amount-float-text-kept-exact", CLEAN_JSON.replace("1250", "12.50")),
    case("amount-float-whole-is-major", pay(amount=1250.0), amount=125000),
    case("amount-plus-sign", pay(amount="+12.50")),
    case("amount-leading-decimal-point", pay(amount=".50"), amount=50),
    case("amount-trailing-decimal-point", pay(amount="12."), amount=1200),
    case("amount-comma-thousands-dot-decimal", pay(amount="1,234.56"), amount=123456),
    case(
        "amount-dot-thousands-comma-decimal",
        pay(amount="1.234,56", currency="EUR"),
        amount=123456,
        currency="EUR",
    ),
    case("amount-space-thousands", pay(amount="1 234,56", currency="EUR"), amount=123456, currency="EUR"),
    case("amount-nbsp-thousands", pay(amount="1\u00a0234,56", currency="EUR"), amount=123456, currency="EUR"),
    case(
        "amount-narrow-nbsp-thousands",
        pay(amount="1\u202f234,56", currency="EUR"),
        amount=123456,
        currency="EUR",
    ),
    case("amount-thin-space-thousands", pay(amount="1\u2009234.56"), amount=123456),
    case(
        "amount-apostrophe-thousands", pay(amount="1'234.56", currency="CHF"), amount=123456, currency="CHF"
    ),
    case(
        "amount-curly-apostrophe-thousands",
        pay(amount="1\u2019234.50", currency="CHF"),
        amount=123450,
        currency="CHF",
    ),
    case("amount-many-comma-thousands", pay(amount="1,234,567.89"), amount=123456789),
    case(
        "amount-many-dot-thousands",
        pay(amount="1.234.567,89", currency="EUR"),
        amount=123456789,
        currency="EUR",
    ),
    case(
        "amount-dot-thousands-only", pay(amount="1.234.567", currency="EUR"), amount=123456700, currency="EUR"
    ),
    case(
        "amount-indian-grouping", pay(amount="12,34,567.00", currency="INR"), amount=123456700, currency="INR"
    ),
    case(
        "amount-lone-comma-three-digits-usd",
        pay(amount="1,234"),
        W("amount", "ambiguous_separator"),
        amount=123400,
    ),
    case(
        "amount-lone-comma-three-digits-eur",
        pay(amount="12,345", currency="EUR"),
        W("amount", "ambiguous_separator"),
        amount=1234500,
        currency="EUR",
    ),
    case(
        "amount-lone-comma-three-digits-bhd",
        pay(amount="1,234", currency="BHD"),
        W("amount", "ambiguous_separator"),
        amount=1234000,
        currency="BHD",
    ),
    case(
        "amount-lone-comma-three-digits-jpy",
        pay(amount="1,234", currency="JPY"),
        W("amount", "ambiguous_separator"),
        amount=1234,
        currency="JPY",
    ),
    case(
        "amount-lone-comma-three-digits-krw",
        pay(amount="1,500", currency="KRW"),
        W("amount", "ambiguous_separator"),
        amount=1500,
        currency="KRW",
    ),
    case(
        "amount-comma-after-space-thousands-is-decimal",
        pay(amount="1 234,567", currency="BHD"),
        amount=1234567,
        currency="BHD",
    ),
    case("amount-comma-two-decimals", pay(amount="12,50", currency="EUR"), amount=1250, currency="EUR"),
    case(
        "amount-comma-after-zero-is-decimal", pay(amount="0,123", currency="BHD"), amount=123, currency="BHD"
    ),
    case(
        "amount-comma-after-four-digits-is-decimal",
        pay(amount="1234,567", currency="BHD"),
        amount=1234567,
        currency="BHD",
    ),
    case("amount-comma-one-decimal", pay(amount="0,5", currency="EUR"), amount=50, currency="EUR"),
    case(
        "amount-lone-dot-three-digits-bhd", pay(amount="1.234", currency="BHD"), amount=1234, currency="BHD"
    ),
    case(
        "amount-lone-dot-three-digits-kwd", pay(amount="1.234", currency="KWD"), amount=1234, currency="KWD"
    ),
    case("amount-jod-one-decimal", pay(amount="1.5", currency="JOD"), amount=1500, currency="JOD"),
    case("amount-float-bhd", pay(amount=0.001, currency="BHD"), amount=1, currency="BHD"),
    case("amount-lone-dot-three-digits-usd", pay(amount="1.234"), E("amount", "too_precise"), amount=None),
    case("amount-jpy-digits", pay(amount="1500", currency="JPY"), amount=1500, currency="JPY"),
    case("amount-jpy-decimal", pay(amount="1500.", currency="JPY"), amount=1500, currency="JPY"),
    case(
        "amount-jpy-zero-decimals-dropped",
        pay(amount="1500.00", currency="JPY"),
        W("amount", "excess_precision"),
        amount=1500,
        currency="JPY",
    ),
    case(
        "amount-jpy-real-decimals",
        pay(amount="1500.50", currency="JPY"),
        E("amount", "too_precise"),
        amount=None,
        currency="JPY",
    ),
    case("amount-usd-zero-third-decimal", pay(amount="12.340"), W("amount", "excess_precision"), amount=1234),
    case("amount-usd-third-decimal", pay(amount="12.345"), E("amount", "too_precise"), amount=None),
    case(
        "amount-bhd-fourth-decimal",
        pay(amount="1.2345", currency="BHD"),
        E("amount", "too_precise"),
        amount=None,
        currency="BHD",
    ),
    case("amount-tiny-float", pay(amount=1e-7), E("amount", "too_precise"), amount=None),
    case("amount-dollar-sign-agrees", pay(amount="$12.50")),
    case(
        "amount-dollar-sign-sets-currency",
        pay(NO_CURRENCY, amount="$12.50"),
        W("currency", "currency_from_amount"),
    ),
    case("amount-code-suffix-agrees", pay(amount="12.50 USD")),
    case(
        "amount-code-lowercase-sets-currency",
        pay(NO_CURRENCY, amount="12.50 usd"),
        W("currency", "currency_from_amount"),
    ),
    case("amount-sign-and-code", pay(amount="$12.50 USD")),
    case(
        "amount-code-prefix-comma-decimal",
        pay(NO_CURRENCY, amount="EUR 10,00"),
        W("currency", "currency_from_amount"),
        amount=1000,
        currency="EUR",
    ),
    case(
        "amount-euro-sign",
        pay(NO_CURRENCY, amount="€10"),
        W("currency", "currency_from_amount"),
        amount=1000,
        currency="EUR",
    ),
    case("amount-euro-sign-after", pay(amount="10 €", currency="EUR"), amount=1000, currency="EUR"),
    case(
        "amount-pound-sign",
        pay(NO_CURRENCY, amount="£5.99"),
        W("currency", "currency_from_amount"),
        amount=599,
        currency="GBP",
    ),
    case(
        "amount-yen-sign-ambiguous",
        pay(NO_CURRENCY, amount="¥1500"),
        W("amount", "ambiguous_symbol"),
        W("currency", "currency_from_amount"),
        amount=1500,
        currency="JPY",
    ),
    case("amount-yen-sign-with-yuan", pay(amount="¥15", currency="CNY"), amount=1500, currency="CNY"),
    case(
        "amount-won-sign-thousands",
        pay(NO_CURRENCY, amount="₩15,000"),
        W("amount", "ambiguous_separator"),
        W("currency", "currency_from_amount"),
        amount=15000,
        currency="KRW",
    ),
    case(
        "amount-digits-with-code-are-major",
        pay(NO_CURRENCY, amount="1500 JPY"),
        W("currency", "currency_from_amount"),
        amount=1500,
        currency="JPY",
    ),
    case("amount-dollar-sign-canadian", pay(amount="$12.50", currency="CAD"), currency="CAD"),
    case(
        "amount-dollar-sign-with-euro",
        pay(amount="$12.50", currency="EUR"),
        E("amount", "currency_mismatch"),
        amount=None,
        currency="EUR",
    ),
    case(
        "amount-code-contradicts-currency",
        pay(amount="12.50 GBP"),
        E("amount", "currency_mismatch"),
        amount=None,
    ),
    case(
        "amount-two-codes-disagree",
        pay(amount="USD 12.50 EUR"),
        E("amount", "currency_mismatch"),
        amount=None,
    ),
    case(
        "amount-metal-code",
        pay(NO_CURRENCY, amount="10 XAU"),
        E("amount", "unsupported_currency"),
        W("currency", "defaulted"),
        amount=None,
    ),
    case("amount-unknown-word", pay(amount="12 abc"), E("amount", "invalid_amount"), amount=None),
    case("amount-words", pay(amount="twelve"), E("amount", "invalid_amount"), amount=None),
    case("amount-exponent-text", pay(amount="1e3"), E("amount", "invalid_amount"), amount=None),
    case("amount-two-decimal-points", pay(amount="12.50.30"), E("amount", "invalid_amount"), amount=None),
    case("amount-doubled-separator", pay(amount="1,,234"), E("amount", "invalid_amount"), amount=None),
    case(
        "amount-mixed-thousands",
        pay(amount="1 234.567,89", currency="EUR"),
        E("amount", "invalid_amount"),
        amount=None,
        currency="EUR",
    ),
    case("amount-bad-grouping", pay(amount="10,000,00"), E("amount", "invalid_amount"), amount=None),
    case(
        "amount-separator-after-decimal", pay(amount="1.234,5.6"), E("amount", "invalid_amount"), amount=None
    ),
    case("amount-arabic-indic-digits", pay(amount="١٢٣"), E("amount", "invalid_amount"), amount=None),
    case("amount-empty-string", pay(amount=""), E("amount", "missing"), amount=None),
    case("amount-blank-string", pay(amount="   "), E("amount", "missing"), amount=None),
    case("amount-null", pay(amount=None), E("amount", "missing"), amount=None),
    case("amount-absent", pay(amount=OMIT), E("amount", "missing"), amount=None),
    case("amount-zero", pay(amount=0), E("amount", "not_positive"), amount=None),
    case("amount-zero-decimal", pay(amount="0.00"), E("amount", "not_positive"), amount=None),
    case("amount-negative-int", pay(amount=-5), E("amount", "not_positive"), amount=None),
    case("amount-negative-string", pay(amount="-12.50"), E("amount", "not_positive"), amount=None),
    case("amount-negative-with-sign", pay(amount="-$5"), E("amount", "not_positive"), amount=None),
    case("amount-unicode-minus", pay(amount="\u22125"), E("amount", "not_positive"), amount=None),
    case("amount-boolean", pay(amount=True), E("amount", "invalid_type"), amount=None),
    case("amount-array", pay(amount=[1250]), E("amount", "invalid_type"), amount=None),
    case("amount-object", pay(amount={"value": 1250}), E("amount", "invalid_type"), amount=None),
    case("amount-nan", CLEAN_JSON.replace("1250", "NaN"), E("amount", "not_finite"), amount=None),
    case("amount-infinity", CLEAN_JSON.replace("1250", "Infinity"), E("amount", "not_finite"), amount=None),
    case(
        "amount-minus-infinity",
        CLEAN_JSON.replace("1250", "-Infinity"),
        E("amount", "not_finite"),
        amount=None,
    ),
    case("amount-huge-float", CLEAN_JSON.replace("1250", "1e400"), E("amount", "over_maximum"), amount=None),
    case(
        "amount-huge-exponent",
        CLEAN_JSON.replace("1250", "1e999999999"),
        E("amount", "over_maximum"),
        amount=None,
    ),
    case(
        "amount-int64-max-over-merchant-max",
        pay(amount=2**63 - 1),
        E("amount", "over_maximum"),
        amount=2**63 - 1,
    ),
    case("amount-beyond-int64", pay(amount=2**63), E("amount", "over_maximum"), amount=None),
    case(
        "amount-digits-beyond-int64",
        pay(amount="99999999999999999999"),
        E("amount", "over_maximum"),
        amount=None,
    ),
    case(
        "amount-hundred-digit-integer",
        CLEAN_JSON.replace("1250", "9" * 101),
        E("amount", "over_maximum"),
        amount=None,
    ),
    case("amount-ten-thousand-digits", pay(amount="1" * 10_000), E("amount", "over_maximum"), amount=None),
    case(
        "amount-over-merchant-max",
        pay(amount=MAX_AMOUNT + 1),
        E("amount", "over_maximum"),
        amount=MAX_AMOUNT + 1,
    ),
    case("amount-at-merchant-max", pay(amount=MAX_AMOUNT), amount=MAX_AMOUNT),
    case("amount-major-at-merchant-max", pay(amount="10,000,000.00"), amount=MAX_AMOUNT),
    case(
        "amount-digit-string-beyond-int64",
        pay(amount="9223372036854775808"),
        E("amount", "over_maximum"),
        amount=None,
    ),
    case("amount-letters-only", pay(amount="abc"), E("amount", "invalid_amount"), amount=None),
    case("amount-currency-code-only", pay(amount="USD"), E("amount", "invalid_amount"), amount=None),
    case("amount-nan-text", pay(amount="NaN"), E("amount", "not_finite"), amount=None),
    case("amount-nan-lower-case", pay(amount="nan"), E("amount", "not_finite"), amount=None),
    case("amount-inf-text", pay(amount="inf"), E("amount", "not_finite"), amount=None),
    case("amount-infinity-text", pay(amount="Infinity"), E("amount", "not_finite"), amount=None),
    case("amount-minus-infinity-text", pay(amount="-Infinity"), E("amount", "not_finite"), amount=None),
    case("amount-signed-inf-text", pay(amount="+INF"), E("amount", "not_finite"), amount=None),
    case("amount-nan-with-code", pay(amount="NaN USD"), E("amount", "not_finite"), amount=None),
    case("amount-nan-with-symbol", pay(amount="$nan"), E("amount", "not_finite"), amount=None),
    case("amount-with-nul", pay(amount="12.50\u0000"), E("amount", "invalid_amount"), amount=None),
    case("amount-html", pay(amount="<b>12</b>"), E("amount", "invalid_amount"), amount=None),
    case("amount-sql", pay(amount="1250; DROP TABLE payments"), E("amount", "invalid_amount"), amount=None),
    case("amount-emoji", pay(amount="💰12"), E("amount", "invalid_amount"), amount=None),
]

CURRENCIES = [
    case("currency-lower-case", pay(currency="usd"), W("currency", "normalized")),
    case("currency-padded", pay(currency=" USD "), W("currency", "normalized")),
    case("currency-mixed-case", pay(currency="Eur"), W("currency", "normalized"), currency="EUR"),
    case("currency-numeric-text", pay(currency="840"), W("currency", "normalized")),
    case("currency-numeric-json", pay(currency=840), W("currency", "normalized")),
    case("currency-numeric-zero-padded", pay(currency="036"), W("currency", "normalized"), currency="AUD"),
    case("currency-dollar-sign", pay(currency="$"), W("currency", "normalized")),
    case("currency-euro-sign", pay(currency="€"), W("currency", "normalized"), currency="EUR"),
    case("currency-pound-sign", pay(currency="£"), W("currency", "normalized"), currency="GBP"),
    case("currency-yen-sign", pay(currency="¥"), W("currency", "ambiguous_symbol"), currency="JPY"),
    case("currency-name", pay(currency="US Dollar"), W("currency", "normalized")),
    case("currency-name-lower", pay(currency="euro"), W("currency", "normalized"), currency="EUR"),
    case("currency-name-plural", pay(currency="Euros"), W("currency", "normalized"), currency="EUR"),
    case(
        "currency-name-spaced",
        pay(currency="  pound   sterling "),
        W("currency", "normalized"),
        currency="GBP",
    ),
    case("currency-name-yen", pay(currency="yen"), W("currency", "normalized"), currency="JPY"),
    case("currency-name-dinar", pay(currency="Bahraini Dinar"), W("currency", "normalized"), currency="BHD"),
    case("currency-kwd-code", pay(amount="5.125", currency="KWD"), amount=5125, currency="KWD"),
    case("currency-null-defaults", pay(currency=None), W("currency", "defaulted")),
    case("currency-blank-defaults", pay(currency=" "), W("currency", "defaulted")),
    case("currency-absent-defaults", pay(NO_CURRENCY), W("currency", "defaulted")),
    case("currency-unknown-code", pay(currency="XYZ"), E("currency", "unknown_currency"), currency=None),
    case("currency-unknown-word", pay(currency="dollars"), E("currency", "unknown_currency"), currency=None),
    case("currency-unknown-number", pay(currency=123), E("currency", "unknown_currency"), currency=None),
    case("currency-long-digits", pay(currency="999999"), E("currency", "unknown_currency"), currency=None),
    case("currency-gold", pay(currency="XAU"), E("currency", "unsupported_currency"), currency=None),
    case("currency-testing-code", pay(currency="xts"), E("currency", "unsupported_currency"), currency=None),
    case("currency-gold-numeric", pay(currency="959"), E("currency", "unsupported_currency"), currency=None),
    case("currency-gold-name", pay(currency="Gold"), E("currency", "unsupported_currency"), currency=None),
    case(
        "currency-shared-name",
        pay(currency="Bolívar Soberano"),
        E("currency", "ambiguous_currency"),
        currency=None,
    ),
    case("currency-float", pay(currency=12.5), E("currency", "invalid_type"), currency=None),
    case("currency-boolean", pay(currency=True), E("currency", "invalid_type"), currency=None),
    case("currency-array", pay(currency=["USD"]), E("currency", "invalid_type"), currency=None),
    case(
        "currency-rtl-override", pay(currency="\u202eDSU"), E("currency", "unknown_currency"), currency=None
    ),
    case("currency-emoji", pay(currency="💵"), E("currency", "unknown_currency"), currency=None),
    case(
        "currency-invalid-keeps-minor-amount",
        pay(amount=999, currency="ZZZ"),
        E("currency", "unknown_currency"),
        amount=999,
        currency=None,
    ),
    case(
        "currency-invalid-drops-major-amount",
        pay(amount="9.99", currency="ZZZ"),
        E("currency", "unknown_currency"),
        amount=None,
        currency=None,
    ),
]

METHODS = [
    case("method-apple-pay-exact", pay(method="apple_pay"), method="apple_pay"),
    case("method-applepay-camel", pay(method="ApplePay"), W("method", "normalized"), method="apple_pay"),
    case("method-apple-pay-shouting", pay(method="APPLE PAY"), W("method", "normalized"), method="apple_pay"),
    case("method-apple-pay-dashed", pay(method="apple-pay"), W("method", "normalized"), method="apple_pay"),
    case("method-applepay-joined", pay(method="applepay"), W("method", "normalized"), method="apple_pay"),
    case("method-credit-card", pay(method="credit_card"), W("method", "normalized")),
    case("method-creditcard", pay(method="creditcard"), W("method", "normalized")),
    case("method-debit-card", pay(method="debit_card"), W("method", "normalized")),
    case("method-visa", pay(method="visa"), W("method", "normalized")),
    case("method-mastercard", pay(method="MasterCard"), W("method", "normalized")),
    case("method-amex", pay(method="amex"), W("method", "normalized")),
    case("method-cc", pay(method="cc"), W("method", "normalized")),
    case("method-card-capitalised", pay(method="Card"), W("method", "normalized")),
    case("method-gpay", pay(method="gpay"), W("method", "normalized"), method="google_pay"),
    case("method-googlepay", pay(method="googlepay"), W("method", "normalized"), method="google_pay"),
    case(
        "method-google-pay-spaced", pay(method="google pay"), W("method", "normalized"), method="google_pay"
    ),
    case("method-google-pay-exact", pay(method="google_pay"), method="google_pay"),
    case("method-paypal-exact", pay(method="paypal"), method="paypal"),
    case("method-pay-pal-spaced", pay(method="Pay Pal"), W("method", "normalized"), method="paypal"),
    case("method-bank", pay(method="bank"), W("method", "normalized"), method="bank_transfer"),
    case("method-sepa", pay(method="SEPA"), W("method", "normalized"), method="bank_transfer"),
    case("method-ach", pay(method="ach"), W("method", "normalized"), method="bank_transfer"),
    case("method-wire", pay(method="wire"), W("method", "normalized"), method="bank_transfer"),
    case("method-bank-transfer-exact", pay(method="bank_transfer"), method="bank_transfer"),
    case("method-unknown", pay(method="crypto"), W("method", "unknown_method"), method=None),
    case("method-number", pay(method=42), W("method", "unknown_method"), method=None),
    case("method-html", pay(method="<b>card</b>"), W("method", "unknown_method"), method=None),
    case("method-with-nul", pay(method="card\u0000"), W("method", "unknown_method"), method=None),
    case("method-null", pay(method=None), W("method", "missing"), method=None),
    case("method-blank", pay(method=""), W("method", "missing"), method=None),
    case("method-absent", pay(method=OMIT), W("method", "missing"), method=None),
]

FIELD_NAMES = [
    case("name-merchant-id-upper", pay({"MerchantID": "m_acme"}, merchant_id=OMIT)),
    case("name-merchant-id-camel", pay({"merchantId": "m_acme"}, merchant_id=OMIT)),
    case("name-merchant-id-dashed", pay({"merchant-id": "m_acme"}, merchant_id=OMIT)),
    case("name-merchant-id-spaced", pay({"merchant id": "m_acme"}, merchant_id=OMIT)),
    case("name-amount-upper", pay({"AMOUNT": 1250}, amount=OMIT)),
    case("name-currency-capitalised", pay({"Currency": "USD"}, currency=OMIT)),
    case("name-payment-method", pay({"payment_method": "card"}, method=OMIT)),
    case("name-payment-method-camel", pay({"paymentMethod": "card"}, method=OMIT)),
    case("name-payment-method-dotted", pay({"Payment.Method": "card"}, method=OMIT)),
    case("name-metadata-odd", pay({"Meta_Data": {"a": "b"}}), metadata={"a": "b"}),
    case("name-idempotency-key-camel", pay({"IdempotencyKey": "k-1"}), key="k-1"),
    case("name-idempotency-key-dashed", pay({"idempotency-key": "k-1"}), key="k-1"),
    case("name-same-value-twice", pay({"Amount": 1250}), W("amount", "duplicate_field")),
    case(
        "name-json-repeated-key",
        CLEAN_JSON.replace('"amount": 1250', '"amount": 1, "amount": 1250'),
        E("amount", "conflicting_fields"),
        amount=None,
    ),
    case("name-different-values", pay({"AMOUNT": 999}), E("amount", "conflicting_fields"), amount=None),
    case(
        "name-int-and-string-differ", pay({"amount_": "1250"}), E("amount", "conflicting_fields"), amount=None
    ),
    case(
        "name-bool-and-int-differ",
        pay({"Amount": True}, amount=1),
        E("amount", "conflicting_fields"),
        amount=None,
    ),
    case(
        "name-currency-conflict", pay({"CURRENCY": "EUR"}), E("currency", "conflicting_fields"), currency=None
    ),
    case(
        "name-method-conflict",
        pay({"payment_method": "paypal"}),
        E("method", "conflicting_fields"),
        method=None,
    ),
    case("name-unknown-field", pay(customer={"email": "a@b.c"}), W("customer", "unknown_field")),
    case("name-unknown-empty-name", pay({"": 1}), W("body", "unknown_field")),
    case("name-unknown-surrogate-name", CLEAN_JSON[:-1] + ', "\\ud800": 1}', W("\ufffd", "unknown_field")),
    case("name-unknown-long-name", pay({"x" * 300: 1}), W("x" * 200, "unknown_field")),
    case(
        "name-many-unknown-fields",
        pay({f"extra{i}": i for i in range(25)}),
        *[W(f"extra{i}", "unknown_field") for i in range(20)],
        W("body", "unknown_field"),
    ),
]

METADATA = [
    case("metadata-strings", pay(metadata={"order": "A-1"}), metadata={"order": "A-1"}),
    case("metadata-int", pay(metadata={"n": 5}), W("metadata.n", "converted"), metadata={"n": "5"}),
    case("metadata-float", pay(metadata={"f": 1.5}), W("metadata.f", "converted"), metadata={"f": "1.5"}),
    case("metadata-bool", pay(metadata={"b": True}), W("metadata.b", "converted"), metadata={"b": "true"}),
    case("metadata-null", pay(metadata={"x": None}), W("metadata.x", "converted"), metadata={"x": ""}),
    case(
        "metadata-nested",
        pay(metadata={"a": {"b": [1, 2]}}),
        W("metadata.a", "converted"),
        metadata={"a": '{"b":[1,2]}'},
    ),
    case(
        "metadata-list",
        pay(metadata={"l": [1, "x", None]}),
        W("metadata.l", "converted"),
        metadata={"l": '[1,"x",null]'},
    ),
    case("metadata-fifty-keys", pay(metadata=FIFTY), metadata=FIFTY),
    case("metadata-fifty-one-keys", pay(metadata=FIFTY_ONE), E("metadata", "too_many_keys")),
    case("metadata-key-forty", pay(metadata={"k" * 40: "v"}), metadata={"k" * 40: "v"}),
    case("metadata-key-forty-one", pay(metadata={"k" * 41: "v"}), E("metadata." + "k" * 41, "key_too_long")),
    case("metadata-value-five-hundred", pay(metadata={"v": "x" * 500}), metadata={"v": "x" * 500}),
    case(
        "metadata-value-five-hundred-one", pay(metadata={"v": "x" * 501}), E("metadata.v", "value_too_long")
    ),
    case("metadata-value-ten-thousand", pay(metadata={"v": "x" * 10_000}), E("metadata.v", "value_too_long")),
    case(
        "metadata-converted-too-long",
        pay(metadata={"v": list(range(200))}),
        W("metadata.v", "converted"),
        E("metadata.v", "value_too_long"),
    ),
    case(
        "metadata-card-number",
        pay(metadata={"card_number": CARD}),
        W("metadata.card_number", "card_number_masked"),
        metadata={"card_number": "424242******4242"},
    ),
    case(
        "metadata-card-number-spaced",
        pay(metadata={"card_number": "4000 0000 0000 9995"}),
        W("metadata.card_number", "card_number_masked"),
        metadata={"card_number": "400000******9995"},
    ),
    case(
        "metadata-card-number-in-text",
        pay(metadata={"note": "my card is 4242-4242-4242-4242, thanks"}),
        W("metadata.note", "card_number_masked"),
        metadata={"note": "my card is 424242******4242, thanks"},
    ),
    case(
        "metadata-card-number-as-json-number",
        pay(metadata={"card_number": int(CARD)}),
        W("metadata.card_number", "converted"),
        W("metadata.card_number", "card_number_masked"),
        metadata={"card_number": "424242******4242"},
    ),
    case(
        "metadata-card-number-nineteen-digits",
        pay(metadata={"pan": luhn_number(19)}),
        W("metadata.pan", "card_number_masked"),
        metadata={"pan": luhn_number(19)[:6] + "*" * 9 + luhn_number(19)[-4:]},
    ),
    case(
        "metadata-card-number-as-key",
        pay(metadata={CARD: "x"}),
        W("metadata.424242******4242", "card_number_masked"),
        metadata={"424242******4242": "x"},
    ),
    case("metadata-not-luhn", pay(metadata={"n": "4242424242424243"}), metadata={"n": "4242424242424243"}),
    case("metadata-string", pay(metadata="oops"), E("metadata", "invalid_type")),
    case("metadata-array", pay(metadata=[1, 2]), E("metadata", "invalid_type")),
    case("metadata-number", pay(metadata=7), E("metadata", "invalid_type")),
    case("metadata-null-is-empty", pay(metadata=None)),
    case("metadata-empty-object", pay(metadata={})),
    case("metadata-empty-key", pay(metadata={"": "x"}), E("metadata.", "empty_key")),
    case("metadata-nul-in-value", pay(metadata={"a": "x\u0000y"}), E("metadata.a", "invalid_text")),
    case("metadata-nul-in-key", pay(metadata={"a\u0000": "x"}), E("metadata.a\ufffd", "invalid_text")),
    case(
        "metadata-lone-surrogate-value",
        CLEAN_JSON[:-1] + ', "metadata": {"a": "\\ud800"}}',
        E("metadata.a", "invalid_text"),
    ),
    case(
        "metadata-lone-surrogate-key",
        CLEAN_JSON[:-1] + ', "metadata": {"\\udfff": "x"}}',
        E("metadata.\ufffd", "invalid_text"),
    ),
    case(
        "metadata-surrogate-in-nested-value",
        CLEAN_JSON[:-1] + ', "metadata": {"a": ["\\ud800"]}}',
        W("metadata.a", "converted"),
        E("metadata.a", "invalid_text"),
    ),
    case(
        "metadata-nul-in-nested-value-is-escaped",
        pay(metadata={"a": ["\u0000"]}),
        W("metadata.a", "converted"),
        metadata={"a": '["\\u0000"]'},
    ),
    case(
        "metadata-rtl-override", pay(metadata={"file": "\u202egnp.exe"}), metadata={"file": "\u202egnp.exe"}
    ),
    case("metadata-emoji", pay(metadata={"🎉": "💳 paid"}), metadata={"🎉": "💳 paid"}),
    case(
        "metadata-sql",
        pay(metadata={"q": "'; DROP TABLE payments; --"}),
        metadata={"q": "'; DROP TABLE payments; --"},
    ),
    case(
        "metadata-html",
        pay(metadata={"h": "<script>alert(1)</script>"}),
        metadata={"h": "<script>alert(1)</script>"},
    ),
    case(
        "metadata-repeated-key",
        CLEAN_JSON[:-1] + ', "metadata": {"a": "1", "a": "2"}}',
        E("metadata.a", "conflicting_fields"),
    ),
    case(
        "metadata-huge-number",
        CLEAN_JSON[:-1] + ', "metadata": {"n": ' + "7" * 150 + "}}",
        W("metadata.n", "converted"),
        metadata={"n": "7" * 150},
    ),
]

#: A field (or metadata key) given more than once, exactly or in another spelling: one rule. The
#: same value throughout is a warning; two different values are an error and none is used.
DUPLICATES = [
    case(
        "repeat-amount-last-would-win",
        '{"amount": 1250, "currency": "USD", "method": "card", "amount": 99}',
        E("amount", "conflicting_fields"),
        W("merchant_id", "missing"),
        amount=None,
    ),
    case(
        "repeat-amount-same-value",
        CLEAN_JSON[:-1] + ', "amount": 1250}',
        W("amount", "duplicate_field"),
    ),
    case(
        "repeat-amount-exact-and-variant",
        CLEAN_JSON[:-1] + ', "Amount": 1250, "amount": 99}',
        E("amount", "conflicting_fields"),
        amount=None,
    ),
    case(
        "repeat-amount-three-times-same",
        CLEAN_JSON[:-1] + ', "AMOUNT": 1250, "amount": 1250}',
        W("amount", "duplicate_field"),
    ),
    case(
        "repeat-currency",
        CLEAN_JSON[:-1] + ', "currency": "EUR"}',
        E("currency", "conflicting_fields"),
        currency=None,
    ),
    case(
        "repeat-method",
        CLEAN_JSON[:-1] + ', "method": "paypal"}',
        E("method", "conflicting_fields"),
        method=None,
    ),
    case(
        "repeat-merchant-id",
        CLEAN_JSON[:-1] + ', "merchant_id": "m_other"}',
        E("merchant_id", "conflicting_fields"),
        E("merchant_id", "merchant_mismatch"),
        mismatch=True,
    ),
    case(
        "repeat-idempotency-key",
        CLEAN_JSON[:-1] + ', "idempotency_key": "k-1", "idempotency_key": "k-2"}',
        E("idempotency_key", "conflicting_fields"),
    ),
    case(
        "repeat-metadata-object",
        CLEAN_JSON[:-1] + ', "metadata": {"a": "1"}, "metadata": {"b": "2"}}',
        E("metadata", "conflicting_fields"),
    ),
    case(
        "repeat-metadata-spelled-twice-one-with-a-conflict-inside",
        CLEAN_JSON[:-1] + ', "metadata": {"a": "1", "a": "2"}, "Metadata": {"a": "2"}}',
        E("metadata", "conflicting_fields"),
    ),
    case(
        "repeat-metadata-key-same-value",
        CLEAN_JSON[:-1] + ', "metadata": {"a": "1", "b": "x", "a": "1"}}',
        W("metadata.a", "duplicate_field"),
        metadata={"a": "1", "b": "x"},
    ),
    case(
        "repeat-metadata-key-number-and-text-differ",
        CLEAN_JSON[:-1] + ', "metadata": {"a": 1, "a": "1"}}',
        E("metadata.a", "conflicting_fields"),
    ),
    case(
        "repeat-metadata-keys-that-mask-alike-differ",
        pay(metadata={CARD: "x", "4242 4242 4242 4242": "y"}),
        E("metadata.424242******4242", "conflicting_fields"),
    ),
    case(
        "repeat-metadata-keys-that-mask-alike-agree",
        pay(metadata={CARD: "x", "4242 4242 4242 4242": "x"}),
        W("metadata.424242******4242", "card_number_masked"),
        W("metadata.424242******4242", "duplicate_field"),
        metadata={"424242******4242": "x"},
    ),
    case(
        "repeat-form-amount",
        FORM_BODY + "&amount=99",
        E("amount", "conflicting_fields"),
        amount=None,
        content_type=FORM,
    ),
    case(
        "repeat-form-currency",
        FORM_BODY + "&currency=EUR",
        E("currency", "conflicting_fields"),
        amount=None,  # major units, and no currency to read them in
        currency=None,
        content_type=FORM,
    ),
    case(
        "repeat-form-metadata-key-same-value",
        FORM_BODY + "&metadata[a]=1&metadata[a]=1",
        W("metadata.a", "duplicate_field"),
        metadata={"a": "1"},
        content_type=FORM,
    ),
    case(
        "repeat-form-plain-and-bracketed-metadata",
        FORM_BODY + "&metadata=oops&metadata[a]=1",
        E("metadata", "conflicting_fields"),
        content_type=FORM,
    ),
]

BODIES = [
    case("body-empty", b"", E("body", "empty_body"), amount=None, currency=None, method=None),
    case("body-whitespace", b" \n\t ", E("body", "empty_body"), amount=None, currency=None, method=None),
    case(
        "body-invalid-utf8",
        b'{"amount": "\xff"}',
        E("body", "invalid_encoding"),
        amount=None,
        currency=None,
        method=None,
    ),
    case(
        "body-latin1",
        '{"amount": "12,50 \u00a3"}'.encode("latin-1"),
        E("body", "invalid_encoding"),
        amount=None,
        currency=None,
        method=None,
    ),
    case("body-byte-order-mark", b"\xef\xbb\xbf" + CLEAN_JSON.encode(), W("body", "byte_order_mark")),
    case(
        "body-invalid-json",
        '{"amount": 1250,',
        E("body", "invalid_json"),
        amount=None,
        currency=None,
        method=None,
    ),
    case(
        "body-single-quotes",
        "{'amount': 1250}",
        E("body", "invalid_json"),
        amount=None,
        currency=None,
        method=None,
    ),
    case("body-array", "[1250]", E("body", "not_an_object"), amount=None, currency=None, method=None),
    case("body-string", '"1250"', E("body", "not_an_object"), amount=None, currency=None, method=None),
    case("body-null", "null", E("body", "not_an_object"), amount=None, currency=None, method=None),
    case(
        "body-recursion-bomb",
        "[" * 100_000,
        E("body", "invalid_json"),
        amount=None,
        currency=None,
        method=None,
    ),
    case(
        "body-nested-too-deep",
        pay(
            metadata={
                "a": [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    [
                                                                                                                                                                                                                        [
                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                                            1
                                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ]
            }
        ),
        E("body", "invalid_json"),
        amount=None,
        currency=None,
        method=None,
    ),
    case("body-json-no-content-type", pay(), W("body", "content_type"), content_type=None),
    case("body-json-odd-content-type", pay(), W("body", "content_type"), content_type="json"),
    case("body-json-as-text-plain", pay(), W("body", "content_type"), content_type="text/plain"),
    case(
        "body-json-as-multipart",
        pay(),
        W("body", "content_type"),
        content_type="multipart/form-data; boundary=x",
    ),
    case(
        "body-multipart-form-data",
        MULTIPART,
        E("body", "unsupported_content_type"),
        amount=None,
        currency=None,
        method=None,
        content_type="multipart/form-data; boundary=x",
    ),
    case(
        "body-form-fields-labelled-multipart",
        FORM_BODY,
        E("body", "unsupported_content_type"),
        amount=None,
        currency=None,
        method=None,
        content_type="multipart/form-data; boundary=x",
    ),
    case(
        "body-multipart-mixed",
        MULTIPART,
        E("body", "unsupported_content_type"),
        amount=None,
        currency=None,
        method=None,
        content_type="Multipart/Mixed; boundary=x",
    ),
    case(
        "body-json-array-as-multipart",
        [1250],
        E("body", "unsupported_content_type"),
        amount=None,
        currency=None,
        method=None,
        content_type="multipart/form-data; boundary=x",
    ),
    case("body-json-with-charset", pay(), content_type="application/json; charset=utf-8"),
    case("body-json-upper-case-type", pay(), content_type="Application/JSON"),
    case("body-json-vendor-type", pay(), content_type="application/vnd.api+json"),
    case(
        "body-text-plain-prose",
        "hello",
        E("body", "unsupported_content_type"),
        amount=None,
        currency=None,
        method=None,
        content_type="text/plain",
    ),
    case(
        "body-no-type-prose",
        "hello",
        E("body", "unsupported_content_type"),
        amount=None,
        currency=None,
        method=None,
        content_type=None,
    ),
    case(
        "body-text-plain-broken-json",
        '{"amount": ',
        E("body", "unsupported_content_type"),
        amount=None,
        currency=None,
        method=None,
        content_type="text/plain",
    ),
    case(
        "body-no-type-broken-json",
        '{"amount": ',
        W("body", "content_type"),
        E("body", "invalid_json"),
        amount=None,
        currency=None,
        method=None,
        content_type=None,
    ),
    case(
        "body-xml",
        "<amount>1250</amount>",
        E("body", "unsupported_content_type"),
        amount=None,
        currency=None,
        method=None,
        content_type="application/xml",
    ),
    case("form-clean", FORM_BODY, content_type=FORM),
    case(
        "form-everything",
        "merchant_id=m_acme&amount=12.50&currency=eur&method=ApplePay&metadata[order]=A1&metadata[card]=4242424242424242",
        W("currency", "normalized"),
        W("method", "normalized"),
        W("metadata.card", "card_number_masked"),
        currency="EUR",
        method="apple_pay",
        metadata={"order": "A1", "card": "424242******4242"},
        content_type=FORM,
    ),
    case(
        "form-plus-is-space",
        FORM_BODY.replace("USD", "US+Dollar"),
        W("currency", "normalized"),
        content_type=FORM,
    ),
    case("form-percent-encoded", FORM_BODY.replace("12.50", "1%2C234.56"), amount=123456, content_type=FORM),
    # A percent-escape that is no UTF-8 (Latin-1's "ö" is %F6; UTF-8's is %C3%B6) is refused as
    # a JSON body's bytes are: it was read as U+FFFD, and "K%F6ln" and "K%FCln" were one value.
    case(
        "form-percent-escape-not-utf8",
        FORM_BODY + "&metadata[city]=K%F6ln",
        E("body", "invalid_encoding"),
        amount=None,
        currency=None,
        method=None,
        content_type=FORM,
    ),
    case(
        "form-percent-escape-not-utf8-in-a-name",
        FORM_BODY + "&metadata[K%F6ln]=1",
        E("body", "invalid_encoding"),
        amount=None,
        currency=None,
        method=None,
        content_type=FORM,
    ),
    case(
        "form-undeclared-percent-escape-not-utf8",
        FORM_BODY + "&metadata[city]=K%F6ln",
        W("body", "content_type"),
        E("body", "invalid_encoding"),
        amount=None,
        currency=None,
        method=None,
        content_type=None,
    ),
    case(
        "form-percent-escape-utf8",
        FORM_BODY + "&metadata[city]=K%C3%B6ln",
        metadata={"city": "K\u00f6ln"},
        content_type=FORM,
    ),
    case("form-repeated-key", FORM_BODY + "&amount=12.50", W("amount", "duplicate_field"), content_type=FORM),
    case(
        "form-blank-amount",
        FORM_BODY.replace("12.50", ""),
        E("amount", "missing"),
        amount=None,
        content_type=FORM,
    ),
    case(
        "form-plain-metadata", FORM_BODY + "&metadata=oops", E("metadata", "invalid_type"), content_type=FORM
    ),
    case(
        "form-metadata-repeated-key",
        FORM_BODY + "&metadata[a]=1&metadata[a]=2",
        E("metadata.a", "conflicting_fields"),
        content_type=FORM,
    ),
    case(
        "form-nul-byte", FORM_BODY + "&metadata[a]=x%00", E("metadata.a", "invalid_text"), content_type=FORM
    ),
    case(
        "form-bad-percent-escape",
        FORM_BODY + "&metadata[a]=%FF",
        E("body", "invalid_encoding"),
        amount=None,
        currency=None,
        method=None,
        content_type=FORM,
    ),
    case(
        "form-unknown-bracket-field",
        FORM_BODY + "&amount[x]=1",
        W("amount[x]", "unknown_field"),
        content_type=FORM,
    ),
    case(
        "form-nested-metadata-key",
        FORM_BODY + "&metadata[order]=A1&metadata[a][b]=1",
        W("metadata[a][b]", "unknown_field"),
        metadata={"order": "A1"},
        content_type=FORM,
    ),
    case(
        "form-nested-metadata-list",
        FORM_BODY + "&Meta_Data[tags][]=x",
        W("Meta_Data[tags][]", "unknown_field"),
        content_type=FORM,
    ),
    case(
        "form-metadata-key-with-brackets-inside",
        FORM_BODY + "&metadata[items[0]]=x",
        metadata={"items[0]": "x"},
        content_type=FORM,
    ),
    case("form-without-content-type", FORM_BODY, W("body", "content_type"), content_type=None),
    case("form-as-text-plain", FORM_BODY, W("body", "content_type"), content_type="text/plain"),
    case(
        "form-body-sent-as-json",
        FORM_BODY,
        E("body", "invalid_json"),
        amount=None,
        currency=None,
        method=None,
    ),
    # curl -d '{...}' declares a form: a body that is a JSON object is read as JSON all the same.
    case("json-body-sent-as-form", CLEAN_JSON, W("body", "content_type"), content_type=FORM),
    case(
        "json-body-with-corrections-sent-as-form",
        '  {"amount": "12.50", "currency": "usd"}',
        W("body", "content_type"),
        W("merchant_id", "missing"),
        W("currency", "normalized"),
        W("method", "missing"),
        method=None,
        content_type=FORM,
    ),
    form_of_one_unknown_key("broken-json-body-sent-as-form-stays-a-form", CLEAN_JSON[:-1]),
    form_of_one_unknown_key("json-array-sent-as-form-stays-a-form", "[1250]"),
]

IDENTIFIERS = [
    case("merchant-absent", pay(merchant_id=OMIT), W("merchant_id", "missing")),
    case("merchant-null", pay(merchant_id=None), W("merchant_id", "missing")),
    case("merchant-blank", pay(merchant_id=""), W("merchant_id", "missing")),
    case("merchant-padded", pay(merchant_id=" m_acme\n"), W("merchant_id", "normalized")),
    case("merchant-other", pay(merchant_id="m_other"), E("merchant_id", "merchant_mismatch"), mismatch=True),
    case(
        "merchant-other-case", pay(merchant_id="M_ACME"), E("merchant_id", "merchant_mismatch"), mismatch=True
    ),
    case("merchant-number", pay(merchant_id=42), E("merchant_id", "merchant_mismatch"), mismatch=True),
    case(
        "merchant-nul", pay(merchant_id="m_acme\u0000"), E("merchant_id", "merchant_mismatch"), mismatch=True
    ),
    case("merchant-boolean", pay(merchant_id=True), E("merchant_id", "invalid_type")),
    case(
        "merchant-conflicting-spellings",
        pay({"merchantId": "m_other"}),
        E("merchant_id", "conflicting_fields"),
        E("merchant_id", "merchant_mismatch"),
        mismatch=True,
    ),
    case("key-header-only", pay(), key="hdr-1", header="hdr-1"),
    case("key-body-only", pay(idempotency_key="body-1"), key="body-1"),
    case("key-both-equal", pay(idempotency_key="k-1"), key="k-1", header="k-1"),
    case(
        "key-both-different",
        pay(idempotency_key="k-2"),
        E("idempotency_key", "conflicting_idempotency_key"),
        key="k-1",
        header="k-1",
    ),
    case("key-body-null", pay(idempotency_key=None)),
    case("key-body-empty", pay(idempotency_key=""), E("idempotency_key", "invalid_idempotency_key")),
    case("key-body-blank", pay(idempotency_key="   "), E("idempotency_key", "invalid_idempotency_key")),
    case("key-body-255", pay(idempotency_key="k" * 255), key="k" * 255),
    case("key-body-256", pay(idempotency_key="k" * 256), E("idempotency_key", "invalid_idempotency_key")),
    case("key-body-number", pay(idempotency_key=123), E("idempotency_key", "invalid_idempotency_key")),
    case("key-body-nul", pay(idempotency_key="k\u0000"), E("idempotency_key", "invalid_idempotency_key")),
    case("key-body-accented", pay(idempotency_key="clé-ü"), E("idempotency_key", "invalid_idempotency_key")),
    case(
        "key-body-control-characters",
        pay(idempotency_key="line1\nline2\u001b[31m"),
        E("idempotency_key", "invalid_idempotency_key"),
    ),
    case("key-body-tab", pay(idempotency_key="a\tb"), E("idempotency_key", "invalid_idempotency_key")),
    case("key-body-delete", pay(idempotency_key="a\u007f"), E("idempotency_key", "invalid_idempotency_key")),
    case("key-body-emoji", pay(idempotency_key="order-🎉"), E("idempotency_key", "invalid_idempotency_key")),
    case("key-body-inner-space-and-punctuation", pay(idempotency_key="order 17 ~!@#"), key="order 17 ~!@#"),
    case("key-body-padded-kept-as-given", pay(idempotency_key=" k-1 "), key=" k-1 "),
    case("key-header-empty", pay(), E("idempotency_key", "invalid_idempotency_key"), header=""),
    case("key-header-accented", pay(), E("idempotency_key", "invalid_idempotency_key"), header="clé"),
    case(
        "key-body-error-with-body-failure",
        b"",
        E("body", "empty_body"),
        amount=None,
        currency=None,
        method=None,
        key="hdr",
        header="hdr",
    ),
]

CASES = [*AMOUNTS, *CURRENCIES, *METHODS, *FIELD_NAMES, *METADATA, *DUPLICATES, *BODIES, *IDENTIFIERS]


def test_the_table_is_large_and_its_ids_are_unique() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) >= 150
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("body", "content_type", "header", "expected"), CASES)
def test_a_messy_payload_parses_to_exactly_the_expected_outcome(
    body: object, content_type: str | None, header: str | None, expected: Outcome
) -> None:
    result = parse(body, content_type, header)
    assert [(i.field, i.code, i.severity.value) for i in result.issues] == list(expected.issues)
    assert result.amount_cents == expected.amount
    assert (result.currency.code if result.currency else None) == expected.currency
    assert (result.method.value if result.method else None) == expected.method
    assert result.idempotency_key == expected.key
    assert result.merchant_mismatch is expected.mismatch
    blocked = any(severity == "error" for _, _, severity in expected.issues)
    assert result.accepted is not blocked
    if result.context is not None:
        assert dict(result.context.metadata) == expected.metadata
        assert result.context.amount_cents == expected.amount
        assert result.context.validation_errors == result.issues
        assert result.context.merchant_id == "m_acme"
