from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.context import CoreRequestContext
from engine.errors import InvalidAmountError, InvalidFieldError, InvalidIdentifierError, InvalidTimestampError
from engine.methods import PaymentMethod
from engine.money import Currency, Money
from engine.types import MerchantId, PaymentId, RequestId
from engine.validation import IssueSeverity, ValidationIssue

WARNING = ValidationIssue("currency", "defaulted", "currency missing: USD used", IssueSeverity.WARNING, None)
ERROR = ValidationIssue("amount", "not_a_number", "amount is not a number", IssueSeverity.ERROR, "abc")


def context(**overrides: object) -> CoreRequestContext:
    values: dict[str, object] = {
        "merchant_id": MerchantId("m_acme"),
        "request_id": RequestId("req_1"),
        "payment_id": PaymentId("pay_1"),
        "amount_cents": 10_000,
        "currency": Currency("USD"),
    }
    values.update(overrides)
    return CoreRequestContext(**values)  # type: ignore[arg-type]


def test_a_context_carries_its_amount_as_money_and_its_warnings() -> None:
    ctx = context(payment_method=PaymentMethod.APPLE_PAY, validation_errors=[WARNING], idempotency_key="k1")
    assert ctx.amount == Money(10_000, Currency("USD"))
    assert ctx.validation_errors == (WARNING,)
    assert ctx.payment_method is PaymentMethod.APPLE_PAY


def test_a_context_never_holds_an_error_issue() -> None:
    with pytest.raises(InvalidFieldError, match="validation_errors='not_a_number'"):
        context(validation_errors=[WARNING, ERROR])


def test_metadata_is_frozen_and_bounded() -> None:
    ctx = context(metadata={"order": "42"})
    with pytest.raises(TypeError):
        ctx.metadata["order"] = "43"  # type: ignore[index]
    with pytest.raises(InvalidFieldError, match="at most 50 keys"):
        context(metadata={f"k{i}": "v" for i in range(51)})
    with pytest.raises(InvalidIdentifierError, match="metadata key"):
        context(metadata={"k" * 41: "v"})
    with pytest.raises(InvalidIdentifierError, match="metadata.note"):
        context(metadata={"note": "x" * 501})
    with pytest.raises(InvalidIdentifierError, match="metadata.n"):
        context(metadata={"n": 5})


@pytest.mark.parametrize(
    ("overrides", "error", "field"),
    [
        ({"amount_cents": 0}, InvalidAmountError, "amount_cents"),
        ({"amount_cents": -100}, InvalidAmountError, "amount_cents"),
        ({"amount_cents": 12.5}, InvalidAmountError, "amount_cents"),
        ({"merchant_id": ""}, InvalidIdentifierError, "merchant_id"),
        ({"merchant_id": "m acme"}, InvalidIdentifierError, "merchant_id"),
        ({"request_id": None}, InvalidIdentifierError, "request_id"),
        ({"currency": "USD"}, InvalidFieldError, "currency"),
        ({"payment_method": "card"}, InvalidFieldError, "payment_method"),
        ({"idempotency_key": "k" * 256}, InvalidIdentifierError, "idempotency_key"),
        ({"validation_errors": "oops"}, InvalidFieldError, "validation_errors"),
    ],
)
def test_invalid_contexts_name_the_field_and_value(
    overrides: dict[str, object], error: type[Exception], field: str
) -> None:
    with pytest.raises(error) as raised:
        context(**overrides)
    assert str(raised.value).startswith(f"{field}=")


def test_validation_issue_rules() -> None:
    assert not WARNING.blocks
    assert ERROR.blocks
    with pytest.raises(InvalidFieldError, match="issue.code='Bad Code'"):
        ValidationIssue("amount", "Bad Code", "m", IssueSeverity.ERROR)
    with pytest.raises(InvalidFieldError, match="issue.severity='warning'"):
        ValidationIssue("amount", "c", "m", "warning")  # type: ignore[arg-type]
    with pytest.raises(InvalidIdentifierError, match="issue.raw"):
        ValidationIssue("amount", "c", "m", IssueSeverity.WARNING, "x" * 501)


def test_timestamps_must_be_aware() -> None:
    from engine.events import check_timestamp

    assert check_timestamp("t", datetime(2026, 1, 1, tzinfo=UTC))
    assert check_timestamp("t", datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5))))
    with pytest.raises(InvalidTimestampError, match="timezone-aware"):
        check_timestamp("t", datetime(2026, 1, 1))
    with pytest.raises(InvalidTimestampError, match="must be a datetime"):
        check_timestamp("t", "2026-01-01")
