import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import (
    DomainError,
    InvalidAmountError,
    InvalidFieldError,
    InvalidIdentifierError,
    PlanInvariantError,
)
from engine.methods import PartialPolicy, PaymentMethod
from engine.money import Currency, Money
from engine.plan import PaymentPlan, PaymentStep, processor_idempotency_key
from engine.types import MerchantId, PaymentId, ProcessorId, RequestId

USD = Currency("USD")
APPLE = ProcessorId("applepay_sim")
STRIPE = ProcessorId("stripe_sim")
ADYEN = ProcessorId("adyen_sim")


def plan(total: int, *steps: PaymentStep) -> PaymentPlan:
    return PaymentPlan(
        payment_id=PaymentId("pay_1"),
        request_id=RequestId("req_1"),
        merchant_id=MerchantId("m_acme"),
        total_amount_cents=total,
        currency=USD,
        steps=steps,
    )


def test_the_seed_split_applepay_60_then_card_40_covers_the_total() -> None:
    seed = plan(
        10_000,
        PaymentStep(0, PaymentMethod.APPLE_PAY, 6000, (APPLE,), max_amount_cents=6000),
        PaymentStep(1, PaymentMethod.CARD, 4000, (STRIPE, ADYEN)),
    )
    assert seed.fully_covered
    assert seed.coverage_shortfall_cents == 0
    assert seed.total == Money(10_000, USD)
    assert seed.steps[1].processor_id == STRIPE
    assert seed.partial_policy is PartialPolicy.ALL_OR_NOTHING


def test_a_plan_that_cannot_cover_the_total_records_the_shortfall() -> None:
    short = plan(10_000, PaymentStep(0, PaymentMethod.APPLE_PAY, 6000, (APPLE,), max_amount_cents=6000))
    assert not short.fully_covered
    assert short.coverage_shortfall_cents == 4000
    assert plan(500).coverage_shortfall_cents == 500


def test_steps_must_be_in_order() -> None:
    with pytest.raises(PlanInvariantError, match=r"plan.steps\[0\].index=1"):
        plan(100, PaymentStep(1, PaymentMethod.CARD, 100, (STRIPE,)))


def test_steps_may_not_add_up_to_more_than_the_total() -> None:
    with pytest.raises(PlanInvariantError, match="more than the total 100"):
        plan(
            100,
            PaymentStep(0, PaymentMethod.CARD, 60, (STRIPE,)),
            PaymentStep(1, PaymentMethod.CARD, 41, (ADYEN,)),
        )


def test_a_step_may_not_exceed_its_maximum() -> None:
    with pytest.raises(
        PlanInvariantError, match="step.amount_cents=6001: exceeds the step's max_amount_cents 6000"
    ):
        PaymentStep(0, PaymentMethod.APPLE_PAY, 6001, (APPLE,), max_amount_cents=6000)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"amount_cents": 0}, InvalidAmountError, "step.amount_cents"),
        ({"amount_cents": -1}, InvalidAmountError, "step.amount_cents"),
        ({"processor_ids": ()}, PlanInvariantError, "step.processor_ids"),
        ({"processor_ids": (STRIPE, STRIPE)}, PlanInvariantError, "step.processor_ids"),
        ({"processor_ids": ("",)}, InvalidIdentifierError, "step.processor_ids"),
        ({"index": -1}, InvalidFieldError, "step.index"),
        ({"method": "card"}, InvalidFieldError, "step.method"),
    ],
)
def test_invalid_steps_name_the_field(kwargs: dict[str, object], error: type[Exception], field: str) -> None:
    values: dict[str, object] = {
        "index": 0,
        "method": PaymentMethod.CARD,
        "amount_cents": 100,
        "processor_ids": (STRIPE,),
    }
    values.update(kwargs)
    with pytest.raises(error) as raised:
        PaymentStep(**values)  # type: ignore[arg-type]
    assert str(raised.value).startswith(field)


def test_a_plan_needs_a_positive_total_and_valid_ids() -> None:
    with pytest.raises(InvalidAmountError, match="plan.total_amount_cents"):
        plan(0)
    with pytest.raises(InvalidIdentifierError, match="plan.payment_id"):
        PaymentPlan(PaymentId(" "), RequestId("r"), MerchantId("m"), 1, USD, ())


def test_processor_idempotency_keys_are_stable_per_step_and_distinct_across_steps() -> None:
    seed = plan(
        100,
        PaymentStep(0, PaymentMethod.CARD, 50, (STRIPE,)),
        PaymentStep(1, PaymentMethod.CARD, 50, (ADYEN,)),
    )
    assert (
        seed.idempotency_key(0) == seed.idempotency_key(0) == processor_idempotency_key(PaymentId("pay_1"), 0)
    )
    assert seed.idempotency_key(0) != seed.idempotency_key(1)
    with pytest.raises(DomainError, match="step_index=2"):
        seed.idempotency_key(2)


step_specs = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=10**9),
        st.one_of(st.none(), st.integers(min_value=1, max_value=10**9)),
    ),
    max_size=6,
)


@given(total=st.integers(min_value=1, max_value=5 * 10**9), specs=step_specs)
def test_a_plan_exists_exactly_when_its_invariants_hold(
    total: int, specs: list[tuple[int, int | None]]
) -> None:
    within_max = all(maximum is None or amount <= maximum for amount, maximum in specs)
    covered = sum(amount for amount, _ in specs)
    try:
        steps = tuple(
            PaymentStep(i, PaymentMethod.CARD, amount, (STRIPE,), max_amount_cents=maximum)
            for i, (amount, maximum) in enumerate(specs)
        )
        built = plan(total, *steps)
    except PlanInvariantError:
        assert not within_max or covered > total
        return
    assert within_max
    assert covered <= total
    assert built.planned_amount_cents + built.coverage_shortfall_cents == total
    assert built.fully_covered == (covered == total)
    assert [step.index for step in built.steps] == list(range(len(specs)))
