"""Properties of the orchestrator over random plans, amounts and processor behaviours."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import RoutingRule
from engine.events import PaymentCompleted, PaymentFailed
from engine.methods import PartialPolicy, PaymentMethod
from engine.plan_builder import build_plan
from engine.results import PaymentStatus
from engine.types import ProcessorId
from tests.engine.fakes import (
    DECLINE,
    GARBAGE,
    INVALID,
    NETWORK,
    OK,
    PROCESSING,
    RAISE,
    TIMEOUT_CHARGED,
    TIMEOUT_UNCHARGED,
    UNAVAILABLE,
    ScriptedProcessor,
)
from tests.engine.harness import merchant, request, rig

NAMES = ("p_one", "p_two", "p_three")
BEHAVIOURS = (
    OK,
    OK,
    OK,
    DECLINE,
    INVALID,
    NETWORK,
    PROCESSING,
    UNAVAILABLE,
    TIMEOUT_CHARGED,
    TIMEOUT_UNCHARGED,
    RAISE,
    GARBAGE,
)

scripts = st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=4)
rules = st.lists(
    st.builds(
        RoutingRule,
        method=st.sampled_from(PaymentMethod),
        processors=st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True).map(
            lambda names: tuple(ProcessorId(n) for n in names)
        ),
        max_amount_cents=st.one_of(st.none(), st.integers(min_value=1, max_value=8000)),
    ),
    min_size=1,
    max_size=3,
).map(tuple)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amount=st.integers(min_value=1, max_value=20_000),
    routing=rules,
    policy=st.sampled_from(PartialPolicy),
    charge_scripts=st.tuples(scripts, scripts, scripts),
    refund_scripts=st.tuples(
        *(st.lists(st.sampled_from((OK, OK, NETWORK, RAISE)), min_size=1, max_size=3),) * 3
    ),
    status_scripts=st.tuples(
        *(st.lists(st.sampled_from(("ledger", "ledger", "unknown")), min_size=1, max_size=3),) * 3
    ),
    max_attempts=st.integers(min_value=1, max_value=3),
)
async def test_every_payment_is_consistent_terminal_and_never_over_charged(
    amount: int,
    routing: tuple[RoutingRule, ...],
    policy: PartialPolicy,
    charge_scripts: tuple[list[str], ...],
    refund_scripts: tuple[list[str], ...],
    status_scripts: tuple[list[str], ...],
    max_attempts: int,
) -> None:
    fakes = {
        name: ScriptedProcessor(name, charge, refund_script=refund, status_script=status)
        for name, charge, refund, status in zip(
            NAMES, charge_scripts, refund_scripts, status_scripts, strict=True
        )
    }
    setup = rig(fakes, merchant(policy, routing, max_attempts=max_attempts, timeout_ms=5))
    result = await setup.service.pay(request(amount))

    # sums
    assert result.total_processed == sum(
        s.amount_processed for s in result.step_results if s.success and not s.compensated
    )
    assert result.remaining_amount == result.total_amount - result.total_processed
    assert 0 <= result.total_processed <= amount
    plan = build_plan(request(amount), setup.config.merchant("m_acme"))
    for step in result.step_results:
        planned = plan.steps[step.step_index]
        assert step.amount_processed in (0, planned.amount_cents)
        assert planned.max_amount_cents is None or step.amount_processed <= planned.max_amount_cents
    # exactly one terminal event, last
    terminal = [e for e in setup.sink.events if isinstance(e, PaymentCompleted | PaymentFailed)]
    assert len(terminal) == 1
    assert setup.sink.events[-1] is terminal[0]
    # money truth: what processors hold is what the result says, unless a compensation failed (recorded)
    held = sum(amount for fake in fakes.values() for amount in fake.held.values())
    compensation_failed = "orchestrator/compensation-failed" in setup.sink.contract_ids()
    assert held == result.total_processed or compensation_failed
    # no step is held at two processors
    for index in range(len(plan.steps)):
        key = f"pay_1:step:{index}"
        assert sum(key in fake.held for fake in fakes.values()) <= 1
    # the policy decides what a failure keeps
    if policy is PartialPolicy.ALL_OR_NOTHING:
        assert result.status is not PaymentStatus.PARTIALLY_SUCCEEDED
        if result.status is PaymentStatus.FAILED:
            assert result.total_processed == 0 or compensation_failed
    if result.status is PaymentStatus.SUCCEEDED:
        assert result.total_processed == amount
        assert held == amount


IN_DOUBT = (TIMEOUT_CHARGED, TIMEOUT_UNCHARGED, GARBAGE, RAISE, NETWORK, UNAVAILABLE, PROCESSING, DECLINE, OK)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(st.sampled_from(IN_DOUBT), min_size=1, max_size=4),
    second=st.lists(st.sampled_from(IN_DOUBT), min_size=1, max_size=3),
    first_status=st.lists(st.sampled_from(("ledger", "unknown")), min_size=1, max_size=3),
    max_attempts=st.integers(min_value=1, max_value=4),
)
async def test_a_step_in_doubt_at_one_processor_never_moves_to_another(
    first: list[str], second: list[str], first_status: list[str], max_attempts: int
) -> None:
    fakes = {
        "p_one": ScriptedProcessor("p_one", first, status_script=first_status),
        "p_two": ScriptedProcessor("p_two", second),
    }
    chain = (RoutingRule(PaymentMethod.CARD, (ProcessorId("p_one"), ProcessorId("p_two"))),)
    setup = rig(fakes, merchant(routing=chain, max_attempts=max_attempts, timeout_ms=5))
    step = build_plan(request(5000), setup.config.merchant("m_acme")).steps[0]
    routed = await setup.router.route_step(request(5000), step, setup.config.merchant("m_acme"))
    held_at = [name for name, fake in fakes.items() if "pay_1:step:0" in fake.held]
    assert len(held_at) <= 1
    if routed.unsettled:
        assert fakes["p_two"].calls == 0
    if routed.result.success:
        assert held_at == [routed.result.processor_id]
    elif not routed.unsettled:
        assert held_at == []
