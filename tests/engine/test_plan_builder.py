from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import policy
from engine.config import ProcessorConfig, ProcessorKind, RoutingRule
from engine.methods import PaymentMethod
from engine.money import Currency
from engine.plan_builder import build_plan, eligible_processors
from engine.policy import PaymentPolicyEnforcer
from engine.types import ProcessorId
from tests.engine.harness import merchant, request, rig

APPLE, STRIPE, ADYEN = ProcessorId("applepay_sim"), ProcessorId("stripe_sim"), ProcessorId("adyen_sim")


def test_the_seed_split_applepay_60_then_card_40() -> None:
    plan = build_plan(request(10_000), merchant())
    assert [(s.index, s.method, s.amount_cents, s.processor_ids) for s in plan.steps] == [
        (0, PaymentMethod.APPLE_PAY, 6000, (APPLE,)),
        (1, PaymentMethod.CARD, 4000, (STRIPE, ADYEN)),
    ]
    assert plan.fully_covered


def test_an_amount_within_the_first_cap_is_one_step() -> None:
    plan = build_plan(request(5000), merchant())
    assert [(s.method, s.amount_cents) for s in plan.steps] == [(PaymentMethod.APPLE_PAY, 5000)]


def test_the_requested_method_goes_first_and_takes_what_it_can() -> None:
    plan = build_plan(request(10_000, payment_method=PaymentMethod.CARD), merchant())
    assert [(s.method, s.amount_cents) for s in plan.steps] == [(PaymentMethod.CARD, 10_000)]


def test_routing_that_runs_out_records_a_shortfall() -> None:
    capped = merchant(routing=(RoutingRule(PaymentMethod.APPLE_PAY, (APPLE,), max_amount_cents=6000),))
    plan = build_plan(request(10_000), capped)
    assert plan.coverage_shortfall_cents == 4000
    assert not plan.fully_covered


def test_processors_that_refuse_the_currency_or_method_are_left_out() -> None:
    configs = {
        APPLE: ProcessorConfig(APPLE, ProcessorKind.SIMULATED, currencies=(Currency("EUR"),)),
        STRIPE: ProcessorConfig(STRIPE, ProcessorKind.SIMULATED, methods=(PaymentMethod.PAYPAL,)),
        ADYEN: ProcessorConfig(ADYEN, ProcessorKind.SIMULATED),
    }
    plan = build_plan(request(10_000), merchant(), configs)
    assert [(s.method, s.amount_cents, s.processor_ids) for s in plan.steps] == [
        (PaymentMethod.CARD, 10_000, (ADYEN,))
    ]


def test_policy_refuses_what_the_merchant_does_not_allow() -> None:
    setup = rig({})
    enforcer = PaymentPolicyEnforcer(setup.config)
    acme = setup.config.merchant("m_acme")
    assert enforcer.check(request(10_000), acme).allowed
    over = enforcer.check(request(acme.max_amount_cents + 1), acme)
    assert not over.allowed and "exceeds the merchant maximum" in (over.reason or "")
    paypal = enforcer.check(request(100, payment_method=PaymentMethod.PAYPAL), acme)
    assert not paypal.allowed and "paypal is not enabled" in (paypal.reason or "")


def test_policy_refuses_a_currency_no_processor_accepts() -> None:
    eur_only = tuple(
        ProcessorConfig(p, ProcessorKind.SIMULATED, currencies=(Currency("EUR"),))
        for p in (APPLE, STRIPE, ADYEN)
    )
    setup = rig({}, processor_configs=eur_only)
    decision = PaymentPolicyEnforcer(setup.config).check(request(100), setup.config.merchant("m_acme"))
    assert not decision.allowed and decision.reason == "no processor accepts payments in USD"


def test_policy_looks_at_a_merchants_routing_once_for_each_method_and_currency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every payment is checked twice (by the API, then by the orchestrator): the routing's part of
    the answer, which depends on the merchant's config, the method and the currency only, is found
    once; a config given anew (another routing under the same merchant id) is looked at anew."""
    looked: list[str] = []

    def counting(rule: RoutingRule, currency: Currency, processors: Any) -> tuple[ProcessorId, ...]:
        looked.append(f"{rule.method.value} {currency.code}")
        return eligible_processors(rule, currency, processors)

    monkeypatch.setattr(policy, "eligible_processors", counting)
    setup = rig({})
    enforcer = PaymentPolicyEnforcer(setup.config)
    acme = setup.config.merchant("m_acme")
    for _ in range(3):
        assert enforcer.check(request(10_000), acme).allowed
        assert enforcer.check(request(500, payment_method=PaymentMethod.CARD), acme).allowed
    assert looked == ["apple_pay USD", "card USD", "apple_pay USD"]
    card_only = replace(acme, routing=(RoutingRule(PaymentMethod.CARD, (STRIPE,)),))
    refused = enforcer.check(request(500, payment_method=PaymentMethod.APPLE_PAY), card_only)
    assert (refused.allowed, refused.code) == (False, "method_not_enabled")
    assert enforcer.check(request(500, payment_method=PaymentMethod.APPLE_PAY), acme).allowed


rules = st.lists(
    st.builds(
        RoutingRule,
        method=st.sampled_from(PaymentMethod),
        processors=st.sampled_from([(APPLE,), (STRIPE, ADYEN), (ADYEN,)]),
        max_amount_cents=st.one_of(st.none(), st.integers(min_value=1, max_value=50_000)),
    ),
    min_size=1,
    max_size=5,
).map(tuple)


@given(
    amount=st.integers(min_value=1, max_value=200_000),
    routing=rules,
    method=st.one_of(st.none(), st.sampled_from(PaymentMethod)),
)
def test_plans_are_deterministic_and_respect_every_cap(
    amount: int, routing: tuple[RoutingRule, ...], method: PaymentMethod | None
) -> None:
    config = merchant(routing=routing)
    ctx = request(amount, payment_method=method)
    plan = build_plan(ctx, config)
    assert plan == build_plan(ctx, config)
    assert plan.planned_amount_cents + plan.coverage_shortfall_cents == amount
    for step in plan.steps:
        assert step.max_amount_cents is None or step.amount_cents <= step.max_amount_cents
    capacity = sum(amount if r.max_amount_cents is None else r.max_amount_cents for r in routing)
    assert plan.fully_covered == (capacity >= amount)
    if method is not None and any(r.method is method for r in routing):
        assert plan.steps[0].method is method
