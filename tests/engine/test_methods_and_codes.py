import pytest

from engine.error_codes import ErrorCode, RetryClass
from engine.errors import InvalidFieldError, UnknownErrorCodeError, UnknownPaymentMethodError
from engine.methods import PartialPolicy, PaymentMethod


def test_the_spec_error_codes_exist_with_their_wire_values() -> None:
    assert {"timeout", "declined", "invalid_card", "network_failure", "unknown"} <= {
        c.value for c in ErrorCode
    }


@pytest.mark.parametrize(
    ("code", "retry_class"),
    [
        (ErrorCode.TIMEOUT, RetryClass.RETRY_SAME),
        (ErrorCode.PROCESSING_ERROR, RetryClass.RETRY_SAME),
        (ErrorCode.MALFORMED_RESPONSE, RetryClass.RETRY_SAME),
        (ErrorCode.PROCESSOR_ERROR, RetryClass.RETRY_SAME),
        (ErrorCode.RATE_LIMITED, RetryClass.RETRY_SAME),
        (ErrorCode.NETWORK_FAILURE, RetryClass.CASCADE),
        (ErrorCode.PROCESSOR_UNAVAILABLE, RetryClass.CASCADE),
        (ErrorCode.DECLINED, RetryClass.NEVER),
        (ErrorCode.INVALID_CARD, RetryClass.NEVER),
        (ErrorCode.UNKNOWN, RetryClass.NEVER),
        (ErrorCode.POLICY_REJECTED, RetryClass.NEVER),
        (ErrorCode.COVERAGE_SHORTFALL, RetryClass.NEVER),
    ],
)
def test_each_error_code_says_how_it_may_be_retried(code: ErrorCode, retry_class: RetryClass) -> None:
    assert code.retry_class is retry_class
    assert code.retryable == (retry_class is not RetryClass.NEVER)
    assert code.description


def test_every_error_code_is_classified() -> None:
    for code in ErrorCode:
        assert isinstance(code.retry_class, RetryClass)


def test_only_unanswered_attempts_have_an_unknown_outcome() -> None:
    unknown = {code for code in ErrorCode if code.outcome_unknown}
    assert unknown == {ErrorCode.TIMEOUT, ErrorCode.MALFORMED_RESPONSE, ErrorCode.PROCESSOR_ERROR}
    assert all(code.retry_class is RetryClass.RETRY_SAME for code in unknown)


def test_parsing_names_the_field_and_value() -> None:
    assert ErrorCode.parse("declined") is ErrorCode.DECLINED
    assert PaymentMethod.parse("apple_pay") is PaymentMethod.APPLE_PAY
    assert PartialPolicy.parse("allow_partial") is PartialPolicy.ALLOW_PARTIAL
    with pytest.raises(UnknownErrorCodeError, match="final_error='boom'"):
        ErrorCode.parse("boom", "final_error")
    with pytest.raises(UnknownPaymentMethodError, match="method='bitcoin'"):
        PaymentMethod.parse("bitcoin")
    with pytest.raises(InvalidFieldError, match="partial_policy=3"):
        PartialPolicy.parse(3)


def test_only_processor_health_failures_count_against_a_circuit() -> None:
    # Answers about the card or the request come from a working processor.
    healthy_answers = {
        ErrorCode.DECLINED,
        ErrorCode.INVALID_CARD,
        ErrorCode.PROCESSING_ERROR,
        ErrorCode.UNKNOWN,
        ErrorCode.POLICY_REJECTED,
        ErrorCode.COVERAGE_SHORTFALL,
    }
    for code in ErrorCode:
        assert code.is_processor_fault == (code not in healthy_answers)
