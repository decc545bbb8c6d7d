import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.error_codes import ErrorCode
from engine.errors import DomainError, ResultInvariantError
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.results import CompositeResult, PaymentStatus, Result
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId

USD = Currency("USD")


def ok(index: int, amount: int, *, compensated: bool = False) -> Result:
    return Result(
        index, PaymentMethod.CARD, ProcessorId("stripe_sim"), True, amount, 12, 1, compensated=compensated
    )


def failed(index: int, code: ErrorCode = ErrorCode.DECLINED) -> Result:
    return Result(index, PaymentMethod.CARD, ProcessorId("stripe_sim"), False, 0, 30, 2, error_code=code)


def composite(
    status: PaymentStatus, total: int, *steps: Result, error: ErrorCode | None = None
) -> CompositeResult:
    return CompositeResult(
        PaymentId("pay_1"), RequestId("req_1"), MerchantId("m_acme"), status, USD, total, steps, error
    )


def test_the_seed_split_succeeds_with_everything_processed() -> None:
    result = composite(PaymentStatus.SUCCEEDED, 10_000, ok(0, 6000), ok(1, 4000))
    assert result.success
    assert result.total_processed == 10_000
    assert result.remaining_amount == 0


def test_allow_partial_reports_what_remains() -> None:
    result = composite(
        PaymentStatus.PARTIALLY_SUCCEEDED, 10_000, ok(0, 6000), failed(1), error=ErrorCode.DECLINED
    )
    assert not result.success
    assert result.total_processed == 6000
    assert result.remaining_amount == 4000


def test_a_compensated_step_no_longer_counts() -> None:
    result = composite(
        PaymentStatus.FAILED, 10_000, ok(0, 6000, compensated=True), failed(1), error=ErrorCode.DECLINED
    )
    assert result.total_processed == 0
    assert result.remaining_amount == 10_000
    assert result.still_charged_steps == ()


def test_a_failed_payment_says_which_step_is_still_charged() -> None:
    result = composite(PaymentStatus.FAILED, 10_000, ok(0, 6000), failed(1), error=ErrorCode.DECLINED)
    assert [step.step_index for step in result.still_charged_steps] == [0]


@pytest.mark.parametrize(
    ("status", "steps", "error", "field"),
    [
        (PaymentStatus.SUCCEEDED, (ok(0, 6000),), None, "result.status"),
        (PaymentStatus.SUCCEEDED, (ok(0, 10_000),), ErrorCode.DECLINED, "result.final_error"),
        (PaymentStatus.PARTIALLY_SUCCEEDED, (failed(0),), ErrorCode.DECLINED, "result.status"),
        (PaymentStatus.PARTIALLY_SUCCEEDED, (ok(0, 10_000),), None, "result.status"),
        (PaymentStatus.FAILED, (failed(0),), None, "result.final_error"),
        (PaymentStatus.SUCCEEDED, (ok(0, 6000), ok(1, 5000)), None, "result.total_processed"),
        (PaymentStatus.SUCCEEDED, (ok(1, 5000), ok(0, 5000)), None, "result.step_results"),
    ],
)
def test_contradictory_composite_results_are_refused(
    status: PaymentStatus, steps: tuple[Result, ...], error: ErrorCode | None, field: str
) -> None:
    with pytest.raises(ResultInvariantError) as raised:
        composite(status, 10_000, *steps, error=error)
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"success": True, "error_code": ErrorCode.TIMEOUT}, "result.error_code"),
        ({"success": True, "amount_processed": 0}, "result.amount_processed"),
        ({"success": False, "error_code": None}, "result.error_code"),
        (
            {"success": False, "error_code": ErrorCode.TIMEOUT, "amount_processed": 5},
            "result.amount_processed",
        ),
        (
            {"success": False, "error_code": ErrorCode.TIMEOUT, "amount_processed": 0, "compensated": True},
            "result.compensated",
        ),
        ({"attempts": 0}, "result.attempts"),
        ({"latency_ms": -1}, "result.latency_ms"),
        ({"success": 1}, "result.success"),
    ],
)
def test_contradictory_step_results_are_refused(kwargs: dict[str, object], field: str) -> None:
    values: dict[str, object] = {
        "step_index": 0,
        "method": PaymentMethod.CARD,
        "processor_id": "stripe_sim",
        "success": True,
        "amount_processed": 100,
        "latency_ms": 5,
        "attempts": 1,
    }
    values.update(kwargs)
    with pytest.raises(DomainError) as raised:
        Result(**values)  # type: ignore[arg-type]
    assert str(raised.value).startswith(f"{field}=")


def test_retryable_follows_the_error_code() -> None:
    assert failed(0, ErrorCode.TIMEOUT).retryable
    assert not failed(0, ErrorCode.DECLINED).retryable
    assert not ok(0, 1).retryable


outcomes = st.lists(
    st.one_of(
        st.tuples(st.just("ok"), st.integers(min_value=1, max_value=10**6), st.booleans()),
        st.tuples(st.just("fail"), st.just(0), st.just(False)),
    ),
    max_size=6,
)


@given(
    total=st.integers(min_value=1, max_value=6 * 10**6), steps=outcomes, status=st.sampled_from(PaymentStatus)
)
def test_composite_sums_are_consistent_whenever_a_result_exists(
    total: int, steps: list[tuple[str, int, bool]], status: PaymentStatus
) -> None:
    results = tuple(
        ok(i, amount, compensated=comp) if kind == "ok" else failed(i)
        for i, (kind, amount, comp) in enumerate(steps)
    )
    error = None if status is PaymentStatus.SUCCEEDED else ErrorCode.DECLINED
    try:
        result = composite(status, total, *results, error=error)
    except ResultInvariantError:
        return
    charged = sum(amount for kind, amount, comp in steps if kind == "ok" and not comp)
    assert result.total_processed == charged <= total
    assert result.remaining_amount == total - charged
    if status is PaymentStatus.SUCCEEDED:
        assert charged == total
    if status is PaymentStatus.PARTIALLY_SUCCEEDED:
        assert 0 < charged < total
